"""Denoising along the path: the noise-adaptive stop against the best stop an oracle could pick, on photograph crops.

    python tools/denoise_bench.py                              # 64 crops 32x32, seed 11, the events and fast presets
    python tools/denoise_bench.py --size 224 --count 8 --noises gaussian:0.08
    python tools/denoise_bench.py --dataset zalando-datasets/fashion_mnist --data-dir ~/fashion_mnist/fashion_mnist \
        --count 256 --sparsity 0.4 --projections auto,none,input    # test images, stopped as in training

For each noise (Gaussian sigma, or a benchmark corruption at a severity: ``shot_noise:3``, ``impulse_noise:3``; and
``clean``), each solver preset and each projection it prints the median PSNR (dB, peak 1, to the clean crop) of:
- the noisy input;
- ``noise="auto"`` (the discrepancy stop with the estimated sigma) at each --discrepancy, with --sparsity (0.999 by
  default, so that the noise stop decides), the median sparsity it stopped at and the fraction stopped by noise;
- the oracle: the best of a sparsity grid 0.05-0.95 chosen per image knowing the clean crop;
- scikit-image's ``denoise_tv_chambolle`` at its best weight of a grid, chosen per image the same way.
Also the estimate's error: median and worst |sigma_hat / sigma - 1| for Gaussian noise (unclipped and clipped to
[0, 1]), and sigma_hat on the clean crops (the bias texture adds).
"""

from __future__ import annotations

import argparse
import platform

import torch

import isvs_triton as isvs
from isvs_triton.calibration import chambolle_oracle, gaussian_noisy, oracle_denoising, psnr
from isvs_triton.config import PRESETS
from isvs_triton.data import EMBEDDED, test_images
from isvs_triton.robustness.corruptions import corrupt
from isvs_triton.samples import crops

NOISES = ("gaussian:0.04", "gaussian:0.08", "gaussian:0.12", "shot_noise:3", "impulse_noise:3", "clean")


def noisy_version(clean: torch.Tensor, spec: str, seed: int) -> torch.Tensor:
    """``gaussian:SIGMA``, ``NAME:SEVERITY`` (a corruption of isvs_triton.robustness) or ``clean``."""
    if spec == "clean":
        return clean
    name, value = spec.split(":")
    if name == "gaussian":
        return gaussian_noisy(clean, float(value), seed)
    return corrupt(clean, name, int(value), seed=seed, quantize=False)  # float, as the Gaussian rows


def estimate_report(clean: torch.Tensor, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    clean_sigma = isvs.estimate_noise(clean)
    print(f"estimate on clean crops: median {float(clean_sigma.median()):.4f}, max {float(clean_sigma.max()):.4f}")
    print("| sigma | median ratio (unclipped) | worst | median ratio (clipped to [0,1]) | worst |")
    print("|---|---|---|---|---|")
    for sigma in (0.02, 0.05, 0.1, 0.2):
        noisy = clean + sigma * torch.randn(clean.shape, generator=g)
        cells = []
        for x, value_range in ((noisy, (-4.0, 5.0)), (noisy.clamp(0, 1), None)):
            ratio = isvs.estimate_noise(x, value_range=value_range) / sigma
            worst = ratio[(ratio - 1).abs().argmax()]
            cells += [f"{float(ratio.median()):.3f}", f"{float(worst):.3f}"]
        print(f"| {sigma} | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=32, help="side of the square crops")
    parser.add_argument("--count", type=int, default=64, help="number of crops")
    parser.add_argument("--seed", type=int, default=11, help="seed of the crops and of the noise")
    parser.add_argument("--dataset", help="test images of this dataset instead of photograph crops (--count of them)")
    parser.add_argument("--data-dir", help="a local copy of --dataset (tools/fashion_mnist.py writes one)")
    parser.add_argument("--sparsity", type=float, default=0.999, help="the target beside the noise stop")
    parser.add_argument(
        "--noises",
        default=",".join(NOISES),
        help="comma-separated noises: gaussian:SIGMA, CORRUPTION:SEVERITY or clean",
    )
    parser.add_argument("--presets", default="events,fast", help=f"solver presets, of {list(PRESETS)}")
    parser.add_argument("--projections", default="input,none", help="projections to measure")
    parser.add_argument("--discrepancy", default="0.7,0.8,1.0", help="discrepancy factors of the noise stop")
    parser.add_argument("--no-chambolle", action="store_true", help="skip the scikit-image oracle (slow at 224)")
    args = parser.parse_args(argv)
    if args.dataset or args.data_dir:
        clean = test_images(args.dataset or EMBEDDED, args.count, args.data_dir)
        what = f"{len(clean)} test images of {args.dataset or EMBEDDED} ({clean.shape[-1]} px)"
    else:
        clean = crops(args.size, args.count, seed=args.seed)
        what = f"{args.count} crops {args.size}x{args.size}"
    print(f"{platform.machine()}, torch {torch.__version__}; {what}, seed {args.seed}, sparsity {args.sparsity}")
    estimate_report(clean, args.seed)
    taus = [float(t) for t in args.discrepancy.split(",")]
    for spec in args.noises.split(","):
        noisy = noisy_version(clean, spec, args.seed)
        line = f"\n{spec}: noisy input {float(psnr(noisy, clean).median()):.2f} dB"
        if not args.no_chambolle:
            line += f", chambolle at its best weight {float(chambolle_oracle(noisy, clean).median()):.2f} dB"
        print(line)
        print(
            f"| preset | projection | oracle sparsity stop | sparsity {args.sparsity}, no noise stop | "
            + " | ".join(f"noise='auto', tau {t}" for t in taus)
            + " |\n|---|---|---|"
            + "---|" * (len(taus) + 1)
        )
        for preset in args.presets.split(","):
            solver = PRESETS[preset].kwargs()
            for projection in args.projections.split(","):
                oracle = oracle_denoising(noisy, clean, projection, **solver)
                plain = isvs.sparsify(noisy, args.sparsity, projection=projection, **solver)
                cells = [f"{float(psnr(plain, clean).median()):.2f}"]
                for tau in taus:
                    out, info = isvs.sparsify(
                        noisy,
                        args.sparsity,
                        noise="auto",
                        discrepancy=tau,
                        projection=projection,
                        return_info=True,
                        **solver,
                    )
                    sparsity = float(info.sparsity.median())
                    by_noise = info.stopped_by.count("noise") / len(out)
                    cells.append(
                        f"{float(psnr(out, clean).median()):.2f} (sparsity {sparsity:.2f}, {by_noise:.0%} by noise)"
                    )
                print(f"| {preset} | {projection} | {float(oracle.median()):.2f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
