"""Tune the launch configuration of the fused Split LBI kernel on this machine's GPU; write it where the launcher
reads it.

    python tools/autotune.py                          # sizes 32 and 224, batches 256 and 16, every kernel variant
    python tools/autotune.py --sizes 64 --batches 128 --modes joint
    python tools/autotune.py --dry-run                # print the search space (any machine)

For every image size x channel mode x momentum on/off, each candidate (BLOCK_H, BLOCK_W, num_warps) is timed on one
iteration over a random state with ``triton.testing.do_bench``; for sizes the persistent kernel accepts, iterations
per launch are tuned too: all of them (persistent, one program per image) against one (a launch per iteration),
timed on whole runs to sparsity 0.6 of random images. The result goes into
``isvs_triton/ops/configs/<GPU name>.json`` (or $ISVS_CONFIG_DIR), keyed by size, mode and momentum but never by
batch size. The launcher falls back to its default where a key is missing. Without a CUDA GPU a run other than
--dry-run says so and exits with status 2.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys

import torch

from isvs_triton.config import FAST
from isvs_triton.ops.lbi import triton_fused
from isvs_triton.ops.lbi.path import PathState, stop_rule

BLOCKS_H = (4, 8, 16, 32)
BLOCKS_W = (16, 32, 64, 128)
WARPS = (2, 4, 8)
MAX_PIXELS = 4096  # per program: beyond this the joint+momentum variant runs out of registers


def search_space() -> list[dict]:
    return [
        {"BLOCK_H": h, "BLOCK_W": w, "num_warps": n}
        for h, w, n in itertools.product(BLOCKS_H, BLOCKS_W, WARPS)
        if h * w <= MAX_PIXELS and h * w >= 32 * n  # at least one pixel per thread
    ]


def tune_one(size: int, batch: int, joint: bool, momentum: bool) -> tuple[dict, float]:
    from triton.testing import do_bench

    x = torch.rand(batch, 3, size, size, device="cuda")
    state = PathState.zeros(x, momentum)
    for t in state.tensors():  # a state in the middle of a path: z straddling the threshold
        t.normal_(0, 1)
    slots = triton_fused.to_slots(state, torch.arange(batch, device="cuda"))
    need = torch.full((batch,), 2**30, dtype=torch.int32, device="cuda")  # every image runs
    limit = torch.full((batch,), -1.0, dtype=torch.float64, device="cuda")  # no noise stop
    iters, counts = torch.zeros_like(need), torch.zeros(3, batch, dtype=torch.int32, device="cuda")
    resids = torch.zeros(3, batch, dtype=torch.float64, device="cuda")
    config = FAST.replace(momentum=FAST.momentum if momentum else 0.0)
    best, best_ms = None, float("inf")
    for launch in search_space():
        ms = do_bench(
            lambda launch=launch: triton_fused.lbi_step(
                slots, x, (need, limit, need), iters, counts, resids, 0, config, joint, False, launch
            )
        )
        if ms < best_ms:
            best, best_ms = launch, ms
    return best, best_ms


def persistent_is_faster(size: int, batch: int, joint: bool, momentum: bool) -> bool:
    """Time a whole run to sparsity 0.6 both ways: one persistent launch, or a fused launch per iteration."""
    from triton.testing import do_bench

    x = torch.rand(batch, 3, size, size, device="cuda")
    config = FAST.replace(momentum=FAST.momentum if momentum else 0.0)
    xs = x * config.scale
    rule = stop_rule(xs, 0.6, joint, None)

    def persistent():
        triton_fused.advance(PathState.zeros(x, momentum), xs, rule, config, joint, persistent=True)

    def per_iteration():
        triton_fused.advance(PathState.zeros(x, momentum), xs, rule, config, joint, persistent=False)

    return do_bench(persistent) < do_bench(per_iteration)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="32,224", help="square image sides to tune for")
    parser.add_argument("--batches", default="256,16", help="batch size used to time each size (one per size)")
    parser.add_argument("--modes", default="independent,joint", help="channel modes to tune for, comma-separated")
    parser.add_argument("--dry-run", action="store_true", help="print the search space and the keys, tune nothing")
    args = parser.parse_args(argv)
    sizes, batches = [int(s) for s in args.sizes.split(",")], [int(b) for b in args.batches.split(",")]
    if len(batches) != len(sizes):
        parser.error("--batches needs one batch size per entry of --sizes")
    variants = [
        (s, b, mode == "joint", m)
        for s, b in zip(sizes, batches)
        for mode in args.modes.split(",")
        for m in (False, True)
    ]
    space = search_space()
    if args.dry_run:
        print(
            f"{len(space)} candidates per variant: BLOCK_H in {BLOCKS_H}, BLOCK_W in {BLOCKS_W}, warps in {WARPS}, "
            f"at most {MAX_PIXELS} pixels per program"
        )
        for size, batch, joint, momentum in variants:
            persistent = "; persistent or per-iteration" if size <= triton_fused.PERSISTENT_MAX_SIDE else ""
            print(f"  {triton_fused.config_key(size, size, joint, momentum)} (timed at batch {batch}{persistent})")
        return 0
    if not torch.cuda.is_available():
        print("autotune: no CUDA GPU on this machine; tuning needs one (use --dry-run to see the search space)")
        return 2
    name = torch.cuda.get_device_name()
    path = triton_fused.config_file(name)
    data = json.loads(path.read_text()) if path.exists() else {"device": name, "lbi_step": {}}
    for size, batch, joint, momentum in variants:
        best, ms = tune_one(size, batch, joint, momentum)
        if size <= triton_fused.PERSISTENT_MAX_SIDE:
            best = {**best, "persistent": persistent_is_faster(size, batch, joint, momentum)}
        key = triton_fused.config_key(size, size, joint, momentum)
        data["lbi_step"][key] = best
        print(f"{key}: {best} {ms * 1e3:.1f} us per iteration at batch {batch} ({batch / ms * 1e3:.0f} image-its/s)")
    data["triton"] = __import__("triton").__version__
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    triton_fused.tuned_configs.cache_clear()
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
