"""Evaluate a trained run: clean, every corruption x severity, low resolution, and the attack suite over an epsilon
sweep (robust accuracy = the worst case per image over FGSM, PGD with restarts and every surrogate gradient, Square
and transfer), for the plain model and with test-time smoothing, with sanity checks on every pipeline.

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

from ..data import SMALL_SIDE, Images, load_data, sample_uniform
from ..filters import bilateral, gaussian_blur, median_filter, nl_means
from ..models import for_inference
from ..train import registry as procedures
from ..train import run_folder
from ..train.loop import load_run
from .attacks import ATTACK_GRADS, Pipeline, robust, suite_names
from .corruptions import BENCHMARK, CORRUPTIONS, EXTRAS, GROUPS, constants_for, corrupt, low_resolution

# what the model sees at test time. plain: the image; smoothed: the run's test-time smoothing (or at
# smoothing_sparsity); adaptive: the same with the noise stop ("auto"); median / gaussian / bilateral / nlmeans: a
# classical filter at test time (median_size, gaussian_sigma, bilateral_sigma, nlmeans_h); trained: a filter
# baseline's own filter, at the strength it was trained with. median, gaussian, bilateral and the blur / low-pass
# filters are differentiated exactly by the attacks; the smoothing, non-local means and TV through the BPDA surrogates
PIPELINES = ("plain", "smoothed", "adaptive", "median", "gaussian", "bilateral", "nlmeans", "trained")
DEFAULT_PIPELINES = ("plain", "smoothed", "adaptive")
SPLITS = ("test", "validation")  # what an evaluation reads: the test split, or the run's held-out training images
# "suite": every attack of attacks.robust, robust accuracy = the worst case; a surrogate name: PGD with it alone (the
# restarts still run), e.g. "naive" to show what gradient masking would report
ATTACK_MODES = ("suite", *ATTACK_GRADS)
# a large ball: every pipeline's accuracy should reach ~0 there under the suite's gradient attacks (PGD with every
# surrogate gradient and restart, FGSM, transfer; Square left out for time). The BPDA identity alone did not: through
# the events solver's smoothing it left 7 % of 100 Fashion-MNIST test images at 20 or 100 steps, the projection
# gradient 2 % (docs/results.md, "What this shows")
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
    sanity checks ("random": uniform +-eps noise at each eps; "pgd-large": the gradient attacks at SANITY_EPSILON)."""
    only = None if mode == "suite" else mode
    names = suite_names(pipeline, restarts=restarts, square_queries=square_queries, only=only)
    columns = [(name, eps) for eps in epsilons for name in [*names, "worst"]]
    return columns + ([("random", eps) for eps in epsilons] + [("pgd-large", SANITY_EPSILON)] if sanity else [])


