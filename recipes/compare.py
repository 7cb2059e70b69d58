"""ISVS against standard training, tuned baselines and test-time filters, chosen on validation, over several seeds.

The protocol, fixed before any test number is read (docs/notes/results.md states it with the figures it produced):

1. Every run holds out ``val_fraction`` of its training images, drawn by its seed (so seeds vary the initialisation,
   the data order and the validation split). Epochs, lr and batch size are the setting's, fixed in advance.
2. Selection, on seed 0 only: each family's candidates (``FAMILIES``: a tuple is a sweep) are trained and evaluated
   on validation (clean, corruptions, low resolution; no attack); the candidate with the highest validation
   ``mean corruption (15)`` wins, ties broken by clean validation accuracy. A setting given as ``Chosen(family)``
   takes that family's winning value (the combinations). The test-time filters of the standard model
   (``TEST_FILTERS``) are chosen by the same rule on the standard model's validation images.
3. Final: each family's winner is trained with every seed and evaluated once on test: clean, every corruption and
   severity, low resolution, and the attack suite (worst case per image over FGSM, APGD with restarts and both
   surrogate gradients through a smoothing, Square, transfer) on the first ``attack_limit`` test images.
4. Statistics: each seed's difference to standard training's plain pipeline (paired by seed); mean and 95 %
   t-interval over seeds; an interval that contains 0 is reported as no significant difference. Five seeds for
   ``EVERY_SEED``'s families, the best ISVS family and the best combination on validation, three for the others.
   Beside it, a paired test over the test images (Wilcoxon signed-rank on each image's accuracy difference, averaged
   over the seeds) for clean and both corruption means; and the same intervals for the other pairs of rows fixed
   here (``contrasts``): each combination against its parts, the best ISVS family against each baseline, an ISVS
   model's own smoothing at test time against the model alone.
5. Robust accuracy enters the summary only if every attacked pipeline's 32/255 sanity check reached 0 % (else the
   attack is not an estimate there, and the report says which pipelines failed it).

Runs and evaluations already in the output folder are reused, so an interrupted comparison continues where it
stopped. The fashion setting writes into docs/results/fashion-mnist, whose records and evaluations are committed as
they finish (.gitignore leaves the weights out): the same command continues it on a fresh clone, training again
only a run whose evaluation is still missing. Such a run keeps its earlier training's records in
``earlier-trainings/<n>/`` and its evaluations made so far (the selection read them); the hours count both
trainings. A selection is fixed once made: a rerun whose validation evaluations would choose otherwise than the
folder's selection.json (an evaluation lost and made again of another training) refuses to go on. A folder made on
another tree is reported from this one as it is (the tables are this tree's, every figure that tree's runs'), and
anything missing from it is made only with ``--mixed-trees``. ``--report`` rebuilds the tables and figures from a
results.json alone.

    python recipes/compare.py --quick                                # the embedded data, tiny: the CI run
    python tools/fashion_mnist.py ~/fashion_mnist                    # then, resumable (docs/notes/results.md):
    python recipes/compare.py --setting fashion --data-dir ~/fashion_mnist/fashion_mnist
    python recipes/compare.py --setting full --dataset uoft-cs/cifar10 --data-dir ~/cifar10   # a GPU
    python recipes/compare.py --report docs/results/fashion-mnist/results.json   # tables and figures from the results
    python recipes/compare.py --setting fashion --data-dir ~/fashion_mnist/fashion_mnist \
        --families "standard,augmix" --selection docs/results/fashion-mnist/selection.json   # a rerun of two
    python recipes/compare.py --setting fashion --data-dir ~/fashion_mnist/fashion_mnist \
        --families "standard,isvs fixed" --selection docs/results/fashion-mnist/selection.json \
        --reselect "isvs fixed"   # a rerun that chooses one family again, over its (widened) sweep
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from isvs_triton.robustness import ATTACK_LABELS, GROUPS, evaluate_run
from isvs_triton.robustness.evaluate import PER_IMAGE, SANITY_EPSILON, per_image_counts
from isvs_triton.train import parse_args, procedures, train
from isvs_triton.train.run_folder import MODEL_FILE


@dataclass(frozen=True)
class Chosen:
    """A setting taken from another family's winner (the same setting name)."""

    family: str


@dataclass(frozen=True)
class BestIsvs:
    """The ISVS part of a combination: the procedure of whichever of ``ISVS_FAMILIES`` scored highest on validation,
    joined to ``augmentation`` (procedures.py registers fixed-X and augment-X), with that family's winning setting."""

    augmentation: str


