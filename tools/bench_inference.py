"""What ``models.for_inference`` (batch norm folded into the convs, channels_last) buys an evaluation, in one run.

    python tools/bench_inference.py                          # ResNet-8 at 28x28 (the Fashion-MNIST comparison)
    python tools/bench_inference.py --model resnet18 --size 32 --batch 256

Times, interleaved over rounds (the median is printed), a forward pass without gradient (the corruption
conditions) and a forward + backward to the input (every gradient attack step), for the eval-mode model and its
folded copy, and prints their ratio. Trained-like batch-norm statistics are drawn at random: fresh ones are the
identity and would flatter nothing but would hide a wrong fold (the max differences are printed too).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from isvs_triton.models import create_model, for_inference, list_models
from isvs_triton.testing import with_trained_like_batch_norm


def _input_gradient(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_()
    logits = model(x)
    return torch.autograd.grad(logits.logsumexp(1).sum(), x)[0]


def _milliseconds(fn, repeat: int) -> float:
    fn()  # warm-up: the first call pays for allocations and oneDNN's kernel choice
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat * 1e3


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet8", choices=list_models(), help="the model timed")
    parser.add_argument("--size", type=int, default=28, help="image side in pixels")
    parser.add_argument("--batch", type=int, default=128, help="the evaluation's batch size")
    parser.add_argument("--rounds", type=int, default=8, help="interleaved rounds; the median is printed")
    parser.add_argument("--repeat", type=int, default=10, help="calls per round and measurement")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model = with_trained_like_batch_norm(create_model(args.model, num_classes=10, image_size=args.size))
    variants = {"eval()": model, "for_inference": for_inference(model)}
    x = torch.rand(args.batch, 3, args.size, args.size)
    times = {(name, what): [] for name in variants for what in ("forward", "input gradient")}
    for _ in range(args.rounds):
        for name, m in variants.items():
            with torch.no_grad():
                times[name, "forward"].append(_milliseconds(lambda m=m: m(x), args.repeat))
            times[name, "input gradient"].append(_milliseconds(lambda m=m: _input_gradient(m, x), args.repeat))
    with torch.no_grad():
        logits = [m(x) for m in variants.values()]
    grads = [_input_gradient(m, x) for m in variants.values()]
    print(
        f"{args.model} {args.size}x{args.size}, batch {args.batch}, {platform.machine()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    print("| pass | eval() ms | for_inference ms | speed-up |\n|---|---|---|---|")
    for what in ("forward", "input gradient"):
        base, folded = (statistics.median(times[name, what]) for name in variants)
        print(f"| {what} | {base:.1f} | {folded:.1f} | {base / folded:.2f}x |")
    print(
        f"max |logit difference| {(logits[0] - logits[1]).abs().max().item():.2e}; "
        f"relative input-gradient difference {((grads[0] - grads[1]).norm() / grads[0].norm()).item():.2e}"
    )


if __name__ == "__main__":
    main()
