"""Figure: one bundled photograph along the inverse scale space path, sparsity 0.1 -> 0.9, regions under each panel;
and the photograph with Gaussian noise (sigma --noise) smoothed at fixed sparsities and with the noise stop
(``noise="auto"``), PSNR to the clean image under each panel.

    python tools/path_figure.py                      # writes docs/figures/path.png (the README figure)
    python tools/path_figure.py --photo chelsea --size 96 --output /tmp/cat.png

The photograph is area-downsampled to --size (averaging also breaks the ties of 8-bit values, which would leave
edges that can never activate). All panels come from one run of ``isvs_triton.path``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

import isvs_triton as isvs
from isvs_triton.config import DEFAULT, FAST
from isvs_triton.samples import PHOTOGRAPHS, photograph

# The default solver (EVENTS, docs/solver.md), which stays close to the reference path; the noise row also shows the
# FAST preset, which takes the coarse end of the path in a few large jumps.
FIGURE_SOLVER = DEFAULT.kwargs()


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photo", default="astronaut", choices=PHOTOGRAPHS, help="the bundled photograph drawn")
    parser.add_argument("--size", type=int, default=128, help="side of the square image, in pixels")
    parser.add_argument("--sparsities", default="0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9", help="the panels' sparsities")
    parser.add_argument("--noise", type=float, default=0.08, help="sigma of the Gaussian noise of the last row")
    parser.add_argument("--output", default="docs/figures/path.png", help="the PNG written")
    args = parser.parse_args(argv)

    image = photograph(args.photo)
    side = min(image.shape[1:])
    image = image[:, :side, :side]
    x = F.interpolate(image[None], size=(args.size, args.size), mode="area")[0]
    sparsities = [float(s) for s in args.sparsities.split(",")]

    modes = ("independent", "joint")
    rows = len(modes) + 1
    fig, axes = plt.subplots(rows, len(sparsities) + 1, figsize=(1.9 * (len(sparsities) + 1), 2.3 * rows))
    print(f"{args.photo} {args.size}x{args.size}x3, solver {FIGURE_SOLVER}")
    print("| channels | sparsity | iterations | regions | reached |\n|---|---|---|---|---|")
    for row, mode in zip(axes, modes):
        start = time.perf_counter()
        outs, infos = isvs.path(x, sparsities, channels=mode, return_info=True, **FIGURE_SOLVER)
        seconds = time.perf_counter() - start
        panels = [(x, f"{args.photo} {args.size}x{args.size}\nchannels={mode}")]
        panels += [(o, f"sparsity {s:g}\n{int(i.regions)} regions") for s, o, i in zip(sparsities, outs, infos)]
        for ax, (img, title) in zip(row, panels):
            ax.imshow(img.permute(1, 2, 0).clamp(0, 1).numpy())
            ax.set_xlabel(title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        for s, info in zip(sparsities, infos):
            print(f"| {mode} | {s:g} | {int(info.iterations)} | {int(info.regions)} | {bool(info.reached)} |")
        print(f"({mode}: one run of isvs.path, {seconds:.2f} s)")
    noise_row(axes[-1], x, args.noise, args.photo)
    fig.tight_layout()
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=110)
    print(f"wrote {output}")
    return output


def noise_row(row, x, sigma: float, photo: str) -> None:
    """The noisy photograph, smoothed at fixed sparsities, and with the noise stop (both presets)."""
    generator = torch.Generator().manual_seed(0)
    noisy = (x + sigma * torch.randn(x.shape, generator=generator)).clamp(0, 1)

    def psnr(y):
        return float(-10 * torch.log10((y - x).square().mean()))

    panels = [(noisy, f"{photo} + noise {sigma:g}\n{psnr(noisy):.1f} dB")]
    for s in (0.3, 0.6, 0.9):
        y = isvs.sparsify(noisy, s, **FIGURE_SOLVER)
        panels.append((y, f"sparsity {s:g}\n{psnr(y):.1f} dB"))
    for name, solver in (("default", FIGURE_SOLVER), ("fast", FAST.kwargs())):
        y, info = isvs.sparsify(noisy, 0.999, noise="auto", return_info=True, **solver)
        panels.append((y, f"noise='auto', {name}\n{psnr(y):.1f} dB"))
        print(
            f"noise row, {name}: estimated sigma {float(info.noise):.4f}, stopped by {info.stopped_by} after "
            f"{int(info.iterations)} iterations, {psnr(y):.2f} dB (noisy {psnr(noisy):.2f} dB)"
        )
    for ax, (img, title) in zip(row, panels):
        ax.imshow(img.permute(1, 2, 0).clamp(0, 1).numpy())
        ax.set_xlabel(title, fontsize=8)
    for ax in row:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in row[len(panels) :]:
        ax.axis("off")


if __name__ == "__main__":
    main()
