"""Figure: one bundled photograph along the inverse scale space path, sparsity 0.1 -> 0.9, regions under each panel.

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
import torch.nn.functional as F

import isvs_triton as isvs
from isvs_triton.config import FAITHFUL
from isvs_triton.samples import PHOTOGRAPHS, photograph

# The FAITHFUL preset (docs/calibration.md): the fast defaults take the coarse end of the path in a few large
# jumps (on this image sparsity 0.1 and 0.2 stop at the same iteration); the figure shows the path itself.
FIGURE_SOLVER = {**FAITHFUL.kwargs(), "max_iter": 50_000}


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photo", default="astronaut", choices=PHOTOGRAPHS)
    parser.add_argument("--size", type=int, default=128, help="side of the square image, in pixels")
    parser.add_argument("--sparsities", default="0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9")
    parser.add_argument("--output", default="docs/figures/path.png")
    args = parser.parse_args(argv)

    image = photograph(args.photo)
    side = min(image.shape[1:])
    image = image[:, :side, :side]
    x = F.interpolate(image[None], size=(args.size, args.size), mode="area")[0]
    sparsities = [float(s) for s in args.sparsities.split(",")]

    modes = ("independent", "joint")
    fig, axes = plt.subplots(len(modes), len(sparsities) + 1, figsize=(1.9 * (len(sparsities) + 1), 2.3 * len(modes)))
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
    fig.tight_layout()
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=110)
    print(f"wrote {output}")
    return output


if __name__ == "__main__":
    main()
