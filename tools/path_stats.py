"""Iterations per image and wall time to reach a sparsity, on crops of the bundled photographs.

    python tools/path_stats.py                                  # reference constants, 64 crops 32x32, sparsity 0.6
    python tools/path_stats.py --scale 60 --momentum 0.8 --nu 2 --size 224 --count 8 --sparsity 0.3

Prints a Markdown table (median / mean / max iterations, images that reached the target, wall time, images/s).
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

import isvs_triton as isvs
from isvs_triton.config import FAST
from isvs_triton.samples import add_crop_arguments, crops


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_crop_arguments(parser)
    parser.add_argument("--backend", default="torch", choices=["torch", "reference"], help="the backend run")
    for name in ("kappa", "nu", "step", "scale", "momentum"):
        parser.add_argument(f"--{name}", type=float, default=getattr(FAST, name), help=f"explicit solver's {name}")
    parser.add_argument("--max-iter", type=int, default=FAST.max_iter, help="iteration budget per image")
    args = parser.parse_args(argv)

    x = crops(args.size, args.count, seed=args.seed)
    solver = dict(
        kappa=args.kappa, nu=args.nu, step=args.step, scale=args.scale, momentum=args.momentum, max_iter=args.max_iter
    )
    start = time.perf_counter()
    _, info = isvs.sparsify(x, args.sparsity, channels=args.channels, backend=args.backend, return_info=True, **solver)
    seconds = time.perf_counter() - start
    it = info.iterations.double()
    stats = dict(
        median=float(it.median()),
        mean=float(it.mean()),
        max=int(it.max()),
        min=int(it.min()),
        reached=int(info.reached.sum()),
        seconds=seconds,
        images_per_s=args.count / seconds,
    )
    print(
        f"{args.count} crops {args.size}x{args.size}x3 of bundled photographs (seed {args.seed}), sparsity "
        f"{args.sparsity}, {args.channels}, backend {args.backend}, solver {solver}"
    )
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    print("| median it | mean it | min it | max it | reached | wall s | images/s |\n|---|---|---|---|---|---|---|")
    print(
        f"| {stats['median']:.0f} | {stats['mean']:.0f} | {stats['min']} | {stats['max']} | "
        f"{stats['reached']}/{args.count} | {seconds:.1f} | {stats['images_per_s']:.2f} |"
    )
    return stats


if __name__ == "__main__":
    main()