def _attack(pipeline, x, y, index, columns, mode, steps, restarts, square_queries, seed) -> torch.Tensor:
    """(B, columns) float: 1 where the image survived that column's attack."""
    out = {}
    options = {"steps": steps, "restarts": restarts, "only": None if mode == "suite" else mode, "seed": seed}
    for eps in dict.fromkeys(e for name, e in columns if name not in ("random", "pgd-large")):
        survived = robust(pipeline, x, y, eps, **options, square_queries=square_queries, index=index)
        out.update({(name, eps): hit for name, hit in survived.items()})
    with torch.no_grad():
        for name, eps in columns:
            if name == "random":
                signs = torch.where(sample_uniform(index, round(eps * 255_000) + 7, seed, x[0].numel()) < 0.5, -1, 1)
                out[name, eps] = pipeline((x + eps * signs.view(x.shape).to(x)).clamp(0, 1)).argmax(1) == y
    if ("pgd-large", SANITY_EPSILON) in columns:
        large = robust(pipeline, x, y, SANITY_EPSILON, **options, square_queries=0, index=index, worst_only=True)
        out["pgd-large", SANITY_EPSILON] = large["worst"]
    return torch.stack([out[c] for c in columns], 1).float()


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
    restarts: int = 2,
    square_queries: int = 1000,
    attack_limit: int | None = None,
    attack: str = "suite",
    sanity: bool = True,
    pipelines: tuple[str, ...] = DEFAULT_PIPELINES,
    median_size: int = 3,
    gaussian_sigma: float = 0.5,
    bilateral_sigma: float = 0.1,
    nlmeans_h: float = 0.1,
    smoothing_sparsity: float | None = None,
    constants: str = "auto",
    seed: int = 0,
    output: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Evaluate the run folder ``run``; data settings default to the run's own. Returns (and writes) the results.

    ``limit_test`` keeps a fixed random subset of the split evaluated (test, or the first images of the run's
    validation split). The attacks (``attack``: the whole suite, or PGD with one surrogate gradient) run on the
    images of index below ``attack_limit`` (all by default), every other condition on every image."""
    unknown = [p for p in pipelines if p not in PIPELINES]
    if unknown or not pipelines:
        raise ValueError(f"unknown pipelines {unknown or pipelines}; accepted: {list(PIPELINES)}")
    if attack not in ATTACK_MODES:
        raise ValueError(f"unknown attack {attack!r}; accepted: {list(ATTACK_MODES)}")
    if isinstance(restarts, bool) or not isinstance(restarts, int) or restarts < 1:
        raise ValueError(f"restarts must be an int >= 1, got {restarts!r}")
    if isinstance(square_queries, bool) or not isinstance(square_queries, int) or square_queries < 0:
        raise ValueError(f"square_queries must be an int >= 0 (0: no Square attack), got {square_queries!r}")
    if attack_limit is not None and attack_limit < 0:
        raise ValueError(f"attack_limit must be >= 0 (the number of images attacked), got {attack_limit}")
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
    sigmas = (("--gaussian-sigma", gaussian_sigma), ("--bilateral-sigma", bilateral_sigma), ("--nlmeans-h", nlmeans_h))
    for flag, value in sigmas:
        if not (isinstance(value, (int, float)) and value > 0):
            raise ValueError(f"{flag} must be a number > 0, got {value!r}")
    if smoothing_sparsity is not None and not 0 < smoothing_sparsity <= 1:
        raise ValueError(f"--smoothing-sparsity must be in (0, 1], got {smoothing_sparsity}")
    if output is not None:
        check_output(Path(output))
    accelerator = Accelerator()
    model, info = load_run(run, accelerator.device)
    model = for_inference(model)  # batch norm folded, the same function: 1.3x forward, 1.8x input gradient
    trained = info.config
    test_filter = procedures.get(info.procedure).test_filter
    if "trained" in pipelines and test_filter is None:
        with_filters = [n for n, p in procedures.REGISTRY.items() if p.test_filter is not None]
        raise ValueError(
            f"pipeline 'trained' needs a run trained with a filter ({with_filters}), not {info.procedure!r}"
        )
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
        held_out = data.validation  # the same held-out images the run was chosen on; the first limit_test of them
        if limit_test is not None and limit_test < len(held_out):
            held_out = held_out.select(range(limit_test), keep_in_memory=True)  # a random hold-out: any n are random
        data = dataclasses.replace(data, test=held_out)
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
    smoothing = info.smoothing if smoothing_sparsity is None else info.smoothing.replace(sparsity=smoothing_sparsity)
    adaptive = smoothing.replace(noise="auto")
    filters = {
        "smoothed": (smoothing, False),
        "adaptive": (adaptive, False),
        "median": (functools.partial(median_filter, size=median_size), True),
        "gaussian": (functools.partial(gaussian_blur, sigma=gaussian_sigma), True),
        "bilateral": (functools.partial(bilateral, sigma_color=bilateral_sigma), True),
        "nlmeans": (functools.partial(nl_means, h=nlmeans_h), False),
        "trained": test_filter(trained) if test_filter is not None else None,
    }
    models = {"plain": Pipeline(model).eval()}
    for p in pipelines:
        if p != "plain":
            smooth, differentiable = filters[p]
            models[p] = Pipeline(model, smooth, differentiable=differentiable).eval()
    conditions = _conditions(corruptions, severities, resolutions)
    fingerprint = getattr(data.test, "_fingerprint", None)  # a datasets.Dataset's: which images these are
    columns = {p: _attack_columns(models[p], epsilons, attack, restarts, square_queries, sanity) for p in pipelines}
    loader = accelerator.prepare(torch.utils.data.DataLoader(Images(data.test, size, "test"), batch_size=batch_size))
    correct, attacked = {p: [] for p in pipelines}, {p: [] for p in pipelines}
    start = time.perf_counter()
    for index, images, labels in tqdm(
        loader, desc="evaluating", disable=not (progress and accelerator.is_main_process)
    ):
        x = images.float().div_(255)
        hits = {name: [] for name in pipelines}
        for kind, what, level in conditions:  # each condition's images made once, seen by every pipeline
            if kind == "corruption":
                inputs = _corrupt_cached(x, index, fingerprint, what, level, constants, seed)
            elif kind == "low_resolution":
                inputs = low_resolution(x, level)
            else:
                inputs = x
            with torch.no_grad():
                for name in pipelines:
                    logits = models[name](inputs)
                    if kind == "clean" and not bool(torch.isfinite(logits).all()):
                        bad = index[~torch.isfinite(logits).all(1).to(index.device)].tolist()
                        raise ValueError(
                            f"the model of {run} gives NaN or Inf logits on test images {bad[:5]} ({name} "
                            "pipeline): its accuracy would be an artefact of argmax over them"
                        )
                    hits[name].append(logits.argmax(1) == labels)
        # attacked images: 1 / 0 per column; the others NaN, left out of the attack means
        c = (
            (index < attack_limit).nonzero()[:, 0]
            if attack_limit is not None
            else torch.arange(len(x), device=index.device)
        )
        for name in pipelines:
            correct[name].append(accelerator.gather_for_metrics(torch.stack(hits[name], 1)).cpu())
            survived = torch.full((len(x), len(columns[name])), float("nan"), device=x.device)
            if c.numel() and columns[name]:
                survived[c] = _attack(
                    models[name],
                    x[c],
                    labels[c],
                    index[c],
                    columns[name],
                    attack,
                    pgd_steps,
                    restarts,
                    square_queries,
                    seed,
                ).to(survived)
            attacked[name].append(accelerator.gather_for_metrics(survived).cpu())
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
        "gaussian_sigma": gaussian_sigma if "gaussian" in pipelines else None,
        "bilateral_sigma": bilateral_sigma if "bilateral" in pipelines else None,
        "nlmeans_h": nlmeans_h if "nlmeans" in pipelines else None,
        "trained_filter": {k: trained.get(k) for k in ("blur_sigma", "lowpass_radius", "tv_weight")}
        if "trained" in pipelines
        else None,
        "attacks": {
            "norm": "Linf",
            "epsilons": epsilons,
            "mode": attack,
            "pgd_steps": pgd_steps,
            "pgd_step": "2.5 eps / steps",
            "restarts": restarts,
            "square_queries": square_queries if attack == "suite" else 0,
            "attack_limit": attack_limit,
            "attacked_images": 0,
        },
        "seconds": seconds,
        "pipelines": {},
    }
    for name in pipelines:
        hits = torch.cat(correct[name])  # (test images, conditions)
        results["test_images"] = hits.shape[0]
        results["pipelines"][name] = _summarise(conditions, hits.double().mean(0).tolist())
        survived = torch.cat(attacked[name]).double()  # (test images, attack columns), NaN where not attacked
        results["attacks"]["attacked_images"] = int((~survived[:, 0].isnan()).sum()) if survived.numel() else 0
        results["pipelines"][name].update(_summarise_attacks(columns[name], survived.nanmean(0).tolist()))
    if output is not None and accelerator.is_main_process:
        write_report(results, Path(output))
    return results


def _summarise_attacks(columns, accuracy) -> dict:
    """robust: the worst case per eps; attacks: each attack per eps; sanity: random noise per eps, PGD at 32/255."""
    out = {"robust": {}, "attacks": {}, "sanity": {"random": {}}}
    for (name, eps), acc in zip(columns, accuracy):
        acc = None if acc != acc else acc  # NaN: no image attacked
        if name == "worst":
            out["robust"][_eps_key(eps)] = acc
        elif name == "random":
            out["sanity"]["random"][_eps_key(eps)] = acc
        elif name == "pgd-large":
            out["sanity"][f"pgd {_eps_key(eps)}"] = acc
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
    header = ["pipeline", "clean", "mean corruption (15)", *[f"{g} mean" for g in GROUPS], "extras mean"]
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
        cells = [name, _pct(r["clean"]), _pct(r["mean_corruption"]), *[_pct(r["group_means"][g]) for g in GROUPS]]
        cells += [_pct(r["mean_extras"])] + [_pct(r["low_resolution"][k]) for k in lowres]
        cells += [_pct(r["robust"][e]) for e in epsilons]
        lines.append("| " + " | ".join(cells) + " |")
    sanity = [k for k in first["sanity"] if k != "random"]
    header = ["pipeline", "attack", *epsilons]
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, r in pipelines.items():
        rows = [(ATTACK_LABELS.get(a, a), values) for a, values in r["attacks"].items()] + [("worst case", r["robust"])]
        rows += [("random +-eps (sanity)", r["sanity"]["random"])] if r["sanity"]["random"] else []
        for label, values in rows:
            lines.append(f"| {name} | {label} | " + " | ".join(_pct(values.get(e)) for e in epsilons) + " |")
        for key in sanity:
            lines.append(f"| {name} | sanity: {key} | {_pct(r['sanity'][key])} |" + " |" * (len(epsilons) - 1))
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
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, r in pipelines.items():
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
