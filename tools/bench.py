"""Throughput of isvs_triton against the anchors, on the same bundled-photograph crops, in one run.

    python tools/bench.py                      # 32x32x3 (B=256, sparsity 0.6) and 224x224x3 (B=16, sparsity 0.3)
    python tools/bench.py --sizes 32 --repeat 5

Providers: scikit-image's denoise_tv_chambolle (100 iterations, per image, channel_axis) and denoise_tv_bregman
(per image), the plain ``reference`` backend at the default solver (``EVENTS``) and stop, the ``torch`` backend,
and what ``backend="auto"`` runs at the defaults (``numba`` on the CPU, ``triton`` with ``--device cuda``; its path
and projection are also timed apart), and the other presets (``fast``, ``faithful``) on the backend "auto" gives
them; the ratio of ``fast`` to the defaults is the "fast and faithful" target's (docs/notes/calibration.md).
Prints images/s, the ratio of the defaults to each anchor, and a Markdown table;
appends a CSV row per provider to --csv with the device and versions.
"""

from __future__ import annotations

import argparse
import csv
import functools
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

import isvs_triton as isvs
from isvs_triton import backends
from isvs_triton.config import DEFAULT, FAST, PRESETS
from isvs_triton.ops.lbi import path as lbi_path
from isvs_triton.samples import BENCH_SETTINGS as SETTINGS
from isvs_triton.samples import crops

try:  # the GPU providers need triton; a CPU run does not
    from isvs_triton.ops.lbi import triton_fused
except ImportError:  # pragma: no cover - depends on the platform
    triton_fused = None


def best_of(fn, repeat: int, sync=lambda: None) -> float:
    """Best wall time of ``repeat`` calls (after one warm-up): the least disturbed measurement. ``sync`` waits for
    queued device work, so that a GPU call is timed to its end."""
    fn()
    sync()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return min(times)


def providers(x: torch.Tensor, sparsity: float, device: torch.device) -> dict[str, tuple]:
    """name -> (callable, images it smooths). The anchors run per image on the CPU, so with ``--batch`` above the
    setting's they are timed on the setting's number of images only (their images/s does not depend on the batch)."""
    from skimage.restoration import denoise_tv_bregman, denoise_tv_chambolle

    images = [img.permute(1, 2, 0).numpy().astype(np.float64) for img in x[: SETTINGS[x.shape[-1]][0]]]
    backend = backends.auto_name(device, torch.float32, DEFAULT.integrator)
    xd, joint, state = x.to(device), False, {}
    chosen = backends.REGISTRY[backend]
    advance_fn, project_fn = chosen.advance, chosen.project

    def lbi_only():  # within the backend's scope, as a whole call runs
        with chosen.scope():
            state["stop"] = list(lbi_path.stops(xd, [sparsity], DEFAULT, joint, advance_fn, masks=chosen.masks))[0]

    def projection_only():
        if "stop" not in state:
            lbi_only()
        _, active, _ = state["stop"]
        with chosen.scope():
            project_fn(xd, active.h, active.v)

    def per_iteration():  # the Triton backend driving its fused kernel from the host every iteration
        stepped = functools.partial(triton_fused.advance, persistent=False)
        lbi_path.solve(xd, [sparsity], FAST, "independent", "input", stepped, backends.REGISTRY["triton"].project)

    table = {
        "skimage denoise_tv_chambolle (100 it)": (
            lambda: [denoise_tv_chambolle(i, weight=0.1, max_num_iter=100, channel_axis=-1) for i in images],
            len(images),
        ),
        "skimage denoise_tv_bregman": (
            lambda: [denoise_tv_bregman(i, weight=5.0, channel_axis=-1) for i in images],
            len(images),
        ),
    }
    if device.type == "cpu":
        table["isvs reference backend (defaults)"] = (lambda: isvs.sparsify(x, sparsity, backend="reference"), len(x))
        if backend != "torch":
            table["isvs torch backend (defaults)"] = (lambda: isvs.sparsify(x, sparsity, backend="torch"), len(x))
    else:
        table["isvs torch backend on the GPU (defaults)"] = (
            lambda: isvs.sparsify(xd, sparsity, backend="torch"),
            len(x),
        )
        if max(x.shape[-2:]) <= triton_fused.PERSISTENT_MAX_SIDE:  # the fast preset's persistent kernel's anchor
            table["isvs triton, one launch per iteration (fast preset)"] = (per_iteration, len(x))
    table[f"isvs {backend} backend (defaults)"] = (lambda: isvs.sparsify(xd, sparsity, backend=backend), len(x))
    table["  of which Split LBI"] = (lbi_only, len(x))
    table["  of which projection"] = (projection_only, len(x))
    for name, preset in PRESETS.items():  # the other presets, on the backend "auto" gives their integrator
        if preset != DEFAULT:
            runs_on = backends.auto_name(device, torch.float32, preset.integrator)
            table[f"isvs {runs_on} backend ({name} preset)"] = (
                lambda runs_on=runs_on, preset=preset: isvs.sparsify(xd, sparsity, backend=runs_on, **preset.kwargs()),
                len(x),
            )
    return table


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="32,224", help="image sides to time, comma-separated (each its own batch)")
    parser.add_argument("--repeat", type=int, default=3, help="timed calls per setting; the best is kept")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads (torch and numba)")
    parser.add_argument("--batch", type=int, default=None, help="override the batch size of every setting")
    parser.add_argument("--csv", default="", help="append the rows to this CSV file (docs/benchmarks.csv: the record)")
    parser.add_argument(
        "--device", default="cpu", help="where isvs runs: cpu (numba, else torch backend) or cuda (triton)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and (not torch.cuda.is_available() or triton_fused is None):
        parser.error("--device cuda needs a CUDA GPU and the triton package")
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None

    where = f"{platform.machine()} CPU, {args.threads} threads"
    if device.type == "cuda":
        where = f"{torch.cuda.get_device_name(device)} (anchors: {where})"
    versions = f"torch {torch.__version__}, isvs_triton {isvs.__version__}, python {platform.python_version()}"
    if triton_fused is not None:
        import triton

        versions += f", triton {triton.__version__}"
    print(f"{where}; {versions}; defaults {DEFAULT}")
    ours = f"isvs {backends.auto_name(device, torch.float32, DEFAULT.integrator)} backend (defaults)"
    rows = []
    for size in map(int, args.sizes.split(",")):
        batch, sparsity = SETTINGS[size]
        batch = args.batch or batch
        x = crops(size, batch, seed=0)
        _, info = isvs.sparsify(x.to(device), sparsity, return_info=True)
        it = info.iterations.double().cpu()
        print(
            f"\n{size}x{size}x3, B={batch}, sparsity {sparsity}: defaults take median {float(it.median()):.0f} "
            f"(max {int(it.max())}) iterations, {int(info.reached.sum())}/{batch} reach the target"
        )
        rates = {
            name: count / best_of(fn, args.repeat, sync) for name, (fn, count) in providers(x, sparsity, device).items()
        }
        print("| provider | images/s | defaults are x faster |\n|---|---|---|")
        for name, rate in rates.items():
            ratio = "" if name.startswith("  ") else f"{rates[ours] / rate:.1f}"
            print(f"| {name} | {rate:.1f} | {ratio} |")
            rows.append(
                dict(
                    time=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    size=size,
                    batch=batch,
                    sparsity=sparsity,
                    provider=name.strip(),
                    images_per_s=round(rate, 2),
                    device=where,
                    versions=versions,
                    command=" ".join(["python", *sys.argv]),
                )
            )
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
