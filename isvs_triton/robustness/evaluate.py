"""Evaluate a trained run: clean, every corruption x severity, low resolution, FGSM and PGD over an epsilon sweep,
for the plain model and with test-time smoothing (attacked through the smoothing by BPDA).

One pass over the test set; every condition is computed on each batch. The test loader is sharded by Accelerate and
the per-image results gathered, so ``accelerate launch tools/evaluate.py RUN`` splits the work over processes.
Writes results.json, results.csv, results.md and two PNG plots to the output folder.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from ..data import SMALL_SIDE, Images, load_data
from ..filters import median_filter
from ..train.loop import load_run
from .attacks import ATTACK_GRADS, Pipeline, fgsm, pgd
from .corruptions import BENCHMARK, CORRUPTIONS, EXTRAS, GROUPS, constants_for, corrupt, low_resolution

# plain: the model alone; smoothed: the run's test-time smoothing; adaptive: the same with the noise stop ("auto")
# plain: the model; smoothed: the run's test-time smoothing; adaptive: the same with the noise stop; median: a
# median filter at test time (the baseline a reviewer tries first), differentiated exactly by the attacks
PIPELINES = ("plain", "smoothed", "adaptive", "median")
DEFAULT_PIPELINES = ("plain", "smoothed", "adaptive")
SPLITS = ("test", "validation")  # what an evaluation reads: the test split, or the run's held-out training images


def default_epsilons(image_size: int) -> list[float]:
    """The epsilon sweep, in [0, 1] units: up to 8/255 at CIFAR sizes, 4/255 at ImageNet sizes (the defaults)."""
    return [e / 255 for e in ((1, 2, 4, 8) if image_size <= SMALL_SIDE else (1, 2, 4))]


def _conditions(corruptions, severities, resolutions, epsilons) -> list[tuple[str, str, float]]:
    conditions = [("clean", "clean", 0)]
    conditions += [("corruption", name, s) for name in corruptions for s in severities]
    conditions += [("low_resolution", f"x{f}", f) for f in resolutions]
    conditions += [(attack, attack, eps) for attack in ("fgsm", "pgd") for eps in epsilons]
    return conditions


def evaluate_run(
    run: str | Path,
    *,
    dataset: str | None = None,
    data_dir: str | None = None,
    test_split: str | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    limit_test: int | None = None,
    split: str = "test",
    batch_size: int = 128,
    corruptions: tuple[str, ...] = CORRUPTIONS,
    severities: tuple[int, ...] = (1, 2, 3, 4, 5),
    resolutions: tuple[int, ...] = (2, 4),
    epsilons: list[float] | None = None,
    pgd_steps: int = 20,
    pgd_step: float = 2 / 255,
    pipelines: tuple[str, ...] = DEFAULT_PIPELINES,
    attack_grad: str = "bpda",
    median_size: int = 3,
    constants: str = "auto",
    seed: int = 0,
    output: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Evaluate the run folder ``run``; data settings default to the run's own. Returns (and writes) the results."""
    unknown = [p for p in pipelines if p not in PIPELINES]
    if unknown or not pipelines:
        raise ValueError(f"unknown pipelines {unknown or pipelines}; accepted: {list(PIPELINES)}")
    if attack_grad not in ATTACK_GRADS:
        raise ValueError(f"unknown attack gradient {attack_grad!r}; accepted: {list(ATTACK_GRADS)}")
    bad = [c for c in corruptions if c not in CORRUPTIONS]
    if bad:
        raise ValueError(f"unknown corruptions {bad}; accepted: {list(CORRUPTIONS)}")
    if any(not 1 <= s <= 5 for s in severities):
        raise ValueError(f"severities must be in 1-5, got {list(severities)}")
    if limit_test is not None and limit_test < 1:
        raise ValueError(f"--limit-test must be >= 1 (the number of test images to evaluate), got {limit_test}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; accepted: {list(SPLITS)}")
    odd = isinstance(median_size, int) and not isinstance(median_size, bool) and median_size % 2 == 1
    if "median" in pipelines and not (odd and median_size >= 1):
        raise ValueError(f"--median-size must be an odd integer >= 1, got {median_size!r}")
    accelerator = Accelerator()
    model, info = load_run(run, accelerator.device)
    trained = info.config
    data = load_data(
        dataset or trained["dataset"],
        data_dir=data_dir if dataset or data_dir else trained["data_dir"],
        test_split=test_split or trained["test_split"],
        image_column=image_column or trained["image_column"],
        label_column=label_column or trained["label_column"],
        image_size=info.image_size,
        limit_train=1,
        limit_test=limit_test,
        val_fraction=trained.get("val_fraction", 0.0),
        val_seed=trained["seed"],
    )
    if split == "validation":
        if data.validation is None:
            raise ValueError(f"{run} was trained without --val-fraction: it has no validation split to evaluate")
        data = dataclasses.replace(data, test=data.validation)  # the same held-out images the run was chosen on
    if data.num_classes != info.num_classes:
        raise ValueError(f"the data has {data.num_classes} classes, the model {info.num_classes}")
    names = getattr(data.test.features["label"], "names", None)
    if names is not None and info.classes is not None and list(names) != info.classes:
        raise ValueError(
            f"the data's classes {names[:5]}... are not the model's {info.classes[:5]}... "
            f"({data.name} against a model trained on {info.dataset})"
        )
    size = info.image_size
    epsilons = default_epsilons(size) if epsilons is None else list(epsilons)
    smoothing = info.smoothing
    adaptive = smoothing.replace(noise="auto")
    models = {
        "plain": Pipeline(model).eval(),
        "smoothed": Pipeline(model, smoothing, attack_grad).eval(),
        "adaptive": Pipeline(model, adaptive, attack_grad).eval(),
        "median": Pipeline(model, functools.partial(median_filter, size=median_size), differentiable=True).eval(),
    }
    conditions = _conditions(corruptions, severities, resolutions, epsilons)
    loader = accelerator.prepare(torch.utils.data.DataLoader(Images(data.test, size, "test"), batch_size=batch_size))
    correct = {p: [] for p in pipelines}
    start = time.perf_counter()
    for index, images, labels in tqdm(
        loader, desc="evaluating", disable=not (progress and accelerator.is_main_process)
    ):
        x = images.float().div_(255)
        for name in pipelines:
            pipeline, hits = models[name], []
            for kind, what, level in conditions:
                if kind == "fgsm":
                    inputs = fgsm(pipeline, x, labels, level)
                elif kind == "pgd":
                    inputs = pgd(pipeline, x, labels, level, step=pgd_step, steps=pgd_steps, seed=seed, index=index)
                elif kind == "corruption":
                    inputs = corrupt(x, what, level, constants=constants, seed=seed, index=index)
                elif kind == "low_resolution":
                    inputs = low_resolution(x, level)
                else:
                    inputs = x
                with torch.no_grad():
                    hits.append(pipeline(inputs).argmax(1) == labels)
            correct[name].append(accelerator.gather_for_metrics(torch.stack(hits, 1)).cpu())
    seconds = time.perf_counter() - start
    results = {
        "run": str(run),
        "model": info.model,
        "dataset": data.name,
        "split": split,
        "test_images": 0,
        "image_size": size,
        "constants": constants_for(torch.zeros(1, 3, size, size), constants),
        "seed": seed,
        "smoothing": {**smoothing.to_dict(), "trained_with": info.procedure, "adaptive_noise": adaptive.noise},
        "median_size": median_size if "median" in pipelines else None,
        "attacks": {
            "norm": "Linf",
            "epsilons": epsilons,
            "pgd_steps": pgd_steps,
            "pgd_step": pgd_step,
            "random_start": True,
            "gradient_through_smoothing": attack_grad,
        },
        "seconds": seconds,
        "pipelines": {},
    }
    for name in pipelines:
        hits = torch.cat(correct[name])  # (test images, conditions)
        results["test_images"] = hits.shape[0]
        results["pipelines"][name] = _summarise(conditions, hits.double().mean(0).tolist())
    if output is not None and accelerator.is_main_process:
        write_report(results, Path(output))
    return results