# the ISVS families a combination may take (the best on validation), and the combinations with the baselines
ISVS_FAMILIES = ("isvs fixed", "isvs augmentation")
COMBINATIONS = (
    "isvs augmentation + noise augmentation",
    "isvs fixed + noise augmentation",
    "isvs + photometric augmentation",
    "isvs + augmix",
)
# one family per row group of the table: settings on top of the setting's; a tuple is swept on validation. The low-
# pass, TV, blur-trained, iterative and noise-stop families of earlier comparisons are left out for time (each
# scored below ISVS fixed on the under-trained models, git keeps their results); blur stays as a test-time filter
FAMILIES = {
    "standard": {"procedure": "standard"},
    "isvs fixed": {"procedure": "fixed", "sparsity": (0.2, 0.4, 0.6)},
    # ISVS as an augmentation: each image at its own sparsity per epoch, uniform in [sparsity_min, 1]
    "isvs augmentation": {"procedure": "augment", "sparsity_min": (0.2, 0.4, 0.6)},
    # the faithful path (the events solver, sparsify's default) against training's fast one: what fidelity to the path
    # is worth in training. No comma in the name: --families splits on commas
    "isvs fixed + events solver": {"procedure": "fixed", "sparsity": Chosen("isvs fixed"), "solver": "events"},
    # the augmentations a reviewer tries first against these corruptions (photometric: the background level)
    "noise augmentation": {"procedure": "noise", "noise_sigma": (0.1, 0.2, 0.4)},
    "photometric augmentation": {"procedure": "photometric", "photometric_strength": (0.2, 0.4, 0.6)},
    "augmix": {"procedure": "augmix", "augmix_severity": (1.0, 3.0, 6.0)},
    "isvs augmentation + noise augmentation": {
        "procedure": "augment-noise",
        "sparsity_min": Chosen("isvs augmentation"),
        "noise_sigma": Chosen("noise augmentation"),
    },
    "isvs fixed + noise augmentation": {
        "procedure": "fixed-noise",
        "sparsity": Chosen("isvs fixed"),
        "noise_sigma": Chosen("noise augmentation"),
    },
    "isvs + photometric augmentation": {
        "procedure": BestIsvs("photometric"),
        "photometric_strength": Chosen("photometric augmentation"),
    },
    "isvs + augmix": {"procedure": BestIsvs("augmix"), "augmix_severity": Chosen("augmix")},
}
# the baselines a reviewer tries first against these corruptions: the best ISVS family is compared with each
BASELINES = ("noise augmentation", "photometric augmentation", "augmix")
# the families every seed of --seeds trains: these, the best of ISVS_FAMILIES and the best of COMBINATIONS on
# validation; the rest train the first FEW_SEEDS of them
EVERY_SEED = ("standard", *BASELINES)
FEW_SEEDS = 3
# trained on a corruption of the test set (Gaussian noise): the table says so
TRAINED_ON_TEST_CORRUPTION = (
    "noise augmentation",
    "isvs augmentation + noise augmentation",
    "isvs fixed + noise augmentation",
)
# test-time filters of the standard model: pipeline -> (evaluate_run's setting, the strengths swept on validation).
# Non-local means (the "nlmeans" pipeline) is left out: scikit-image's takes ~8 ms per 32 x 32 image on the 2-core
# CPU, ~12 min per strength over the validation conditions alone; the bilateral filter (kornia's, batched) is the
# edge-preserving classical filter in its place
TEST_FILTERS = {
    "smoothed": ("smoothing_sparsity", (0.4, 0.6, 0.8)),
    "median": ("median_size", (3, 5)),
    "gaussian": ("gaussian_sigma", (0.5, 0.75, 1.0)),
    "bilateral": ("bilateral_sigma", (0.05, 0.1, 0.2, 0.4)),
}
# the pipelines the attack suite runs on (the others' robust accuracy is not measured: the suite through each costs
# minutes per epsilon on the 2-core CPU): every model alone, through its own smoothing, and the median filter, the
# test-time filter a reviewer tries first against adversarial noise
ATTACKED = ("plain", "smoothed", "trained", "median")
PIPELINE_LABELS = {
    "plain": "plain",
    "smoothed": "ISVS smoothing (BPDA)",
    "adaptive": "ISVS + noise stop (BPDA)",
    "median": "median filter",
    "gaussian": "Gaussian filter",
    "bilateral": "bilateral filter",
    "nlmeans": "non-local means (BPDA)",
    "trained": "its own filter",
}
SETTINGS = {
    "quick": {  # the embedded data: checks the whole protocol end to end in CI, says nothing about robustness
        "train": {
            "model": "resnet8",
            "epochs": 3,
            "batch_size": 64,
            "lr": 0.05,
            "limit_train": 800,
            "val_fraction": 0.25,
            "limit_test": 100,
        },
        "eval": {
            "severities": (3,),
            "epsilons": [2 / 255],
            "pgd_steps": 3,
            "restarts": 2,
            "square_queries": 20,
            "attack_limit": 24,
        },
        "sweep": "ends",  # only the first and last candidate of each sweep
    },
    "fashion": {  # Fashion-MNIST: the standard recipe chosen on validation (docs/notes/results.md, "The recipe")
        "train": {
            "dataset": "zalando-datasets/fashion_mnist",
            "model": "resnet8",
            "epochs": 15,
            "batch_size": 128,
            "lr": 0.05,
            "val_fraction": 0.1,  # 6,000 of the 60,000 held out per seed; the other 54,000 train
        },
        "eval": {
            "severities": (1, 2, 3, 4, 5),
            "epsilons": [1 / 255, 2 / 255, 4 / 255],
            "pgd_steps": 20,
            "restarts": 2,
            "square_queries": 1000,
            "attack_limit": 500,
        },
        "sweep": "all",
        "output": "docs/results/fashion-mnist",  # committed as it runs: records and evaluations, not weights
    },
    "full": {  # a GPU: ResNet-18, every image, 30 epochs
        "train": {
            "model": "resnet18",
            "epochs": 30,
            "batch_size": 128,
            "lr": 0.1,
            "warmup_epochs": 2,
            "val_fraction": 0.1,
        },
        "eval": {"epsilons": [1 / 255, 2 / 255, 4 / 255], "attack_limit": 1000},
        "sweep": "all",
    },
}
SELECTION_EVAL = {"epsilons": [], "sanity": False}  # validation: no attack (they are not selection criteria)


# ------------------------------------------------------------------------------------------------------ protocol
def _sweep(values: tuple, how: str) -> tuple:
    return values if how == "all" or len(values) < 3 else (values[0], values[-1])


def best(names, scores: dict) -> str:
    """Of the families ``names``, the one whose winner scored highest on validation (the selection rule)."""
    return max(names, key=lambda n: max((r["mean_corruption"], r["clean"]) for r in scores[n]))


def candidates(family: str, chosen: dict[str, dict], how: str = "all", scores: dict | None = None) -> list[dict]:
    """The family's candidate settings, ``Chosen`` and ``BestIsvs`` entries resolved from the winners so far (and,
    for ``BestIsvs``, their validation ``scores``)."""
    fixed, swept = {}, {}
    for key, value in FAMILIES[family].items():
        if isinstance(value, BestIsvs):
            isvs = chosen[best(ISVS_FAMILIES, scores)]
            fixed.update({k: v for k, v in isvs.items() if k != "procedure"})
            fixed[key] = f"{isvs['procedure']}-{value.augmentation}"
        elif isinstance(value, Chosen):
            fixed[key] = chosen[value.family][key]
        elif isinstance(value, tuple):
            swept[key] = _sweep(value, how)
        else:
            fixed[key] = value
    if not swept:
        return [fixed]
    ((key, values),) = swept.items()  # one swept setting per family
    return [{**fixed, key: v} for v in values]


def _sources(family: str) -> set[str]:
    """The families whose winners ``family`` takes settings from."""
    values = FAMILIES[family].values()
    best_isvs = set(ISVS_FAMILIES) if any(isinstance(v, BestIsvs) for v in values) else set()
    return {v.family for v in values if isinstance(v, Chosen)} | best_isvs


