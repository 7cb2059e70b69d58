"""Evaluate a trained run: clean, every corruption x severity, low resolution, and the attack suite over an epsilon
sweep (robust accuracy = the worst case per image over FGSM, APGD with restarts and every surrogate gradient, Square
and transfer), for the plain model and with test-time smoothing, with sanity checks on every pipeline.

One pass over the test set; every condition is computed on each batch. The test loader is sharded by Accelerate and
the per-image results gathered, so ``accelerate launch tools/evaluate.py RUN`` splits the work over processes.
Writes results.json, results.csv, results.md and two PNG plots to the output folder.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import functools
import json
import time
from pathlib import Path

import numpy
import torch
from accelerate import Accelerator

from ..data import SMALL_SIDE, Images, load_data
from ..filters import bilateral, gaussian_blur, median_filter, nl_means
from ..models import for_inference
from ..progress import track
from ..rng import sample_uniform
from ..train import procedures, run_folder
from ..train.run_folder import load_run
from .attacks import Pipeline, robust, suite_names
from .config import EvalConfig
from .corruptions import BENCHMARK, EXTRAS, GROUPS, STEADY_BACKGROUND, constants_for, corrupt, low_resolution

# a large ball: every pipeline's accuracy must reach 0 there under the suite's gradient attacks (APGD with every
# surrogate gradient and restart, FGSM, transfer; Square left out for time), or its robust accuracy is not an
# estimate (a comparison then leaves it out of its summary). PGD with a fixed step did not: through the smoothing it
# left 1-12 % of the images standing (docs/notes/results.md)
SANITY_EPSILON = 32 / 255


def default_epsilons(image_size: int) -> list[float]:
    """The epsilon sweep, in [0, 1] units: up to 8/255 at CIFAR sizes, 4/255 at ImageNet sizes (the defaults)."""
    return [e / 255 for e in ((1, 2, 4, 8) if image_size <= SMALL_SIDE else (1, 2, 4))]


def _conditions(corruptions, severities, resolutions) -> list[tuple[str, str, float]]:
    conditions = [("clean", "clean", 0)]
    conditions += [("corruption", name, s) for name in corruptions for s in severities]
    return conditions + [("low_resolution", f"x{f}", f) for f in resolutions]


# corrupted batches already made in this process, as uint8 (corruptions are stored as 8 bits, so this is lossless):
# evaluations of the same images (a comparison's candidates on one validation split, its runs on the test split)
# make each corrupted batch once. Keyed by the data's fingerprint, the batch's image indices and the corruption's
# arguments; bounded by CORRUPTION_CACHE_BYTES, oldest first out
CORRUPTION_CACHE_BYTES = 4 << 30
_corrupted: dict[tuple, torch.Tensor] = {}


def _corrupt_cached(x, index, fingerprint, name, severity, constants, seed) -> torch.Tensor:
    if fingerprint is None:
        return corrupt(x, name, severity, constants=constants, seed=seed, index=index)
    key = (fingerprint, tuple(x.shape), name, severity, constants, seed, index.cpu().numpy().tobytes())
    if key not in _corrupted:
        out = corrupt(x, name, severity, constants=constants, seed=seed, index=index)
        _corrupted[key] = (out * 255).round().to(torch.uint8).cpu()
        while sum(v.numel() for v in _corrupted.values()) > CORRUPTION_CACHE_BYTES:
            del _corrupted[next(iter(_corrupted))]
    return _corrupted[key].to(x.device, x.dtype) / 255


def _eps_key(eps: float) -> str:
    return f"{eps * 255:g}/255"


def _attack_columns(pipeline: Pipeline, epsilons, mode: str, restarts: int, square_queries: int, sanity: bool):
    """(attack name, eps) per column of the attacked images' results: each attack and "worst" at each eps, then the
    sanity checks ("random": uniform +-eps noise at each eps; "apgd-large": the gradient attacks at SANITY_EPSILON)."""
    only = None if mode == "suite" else mode
    names = suite_names(pipeline, restarts=restarts, square_queries=square_queries, only=only)
    columns = [(name, eps) for eps in epsilons for name in [*names, "worst"]]
    return columns + ([("random", eps) for eps in epsilons] + [("apgd-large", SANITY_EPSILON)] if sanity else [])


def _attack(pipeline, x, y, index, columns, mode, steps, restarts, square_queries, seed) -> torch.Tensor:
    """(B, columns) float: 1 where the image survived that column's attack."""
    out = {}
    options = {"steps": steps, "restarts": restarts, "only": None if mode == "suite" else mode, "seed": seed}
    for eps in dict.fromkeys(e for name, e in columns if name not in ("random", "apgd-large")):
        survived = robust(pipeline, x, y, eps, **options, square_queries=square_queries, index=index)
        out.update({(name, eps): hit for name, hit in survived.items()})
    with torch.no_grad():
        for name, eps in columns:
            if name == "random":
                signs = torch.where(sample_uniform(index, round(eps * 255_000) + 7, seed, x[0].numel()) < 0.5, -1, 1)
                out[name, eps] = pipeline((x + eps * signs.view(x.shape).to(x)).clamp(0, 1)).argmax(1) == y
    if ("apgd-large", SANITY_EPSILON) in columns:
        large = robust(pipeline, x, y, SANITY_EPSILON, **options, square_queries=0, index=index, worst_only=True)
        out["apgd-large", SANITY_EPSILON] = large["worst"]
    return torch.stack([out[c] for c in columns], 1).float()