def _summarise(conditions, accuracy) -> dict:
    out = {"clean": None, "corruptions": {}, "low_resolution": {}, "fgsm": {}, "pgd": {}}
    for (kind, what, level), acc in zip(conditions, accuracy):
        if kind == "clean":
            out["clean"] = acc
        elif kind == "corruption":
            out["corruptions"].setdefault(what, [None] * 5)[level - 1] = acc
        elif kind == "low_resolution":
            out["low_resolution"][what] = acc
        else:
            out[kind][f"{level * 255:g}/255"] = acc

    def mean(names):
        values = [a for n in names if n in out["corruptions"] for a in out["corruptions"][n] if a is not None]
        return sum(values) / len(values) if values else None

    out["corruption_means"] = {name: mean([name]) for name in out["corruptions"]}  # over the severities evaluated
    out["mean_corruption"] = mean(BENCHMARK)  # the benchmark's fifteen only; the extras apart
    out["group_means"] = {group: mean(names) for group, names in GROUPS.items()}
    out["mean_extras"] = mean(EXTRAS)
    return out


# ----------------------------------------------------------------------------------------------------------- report
def _pct(value) -> str:
    return "" if value is None else f"{100 * value:.1f}"


def markdown(results: dict) -> str:
    """The summary table (one row per pipeline) and the per-corruption table, accuracies in %."""
    pipelines = results["pipelines"]
    first = next(iter(pipelines.values()))
    lowres, fgsm_eps, pgd_eps = list(first["low_resolution"]), list(first["fgsm"]), list(first["pgd"])
    attack = results["attacks"]
    smoothed_grad = (
        "BPDA" if attack["gradient_through_smoothing"] == "bpda" else "NAIVE gradient (not a robustness number)"
    )
    header = ["pipeline", "clean", "mean corruption (15)", *[f"{g} mean" for g in GROUPS], "extras mean"]
    header += [f"low-res {r}" for r in lowres] + [f"FGSM {e}" for e in fgsm_eps]
    header += [f"PGD-{attack['pgd_steps']} {e}" for e in pgd_eps]
    lines = [
        f"{results['model']} on {results['dataset']} ({results['test_images']} test images, {results['constants']} "
        f"corruption constants); smoothed = test-time smoothing at sparsity {results['smoothing']['sparsity']}, "
        f"adaptive = the same with each image's noise stop (noise='auto'); both attacked through the smoothing by "
        f"{smoothed_grad}. Accuracy in %.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for name, r in pipelines.items():
        cells = [
            name,
            _pct(r["clean"]),
            _pct(r["mean_corruption"]),
            *[_pct(r["group_means"][g]) for g in GROUPS],
            _pct(r["mean_extras"]),
        ]
        cells += [_pct(r["low_resolution"][k]) for k in lowres] + [_pct(r["fgsm"][k]) for k in fgsm_eps]
        cells += [_pct(r["pgd"][k]) for k in pgd_eps]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| corruption | pipeline | s1 | s2 | s3 | s4 | s5 | mean |", "|---|---|---|---|---|---|---|---|"]
    for corruption in first["corruptions"]:
        for name, r in pipelines.items():
            values = " | ".join(_pct(v) for v in r["corruptions"][corruption])
            lines.append(f"| {corruption} | {name} | {values} | {_pct(r['corruption_means'][corruption])} |")
    return "\n".join(lines) + "\n"


def write_report(results: dict, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=2))
    with (folder / "results.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["pipeline", "kind", "name", "level", "accuracy"])
        for name, r in results["pipelines"].items():
            writer.writerow([name, "clean", "clean", 0, r["clean"]])
            for corruption, values in r["corruptions"].items():
                writer.writerows(
                    [name, "corruption", corruption, s + 1, v] for s, v in enumerate(values) if v is not None
                )
            writer.writerows([name, "low_resolution", k, k[1:], v] for k, v in r["low_resolution"].items())
            for attack in ("fgsm", "pgd"):
                writer.writerows([name, attack, attack, k, v] for k, v in r[attack].items())
    (folder / "results.md").write_text(markdown(results))

    pipelines = results["pipelines"]
    corruptions = list(next(iter(pipelines.values()))["corruptions"])
    if corruptions:
        columns = min(len(corruptions), 5)
        rows = -(-len(corruptions) // columns)
        fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 2.6 * rows), squeeze=False, sharey=True)
        for ax, corruption in zip(axes.flat, corruptions):
            for name, r in pipelines.items():
                ax.plot(range(6), [r["clean"], *r["corruptions"][corruption]], marker="o", label=name)
            ax.set_title(corruption, fontsize=9)
            ax.set_xlabel("severity")
            ax.set_ylim(0, 1)
        for ax in axes.flat[len(corruptions) :]:
            ax.axis("off")
        axes.flat[0].set_ylabel("accuracy")
        axes.flat[0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / "corruptions.png", dpi=110)
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, r in pipelines.items():
        for attack, style in (("fgsm", "--"), ("pgd", "-")):
            eps = [0.0] + [float(k.split("/")[0]) for k in r[attack]]
            ax.plot(eps, [r["clean"], *r[attack].values()], style, marker="o", label=f"{name} {attack.upper()}")
    ax.set_xlabel("epsilon (/255, L-inf)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "adversarial.png", dpi=110)
    plt.close(fig)
