"""AugMix (Hendrycks et al., ICLR 2020) for a batch on its device, as the paper's reference code
(google-research/augmix) defines it:

    x_aug = m x + (1 - m) sum_i w_i chain_i(x),   w ~ Dirichlet(1, 1, 1),  m ~ Beta(1, 1)

three chains of 1-3 operations each, drawn uniformly from the paper's nine (autocontrast, equalize, posterize,
rotate, solarize, shear and translate in x and y: none of the photometric operations the benchmark's corruptions
use, as in the paper), each at a level drawn uniformly in [0.1, severity] out of 10 (``severity``: the paper's and
torchvision's default 3), with a random sign for the geometric ones. Every draw comes from ``rng.sample_uniform`` per
(seed, epoch, image index): an image's augmentation does not depend on its batch. No Jensen-Shannon consistency
loss: the augmentation alone, as torchvision's transform provides it.

Why not a library's: torchvision's ``transforms.v2.AugMix`` is the usual one, but its wheels are built against CUDA
torch and do not load beside a CPU build (no CPU torchvision is installable where this project is tested), and kornia
has no AugMix. The reference code runs PIL's operations image by image: ~1.6 ms per 28-px image here, more than the
training step itself, and kornia's equalize ~2 ms. So the operations run batched on the device: the four lookup-table
ones (autocontrast, equalize, posterize, solarize) on the 8-bit values exactly as PIL's ``ImageOps`` computes them
(tests/test_procedures.py compares them with PIL image by image), the geometric ones as one ``grid_sample`` per
step with each image's PIL affine matrix (bilinear, 0 outside the image, as PIL's ``Image.transform``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

WIDTH, DEPTH = 3, 3  # chains, most operations per chain
OPERATION_NAMES = (
    "autocontrast",
    "equalize",
    "posterize",
    "rotate",
    "solarize",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
)
LOOKUP = ("autocontrast", "equalize", "posterize", "solarize")  # the rest are geometric
DRAWS = 1 + WIDTH * (1 + 3 * DEPTH) + WIDTH  # mix, per chain (depth, per step: operation, level, sign), weights


def _int(level: torch.Tensor, most: float) -> torch.Tensor:
    return (level * most / 10).floor()  # the reference's int_parameter (levels are positive)


# ------------------------------------------------------------------------- lookup tables on 8-bit values (B, C, H, W)
def posterize(x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """PIL's ``ImageOps.posterize``: keep each value's top ``bits`` (B,) bits."""
    mask = (255 << (8 - bits.long())) & 255
    return x & mask.view(-1, 1, 1, 1).to(x.dtype)


def solarize(x: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """PIL's ``ImageOps.solarize``: values at or above ``threshold`` (B,) inverted."""
    return torch.where(x >= threshold.view(-1, 1, 1, 1), 255 - x, x)


def autocontrast(x: torch.Tensor) -> torch.Tensor:
    """PIL's ``ImageOps.autocontrast`` (no cutoff): each channel's range stretched to 0-255, truncated as PIL's table;
    a flat channel unchanged."""
    lo, hi = x.amin((2, 3), keepdim=True).double(), x.amax((2, 3), keepdim=True).double()
    scale = torch.full_like(hi, 255.0) / (hi - lo).clamp(min=1)  # tensor / tensor: 255 / t multiplies by 1 / t
    stretched = (x.double() * scale - lo * scale).floor().clamp(0, 255).to(x.dtype)
    return torch.where(hi > lo, stretched, x)