def evaluate_run(run: str | Path, config: EvalConfig | None = None, **settings) -> dict:
    """Evaluate the run folder ``run`` as ``config`` (or ``EvalConfig(**settings)``) says; data settings default to
    the run's own. Returns the results, and writes the report when ``config.output`` is set.

    Stages: the settings and the output are checked before anything is loaded; the run and its test data; the
    pipelines the model is seen through; one pass over the data measuring every condition and attack; the summary."""
    config = config.replace(**settings) if config is not None else EvalConfig(**settings)
    if config.output is not None:
        check_output(Path(config.output))
    accelerator = Accelerator()
    model, info = load_run(run, accelerator.device)
    model = for_inference(model)  # batch norm folded, the same function: 1.3x forward, 1.8x input gradient
    smoothing, models = _pipelines(model, info, config)
    data = _test_data(run, info, config)
    epsilons = default_epsilons(info.image_size) if config.epsilons is None else list(config.epsilons)
    config = config.replace(epsilons=epsilons)
    start = time.perf_counter()
    correct, attacked, columns = _measure(run, models, data, info.image_size, config, accelerator)
    results = _results(run, info, data, smoothing, config, correct, attacked, columns, time.perf_counter() - start)
    if config.output is not None and accelerator.is_main_process:
        write_report(results, Path(config.output))
    return results


def _pipelines(model, info, config: EvalConfig):
    """The run's test-time smoothing and each pipeline of ``config`` around the model."""
    test_filter = procedures.get(info.procedure).test_filter
    if "trained" in config.pipelines and test_filter is None:
        with_filters = [n for n, p in procedures.REGISTRY.items() if p.test_filter is not None]
        raise ValueError(
            f"pipeline 'trained' needs a run trained with a filter ({with_filters}), not {info.procedure!r}"
        )
    sparsity = config.smoothing_sparsity
    smoothing = info.smoothing if sparsity is None else info.smoothing.replace(sparsity=sparsity)
    filters = {
        "smoothed": (smoothing, False),
        "adaptive": (smoothing.replace(noise="auto"), False),
        "median": (functools.partial(median_filter, size=config.median_size), True),
        "gaussian": (functools.partial(gaussian_blur, sigma=config.gaussian_sigma), True),
        "bilateral": (functools.partial(bilateral, sigma_color=config.bilateral_sigma), True),
        "nlmeans": (functools.partial(nl_means, h=config.nlmeans_h), False),
        "trained": test_filter(info.config) if test_filter is not None else None,
    }
    models = {"plain": Pipeline(model).eval()}
    for name in config.pipelines:
        if name != "plain":
            smooth, differentiable = filters[name]
            models[name] = Pipeline(model, smooth, differentiable=differentiable).eval()
    return smoothing, {name: models[name] for name in config.pipelines}


def _test_data(run, info, config: EvalConfig):
    """The split evaluated: the run's test split (or ``config``'s data), or the images it held out for validation,
    checked to have the model's classes."""
    trained = info.config
    data = load_data(
        config.dataset or trained["dataset"],
        data_dir=config.data_dir if config.dataset or config.data_dir else trained["data_dir"],
        test_split=config.test_split or trained["test_split"],
        image_column=config.image_column or trained["image_column"],
        label_column=config.label_column or trained["label_column"],
        image_size=info.image_size,
        limit_train=1,
        limit_test=config.limit_test,
        val_fraction=trained.get("val_fraction", 0.0),
        val_seed=trained["seed"],
    )
    if config.split == "validation":
        if data.validation is None:
            raise ValueError(f"{run} was trained without --val-fraction: it has no validation split to evaluate")
        held_out = data.validation  # the same held-out images the run was chosen on; the first limit_test of them
        if config.limit_test is not None and config.limit_test < len(held_out):
            held_out = held_out.select(range(config.limit_test), keep_in_memory=True)  # a random hold-out
        data = dataclasses.replace(data, test=held_out)
    if data.num_classes != info.num_classes:
        raise ValueError(f"the data has {data.num_classes} classes, the model {info.num_classes}")
    names = getattr(data.test.features["label"], "names", None)
    if names is not None and info.classes is not None and list(names) != info.classes:
        raise ValueError(
            f"the data's classes {names[:5]}... are not the model's {info.classes[:5]}... "
            f"({data.name} against a model trained on {info.dataset})"
        )
    return data