def every_seed(selection: dict) -> set[str]:
    """The families that train every seed: ``EVERY_SEED``, and the best ISVS family and combination chosen."""
    scores, chosen = selection["validation_scores"], selection["chosen"]
    out = set(EVERY_SEED)
    for group in (ISVS_FAMILIES, COMBINATIONS):
        present = [n for n in group if n in chosen and n in scores]
        if present:
            out.add(best(present, scores))
    return out


def _order(names: list[str], complete: bool = True) -> list[str]:
    """Families whose settings are all their own first, then those that take another's winner; with ``complete``,
    an error unless every family a listed one takes settings from is listed too."""
    depends = {n for n in names if _sources(n)}
    missing = set().union(*map(_sources, depends)) - set(names)
    if complete and missing:
        raise ValueError(f"the families {sorted(depends)} take settings from {sorted(missing)}: include those too")
    return [n for n in names if n not in depends] + [n for n in names if n in depends]


def _slug(family: str, settings: dict) -> str:
    # a swept setting's value, and the procedure a BestIsvs combination resolved to
    swept = [f"{k}{settings[k]}" for k, v in FAMILIES[family].items() if isinstance(v, (tuple, BestIsvs))]
    return "-".join([family.replace(",", "").replace(" ", "-").replace("+", "and"), *swept])


