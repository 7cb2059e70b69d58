"""Probe: would torch.compile speed up the torch backend's Split LBI step on this CPU? (It is not used; this script
is how docs/performance.md measured why.)

    python tools/probe_compile.py              # 32x32x3 crops, defaults' constants, eager step vs compiled fused step

Times one iteration (step + active-edge count) of the torch backend's in-place eager step and of a torch.compile'd
fused formulation of the same update (dynamic shapes), on the whole batch and on chunks that stay in cache.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from isvs_triton.config import FAST
from isvs_triton.ops.lbi import path as lbi_path
from isvs_triton.ops.lbi import torch_path
from isvs_triton.samples import crops


def fused_step(beta, zh, zv, pb, pzh, pzv, xs, kappa: float, alpha: float, nu: float, mu: float):
    """The same momentum update as torch_path._step for running images, written as one expression graph."""
    yb, yzh, yzv = beta + mu * (beta - pb), zh + mu * (zh - pzh), zv + mu * (zv - pzv)
    rh = (yb[..., :, 1:] - yb[..., :, :-1]) - kappa * (yzh - yzh.clamp(-1, 1))
    rv = (yb[..., 1:, :] - yb[..., :-1, :]) - kappa * (yzv - yzv.clamp(-1, 1))
    grad_t = F.pad(rh, (1, 0)) - F.pad(rh, (0, 1)) + F.pad(rv, (0, 0, 1, 0)) - F.pad(rv, (0, 0, 0, 1))
    zh_new, zv_new = yzh + (alpha / nu) * rh, yzv + (alpha / nu) * rv
    beta_new = yb - (kappa * alpha) * ((yb - xs) + grad_t / nu)
    count = (zh_new.abs() > 1).flatten(1).sum(1) + (zv_new.abs() > 1).flatten(1).sum(1)
    return beta_new, zh_new, zv_new, beta, zh, zv, count


def per_iteration(fn, repeat: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256, help="32x32 crops in the whole batch")
    parser.add_argument("--chunks", default="16,32,64", help="smaller batches timed too, comma-separated")
    args = parser.parse_args(argv)
    cfg = FAST
    x = crops(32, args.batch, seed=0)
    compiled = torch.compile(fused_step, dynamic=True)
    print(f"32x32x3, {torch.get_num_threads()} threads, momentum {cfg.momentum}")
    print("| images | eager ms/it | compiled ms/it | eager us/image-it | compiled us/image-it |\n|---|---|---|---|---|")
    for n in [args.batch, *map(int, args.chunks.split(","))]:
        xs = (x[:n] * cfg.scale).contiguous()
        state = lbi_path.PathState.zeros(x[:n].contiguous(), momentum=True)
        stepper = torch_path.TorchStepper(state, cfg, joint=False)
        run = torch.ones(n)
        rule = lbi_path.stop_rule(xs, 0.6, False, None)
        eager = per_iteration(
            lambda s=stepper, t=state, xs=xs, r=run, u=rule: s(t, xs, r, u, False), 50 if n < args.batch else 20
        )
        tensors = [t.clone() for t in state.tensors()]
        start = time.perf_counter()
        compiled(*tensors, xs, cfg.kappa, cfg.alpha, cfg.nu, cfg.momentum)
        first = time.perf_counter() - start

        def run_compiled(tensors=tensors, xs=xs):
            tensors[:] = list(compiled(*tensors, xs, cfg.kappa, cfg.alpha, cfg.nu, cfg.momentum)[:6])

        fused = per_iteration(run_compiled, 50 if n < args.batch else 20)
        print(
            f"| {n} | {eager * 1e3:.2f} | {fused * 1e3:.2f} | {eager / n * 1e6:.1f} | {fused / n * 1e6:.1f} |"
            + (f" (first compiled call {first:.1f} s)" if n == args.batch else "")
        )


if __name__ == "__main__":
    main()