def _measure(run, models: dict, data, size: int, config: EvalConfig, accelerator):
    """One pass over the data: per image, whether each pipeline classifies each condition right, and which attack
    columns it survives (NaN where not attacked), gathered over processes."""
    conditions = _conditions(config.corruptions, config.severities, config.resolutions)
    fingerprint = getattr(data.test, "_fingerprint", None)  # a datasets.Dataset's: which images these are
    attacked = models if config.attacked is None else config.attacked
    columns = {
        name: _attack_columns(pipeline, config.epsilons, config.attack, config.restarts, config.square_queries,
                              config.sanity) if name in attacked else []
        for name, pipeline in models.items()
    }  # fmt: skip
    loader = accelerator.prepare(
        torch.utils.data.DataLoader(Images(data.test, size, "test"), batch_size=config.batch_size)
    )
    correct, attacked = {p: [] for p in models}, {p: [] for p in models}
    # one unit per condition of a batch, and one per attacked pipeline: the bar moves as the work does
    attacking = [p for p in models if columns[p]]
    bar = track(total=len(loader) * (len(conditions) + len(attacking)), desc="evaluating",
                enabled=config.progress and accelerator.is_main_process)  # fmt: skip
    for index, images, labels in loader:
        x = images.float().div_(255)
        hits = {name: [] for name in models}
        for kind, what, level in conditions:  # each condition's images made once, seen by every pipeline
            bar.set_description(f"evaluating: {what}" + (f" {level}" if kind == "corruption" else ""))
            if kind == "corruption":
                inputs = _corrupt_cached(x, index, fingerprint, what, level, config.constants, config.seed)
            elif kind == "low_resolution":
                inputs = low_resolution(x, level)
            else:
                inputs = x
            with torch.no_grad():
                for name, pipeline in models.items():
                    logits = pipeline(inputs)
                    if kind == "clean" and not bool(torch.isfinite(logits).all()):
                        bad = index[~torch.isfinite(logits).all(1).to(index.device)].tolist()
                        raise ValueError(
                            f"the model of {run} gives NaN or Inf logits on test images {bad[:5]} ({name} "
                            "pipeline): its accuracy would be an artefact of argmax over them"
                        )
                    hits[name].append(logits.argmax(1) == labels)
            bar.update()
        limit = config.attack_limit
        chosen = (index < limit).nonzero()[:, 0] if limit is not None else torch.arange(len(x), device=index.device)
        for name, pipeline in models.items():
            correct[name].append(accelerator.gather_for_metrics(torch.stack(hits[name], 1)).cpu())
            survived = torch.full((len(x), len(columns[name])), float("nan"), device=x.device)
            if columns[name]:
                bar.set_description(f"evaluating: attacks on {name}")
                if chosen.numel():
                    survived[chosen] = _attack(pipeline, x[chosen], labels[chosen], index[chosen], columns[name],
                                               config.attack, config.pgd_steps, config.restarts,
                                               config.square_queries, config.seed).to(survived)  # fmt: skip
                bar.update()
            attacked[name].append(accelerator.gather_for_metrics(survived).cpu())
    bar.close()
    return correct, attacked, columns