def _flags(settings: dict) -> list[str]:
    flags = []
    for key, value in settings.items():
        flags += [f"--{key.replace('_', '-')}", ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    return flags


def _score(results: dict, pipeline: str = "plain") -> tuple[float, float]:
    r = results["pipelines"][pipeline]
    return (r["mean_corruption"], r["clean"])  # the selection rule: mean corruption (15), then clean


def _pick(options: list, results: list[dict], pipeline: str = "plain") -> tuple[object, list[dict]]:
    """The option whose validation results score highest, and every option's scores (for selection.json)."""
    scores = [_score(r, pipeline) for r in results]
    table = [{"settings": o, "mean_corruption": m, "clean": c} for o, (m, c) in zip(options, scores)]
    return options[max(range(len(options)), key=scores.__getitem__)], table


def source_tree() -> str:
    """The commit the code runs from, "+changes" when the library or the recipes differ from it ("unknown" outside a
    git checkout): each training and evaluation records it, so a report can say which trees its figures come from."""
    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short=12", "HEAD")
    if not commit:
        return "unknown"
    return commit + ("+changes" if git("status", "--porcelain", "--", "isvs_triton", "recipes") else "")


# a run trained again on a fresh clone keeps each earlier training's records in <run>/earlier-trainings/<n>/
EARLIER_TRAININGS = "earlier-trainings"
TRAINING_RECORDS = ("run.json", "summary.csv", "args.yaml")


def _train_seconds(summary: Path) -> float:
    """A training's seconds: the sum of its summary.csv's train_seconds."""
    with summary.open() as f:
        return sum(float(row["train_seconds"]) for row in csv.DictReader(f))


class OtherTree(Exception):
    """A training or evaluation would be made here, in a folder whose runs were made on another tree."""


class Comparison:
    """One comparison's folder: its runs (trained once), their evaluations (once each), the choices made, and the
    tree and seconds each training and evaluation took (made.json).

    With ``mixed_trees`` false, a folder whose runs were made on another tree is read (its figures are reported as
    they are) but nothing is trained or evaluated into it (``OtherTree``), so that every figure comes from one tree."""

    def __init__(
        self, setting: str, folder: Path, dataset: str | None, data_dir: str | None, mixed_trees: bool = False
    ):
        self.setting, self.folder = SETTINGS[setting], folder
        self.data = {k: v for k, v in (("dataset", dataset), ("data_dir", data_dir)) if v}
        self.recipes: dict[Path, tuple[str, dict, int]] = {}  # each run's (family, settings, seed)
        self.log_start = time.perf_counter()
        self.tree, self.mixed_trees = source_tree(), mixed_trees

    def trees(self) -> list[str]:
        """The trees the folder's runs and evaluations were made on."""
        return sorted({m["tree"] for m in self.made().values()})

    def _may_make(self, unit: Path) -> None:
        others = [tree for tree in self.trees() if tree != self.tree]
        if others and not self.mixed_trees:
            raise OtherTree(
                f"{self.folder} holds runs made on tree {', '.join(others)}, and this checkout is {self.tree}: "
                f"{unit.relative_to(self.folder)} is missing and would be made here. Continue the folder from that "
                f"tree (git worktree add ../compare-tree {others[0].removesuffix('+changes')}, and run this command "
                "there) so that every figure comes from one tree, or pass --mixed-trees"
            )

    def made(self) -> dict[str, dict]:
        """Each training's and evaluation's tree and seconds, by its folder relative to the comparison's."""
        path = self.folder / "made.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def _record(self, folder: Path, start: float) -> None:
        made = self.made()
        made[str(folder.relative_to(self.folder))] = {"tree": self.tree, "seconds": time.perf_counter() - start}
        (self.folder / "made.json").write_text(json.dumps(dict(sorted(made.items())), indent=1))

    def hours(self) -> dict[str, float]:
        """The hours this folder's trainings and evaluations took, by kind: each training's epochs (summary.csv's
        train_seconds, which a resumed training continues; made.json counts a training's last part only), the
        earlier trainings of runs trained again (``_train_again``), and each evaluation's seconds (made.json; an
        evaluation is not resumed). Set-up and the per-epoch validation pass are left out (~3 % of a training)."""
        earlier = self.folder.glob(f"runs/*/{EARLIER_TRAININGS}/*/summary.csv")
        seconds = {"training": 0.0, "evaluation": 0.0, "earlier trainings": sum(map(_train_seconds, earlier))}
        for name, made in self.made().items():
            summary = self.folder / name / "summary.csv"
            if summary.exists():
                seconds["training"] += _train_seconds(summary)
            else:
                seconds["evaluation"] += made["seconds"]
        return {kind: s / 3600 for kind, s in seconds.items()}

    def trained_again(self) -> list[str]:
        """The runs trained again on a fresh clone (``_train_again``)."""
        return sorted(p.parent.name for p in self.folder.glob(f"runs/*/{EARLIER_TRAININGS}"))

    def log(self, message: str) -> None:
        print(f"[{time.perf_counter() - self.log_start:7.0f} s] {message}", flush=True)

    def run(self, family: str, settings: dict, seed: int) -> Path:
        """The run of ``family`` with ``settings`` and ``seed``: trained unless it exists."""
        run = self.folder / "runs" / f"{_slug(family, settings)}-s{seed}"
        self.recipes[run] = (family, settings, seed)
        if not (run / "run.json").exists():
            self._train(run)
        return run

    def _train(self, run: Path) -> None:
        self._may_make(run)
        family, settings, seed = self.recipes[run]
        merged = {**self.setting["train"], **self.data, **settings, "seed": seed}
        merged = procedures.get(settings["procedure"]).epoch_split(merged)
        resume = ["--resume"] if (run / "checkpoints").exists() else []
        start = time.perf_counter()
        train(parse_args([*_flags(merged), "--output", str(run), "--no-progress", "--log-with", "none", *resume]))
        self._record(run, start)
        self.log(f"trained {run.name}")

    def _train_again(self, run: Path) -> None:
        """``run`` trained again: its records are committed, its weights are not (a fresh clone). The earlier
        training's records and its made.json entry move to ``earlier-trainings/<n>/`` and count in the hours; its
        evaluations stay where they are, since the selection read them: they are of the earlier model. (Training is
        not bit-identical across machines, so the next evaluation is of a model of the same recipe and seed.)"""
        earlier = run / EARLIER_TRAININGS / str(len(list((run / EARLIER_TRAININGS).glob("*"))) + 1)
        earlier.mkdir(parents=True)
        made = self.made().get(str(run.relative_to(self.folder)))
        if made:
            (earlier / "made.json").write_text(json.dumps(made, indent=1))
        for name in TRAINING_RECORDS:
            if (run / name).exists():
                (run / name).rename(earlier / name)
        self._train(run)

    def evaluate(self, run: Path, split: str, pipelines: tuple[str, ...], name: str = "", **options) -> dict:
        """``run`` evaluated on ``split`` with ``pipelines``: computed unless its results.json exists. A run whose
        record is committed without its weights (a fresh clone: only records and evaluations are committed) is
        trained again first when an evaluation is still missing (``_train_again``)."""
        folder = run / f"eval-{split}{'-' + name if name else ''}"
        if not (folder / "results.json").exists():
            self._may_make(folder)
            if not (run / MODEL_FILE).exists():
                self.log(f"{run.name}: its weights are not here (records are committed, weights are not): training")
                self._train_again(run)
            settings = {**self.setting["eval"], **(SELECTION_EVAL if split == "validation" else {}), **options}
            settings["limit_test"] = self.setting["train"].get("limit_test")  # as many validation images as test
            start = time.perf_counter()
            evaluate_run(run, split=split, pipelines=pipelines, output=folder, progress=False, **settings)
            self._record(folder, start)
            self.log(f"evaluated {run.name} on {split} {name}")
        return json.loads((folder / "results.json").read_text())

    def select_family(self, family: str, chosen: dict, scores: dict) -> None:
        """``family``'s winner on validation (seed 0) into ``chosen``, every candidate's scores into ``scores``."""
        options = candidates(family, chosen, self.setting["sweep"], scores)
        results = [self.evaluate(self.run(family, c, 0), "validation", ("plain",)) for c in options]
        chosen[family], scores[family] = _pick(options, results)

    def select(self, names: list[str]) -> dict:
        """Step 2: every family's winner on validation (seed 0), and the standard model's test-time filters."""
        chosen, scores = {}, {}
        for family in _order(names):
            self.select_family(family, chosen, scores)
        filters = self.select_filters(chosen["standard"], list(TEST_FILTERS), scores) if "standard" in chosen else {}
        return {"chosen": chosen, "test_filters": filters, "validation_scores": scores}

    def reselect(self, selection: dict, names: list[str], again: list[str]) -> dict:
        """``selection`` with the families ``again`` chosen anew here over their sweeps, by the same rule, and every
        family of ``names`` that takes a winner from one of them re-resolved and scored (a wider sweep rerun). A
        family outside ``names`` that took a replaced winner is dropped: its choice no longer holds."""
        chosen, scores = dict(selection["chosen"]), dict(selection["validation_scores"])
        redone = []
        for family in _order(names, complete=False):
            if family in again or _sources(family) & set(redone):
                self.select_family(family, chosen, scores)
                redone.append(family)
        stale = [n for n in chosen if n not in names and _sources(n) & set(redone)]
        for family in stale:
            del chosen[family]
            scores.pop(family, None)
        return {**selection, "chosen": chosen, "validation_scores": scores, "reselected_here": redone}

    def select_filters(self, standard: dict, pipelines: list[str], scores: dict) -> dict:
        """The strength of each test-time filter in ``pipelines`` on the standard model (seed 0) by the same rule;
        their validation scores go into ``scores``."""
        run, filters = self.run("standard", standard, 0), {}
        for pipeline in pipelines:
            option, values = TEST_FILTERS[pipeline]
            values = list(_sweep(values, self.setting["sweep"]))
            results = [self.evaluate(run, "validation", (pipeline,), f"{pipeline}{v}", **{option: v}) for v in values]
            filters[option], scores[f"standard, {pipeline} at test time"] = _pick(values, results, pipeline)
        return filters

    def final(self, family: str, settings: dict, filters: dict, seed: int) -> dict:
        """Step 3: the winner trained with ``seed``, evaluated once on test with its test-time pipelines (the
        attacks on ``ATTACKED`` of them)."""
        run = self.run(family, settings, seed)
        procedure = procedures.get(settings["procedure"])
        if family == "standard":
            pipelines, options = ("plain", *TEST_FILTERS), filters
        elif procedure.smoothed_at_test:  # ISVS: with its own smoothing
            pipelines, options = ("plain", "smoothed"), {}
        else:
            pipelines, options = ("plain", "trained") if procedure.test_filter else ("plain",), {}
        attacked = [p for p in pipelines if p in ATTACKED]
        return self.evaluate(run, "test", pipelines, attacked=attacked, **options)


def changed_choices(saved: dict, selection: dict) -> list[str]:
    """Where ``selection`` (made again here) chooses otherwise than ``saved`` (the folder's selection.json), over the
    families and test-time filters both hold, as "name: saved -> now"."""
    return [
        f"{name}: {saved[key][name]} -> {choice}"
        for key in ("chosen", "test_filters")
        for name, choice in selection[key].items()
        if name in saved.get(key, {}) and saved[key][name] != choice
    ]


# ---------------------------------------------------------------------------------------------------- statistics
def interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95 % t-interval of ``values`` (NaN bounds for a single value)."""
    from scipy.stats import t

    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half = t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
    return mean, mean - half, mean + half


def difference(a: list[dict], b: list[dict], read) -> str:
    """``read`` of rows ``a`` minus ``b`` (one pipeline's results per seed, paired by seed) in points: mean
    [95 % interval], "n.s." where it contains 0; the mean alone for one seed; "" where a value is missing."""
    pairs = [(read(x), read(y)) for x, y in zip(a, b)]
    if any(v is None for pair in pairs for v in pair):
        return ""
    mean, low, high = interval([100 * (x - y) for x, y in pairs])
    if low != low:  # one seed: no interval
        return f"{mean:+.1f}"
    return f"{mean:+.1f} [{low:+.1f}, {high:+.1f}]" + (" n.s." if low <= 0 <= high else "")


# the columns of the tables: (name, how to read it from one pipeline's results)
COLUMNS = [
    ("clean", lambda r: r["clean"]),
    ("mean corruption (15)", lambda r: r["mean_corruption"]),
    ("mean corruption (10)", lambda r: r.get("mean_corruption_10")),  # the ten that leave the background alone
    *[(f"{group}", lambda r, g=group: r["group_means"][g]) for group in GROUPS],
    ("extras", lambda r: r["mean_extras"]),
    ("low-res x2", lambda r: r["low_resolution"]["x2"]),
    ("low-res x4", lambda r: r["low_resolution"]["x4"]),
]


# the paired test's measures (``PER_IMAGE``), named as the accuracy tables' columns
PER_IMAGE_LABELS = {"clean": "clean", "corruption_15": "mean corruption (15)", "corruption_10": "mean corruption (10)"}

SANITY_KEY = f"apgd {SANITY_EPSILON * 255:g}/255"


def failed_sanity(runs: dict) -> list[str]:
    """The rows (family, pipeline) where the attack left images standing at the sanity epsilon in some seed: their
    robust accuracy is not an estimate."""
    return [
        f"{label}, {PIPELINE_LABELS[pipeline]} ({_mean_cell([r['sanity'].get(SANITY_KEY) for r in per_seed])} %)"
        for label, _, pipeline, per_seed in _rows(runs)
        if any(r["robust"] and (r["sanity"].get(SANITY_KEY) or 0) > 0 for r in per_seed)
    ]


def _columns(runs: dict) -> list:
    """The table's columns: those some row has a value in (results made before a column existed lack it); robust
    accuracy only where every attacked pipeline passed the sanity check."""
    first = next(iter(runs.values()))[0]["pipelines"]["plain"]
    robust = [] if failed_sanity(runs) else first["robust"]
    columns = COLUMNS + [(f"robust {e}", lambda r, e=e: r["robust"].get(e)) for e in robust]
    rows = [r for seeds in runs.values() for seed in seeds for r in seed["pipelines"].values()]
    return [(name, read) for name, read in columns if any(read(r) is not None for r in rows)]


def _rows(runs: dict):
    for family, seeds in runs.items():
        for pipeline in seeds[0]["pipelines"]:
            label = f"{family} (trained on Gaussian noise)" if family in TRAINED_ON_TEST_CORRUPTION else family
            yield label, family, pipeline, [s["pipelines"][pipeline] for s in seeds]


def _cell(values: list) -> str:
    values = [100 * v for v in values if v is not None]
    if not values:
        return ""
    return f"{statistics.fmean(values):.1f} ± {statistics.stdev(values):.1f}" if len(values) > 1 else f"{values[0]:.1f}"


def tables(runs: dict) -> str:
    """Markdown: accuracy (mean ± std over seeds), then each row's paired difference to standard training (plain)
    with its 95 % interval, "n.s." where the interval contains 0, under standard training's own accuracy."""
    columns = _columns(runs)
    header = ["training", "test time", *[c for c, _ in columns]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, _, pipeline, per_seed in _rows(runs):
        cells = [label, PIPELINE_LABELS[pipeline]] + [_cell([read(r) for r in per_seed]) for _, read in columns]
        lines.append("| " + " | ".join(cells) + " |")
    if "standard" not in runs:
        return "\n".join(lines) + "\n"
    lines += [
        "",
        "Paired difference to standard training (plain), points, mean [95 % interval] over seeds; on its own row, "
        "standard training's accuracy in % (mean over seeds):",
        "",
        _paired(runs, list(_rows(runs)), columns),
    ]
    return "\n".join(lines)


def _summary_columns(runs: dict) -> list:
    """The summary's columns (the README's and the other comparisons'): the accuracy tables' but the extras."""
    return [column for column in _columns(runs) if column[0] != "extras"]


def summary_table(runs: dict) -> str:
    """Markdown: the README's table. Its rows by a rule, not by the numbers: every family trained and tested plain,
    and the standard model with each test-time filter; columns: the accuracy tables' but the extras; cells:
    standard training's accuracy on its own row, every other row's paired difference to it (``difference``)."""
    if "standard" not in runs:
        return ""
    rows = [row for row in _rows(runs) if row[2] == "plain" or row[1] == "standard"]
    return _paired(runs, rows, _summary_columns(runs))


def _paired(runs: dict, rows: list, columns: list) -> str:
    """The paired-difference table of ``rows`` over ``columns``, opened by standard training's own accuracy."""
    reference = [s["pipelines"]["plain"] for s in runs["standard"]]
    header = ["training", "test time", *[c for c, _ in columns]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    own = [_mean_cell([read(r) for r in reference]) for _, read in columns]
    lines.append("| " + " | ".join(["standard (accuracy, %)", PIPELINE_LABELS["plain"], *own]) + " |")
    for label, family, pipeline, per_seed in rows:
        if family == "standard" and pipeline == "plain":
            continue
        cells = [label, PIPELINE_LABELS[pipeline]] + [difference(per_seed, reference, read) for _, read in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def contrasts(runs: dict, selection: dict) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """The pairs of rows (family, pipeline) the protocol compares besides each row against standard training, by a
    rule, not by the numbers: each family that takes another's winner (a combination, the events solver) against each
    family it takes from; the best ISVS family on validation against each of ``BASELINES``; each ISVS-trained
    family's own smoothing at test time against the same model plain. Only pairs whose rows both exist."""
    scores = selection.get("validation_scores", {})
    present = [n for n in ISVS_FAMILIES if n in runs and n in scores]
    best_isvs = best(present, scores) if present else None
    pairs = []
    for family in runs:
        values = FAMILIES.get(family, {}).values()
        sources = [v.family for v in values if isinstance(v, Chosen)]
        if any(isinstance(v, BestIsvs) for v in values) and best_isvs:
            sources.insert(0, best_isvs)
        pairs += [((family, "plain"), (source, "plain")) for source in sources]
    if best_isvs:
        pairs += [((best_isvs, "plain"), (baseline, "plain")) for baseline in BASELINES]
    pairs += [
        ((f, "smoothed"), (f, "plain")) for f in runs if f != "standard" and "smoothed" in runs[f][0]["pipelines"]
    ]
    have = {(f, p) for f, seeds in runs.items() for p in seeds[0]["pipelines"]}
    return [(a, b) for a, b in pairs if a in have and b in have]


def contrast_table(runs: dict, selection: dict) -> str:
    """Markdown: each of ``contrasts``' pairs, row A minus row B in points, paired over the seeds both have, mean
    [95 % interval] ("n.s." where it holds 0), in the summary's columns. A family's results are listed in the order
    of the comparison's seeds, and one trained on fewer seeds has the first of them, so rows pair by position."""
    pairs = contrasts(runs, selection)
    if not pairs:
        return ""
    columns = _summary_columns(runs)
    header = ["A", "B", "seeds", *[c for c, _ in columns]]
    lines = [
        "The protocol's other comparisons: row A minus row B in points, paired by seed over the seeds both have, mean "
        "[95 % interval] (n.s.: the interval holds 0):",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for (fa, pa), (fb, pb) in pairs:
        a, b = [r["pipelines"][pa] for r in runs[fa]], [r["pipelines"][pb] for r in runs[fb]]
        names = [f"{f}, {PIPELINE_LABELS[p]}" for f, p in ((fa, pa), (fb, pb))]
        cells = [*names, str(min(len(a), len(b))), *[difference(a, b, read) for _, read in columns]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def image_tests(runs: dict) -> dict:
    """Per row other than standard training's plain one, and per measure of ``PER_IMAGE``: the p-value of the
    Wilcoxon signed-rank test over the test images of each image's accuracy difference to standard training (plain),
    averaged over the seeds (paired by seed). Rows whose evaluations lack the per-image counts are left out."""
    import numpy
    from scipy.stats import wilcoxon

    reference = [s["pipelines"]["plain"].get("per_image", {}) for s in runs.get("standard", [])]
    out = {}
    for label, family, pipeline, per_seed in _rows(runs):
        if family == "standard" and pipeline == "plain" or not reference:
            continue
        row = {}
        for measure in PER_IMAGE:
            pairs = [(r.get("per_image", {}).get(measure), b.get(measure)) for r, b in zip(per_seed, reference)]
            if pairs and all(a is not None and b is not None for a, b in pairs):
                d = numpy.mean([per_image_counts(a) - per_image_counts(b) for a, b in pairs], axis=0)
                row[measure] = float(wilcoxon(d).pvalue) if numpy.any(d) else 1.0
        if row:
            out[f"{label} | {PIPELINE_LABELS[pipeline]}"] = row
    return out


def image_test_table(tests: dict) -> str:
    """Markdown: the p-values of ``image_tests``."""
    if not tests:
        return ""
    header = ["training", "test time", *[PER_IMAGE_LABELS[m] for m in PER_IMAGE]]
    lines = [
        "Paired test over the test images against standard training (plain): Wilcoxon signed-rank p-value of each "
        "image's accuracy difference (clean; the fraction of the 15 / 10 corruptions x severities it gets right), "
        "averaged over the seeds:",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row, values in tests.items():
        lines.append(f"| {row} | " + " | ".join(f"{values[m]:.2g}" if m in values else "" for m in PER_IMAGE) + " |")
    return "\n".join(lines) + "\n"


def _mean_cell(values: list) -> str:
    values = [100 * v for v in values if v is not None]
    return f"{statistics.fmean(values):.1f}" if values else ""


def attack_table(runs: dict) -> str:
    """Markdown: each attack's accuracy at the first epsilon, the worst case per image, and the sanity checks (random
    +-eps noise must not hurt much; the gradient attacks at 32/255 must reach ~0), mean over seeds."""
    rows = list(_rows(runs))
    first = rows[0][3][0]
    eps = next(iter(first["robust"]), None)
    if eps is None:
        return ""
    attacks = list(dict.fromkeys(a for *_, per_seed in rows for a in per_seed[0]["attacks"]))
    kinds = ("fgsm", "apgd", "square", "transfer")  # the suite's order: square runs after the gradient attacks
    attacks.sort(key=lambda a: kinds.index(a.split("-")[0]) if a.split("-")[0] in kinds else len(kinds))
    sanity = [k for k in first["sanity"] if k != "random"]
    header = [
        "training",
        "test time",
        *[ATTACK_LABELS.get(a, a) for a in attacks],
        "worst case",
        "random ±eps (sanity)",
        *[f"{k} (sanity)" for k in sanity],
    ]
    lines = [f"Accuracy in % under each attack at eps {eps}, mean over seeds (blank: not run on that pipeline):", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, _, pipeline, per_seed in rows:
        cells = [label, PIPELINE_LABELS[pipeline]]
        cells += [_mean_cell([r["attacks"].get(a, {}).get(eps) for r in per_seed]) for a in attacks]
        cells += [_mean_cell([r["robust"].get(eps) for r in per_seed])]
        cells += [_mean_cell([r["sanity"]["random"].get(eps) for r in per_seed])]
        cells += [_mean_cell([r["sanity"].get(k) for r in per_seed]) for k in sanity]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def corruption_table(runs: dict) -> str:
    """Markdown: each corruption's accuracy (mean over severities), mean ± std over seeds."""
    rows = list(_rows(runs))
    names = list(rows[0][3][0]["corruption_means"])
    header = ["training", "test time", *[n.replace("_", " ") for n in names]]
    lines = ["Accuracy in % per corruption (mean over its severities), mean ± std over seeds:", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, _, pipeline, per_seed in rows:
        cells = [label, PIPELINE_LABELS[pipeline]] + [
            _cell([r["corruption_means"][n] for r in per_seed]) for n in names
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# the figure: one colour per family, one marker per test-time pipeline
MARKERS = {
    "plain": "o",
    "smoothed": "s",
    "adaptive": "^",
    "median": "v",
    "gaussian": "D",
    "bilateral": "*",
    "nlmeans": "X",
    "trained": "P",
}


def plots(runs: dict, folder: Path) -> None:
    """comparison.png: clean against the mean of the 15 corruptions, and the mean of the 15 against the mean of the
    10 that leave the background alone (the two primary measures), one point per row, mean ± std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    legend = []
    colours = {family: plt.get_cmap("tab20")(i % 20) for i, family in enumerate(runs)}
    fig, (left, right) = plt.subplots(1, 2, figsize=(16, 5.2))
    for label, family, pipeline, per_seed in _rows(runs):
        spread = statistics.pstdev if len(per_seed) > 1 else (lambda v: 0.0)
        clean = [100 * r["clean"] for r in per_seed]
        corruption = [100 * r["mean_corruption"] for r in per_seed]
        style = {"marker": MARKERS[pipeline], "color": colours[family], "capsize": 3, "linestyle": "none"}
        name = f"{label}, {PIPELINE_LABELS[pipeline]}"
        x, dx = statistics.fmean(clean), spread(clean)
        left.errorbar(x, statistics.fmean(corruption), xerr=dx, yerr=spread(corruption), **style)
        # the legend shows the marker alone: an error bar's caps would draw every marker as a square
        legend.append(Line2D([], [], marker=style["marker"], color=style["color"], linestyle="none", label=name))
        steady = [100 * r["mean_corruption_10"] for r in per_seed if r.get("mean_corruption_10") is not None]
        if steady:
            right.errorbar(
                statistics.fmean(corruption),
                statistics.fmean(steady),
                xerr=spread(corruption),
                yerr=spread(steady),
                **style,
            )
    left.set_xlabel("clean accuracy (%)")
    left.set_ylabel("mean corruption accuracy (15, %)")
    left.set_title("clean vs corruptions, mean ± std over seeds", fontsize=9)
    right.set_xlabel("mean corruption accuracy (15, %)")
    right.set_ylabel("mean corruption accuracy (10, %)")
    right.set_title("the two primary measures (same legend)", fontsize=9)
    fig.legend(handles=legend, loc="center left", bbox_to_anchor=(0.665, 0.5), fontsize=6)
    fig.tight_layout(rect=(0, 0, 0.66, 1))
    fig.savefig(folder / "comparison.png", dpi=110)
    plt.close(fig)


def example_figure(folder: Path, dataset: str | None, data_dir: str | None) -> None:
    """A test image along the path, and corrupted versions before and after smoothing at 0.6 (with and without the
    noise stop)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import isvs_triton as isvs
    from isvs_triton.data import EMBEDDED, test_images
    from isvs_triton.robustness import corrupt, low_resolution

    x = test_images(dataset or EMBEDDED, 4, data_dir)
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


def _trees(trees: list | None) -> str:
    if not trees:
        return "trees not recorded"
    return f"tree {trees[0]}" if len(trees) == 1 else f"{len(trees)} trees ({', '.join(trees)}; made.json: which)"


def _made(protocol: dict) -> str:
    """What the folder's runs were made on and how long they took in all (results of older versions lack it)."""
    if "compute_hours" not in protocol:
        return ""
    hours, again = protocol["compute_hours"], protocol.get("trained_again")
    made = f"; the folder's runs: {_trees(protocol.get('trees'))}, {hours:.1f} h of training and evaluation in all"
    parts = [f"{kind} {h:.1f} h" for kind, h in protocol.get("compute_hours_by_kind", {}).items() if h]
    if again:
        parts.append(
            f"{len(again)} run{'s' if len(again) > 1 else ''} trained again on a fresh clone, where the weights "
            f"were not: the evaluations made before are of the earlier training, its records in {EARLIER_TRAININGS}/"
        )
    return made + (f" ({'; '.join(parts)})" if parts else "")


def _sanity_note(runs: dict) -> str:
    failed = failed_sanity(runs)
    if not failed:
        return ""
    return (
        f"Robust accuracy is left out of the summary: at {SANITY_EPSILON * 255:g}/255 the attack suite left images "
        f"standing through {'; '.join(failed)} (mean over seeds), so there it is not an estimate.\n\n"
    )


def _without_per_image(results: dict) -> dict:
    pipelines = {p: {k: v for k, v in r.items() if k != "per_image"} for p, r in results["pipelines"].items()}
    return {**results, "pipelines": pipelines}


def _summary_section(runs: dict) -> str:
    table = summary_table(runs)
    if not table:
        return ""
    return (
        "Summary (the README's table): test accuracy of standard training in %, and each row's paired difference to "
        "it in points, mean [95 % interval] over seeds (n.s.: the interval holds 0); every row below:\n\n"
        f"{table}\n"
    )


def report(results: dict, folder: Path) -> str:
    """results.md and comparison.png from a comparison's results (all that --report needs)."""
    folder.mkdir(parents=True, exist_ok=True)
    protocol = results["protocol"]
    chosen = "; ".join(
        f"{family}: {json.dumps(settings)}" for family, settings in results["selection"]["chosen"].items()
    )
    given = protocol.get("selection_from")  # a rerun with a saved selection (--selection)
    chosen_where = f"Taken from {given}, where they were chosen" if given else "Chosen"
    here = results["selection"].get("filters_selected_here")
    chosen_here = f" ({', '.join(here)}: chosen in this run, on its standard model, by the same rule)" if here else ""
    again = results["selection"].get("reselected_here")
    if again:
        chosen_where += f" ({', '.join(again)}: chosen again in this run, over their sweeps, by the same rule)"
    text = (
        f"`{protocol['command']}`: setting {protocol['setting']} ({json.dumps(protocol['train'])}; evaluation "
        f"{json.dumps(protocol['eval'])}), seeds {protocol['seeds']}; {protocol['machine']}; wall time "
        f"{protocol['minutes']:.1f} min (runs found in the folder are not retrained){_made(protocol)}.\n\n"
        f"{chosen_where} on validation (seed 0, highest mean corruption accuracy, then clean): {chosen}; the standard "
        f"model's test-time filters: {json.dumps(results['selection']['test_filters'])}{chosen_here}.\n\n"
        f"{_summary_section(results['runs'])}"
        f"Test accuracy in %, mean ± std over seeds; robust = the attack suite's worst case per image on "
        f"{protocol['eval'].get('attack_limit')} test images.\n\n{tables(results['runs'])}\n"
        f"{contrast_table(results['runs'], results['selection'])}\n"
        f"{image_test_table(results.get('image_tests', {}))}\n{_sanity_note(results['runs'])}"
        f"{attack_table(results['runs'])}\n{corruption_table(results['runs'])}"
    )
    (folder / "results.md").write_text(text)
    plots(results["runs"], folder)
    return text


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setting", choices=list(SETTINGS), default="fashion", help="data, model and budgets")
    parser.add_argument("--quick", action="store_const", const="quick", dest="setting", help="= --setting quick")
    parser.add_argument(
        "--seeds",
        default="0,1,2,3,4",
        help=f"comma-separated; the first one also selects; families outside {list(EVERY_SEED)}, the best ISVS family "
        f"and the best combination (on validation) train the first {FEW_SEEDS} only",
    )
    parser.add_argument("--families", help=f"comma-separated subset of: {', '.join(FAMILIES)}")
    parser.add_argument("--dataset", help="default: the setting's (fashion: zalando-datasets/fashion_mnist)")
    parser.add_argument("--data-dir", help="a local copy of the dataset (tools/fashion_mnist.py writes one)")
    parser.add_argument("--output", help="default: the setting's folder (fashion: docs/results/fashion-mnist)")
    parser.add_argument("--report", metavar="RESULTS_JSON", help="only rebuild results.md and the figure from it")
    parser.add_argument(
        "--mixed-trees",
        action="store_true",
        help="continue a folder whose runs were made on another tree (made.json) from this one; without it such a "
        "folder is reported as it is, and a training or evaluation missing from it is refused, so that every figure "
        "of a folder comes from one tree (the report names every tree)",
    )
    parser.add_argument(
        "--selection",
        metavar="SELECTION_JSON",
        help="take the winners and test-time filters from this selection.json (e.g. a published one) instead of "
        "selecting them on validation: reruns some families on test with the choices the table was made with",
    )
    parser.add_argument(
        "--reselect",
        metavar="FAMILIES",
        help="with --selection: comma-separated families (of --families) chosen again here on validation over "
        "their sweeps (e.g. a widened one); the families that take their winners follow",
    )
    args = parser.parse_args(argv)
    if args.report:
        path = Path(args.report)
        print(report(json.loads(path.read_text()), Path(args.output) if args.output else path.parent))
        return {}
    names = [n.strip() for n in args.families.split(",")] if args.families else list(FAMILIES)
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        parser.error(f"unknown families {unknown}; accepted: {list(FAMILIES)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    folder = Path(args.output or SETTINGS[args.setting].get("output", f"runs/compare-{args.setting}"))  # quick: runs/
    folder.mkdir(parents=True, exist_ok=True)
    comparison = Comparison(args.setting, folder, args.dataset, args.data_dir, args.mixed_trees)
    try:
        return _compare(parser, args, argv, names, seeds, comparison)
    except OtherTree as error:
        parser.error(str(error))


def _compare(parser, args, argv, names: list[str], seeds: list[int], comparison: Comparison) -> dict:
    """main's work once the arguments are read: select (or take the selection), train and test the winners, report."""
    folder, start = comparison.folder, time.perf_counter()
    if args.selection:  # the winners are given: no family needs another's selection run
        selection = json.loads(Path(args.selection).read_text())
        for made_there in ("filters_selected_here", "reselected_here"):  # said of the run that saved it, not this one
            selection.pop(made_there, None)
        again = [n.strip() for n in args.reselect.split(",")] if args.reselect else []
        if any(n not in names for n in again):
            parser.error(f"--reselect {again}: each must be one of --families {names}")
        missing = [n for n in names if n not in selection["chosen"] and n not in again]
        if missing:
            parser.error(f"{args.selection} has no winner for {missing}")
        if again:
            selection = comparison.reselect(selection, names, again)
        # a test-time filter added since that selection was made: chosen here, on validation, by the same rule
        new = [p for p, (option, _) in TEST_FILTERS.items() if option not in selection["test_filters"]]
        if new and "standard" in names:
            added = comparison.select_filters(selection["chosen"]["standard"], new, selection["validation_scores"])
            selection["test_filters"].update(added)
            selection["filters_selected_here"] = list(added)
    else:
        if args.reselect:
            parser.error("--reselect needs --selection (without it every family is selected)")
        try:
            _order(names)
        except ValueError as error:
            parser.error(str(error))
        selection = comparison.select(names)
        saved = folder / "selection.json"
        changed = changed_choices(json.loads(saved.read_text()), selection) if saved.exists() else []
        if changed:  # its test evaluations were read with the saved winners
            parser.error(
                f"this run's validation evaluations choose otherwise than {saved} ({'; '.join(changed)}): a selection "
                f"is fixed once made. Keep it with --selection {saved}, or move it away to select anew"
            )
    (folder / "selection.json").write_text(json.dumps(selection, indent=2))
    runs, every = {family: [] for family in names}, every_seed(selection)
    for k, seed in enumerate(seeds):  # seed-major: a partial comparison already covers every family
        for family in runs:
            if k >= FEW_SEEDS and family not in every:
                continue
            settings, filters = selection["chosen"][family], selection["test_filters"]
            runs[family].append(comparison.final(family, settings, filters, seed))
    command = " ".join(["python", "recipes/compare.py", *(argv if argv is not None else sys.argv[1:])])
    hours = comparison.hours()
    setting = SETTINGS[args.setting]
    results = {
        "protocol": {
            "command": command,
            "setting": args.setting,
            "train": {**setting["train"], **comparison.data},
            "eval": {k: v if not isinstance(v, tuple) else list(v) for k, v in setting["eval"].items()},
            "seeds": seeds,
            "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
            "minutes": (time.perf_counter() - start) / 60,
            "selection_from": args.selection,
            # the trees the runs and evaluations in this folder were made on, and the hours they took in all
            "trees": comparison.trees(),
            "compute_hours": sum(hours.values()),
            "compute_hours_by_kind": hours,
            "trained_again": comparison.trained_again(),
        },
        "selection": selection,
        "image_tests": image_tests(runs),
        # the per-image counts stay in each run's evaluation (the image tests above are made from them)
        "runs": {f: [_without_per_image(r) for r in rs] for f, rs in runs.items()},
    }
    (folder / "results.json").write_text(json.dumps(results))
    example_figure(folder, results["protocol"]["train"].get("dataset"), args.data_dir)
    print(report(results, folder))
    return results


if __name__ == "__main__":
    main()
