"""Calibrate the solver: iterations against fidelity to the reference path, on crops of bundled photographs.

    python tools/calibrate.py                                 # 32x32 crops at sparsity 0.6, the default grid
    python tools/calibrate.py --size 224 --count 8 --sparsity 0.3 --grid "scale=100,300;nu=1;momentum=0.9"
    python tools/calibrate.py --config "scale=200,nu=4,momentum=0.95" --grid ""    # just some configurations
    python tools/calibrate.py --grid "integrator=events;events=0.03,0.05,0.07"   # the events integrator

The reference outputs (REFERENCE constants, slow) are computed once and cached under --cache-dir. Images whose
reference never reaches the target within --reference-max-iter (8-bit ties: some crops have too few distinct
neighbours) are left out and counted. Every configuration runs the same images; the table gives median / max
iterations and the three fidelity measures of ``isvs_triton.calibration`` (mean and worst image), with two
baselines that have no path at all: the input unchanged, and the largest |D x| edges made active. Candidates run on
the backend "auto" picks on the CPU (numba), so the seconds column is the product's CPU time; the frontier is drawn
over those seconds (an events step and an explicit iteration do not cost the same).
The denoising columns (--denoise) are what the path is for: Gaussian noise at each sigma on the same crops, the
median PSNR to the clean crop of the best stop of a sparsity grid per image (an oracle, output beta / scale), with
scikit-image's denoise_tv_chambolle at its best weight (chosen the same way) and the noisy input above the table.
PSNR is reported, never the criterion: the frontier is relative error against CPU seconds.
Writes <output>.md (the table) and <output>.png (the frontier).
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import torch

from isvs_triton import backends
from isvs_triton.calibration import (
    Stop,
    chambolle_oracle,
    fidelity,
    gaussian_noisy,
    identity_stop,
    oracle_denoising,
    psnr,
    stop,
    threshold_stop,
)
from isvs_triton.config import DEFAULT, PRESETS, REFERENCE, SolverConfig
from isvs_triton.samples import add_crop_arguments, crops

DEFAULT_GRID = "scale=30,100,200,300,500;nu=1,2,4;momentum=0.8,0.9,0.95"
# the fields that name a configuration of each integrator in the table
NAMED = {
    "explicit": ("kappa", "nu", "step", "scale", "momentum"),
    "events": ("integrator", "nu", "events", "tolerance"),
}


def _value(key: str, text: str):
    return text if key == "integrator" else float(text)


def parse_config(text: str) -> dict:
    """'scale=200,nu=4' -> {'scale': 200.0, 'nu': 4.0} ('integrator=events' stays a string)."""
    out = {}
    for item in filter(None, text.replace(" ", "").split(",")):
        key, value = item.split("=")
        out[key] = _value(key, value)
    return out


def parse_grid(text: str) -> list[dict]:
    """'scale=30,60;nu=1,2' -> the Cartesian product of the listed values."""
    axes = []
    for part in filter(None, text.replace(" ", "").split(";")):
        key, values = part.split("=")
        axes.append([(key, _value(key, v)) for v in values.split(",")])
    return [dict(combo) for combo in itertools.product(*axes)] if axes else []


def config_name(config: SolverConfig) -> str:
    return ", ".join(
        f"{k}={getattr(config, k):g}" if k != "integrator" else getattr(config, k) for k in NAMED[config.integrator]
    )


def reference_stop(x: torch.Tensor, args, cache_dir: Path) -> Stop:
    key = f"ref_{args.size}_{args.count}_{args.seed}_{args.sparsity}_{args.channels}_{args.reference_max_iter}.pt"
    path = cache_dir / key
    if path.exists():
        return Stop(**torch.load(path))
    start = time.perf_counter()
    ref = stop(x, args.sparsity, REFERENCE.replace(max_iter=args.reference_max_iter), args.channels)
    print(f"reference path computed in {time.perf_counter() - start:.0f} s, cached in {path}")
    cache_dir.mkdir(parents=True, exist_ok=True)
    torch.save(vars(ref), path)
    return ref


def row(name: str, cand: Stop, ref: Stop, x: torch.Tensor, seconds: float | None) -> dict:
    f = fidelity(cand, ref, x)
    it = cand.iterations.double()
    return dict(
        name=name,
        median=float(it.median()),
        max=int(it.max()),
        reached=int(cand.reached.sum()),
        n=len(it),
        psnr=float(f["psnr"].mean()),
        psnr_worst=float(f["psnr"].min()),
        agreement=float(f["agreement"].mean()),
        rel=float(f["relative_error"].mean()),
        rel_median=float(f["relative_error"].median()),
        rel_worst=float(f["relative_error"].max()),
        seconds=seconds,
    )


def frontier(rows: list[dict]) -> set[str]:
    """Configurations no other one beats on both CPU seconds and mean relative error."""

    def beats(o: dict, r: dict) -> bool:
        faster, closer = o["seconds"] <= r["seconds"], o["rel"] <= r["rel"]
        return faster and closer and (o["seconds"] < r["seconds"] or o["rel"] < r["rel"])

    return {r["name"] for r in rows if not any(beats(o, r) for o in rows)}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_crop_arguments(parser)
    parser.add_argument("--grid", default=DEFAULT_GRID, help="'name=v1,v2;name=...' (kappa, nu, step, scale, momentum)")
    parser.add_argument("--config", action="append", default=[], help="one more configuration, 'scale=200,nu=4'")
    parser.add_argument("--presets", default=",".join(PRESETS), help=f"presets measured too, of {list(PRESETS)}")
    parser.add_argument("--max-iter", type=int, default=5000, help="budget of each candidate configuration")
    parser.add_argument("--denoise", default="0.04,0.08,0.12", help="Gaussian sigmas of the denoising columns ('')")
    parser.add_argument("--reference-max-iter", type=int, default=120_000, help="budget of the reference path")
    parser.add_argument("--cache-dir", default=".cache/calibration", help="where the reference outputs are cached")
    parser.add_argument("--output", default="docs/notes/calibration_32", help="writes OUTPUT.md and OUTPUT.png")
    args = parser.parse_args(argv)

    x = crops(args.size, args.count, seed=args.seed)
    ref = reference_stop(x, args, Path(args.cache_dir))
    keep = ref.reached
    x = x[keep]
    ref = ref.select(keep)
    print(
        f"{int(keep.sum())}/{args.count} crops reach sparsity {args.sparsity} on the reference path "
        f"(median {float(ref.iterations.double().median()):.0f} iterations, max {int(ref.iterations.max())})"
    )

    sigmas = [float(v) for v in filter(None, args.denoise.split(","))]
    noisy = {sigma: gaussian_noisy(x, sigma, args.seed) for sigma in sigmas}
    anchors = "; ".join(
        f"sigma {sigma}: noisy input {float(psnr(noisy[sigma], x).median()):.2f} dB, chambolle at its "
        f"best weight {float(chambolle_oracle(noisy[sigma], x).median()):.2f} dB"
        for sigma in sigmas
    )

    def denoising(config: SolverConfig) -> list[float]:
        kwargs = {**config.kwargs(), "channels": args.channels}
        return [float(oracle_denoising(noisy[sigma], x, **kwargs).median()) for sigma in sigmas]

    rows = [
        row("baseline: input unchanged", identity_stop(x, args.channels), ref, x, None),
        row("baseline: largest-jump edges", threshold_stop(x, args.sparsity, args.channels), ref, x, None),
    ]
    presets = [PRESETS[name] for name in filter(None, args.presets.split(","))]
    configs = [*parse_grid(args.grid), *map(parse_config, args.config)]
    configs = [SolverConfig(max_iter=args.max_iter).replace(**overrides) for overrides in configs]
    seen = set()
    for config in configs + [p.replace(max_iter=max(p.max_iter, args.max_iter)) for p in presets]:
        if config.integrator == "events":
            config = PRESETS["events"].replace(**{k: getattr(config, k) for k in NAMED["events"]})
        name = config_name(config)
        if name in seen:
            continue
        seen.add(name)
        advance = backends.REGISTRY[backends.auto_name(x.device, x.dtype, config.integrator)].advance
        stop(x[:1], args.sparsity, config, args.channels, advance)  # compiled before it is timed
        seconds = []
        for _ in range(3):  # the best of three: the least disturbed measurement
            start = time.perf_counter()
            cand = stop(x, args.sparsity, config, args.channels, advance)
            seconds.append(time.perf_counter() - start)
        rows.append(row(name, cand, ref, x, min(seconds)))
        rows[-1]["denoise"] = denoising(config)
        rows[-1]["default"] = config.replace(max_iter=DEFAULT.max_iter) == DEFAULT
        rows[-1]["preset"] = next((n for n, p in PRESETS.items() if config.replace(max_iter=p.max_iter) == p), None)

    paths = [r for r in rows if not r["name"].startswith("baseline")]
    best = frontier(paths)
    lines = [
        f"{len(x)} crops {args.size}x{args.size}x3 (seed {args.seed}), sparsity {args.sparsity}, {args.channels}; "
        f"candidates capped at {args.max_iter} iterations. `*` frontier (CPU seconds vs mean relative error), "
        "`D` the current default. The events integrator's iterations are its steps (one solve each).",
        *([f"Denoising (median PSNR, oracle stop, beta / scale): {anchors}.", ""] if sigmas else [""]),
        "| configuration | median it | max it | reached | CPU s | PSNR mean dB | PSNR worst dB | edge agreement"
        " | rel. error mean | rel. error median | rel. error worst |"
        + "".join(f" denoise σ {sigma} |" for sigma in sigmas),
        "|---|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(sigmas),
    ]
    for r in sorted(rows, key=lambda r: (not r["name"].startswith("baseline"), r["seconds"] or 0, r["rel"])):
        mark = ("*" if r["name"] in best else "") + ("D" if r.get("default") else "")
        mark += f" ({r['preset']} preset)" if r.get("preset") else ""
        lines.append(
            f"| {r['name']} {mark} | {r['median']:.0f} | {r['max']} | {r['reached']}/{r['n']} | "
            f"{'' if r['seconds'] is None else format(r['seconds'], '.3f')} | {r['psnr']:.2f} | "
            f"{r['psnr_worst']:.2f} | {r['agreement']:.4f} | {r['rel']:.3f} | {r['rel_median']:.3f} | "
            f"{r['rel_worst']:.3f} |"
            + "".join(f" {v:.2f} |" for v in r.get("denoise", []))
            + " |" * (len(sigmas) - len(r.get("denoise", [])))
        )
    table = "\n".join(lines)
    print(table)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".md").write_text(table + "\n")
    plot(paths, rows, best, output.with_suffix(".png"), args)
    print(f"wrote {output.with_suffix('.md')} and {output.with_suffix('.png')}")
    return rows


def plot(paths: list[dict], rows: list[dict], best: set[str], path: Path, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, label in (
        (axes[0], "psnr", "mean PSNR to the reference (dB)"),
        (axes[1], "rel", "mean relative error to the reference"),
    ):
        ax.scatter([r["seconds"] for r in paths], [r[key] for r in paths], s=14, c="tab:blue", label="configurations")
        front = sorted((r for r in paths if r["name"] in best), key=lambda r: r["seconds"])
        ax.plot([r["seconds"] for r in front], [r[key] for r in front], "-o", c="tab:red", ms=4, label="frontier")
        for r in rows:
            if r["name"].startswith("baseline"):
                ax.axhline(r[key], ls="--", lw=1, c="gray")
                ax.text(min(p["seconds"] for p in paths), r[key], r["name"], fontsize=7)
            if r.get("preset"):
                ax.scatter([r["seconds"]], [r[key]], marker="*", s=120, label=f"{r['preset']} preset", zorder=3)
        ax.set_xscale("log")
        ax.set_xlabel(f"CPU seconds for the {rows[0]['n']} crops (backend auto)")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    fig.suptitle(f"{args.size}x{args.size} crops, sparsity {args.sparsity}: speed against fidelity", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