def _results(run, info, data, smoothing, config: EvalConfig, correct, attacked, columns, seconds: float) -> dict:
    """The report's dictionary: what was evaluated and how, and each pipeline's accuracies."""
    conditions = _conditions(config.corruptions, config.severities, config.resolutions)
    pipelines = list(correct)
    size = info.image_size
    results = {
        "run": str(run),
        "model": info.model,
        "dataset": data.name,
        "split": config.split,
        "test_images": 0,
        "image_size": size,
        "constants": constants_for(torch.zeros(1, 3, size, size), config.constants),
        "seed": config.seed,
        "smoothing": {**smoothing.to_dict(), "trained_with": info.procedure, "adaptive_noise": "auto"},
        "median_size": config.median_size if "median" in pipelines else None,
        "gaussian_sigma": config.gaussian_sigma if "gaussian" in pipelines else None,
        "bilateral_sigma": config.bilateral_sigma if "bilateral" in pipelines else None,
        "nlmeans_h": config.nlmeans_h if "nlmeans" in pipelines else None,
        "trained_filter": {k: info.config.get(k) for k in ("blur_sigma", "lowpass_radius", "tv_weight")}
        if "trained" in pipelines
        else None,
        "attacks": {
            "norm": "Linf",
            "epsilons": config.epsilons,
            "mode": config.attack,
            "pgd_steps": config.pgd_steps,
            "pgd_step": "APGD: 2 eps, halved at its checkpoints",
            "restarts": config.restarts,
            "square_queries": config.square_queries if config.attack == "suite" else 0,
            "attack_limit": config.attack_limit,
            "attacked_images": 0,
        },
        "seconds": seconds,
        "pipelines": {},
    }
    for name in pipelines:
        hits = torch.cat(correct[name])  # (test images, conditions)
        results["test_images"] = hits.shape[0]
        results["pipelines"][name] = _summarise(conditions, hits.double().mean(0).tolist())
        results["pipelines"][name]["per_image"] = _per_image(conditions, hits)
        survived = torch.cat(attacked[name]).double()  # (test images, attack columns), NaN where not attacked
        if survived.numel():  # a pipeline not attacked has no columns
            results["attacks"]["attacked_images"] = int((~survived[:, 0].isnan()).sum())
        results["pipelines"][name].update(_summarise_attacks(columns[name], survived.nanmean(0).tolist()))
    return results


# per image, how many of these conditions it is classified right in (a paired test over images reads them)
PER_IMAGE = {"clean": ("clean",), "corruption_15": BENCHMARK, "corruption_10": STEADY_BACKGROUND}


def _per_image(conditions, hits: torch.Tensor) -> dict:
    """For each measure of ``PER_IMAGE``: the number of its conditions evaluated (``conditions``) and, per test image
    in the data's order, how many of them it got right, as 8-bit counts in base64 (``per_image_counts`` reads them)."""
    out = {}
    for measure, names in PER_IMAGE.items():
        columns = [i for i, (_, what, _) in enumerate(conditions) if what in names]
        if columns and len(columns) < 256:
            counts = hits[:, columns].sum(1).to(torch.uint8).numpy()
            out[measure] = {"conditions": len(columns), "counts": base64.b64encode(counts.tobytes()).decode()}
    return out


def per_image_counts(entry: dict) -> numpy.ndarray:
    """One measure of a pipeline's ``per_image``: the fraction of its conditions each test image got right."""
    counts = numpy.frombuffer(base64.b64decode(entry["counts"]), dtype=numpy.uint8)
    return counts / entry["conditions"]


def _summarise_attacks(columns, accuracy) -> dict:
    """robust: the worst case per eps; attacks: each attack per eps; sanity: random noise per eps, PGD at 32/255."""
    out = {"robust": {}, "attacks": {}, "sanity": {"random": {}}}
    for (name, eps), acc in zip(columns, accuracy):
        acc = None if acc != acc else acc  # NaN: no image attacked
        if name == "worst":
            out["robust"][_eps_key(eps)] = acc
        elif name == "random":
            out["sanity"]["random"][_eps_key(eps)] = acc
        elif name == "apgd-large":
            out["sanity"][f"apgd {_eps_key(eps)}"] = acc
        else:
            out["attacks"].setdefault(name, {})[_eps_key(eps)] = acc
    return out


def _summarise(conditions, accuracy) -> dict:
    out = {"clean": None, "corruptions": {}, "low_resolution": {}}
    for (kind, what, level), acc in zip(conditions, accuracy):
        if kind == "clean":
            out["clean"] = acc
        elif kind == "corruption":
            out["corruptions"].setdefault(what, [None] * 5)[level - 1] = acc
        else:
            out["low_resolution"][what] = acc

    def mean(names):
        values = [a for n in names if n in out["corruptions"] for a in out["corruptions"][n] if a is not None]
        return sum(values) / len(values) if values else None

    out["corruption_means"] = {name: mean([name]) for name in out["corruptions"]}  # over the severities evaluated
    out["mean_corruption"] = mean(BENCHMARK)  # the benchmark's fifteen only; the extras apart
    out["mean_corruption_10"] = mean(STEADY_BACKGROUND)  # the ten that leave the background level alone
    out["group_means"] = {group: mean(names) for group, names in GROUPS.items()}
    out["mean_extras"] = mean(EXTRAS)
    return out


# ----------------------------------------------------------------------------------------------------------- report
def _pct(value) -> str:
    return "" if value is None else f"{100 * value:.1f}"


