"""ISVS training against standard training and the smoothing / augmentation baselines, over several seeds.

Trains every configuration below with each seed, evaluates every run (clean, corruptions, low resolution, PGD with
BPDA through test-time smoothing; `tools/evaluate.py`'s function), and writes the table of mean +- std over seeds,
plots and an example figure. Runs and evaluations already in the output folder are reused, so an interrupted
comparison continues where it stopped.

    python recipes/compare.py --quick                 # ResNet-8, 1,000 training images: the CI run (its time: README)
    python recipes/compare.py --setting medium        # ResNet-8, all 3,200 images, 12 epochs (docs/results.md)
    python recipes/compare.py                         # ResNet-18, all images, 30 epochs, full evaluation
    python recipes/compare.py --dataset uoft-cs/cifar10 --data-dir ~/cifar10 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from isvs_triton.robustness import GROUPS, evaluate_run
from isvs_triton.train import parse_args, train
from isvs_triton.train import registry as procedures

# name -> training settings on top of the setting's; finetune keeps the same total number of epochs
CONFIGURATIONS = {
    "standard": {"procedure": "standard"},
    "isvs fixed 0.4": {"procedure": "fixed", "sparsity": 0.4},
    "isvs fixed 0.6": {"procedure": "fixed", "sparsity": 0.6},
    "isvs fixed 0.8": {"procedure": "fixed", "sparsity": 0.8},
    # each image also stops at its estimated noise level (the discrepancy principle), in training and at test time
    "isvs fixed 0.6 + noise stop": {"procedure": "fixed", "sparsity": 0.6, "noise": "auto"},
    "isvs iterative": {"procedure": "iterative", "schedule": [0.2, 0.4, 0.6]},
    "isvs finetune": {"procedure": "finetune", "sparsity": 0.6},  # last quarter of the epochs smoothed
    "gaussian blur": {"procedure": "blur", "blur_sigma": 1.0},
    "low-pass": {"procedure": "lowpass", "lowpass_radius": 0.5},
    "tv chambolle": {"procedure": "tv", "tv_weight": 0.1},
    "noise augmentation": {"procedure": "noise", "noise_sigma": 0.1},
}
# runs evaluated with test-time smoothing too (at their last training sparsity; 0.6 for standard training): those
# whose procedure says so (train/registry.py); "adaptive": the same smoothing with the noise stop, noise="auto"
SMOOTHED_AT_TEST = tuple(name for name, c in CONFIGURATIONS.items() if procedures.get(c["procedure"]).smoothed_at_test)
SETTINGS = {
    "quick": {
        "train": {
            "model": "resnet8",
            "epochs": 4,
            "batch_size": 64,
            "lr": 0.05,
            "limit_train": 1000,
            "limit_test": 200,
        },
        "eval": {"severities": (1, 3, 5), "epsilons": [2 / 255, 8 / 255], "pgd_steps": 10},
    },
    "medium": {
        "train": {"model": "resnet8", "epochs": 12, "batch_size": 64, "lr": 0.05, "limit_test": 400},
        "eval": {"severities": (1, 3, 5), "epsilons": [1 / 255, 2 / 255, 4 / 255, 8 / 255], "pgd_steps": 10},
    },
    "full": {
        "train": {"model": "resnet18", "epochs": 30, "batch_size": 128, "lr": 0.1, "warmup_epochs": 2},
        "eval": {},  # every corruption x severity, eps 1-8/255, PGD-20
    },
}


# the table: (column, how to read it from one pipeline's results)
COLUMNS = [
    ("clean", lambda r: r["clean"]),
    ("mean corruption (15)", lambda r: r["mean_corruption"]),
    *[(f"{group} mean", lambda r, g=group: r["group_means"][g]) for group in GROUPS],
    *[(name.replace("_noise", ""), lambda r, n=name: r["corruption_means"][n]) for name in GROUPS["noise"]],
    ("extras mean", lambda r: r["mean_extras"]),
    ("low-res x2", lambda r: r["low_resolution"]["x2"]),
    ("low-res x4", lambda r: r["low_resolution"]["x4"]),
]


def _run_settings(name: str, overrides: dict, setting: dict, args) -> dict:
    settings = procedures.get(overrides["procedure"]).epoch_split({**setting["train"], **overrides})
    if args.dataset:
        settings["dataset"], settings["data_dir"] = args.dataset, args.data_dir
    return settings


def _flags(settings: dict) -> list[str]:
    flags = []
    for key, value in settings.items():
        flags += [f"--{key.replace('_', '-')}", ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    return flags


def train_and_evaluate(name: str, seed: int, setting: dict, args, folder: Path) -> dict:
    """One run of configuration ``name`` with ``seed``: trained unless it exists, evaluated unless it was."""
    run = folder / "runs" / f"{name.replace(' ', '-')}-s{seed}"
    settings = {**_run_settings(name, CONFIGURATIONS[name], setting, args), "seed": seed}
    if not (run / "run.json").exists():
        resume = ["--resume"] if (run / "checkpoints").exists() else []
        train(parse_args([*_flags(settings), "--output", str(run), "--no-progress", "--log-with", "none", *resume]))
    results_file = run / "eval" / "results.json"
    if not results_file.exists():
        pipelines = ("plain", "smoothed", "adaptive") if name in SMOOTHED_AT_TEST else ("plain",)
        evaluate_run(
            run,
            limit_test=settings.get("limit_test"),
            pipelines=pipelines,
            output=run / "eval",
            progress=False,
            **setting["eval"],
        )
    return json.loads(results_file.read_text())


def _mean_std(values: list[float]) -> str:
    values = [100 * v for v in values]
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.1f} ± {std:.1f}"


def table(results: dict[str, list[dict]]) -> str:
    """Markdown: one row per configuration and pipeline, mean +- std over seeds of each column, in %."""
    first = next(iter(results.values()))[0]
    epsilons = list(first["pipelines"]["plain"]["pgd"])
    header = ["training", "test-time", *[c for c, _ in COLUMNS], *[f"PGD {e}" for e in epsilons]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, runs in results.items():
        for pipeline in runs[0]["pipelines"]:
            per_seed = [r["pipelines"][pipeline] for r in runs]
            cells = [name, {"smoothed": "smoothed (BPDA)", "adaptive": "noise stop (BPDA)"}.get(pipeline, "plain")]
            cells += [_mean_std([read(r) for r in per_seed]) for _, read in COLUMNS]
            cells += [_mean_std([r["pgd"][e] for r in per_seed]) for e in epsilons]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plots(results: dict[str, list[dict]], folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, runs in results.items():
        plain = [r["pipelines"]["plain"] for r in runs]
        clean = [100 * r["clean"] for r in plain]
        noise = [100 * r["group_means"]["noise"] for r in plain]
        left.errorbar(
            statistics.fmean(clean),
            statistics.fmean(noise),
            xerr=statistics.pstdev(clean),
            yerr=statistics.pstdev(noise),
            marker="o",
            capsize=3,
            label=name,
        )
        epsilons = list(plain[0]["pgd"])
        values = [[100 * r["pgd"][e] for r in plain] for e in epsilons]
        right.errorbar(
            [float(e.split("/")[0]) for e in epsilons],
            [statistics.fmean(v) for v in values],
            yerr=[statistics.pstdev(v) for v in values],
            marker="o",
            capsize=3,
            label=name,
        )
    left.set_xlabel("clean accuracy (%)")
    left.set_ylabel("noise-corruption accuracy (%)")
    left.set_title("clean vs noise (plain pipeline), mean ± std over seeds", fontsize=9)
    right.set_xlabel("PGD epsilon (/255)")
    right.set_ylabel("accuracy (%)")
    right.set_title("PGD (plain pipeline)", fontsize=9)
    right.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(folder / "comparison.png", dpi=110)
    plt.close(fig)


def example_figure(folder: Path, setting: dict, args) -> None:
    """A test image along the path, and corrupted versions before and after smoothing at 0.6 (with and without the
    noise stop)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import isvs_triton as isvs
    from isvs_triton.data import Images, load_data
    from isvs_triton.robustness import corrupt, low_resolution

    data = load_data(args.dataset or "photo-patches", data_dir=args.data_dir, limit_train=1, limit_test=4)
    x = torch.stack([Images(data.test, data.image_size)[i][1] for i in range(4)]).float() / 255
    along = isvs.path(x, [0.2, 0.4, 0.6, 0.8])
    damaged = {
        "gaussian noise s3": corrupt(x, "gaussian_noise", 3),
        "shot noise s3": corrupt(x, "shot_noise", 3),
        "impulse noise s3": corrupt(x, "impulse_noise", 3),
        "low-res x4": low_resolution(x, 4),
    }
    rows = [("input", x), *[(f"sparsity {s}", y) for s, y in zip((0.2, 0.4, 0.6, 0.8), along)]]
    for label, y in damaged.items():
        rows += [
            (label, y),
            (f"{label}, smoothed 0.6", isvs.sparsify(y, 0.6)),
            (f"{label}, 0.6 + noise stop", isvs.sparsify(y, 0.6, noise="auto")),
        ]
    fig, axes = plt.subplots(len(x), len(rows), figsize=(1.3 * len(rows), 1.45 * len(x)), squeeze=False)
    for i in range(len(x)):
        for j, (label, images) in enumerate(rows):
            axes[i, j].imshow(images[i].permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
            if i == 0:
                axes[i, j].set_title(label, fontsize=6)
    fig.tight_layout()
    fig.savefig(folder / "examples.png", dpi=130)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setting", choices=list(SETTINGS), default="full")
    parser.add_argument("--quick", action="store_const", const="quick", dest="setting", help="= --setting quick")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--configurations", help=f"comma-separated subset of: {', '.join(CONFIGURATIONS)}")
    parser.add_argument("--dataset", help="default: the embedded photo-patches")
    parser.add_argument("--data-dir")
    parser.add_argument("--output", help="default: runs/compare-<setting>")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.configurations.split(",")] if args.configurations else list(CONFIGURATIONS)
    unknown = [n for n in names if n not in CONFIGURATIONS]
    if unknown:
        parser.error(f"unknown configurations {unknown}; accepted: {list(CONFIGURATIONS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    folder = Path(args.output or f"runs/compare-{args.setting}")
    folder.mkdir(parents=True, exist_ok=True)
    setting, start = SETTINGS[args.setting], time.perf_counter()
    results = {name: [] for name in names}
    for seed in seeds:  # seed-major: a partial comparison already covers every configuration
        for name in names:
            results[name].append(train_and_evaluate(name, seed, setting, args, folder))
            print(f"[{time.perf_counter() - start:7.0f} s] {name}, seed {seed}: done", flush=True)
    example_figure(folder, setting, args)
    plots(results, folder)
    wall = time.perf_counter() - start
    command = " ".join(["python", "recipes/compare.py", *(argv if argv is not None else sys.argv[1:])])
    machine = f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    report = (
        f"`{command}`: setting {args.setting} ({json.dumps(setting['train'])}), seeds {seeds}; "
        f"{machine}; wall time {wall / 60:.1f} min (runs found in the folder are not retrained).\n\n"
        f"Accuracy in %, mean ± std over seeds.\n\n{table(results)}"
    )
    (folder / "results.md").write_text(report)
    (folder / "results.json").write_text(json.dumps({"setting": args.setting, "seeds": seeds, "runs": results}))
    print(report)
    return results


if __name__ == "__main__":
    main()
