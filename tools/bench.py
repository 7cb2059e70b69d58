"""Throughput of isvs_triton against the anchors, on the same bundled-photograph crops, in one run.

    python tools/bench.py                      # 32x32x3 (B=256, sparsity 0.6) and 224x224x3 (B=16, sparsity 0.3)
    python tools/bench.py --sizes 32 --repeat 5

Providers: scikit-image's denoise_tv_chambolle (100 iterations, per image, channel_axis) and denoise_tv_bregman
(per image), the plain ``reference`` backend at the default constants and stop, and the ``torch`` backend at the
defaults (what CPU users get; its projection share is reported apart). Prints images/s, the ratio of the defaults
to each anchor, and a Markdown table; appends a CSV row per provider to --csv with the device and versions.
"""

from __future__ import annotations

import argparse
import csv
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

import isvs_triton as isvs
from isvs_triton.config import DEFAULT
from isvs_triton.ops.lbi import torch_path
from isvs_triton.ops.projection import torch_path as projection_torch
from isvs_triton.samples import crops

SETTINGS = {32: (256, 0.6), 224: (16, 0.3)}  # size -> (batch, sparsity)


def best_of(fn, repeat: int) -> float:
    """Best wall time of ``repeat`` calls (after one warm-up): the least disturbed measurement."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def providers(x: torch.Tensor, sparsity: float):
    from skimage.restoration import denoise_tv_bregman, denoise_tv_chambolle

    images = [img.permute(1, 2, 0).numpy().astype(np.float64) for img in x]
    joint = False
    state = {}

    def lbi_only():
        state["stop"] = list(torch_path.stops(x, [sparsity], DEFAULT, joint))[0]

    def projection_only():
        _, active_h, active_v, _ = state["stop"]
        projection_torch.project(x, active_h, active_v)

    return {
        "skimage denoise_tv_chambolle (100 it)": lambda: [
            denoise_tv_chambolle(i, weight=0.1, max_num_iter=100, channel_axis=-1) for i in images
        ],
        "skimage denoise_tv_bregman": lambda: [denoise_tv_bregman(i, weight=5.0, channel_axis=-1) for i in images],
        "isvs reference backend (defaults)": lambda: isvs.sparsify(x, sparsity, backend="reference"),
        "isvs torch backend (defaults)": lambda: isvs.sparsify(x, sparsity, backend="torch"),
        "  of which Split LBI": lbi_only,
        "  of which projection": projection_only,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="32,224")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--batch", type=int, default=None, help="override the batch size of every setting")
    parser.add_argument("--csv", default="docs/benchmarks.csv", help="append the rows here ('' for none)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    device = f"{platform.machine()} CPU, {args.threads} threads"
    versions = f"torch {torch.__version__}, isvs_triton {isvs.__version__}, python {platform.python_version()}"
    print(f"{device}; {versions}; defaults {DEFAULT}")
    rows = []
    for size in map(int, args.sizes.split(",")):
        batch, sparsity = SETTINGS[size]
        batch = args.batch or batch
        x = crops(size, batch, seed=0)
        _, info = isvs.sparsify(x, sparsity, return_info=True)
        it = info.iterations.double()
        print(f"\n{size}x{size}x3, B={batch}, sparsity {sparsity}: defaults take median {float(it.median()):.0f} "
              f"(max {int(it.max())}) iterations, {int(info.reached.sum())}/{batch} reach the target")  # fmt: skip
        timings = {name: best_of(fn, args.repeat) for name, fn in providers(x, sparsity).items()}
        ours = timings["isvs torch backend (defaults)"]
        print("| provider | images/s | defaults are x faster |\n|---|---|---|")
        for name, seconds in timings.items():
            ratio = "" if name.startswith("  ") else f"{seconds / ours:.1f}"
            print(f"| {name} | {batch / seconds:.1f} | {ratio} |")
            rows.append(dict(time=datetime.now(timezone.utc).isoformat(timespec="seconds"), size=size, batch=batch,
                             sparsity=sparsity, provider=name.strip(), images_per_s=round(batch / seconds, 2),
                             device=device, versions=versions, command=" ".join(["python", *sys.argv])))  # fmt: skip
    if args.csv:
        path = Path(args.csv)
        new = not path.exists()
        with path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            if new:
                writer.writeheader()
            writer.writerows(rows)
        print(f"\nappended {len(rows)} rows to {path}")
    return rows


if __name__ == "__main__":
    main()