ATTACK_LABELS = {"square": "square (after the gradient attacks)", "transfer": "transfer (PGD on the model alone)"}


def markdown(results: dict) -> str:
    """The summary table (one row per pipeline), the attacks table (each attack, the worst case, the sanity checks)
    and the per-corruption table, accuracies in %."""
    pipelines = results["pipelines"]
    first = next(iter(pipelines.values()))
    lowres, epsilons = list(first["low_resolution"]), list(first["robust"])
    attack = results["attacks"]
    how = (
        f"robust = the worst case per image over every attack below ({attack['attacked_images']} images attacked)"
        if attack["mode"] == "suite"
        else f"robust = PGD with the {attack['mode']!r} gradient only"
        + (" (NAIVE: not a robustness number)" if attack["mode"] == "naive" else "")
    )
    header = ["pipeline", "clean", "mean corruption (15)", "mean corruption (10)", *[f"{g} mean" for g in GROUPS]]
    header += ["extras mean"]
    header += [f"low-res {r}" for r in lowres] + [f"robust {e}" for e in epsilons]
    lines = [
        f"{results['model']} on {results['dataset']} ({results['test_images']} test images, {results['constants']} "
        f"corruption constants); smoothed = test-time smoothing at sparsity {results['smoothing']['sparsity']}, "
        f"adaptive = the same with each image's noise stop (noise='auto'); {how}. Accuracy in %.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for name, r in pipelines.items():
        cells = [name, _pct(r["clean"]), _pct(r["mean_corruption"]), _pct(r.get("mean_corruption_10"))]
        cells += [_pct(r["group_means"][g]) for g in GROUPS]
        cells += [_pct(r["mean_extras"])] + [_pct(r["low_resolution"][k]) for k in lowres]
        cells += [_pct(r["robust"].get(e)) for e in epsilons]
        lines.append("| " + " | ".join(cells) + " |")
    sanity = [k for k in first["sanity"] if k != "random"]
    header = ["pipeline", "attack", *epsilons]
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, r in pipelines.items():
        if not r["robust"]:  # not attacked
            continue
        rows = [(ATTACK_LABELS.get(a, a), values) for a, values in r["attacks"].items()] + [("worst case", r["robust"])]
        rows += [("random +-eps (sanity)", r["sanity"]["random"])] if r["sanity"]["random"] else []
        for label, values in rows:
            lines.append(f"| {name} | {label} | " + " | ".join(_pct(values.get(e)) for e in epsilons) + " |")
        for key in sanity:
            lines.append(f"| {name} | sanity: {key} | {_pct(r['sanity'].get(key))} |" + " |" * (len(epsilons) - 1))
    lines += ["", "| corruption | pipeline | s1 | s2 | s3 | s4 | s5 | mean |", "|---|---|---|---|---|---|---|---|"]
    for corruption in first["corruptions"]:
        for name, r in pipelines.items():
            values = " | ".join(_pct(v) for v in r["corruptions"][corruption])
            lines.append(f"| {corruption} | {name} | {values} | {_pct(r['corruption_means'][corruption])} |")
    return "\n".join(lines) + "\n"


REPORT_FILES = ("results.json", "results.csv", "results.md", "corruptions.png", "adversarial.png")


def check_output(folder: Path) -> None:
    """The report's folder, checked before the first image: new, empty, or an earlier report (whose files are
    replaced); never a file, a folder under a file, a read-only place or a folder of other files."""
    run_folder.check_writable(folder, "the report")
    others = sorted(p.name for p in folder.iterdir() if p.name not in REPORT_FILES) if folder.is_dir() else []
    if others and not (folder / "results.json").is_file():
        raise ValueError(
            f"--output {str(folder)!r} holds files of its own ({', '.join(others[:5])}): the report writes into a "
            "new or empty folder, or replaces an earlier report; choose another --output"
        )


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
            writer.writerows([name, "robust", "worst", k, v] for k, v in r["robust"].items())
            for attack, values in r["attacks"].items():
                writer.writerows([name, "attack", attack, k, v] for k, v in values.items())
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
    attacked = {name: r for name, r in pipelines.items() if r["robust"]}
    if not attacked:  # no attack: no figure (nor an earlier report's left in the folder)
        (folder / "adversarial.png").unlink(missing_ok=True)
        return
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, r in attacked.items():
        eps = [0.0] + [float(k.split("/")[0]) for k in r["robust"]]
        robust = [float("nan") if v is None else v for v in r["robust"].values()]
        ax.plot(eps, [r["clean"], *robust], marker="o", label=f"{name}: worst case")
    ax.set_xlabel("epsilon (/255, L-inf)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "adversarial.png", dpi=110)
    plt.close(fig)