def equalize(x: torch.Tensor) -> torch.Tensor:
    """PIL's ``ImageOps.equalize``: per channel, the table (step // 2 + the count of smaller values) // step, step =
    (pixels - the count of the largest value present) // 255; unchanged where step is 0."""
    b, c = x.shape[:2]
    flat = x.reshape(b * c, -1).long()
    counts = torch.zeros(b * c, 256, dtype=torch.long, device=x.device).scatter_add_(1, flat, torch.ones_like(flat))
    top = 255 - (counts.flip(1) > 0).long().argmax(1)  # the largest value present
    step = (flat.shape[1] - counts.gather(1, top[:, None])[:, 0]) // 255
    below = counts.cumsum(1) - counts  # values smaller than each level
    table = ((step[:, None] // 2 + below) // step.clamp(min=1)[:, None]).clamp(max=255)
    out = table.gather(1, flat).reshape(x.shape).to(x.dtype)
    return torch.where((step > 0).view(b, c, 1, 1), out, x)


# ------------------------------------------------------------------------------------------- geometric, PIL's matrices
def _pil_matrices(names: list[str], level: torch.Tensor, sign: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, 3, 3): each image's PIL affine matrix for its geometric operation ``names[i]``, mapping an output pixel to
    the input point it reads (corner coordinates)."""
    kind = {name: torch.tensor([n == name for n in names]) for name in OPERATION_NAMES if name not in LOOKUP}
    m = torch.eye(3, dtype=torch.float64).repeat(len(names), 1, 1)
    # Image.rotate: counter-clockwise about the centre (width / 2, height / 2)
    angle = torch.where(kind["rotate"], torch.deg2rad(sign * _int(level, 30)), 0.0)
    cos, sin, cx, cy = torch.cos(angle), torch.sin(angle), width / 2, height / 2
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = cos, -sin, sin, cos
    m[:, 0, 2] = cx - cos * cx + sin * cy
    m[:, 1, 2] = cy - sin * cx - cos * cy
    shear = sign * level * 0.3 / 10
    m[:, 0, 1] = torch.where(kind["shear_x"], shear, m[:, 0, 1])
    m[:, 1, 0] = torch.where(kind["shear_y"], shear, m[:, 1, 0])
    m[:, 0, 2] = torch.where(kind["translate_x"], sign * _int(level, width / 3), m[:, 0, 2])
    m[:, 1, 2] = torch.where(kind["translate_y"], sign * _int(level, height / 3), m[:, 1, 2])
    return m


def _warp(x: torch.Tensor, pil: torch.Tensor) -> torch.Tensor:
    """Image.transform(AFFINE, BILINEAR) for a batch: output pixel (i, j) reads the input at pil @ (j + 0.5, i + 0.5)
    (corner coordinates), bilinearly between the nearest pixel centres with the edge pixels repeated, and is 0 where
    that point lies outside the image (PIL's fill)."""
    b, _, h, w = x.shape
    rows, cols = torch.meshgrid(
        torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij"
    )
    corners = torch.stack([cols + 0.5, rows + 0.5, torch.ones_like(cols)], -1).view(1, -1, 3)
    source = (corners @ pil.transpose(1, 2))[..., :2].view(b, h, w, 2)  # (x, y) in corner coordinates
    inside = ((source >= 0) & (source < torch.tensor([w, h], dtype=torch.float64))).all(-1)
    grid = (source - 0.5) / torch.tensor([max(w - 1, 1), max(h - 1, 1)], dtype=torch.float64) * 2 - 1
    out = F.grid_sample(x.float(), grid.to(x.device, torch.float32), mode="bilinear", padding_mode="border",
                        align_corners=True)  # fmt: skip
    return torch.where(inside[:, None].to(x.device), out.round().clamp(0, 255), 0.0)


# ---------------------------------------------------------------------------------------------------------- mixing
def apply_operation(x: torch.Tensor, names: list[str], level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """Each image's operation ``names[i]`` on 8-bit values held as float (B, C, H, W) in 0-255, at its level and
    sign: the lookup-table operations by kind, every geometric one in a single resampling."""
    out = x.clone()
    geometric = torch.tensor([name not in LOOKUP for name in names], dtype=torch.bool)
    for name in LOOKUP:
        chosen = torch.tensor([n == name for n in names], dtype=torch.bool).nonzero().squeeze(1)
        if not chosen.numel():
            continue
        values = x[chosen].round().to(torch.uint8)
        if name == "autocontrast":
            values = autocontrast(values)
        elif name == "equalize":
            values = equalize(values)
        elif name == "posterize":
            values = posterize(values, 4 - _int(level[chosen], 4))
        else:
            values = solarize(values, 256 - _int(level[chosen], 256))
        out[chosen] = values.to(x.dtype)
    if bool(geometric.any()):
        chosen = geometric.nonzero().squeeze(1)
        picked = [names[i] for i in chosen.tolist()]
        level, sign = level.double().cpu()[chosen], sign.double().cpu()[chosen]
        out[chosen] = _warp(x[chosen], _pil_matrices(picked, level, sign, *x.shape[-2:])).to(x.dtype)
    return out


def augmix(x: torch.Tensor, u: torch.Tensor, severity: float = 3) -> torch.Tensor:
    """AugMix of a float batch (B, C, H, W) in [0, 1]; ``u`` (B, DRAWS) uniform draws in [0, 1) per image;
    ``severity`` the operations' largest level, of 10. The chains run on the image's 8-bit values."""
    u = u.to(x.device, torch.float64)
    mix = u[:, 0].view(-1, 1, 1, 1)  # Beta(1, 1)
    weights = -torch.log1p(-u[:, -WIDTH:])  # Dirichlet(1, 1, 1): normalised exponentials
    weights = weights / weights.sum(1, keepdim=True)
    start = (x.detach().double().clamp(0, 1) * 255).round()
    mixed = torch.zeros_like(start)
    for chain in range(WIDTH):
        draws = u[:, 1 + chain * (1 + 3 * DEPTH) : 1 + (chain + 1) * (1 + 3 * DEPTH)]
        depth = 1 + (draws[:, 0] * DEPTH).long()  # 1 to DEPTH operations
        image = start
        for step in range(DEPTH):
            pick, level, sign = draws[:, 1 + 3 * step : 4 + 3 * step].unbind(1)
            going = (step < depth).nonzero().squeeze(1)
            names = [OPERATION_NAMES[k] for k in (pick[going] * len(OPERATION_NAMES)).long().tolist()]
            level = 0.1 + (severity - 0.1) * level[going]
            sign = torch.where(sign[going] < 0.5, -1.0, 1.0).to(level)
            image = image.clone()
            image[going] = apply_operation(image[going], names, level, sign)
        mixed += weights[:, chain].view(-1, 1, 1, 1) * image
    return ((mix * start + (1 - mix) * mixed) / 255).clamp(0, 1).to(x.dtype)
