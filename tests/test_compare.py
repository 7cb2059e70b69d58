"""recipes/compare.py: the protocol's pieces (candidates, order, intervals), and --quick end to end (CI)."""

import csv
import json
import math
import shutil

import pytest

from recipes import compare


def test_candidates_sweep_one_setting_and_take_the_winners_of_others():
    sweep = compare.FAMILIES["isvs fixed"]["sparsity"]
    assert compare.candidates("isvs fixed", {}) == [{"procedure": "fixed", "sparsity": s} for s in sweep]
    assert compare.candidates("isvs fixed", {}, "ends") == [
        {"procedure": "fixed", "sparsity": sweep[0]},
        {"procedure": "fixed", "sparsity": sweep[-1]},
    ]
    chosen = {"isvs fixed": {"sparsity": 0.6}, "noise augmentation": {"noise_sigma": 0.1}}
    assert compare.candidates("isvs fixed + noise augmentation", chosen) == [
        {"procedure": "fixed-noise", "sparsity": 0.6, "noise_sigma": 0.1}
    ]
    # a combination with the best ISVS family takes that family's procedure and winning setting
    chosen = {
        "isvs fixed": {"procedure": "fixed", "sparsity": 0.4},
        "isvs augmentation": {"procedure": "augment", "sparsity_min": 0.2},
        "augmix": {"procedure": "augmix", "augmix_severity": 3.0},
    }
    scores = {
        "isvs fixed": [{"mean_corruption": 0.70, "clean": 0.9}, {"mean_corruption": 0.72, "clean": 0.8}],
        "isvs augmentation": [{"mean_corruption": 0.71, "clean": 0.9}],
    }
    assert compare.candidates("isvs + augmix", chosen, scores=scores) == [
        {"procedure": "fixed-augmix", "sparsity": 0.4, "augmix_severity": 3.0}
    ]
    scores["isvs augmentation"][0]["mean_corruption"] = 0.72  # a tie: the higher clean accuracy wins
    assert compare.candidates("isvs + augmix", chosen, scores=scores) == [
        {"procedure": "augment-augmix", "sparsity_min": 0.2, "augmix_severity": 3.0}
    ]
    selection = {"chosen": {**chosen, "isvs + augmix": {}, "standard": {}}, "validation_scores": {
        **scores, "isvs + augmix": [{"mean_corruption": 0.5, "clean": 0.5}]}}  # fmt: skip
    assert compare.every_seed(selection) == {*compare.EVERY_SEED, "isvs augmentation", "isvs + augmix"}
    order = compare._order(list(compare.FAMILIES))
    for family, settings in compare.FAMILIES.items():
        for value in settings.values():
            if isinstance(value, compare.Chosen):
                assert order.index(value.family) < order.index(family)
    with pytest.raises(ValueError, match="include those too"):
        compare._order(["isvs fixed + noise augmentation"])
    with pytest.raises(ValueError, match="include those too"):
        compare._order(["isvs fixed", "augmix", "isvs + augmix"])  # the best ISVS family needs both


def test_a_folder_made_on_another_tree_is_continued_only_when_asked(tmp_path, capsys):
    (tmp_path / "made.json").write_text(json.dumps({"runs/standard-s0": {"tree": "0123456789ab", "seconds": 1.0}}))
    with pytest.raises(SystemExit):
        compare.main(["--quick", "--output", str(tmp_path), "--families", "standard", "--seeds", "0"])
    message = capsys.readouterr().err
    assert "made on tree 0123456789ab" in message and "git worktree add ../compare-tree 0123456789ab" in message
    assert "runs/standard-s0 is missing and would be made here" in message
    assert not (tmp_path / "runs").exists(), "refused before anything was trained"


def test_hours_count_each_trainings_epochs_each_evaluation_and_the_earlier_trainings_apart(tmp_path):
    """A training's hours are its epochs (summary.csv; made.json holds only the last part of a resumed one), an
    evaluation's its made.json seconds, and a run trained again keeps its earlier training's hours apart."""
    run = tmp_path / "runs" / "standard-s0"
    (run / compare.EARLIER_TRAININGS / "1").mkdir(parents=True)
    (run / "summary.csv").write_text("epoch,train_seconds\n1,1800\n2,1800\n")
    (run / compare.EARLIER_TRAININGS / "1" / "summary.csv").write_text("epoch,train_seconds\n1,1080\n")
    made = {
        "runs/standard-s0": {"tree": "t", "seconds": 60.0},
        "runs/standard-s0/eval-test": {"tree": "t", "seconds": 720.0},
    }
    (tmp_path / "made.json").write_text(json.dumps(made))
    hours = compare.Comparison("quick", tmp_path, None, None).hours()
    assert hours == pytest.approx({"training": 1.0, "evaluation": 0.2, "earlier trainings": 0.3})
    text = compare._made({"compute_hours": sum(hours.values()), "compute_hours_by_kind": hours, "trees": ["t"]})
    assert "1.5 h of training and evaluation in all (training 1.0 h; evaluation 0.2 h; earlier trainings 0.3 h)" in text


def test_interval_is_the_t_interval():
    mean, low, high = compare.interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and high - mean == pytest.approx(4.302653 * 1.0 / math.sqrt(3), rel=1e-5)
    assert low == pytest.approx(2 * mean - high)
    assert all(math.isnan(v) for v in compare.interval([1.0])[1:])


def _pipeline(accuracy: float) -> dict:
    """One pipeline's results in the shape evaluate_run writes, every measure at ``accuracy``, no attacks."""
    return {
        "clean": accuracy,
        "mean_corruption": accuracy,
        "mean_corruption_10": accuracy,
        "group_means": dict.fromkeys(compare.GROUPS, accuracy),
        "mean_extras": accuracy,
        "low_resolution": {"x2": accuracy, "x4": accuracy},
        "robust": {},
        "sanity": {},
    }


def test_a_selection_made_again_is_compared_with_the_saved_one_where_both_choose():
    saved = {
        "chosen": {"isvs fixed": {"sparsity": 0.4}, "augmix": {"augmix_severity": 6.0}},
        "test_filters": {"median_size": 3},
    }
    again = {"chosen": {"isvs fixed": {"sparsity": 0.4}, "standard": {}}, "test_filters": {"median_size": 3}}
    assert compare.changed_choices(saved, again) == []  # a subset of families (--families) is no change
    again["chosen"]["isvs fixed"] = {"sparsity": 0.6}
    again["test_filters"]["median_size"] = 5
    assert compare.changed_choices(saved, again) == [
        "isvs fixed: {'sparsity': 0.4} -> {'sparsity': 0.6}",
        "median_size: 3 -> 5",
    ]


def test_the_paired_table_opens_with_standard_trainings_own_accuracy():
    """The summary the README copies: standard training's accuracy on its own row, every other row's paired
    difference to it, per seed, in points."""
    runs = {
        "standard": [{"pipelines": {"plain": _pipeline(a)}} for a in (0.90, 0.92, 0.94)],
        "isvs fixed": [{"pipelines": {"plain": _pipeline(a)}} for a in (0.92, 0.945, 0.97)],
    }
    table = compare.tables(runs).split("Paired difference")[1].splitlines()
    own = next(line for line in table if line.startswith("| standard (accuracy, %) | plain |"))
    assert own.split("|")[3:-1] == [" 92.0 "] * len(compare._columns(runs))
    row = next(line for line in table if line.startswith("| isvs fixed | plain |"))
    assert row.split("|")[3].strip() == "+2.5 [+1.3, +3.7]"  # 2.5 ± t(0.975, 2) · 0.5 / √3
    assert not any(line.startswith("| standard | plain |") for line in table)


def test_the_readme_summary_holds_each_family_plain_and_the_standard_models_test_time_filters():
    pipelines = lambda a: {"plain": _pipeline(a), "median": _pipeline(a - 0.01), "smoothed": _pipeline(a + 0.01)}  # noqa: E731
    runs = {
        "standard": [{"pipelines": pipelines(a)} for a in (0.90, 0.92, 0.94)],
        "isvs fixed": [{"pipelines": pipelines(a)} for a in (0.92, 0.945, 0.97)],
    }
    table = compare.summary_table(runs).splitlines()
    assert "extras" not in table[0] and "mean corruption (10)" in table[0]
    assert [line.split(" | ")[:2] for line in table[2:]] == [
        ["| standard (accuracy, %)", "plain"],
        ["| standard", "median filter"],
        ["| standard", "ISVS smoothing (BPDA)"],
        ["| isvs fixed", "plain"],
    ]
    assert table[5].split(" | ")[2] == "+2.5 [+1.3, +3.7]"


def test_the_other_comparisons_are_fixed_by_the_protocol_and_paired_by_seed():
    def seeds(accuracies, smoothed=False):  # one evaluation per seed, in the comparison's order of seeds
        smoothing = lambda a: {"smoothed": _pipeline(a + 0.01)} if smoothed else {}  # noqa: E731
        return [{"pipelines": {"plain": _pipeline(a), **smoothing(a)}} for a in accuracies]

    runs = {
        "standard": seeds([0.90] * 5),
        "isvs fixed": seeds([0.91] * 3, smoothed=True),
        "isvs augmentation": seeds([0.92] * 5, smoothed=True),
        "augmix": seeds([0.93, 0.93, 0.93, 0.99, 0.99]),
        "isvs + augmix": seeds([0.95, 0.96, 0.97], smoothed=True),
    }
    score = lambda m: [{"mean_corruption": m, "clean": 0.9}]  # noqa: E731
    selection = {"validation_scores": {"isvs fixed": score(0.70), "isvs augmentation": score(0.75)}}
    plain = lambda family: (family, "plain")  # noqa: E731
    assert compare.contrasts(runs, selection) == [
        (plain("isvs + augmix"), plain("isvs augmentation")),  # the best ISVS family on validation
        (plain("isvs + augmix"), plain("augmix")),
        (plain("isvs augmentation"), plain("augmix")),  # the other baselines are not in these runs
        *[((f, "smoothed"), plain(f)) for f in ("isvs fixed", "isvs augmentation", "isvs + augmix")],
    ]
    table = compare.contrast_table(runs, selection).splitlines()
    row = next(line for line in table if line.startswith("| isvs + augmix, plain | augmix, plain |"))
    assert row.split(" | ")[2:4] == ["3", "+3.0 [+0.5, +5.5]"]  # seeds 0-2 only: 2, 3, 4 points; 3 ± 4.303 / √3
    assert all(len(set(t)) == 1 for t in _cells_per_line("\n".join(table)))


def _cells_per_line(markdown: str) -> list[list[int]]:
    """Each table of a markdown text: how many cells each of its lines has (a well-formed table has one number)."""
    tables, lines = [], []
    for line in [*markdown.splitlines(), ""]:
        if line.startswith("|"):
            lines.append(line.strip().strip("|").count("|") + 1)
        elif lines:
            tables, lines = [*tables, lines], []
    return tables


def test_the_paired_image_test_table_has_as_many_cells_as_its_header():
    tests = {"isvs fixed | plain": {"clean": 0.5, "corruption_15": 1e-9}, "augmix | plain": {"corruption_10": 0.01}}
    (table,) = _cells_per_line(compare.image_test_table(tests))
    assert table == [2 + len(compare.PER_IMAGE_LABELS)] * (2 + len(tests))


def _hours_read_from(folder, earlier_trainings=True) -> float:
    """The hours a comparison folder records, read here apart from ``Comparison.hours``: every training's epochs
    (summary.csv's train_seconds; with ``earlier_trainings``, those of runs trained again too) and every
    evaluation's seconds (made.json)."""
    patterns = ["runs/*/summary.csv"] + [f"runs/*/{compare.EARLIER_TRAININGS}/*/summary.csv"] * earlier_trainings
    epochs = [
        float(row["train_seconds"])
        for pattern in patterns
        for path in folder.glob(pattern)
        for row in csv.DictReader(path.read_text().splitlines())
    ]
    made = json.loads((folder / "made.json").read_text())
    return (sum(epochs) + sum(m["seconds"] for name, m in made.items() if "/eval-" in name)) / 3600


def _measured(family_runs: dict) -> dict:
    """Each evaluation's figures, not how long it took."""
    return {f: [{k: v for k, v in r.items() if k != "seconds"} for r in rs] for f, rs in family_runs.items()}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """A --quick comparison (two seeds: CI time) in a folder of its own, and a copy of its first results.json that
    the later calls of ``test_quick_comparison`` in that folder do not overwrite."""
    folder = tmp_path_factory.mktemp("quick")
    results = compare.main(["--quick", "--seeds", "0,1", "--output", str(folder)])
    first = folder.parent / "quick-results.json"
    shutil.copy(folder / "results.json", first)
    return results, folder, first


@pytest.mark.slow
def test_quick_comparison(quick, capsys):
    results, tmp_path, _ = quick
    runs = results["runs"]
    assert list(runs) == list(compare.FAMILIES) and all(len(seeds) == 2 for seeds in runs.values())
    selection = json.loads((tmp_path / "selection.json").read_text())
    first_selection = json.loads(json.dumps(selection))
    # every training and evaluation recorded with its tree and time; the report names the tree
    made = json.loads((tmp_path / "made.json").read_text())
    folders = [p for p in (tmp_path / "runs").glob("*") if p.is_dir()] + list(tmp_path.glob("runs/*/eval-*"))
    assert sorted(made) == sorted(str(p.relative_to(tmp_path)) for p in folders)
    assert results["protocol"]["trees"] == [compare.source_tree()]
    # the hours in all: each training's epochs (summary.csv, which a resumed training continues), each evaluation's
    hours, by_kind = results["protocol"]["compute_hours"], results["protocol"]["compute_hours_by_kind"]
    assert hours == pytest.approx(_hours_read_from(tmp_path)) and hours == pytest.approx(sum(by_kind.values()))
    assert by_kind["training"] > 0 and by_kind["evaluation"] > 0 and by_kind["earlier trainings"] == 0
    assert any("/eval-" in name for name in made)
    fixed = selection["validation_scores"]["isvs fixed"]
    best = max(fixed, key=lambda s: (s["mean_corruption"], s["clean"]))
    assert len(fixed) == 2 and selection["chosen"]["isvs fixed"] == best["settings"]
    assert selection["chosen"]["isvs fixed + noise augmentation"]["sparsity"] == best["settings"]["sparsity"]
    assert set(selection["test_filters"]) == {option for option, _ in compare.TEST_FILTERS.values()}
    # test is read once per family and seed: only the winners have a test evaluation
    tested = list(tmp_path.glob("runs/*/eval-test/results.json"))
    assert len(tested) == len(compare.FAMILIES) * 2
    assert all(r["split"] == "test" for seeds in runs.values() for r in seeds)
    validation = [json.loads(p.read_text()) for p in tmp_path.glob("runs/*/eval-validation*/results.json")]
    assert validation and all(r["split"] == "validation" for r in validation)
    report = (tmp_path / "results.md").read_text()
    for row in ("| standard | plain |", "| standard | median filter |", "| standard | bilateral filter |",
                "| isvs fixed | ISVS smoothing (BPDA) |", "| augmix | plain |", "| isvs + augmix | plain |",
                "(trained on Gaussian noise) | plain |"):  # fmt: skip
        assert row in report, row
    assert "Paired difference to standard training" in report and "Wilcoxon signed-rank" in report
    assert "Summary (the README's table)" in report and "The protocol's other comparisons" in report
    assert all(len(set(table)) == 1 for table in _cells_per_line(report)), "every table well-formed"
    assert f"{compare.source_tree()}, {hours:.1f} h of training and evaluation in all (training " in report
    p_values = [v for row in results["image_tests"].values() for v in row.values()]
    assert len(results["image_tests"]) >= len(runs) and all(0 <= v <= 1 for v in p_values)
    # robust accuracy in the summary exactly when every attacked pipeline passed the 32/255 check
    assert ("robust 2/255" in report.split("Paired difference")[0]) == (not compare.failed_sanity(runs))
    assert ("Robust accuracy is left out of the summary" in report) == bool(compare.failed_sanity(runs))
    # each attack and the sanity checks, and each corruption, beside the summary
    for column in (
        "square (after the gradient attacks)",
        "random ±eps (sanity)",
        "apgd 32/255 (sanity)",
        "jpeg compression",
    ):
        assert column in report, column
    configs = [json.loads((tmp_path / "runs" / f"standard-s{s}" / "run.json").read_text()) for s in (0, 1)]
    assert {c["config"]["seed"] for c in configs} == {0, 1}
    for png in ("comparison.png", "examples.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    compare.main(["--report", str(tmp_path / "results.json"), "--output", str(tmp_path / "again")])
    assert (tmp_path / "again" / "results.md").read_text() == report, "the table comes from results.json alone"
    again = compare.main(["--quick", "--output", str(tmp_path), "--families", "standard", "--seeds", "0"])
    assert again["runs"]["standard"][0] == runs["standard"][0], "finished runs are reused, not retrained"
    # a rerun of some families with a saved selection: a family that takes another's winner needs no selection run
    saved = tmp_path / "saved-selection.json"
    saved.write_text(json.dumps(selection))
    rerun = compare.main(
        ["--quick", "--output", str(tmp_path), "--families", "isvs fixed + events solver", "--seeds", "0,1"]
        + ["--selection", str(saved)]
    )
    assert rerun["runs"]["isvs fixed + events solver"] == runs["isvs fixed + events solver"]
    assert rerun["selection"] == selection
    # a selection made before a test-time filter existed: the rerun chooses that filter by the same rule
    older = {**selection, "test_filters": dict(selection["test_filters"])}
    del older["test_filters"]["bilateral_sigma"]
    saved.write_text(json.dumps(older))
    rerun = compare.main(
        ["--quick", "--output", str(tmp_path), "--families", "standard", "--seeds", "0", "--selection", str(saved)]
    )
    assert rerun["selection"]["test_filters"] == selection["test_filters"]  # the same validation runs, reused
    assert rerun["selection"]["filters_selected_here"] == ["bilateral_sigma"]
    assert "bilateral_sigma: chosen in this run" in (tmp_path / "results.md").read_text()
    # a family chosen again (a widened sweep): a wrong saved winner is replaced by the rule's, and the families
    # that take it follow; one outside the rerun that took it is dropped
    wrong = json.loads(json.dumps(selection))
    loser = next(s["settings"] for s in fixed if s["settings"] != best["settings"])
    wrong["chosen"]["isvs fixed"] = loser
    wrong["chosen"]["isvs fixed + noise augmentation"]["sparsity"] = loser["sparsity"]
    saved.write_text(json.dumps(wrong))
    combination = "isvs fixed + noise augmentation"
    families = ["--families", f"isvs fixed,{combination}", "--reselect", "isvs fixed"]
    rerun = compare.main(["--quick", "--output", str(tmp_path), "--seeds", "0", "--selection", str(saved), *families])
    assert rerun["selection"]["chosen"]["isvs fixed"] == best["settings"]
    assert rerun["selection"]["chosen"][combination] == selection["chosen"][combination]
    assert rerun["selection"]["reselected_here"] == ["isvs fixed", combination]
    assert "isvs fixed + events solver" not in rerun["selection"]["chosen"]
    assert rerun["runs"]["isvs fixed"][0] == runs["isvs fixed"][0]  # the same runs, reused
    assert "chosen again in this run" in (tmp_path / "results.md").read_text()
    with pytest.raises(SystemExit):
        compare.main(["--quick", "--output", str(tmp_path), "--reselect", "isvs fixed"])  # without --selection
    without = json.loads(json.dumps(selection))
    del without["chosen"]["augmix"]
    saved.write_text(json.dumps(without))
    with pytest.raises(SystemExit):
        compare.main(["--quick", "--output", str(tmp_path), "--families", "augmix", "--selection", str(saved)])
    # a fresh clone of an interrupted comparison: what is committed (records and evaluations, not weights, which
    # .gitignore leaves out), and one run trained but not yet evaluated on test when it stopped: resumed to the same
    # results, the run trained again beside its earlier training's records and the validation evaluation it made
    for ignored in [*tmp_path.glob("runs/*/model.safetensors"), *tmp_path.glob("runs/*/checkpoints")]:
        shutil.rmtree(ignored) if ignored.is_dir() else ignored.unlink()
    run = tmp_path / "runs" / f"{compare._slug('augmix', selection['chosen']['augmix'])}-s0"
    shutil.rmtree(run / "eval-test")
    before = {name: (run / name).read_bytes() for name in ("summary.csv", "eval-validation/results.json")}
    made_before = json.loads((tmp_path / "made.json").read_text())[f"runs/{run.name}"]
    resumed = compare.main(["--quick", "--seeds", "0,1", "--output", str(tmp_path)])

    assert _measured(resumed["runs"]) == _measured(runs) and resumed["selection"] == first_selection
    assert (run / "eval-test" / "results.json").exists()
    earlier = run / compare.EARLIER_TRAININGS / "1"
    assert (earlier / "summary.csv").read_bytes() == before["summary.csv"]
    assert (run / "eval-validation" / "results.json").read_bytes() == before["eval-validation/results.json"]
    assert json.loads((earlier / "made.json").read_text()) == made_before
    assert resumed["protocol"]["trained_again"] == [run.name]
    # the hours count both trainings of that run
    assert resumed["protocol"]["compute_hours"] == pytest.approx(_hours_read_from(tmp_path))
    by_kind = resumed["protocol"]["compute_hours_by_kind"]
    earlier_hours = _hours_read_from(tmp_path) - _hours_read_from(tmp_path, earlier_trainings=False)
    assert by_kind["earlier trainings"] == pytest.approx(earlier_hours) and earlier_hours > 0
    assert "1 run trained again on a fresh clone" in (tmp_path / "results.md").read_text()
    # the selection is fixed once made: a rerun whose validation evaluations choose otherwise refuses, and leaves
    # the saved selection as it was
    saved_selection = (tmp_path / "selection.json").read_text()
    (tmp_path / "selection.json").write_text(json.dumps(wrong))
    with pytest.raises(SystemExit):
        compare.main(["--quick", "--seeds", "0,1", "--output", str(tmp_path)])
    assert "isvs fixed: " in capsys.readouterr().err
    assert json.loads((tmp_path / "selection.json").read_text()) == wrong
    (tmp_path / "selection.json").write_text(saved_selection)


@pytest.mark.slow
def test_paired_tool_agrees_with_the_report(quick, capsys):
    """tools/paired.py on a comparison's results: its ISVS-fixed-against-standard differences are the cells of the
    report's paired table (both from results.json), and a row against itself differs by nothing."""
    from tools import paired

    path = quick[2]
    results = json.loads(path.read_text())
    table = compare.tables(results["runs"]).split("Paired difference")[1]
    row = next(line for line in table.splitlines() if line.startswith("| isvs fixed | plain |"))
    paired.main([str(path), "isvs fixed", "standard"])
    seeds, *lines = capsys.readouterr().out.splitlines()
    assert seeds == f"{len(results['runs']['isvs fixed'])} seeds both rows have"
    assert len(lines) == len(row.split("|")) - 4  # one per column: the row's cells less label and pipeline
    for line, cell in zip(lines, row.split("|")[3:-1]):
        assert line.split(": ", 1)[1] == cell.strip()
    # and the protocol's other comparisons: ISVS smoothing at test time against the same model alone
    table = compare.contrast_table(results["runs"], results["selection"])
    row = next(line for line in table.splitlines() if line.startswith("| isvs fixed, ISVS smoothing (BPDA) |"))
    paired.main([str(path), "isvs fixed:smoothed", "isvs fixed"])
    printed = dict(line.strip().split(": ", 1) for line in capsys.readouterr().out.splitlines()[1:])
    header = table.splitlines()[2].strip("| ").split(" | ")
    assert dict(zip(header[3:], (cell.strip() for cell in row.split("|")[4:-1]))).items() <= printed.items()
    paired.main([str(path), "isvs fixed:smoothed", "isvs fixed:smoothed"])
    assert all(line.endswith("+0.0 [+0.0, +0.0] n.s.") for line in capsys.readouterr().out.splitlines()[1:])
    with pytest.raises(SystemExit, match="accepted"):
        paired.main([str(path), "no such family", "standard"])


@pytest.mark.slow
def test_paired_tool_reads_row_b_from_another_run_of_the_same_protocol(quick, tmp_path, capsys):
    from tools import paired

    path = quick[2]
    paired.main([str(path), "isvs fixed", "standard"])
    alone = capsys.readouterr().out
    results = json.loads(path.read_text())
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"protocol": results["protocol"], "runs": {"baseline": results["runs"]["standard"]}}))
    paired.main([str(path), "isvs fixed", "baseline", "--b-results", str(other)])
    assert capsys.readouterr().out == alone
    other.write_text(json.dumps({**results, "protocol": {**results["protocol"], "seeds": [0, 1, 3]}}))
    with pytest.raises(SystemExit, match=r"--b-results ran seeds \[0, 1, 3\]"):
        paired.main([str(path), "isvs fixed", "standard", "--b-results", str(other)])


@pytest.mark.slow
def test_a_complete_folder_made_on_another_tree_is_reported_here_as_it_is(quick, tmp_path, capsys):
    """The one command regenerates a committed comparison's figures from any later checkout: nothing is missing, so
    nothing is made, and the figures are the other tree's runs'. A missing evaluation is refused, named."""
    folder = tmp_path / "folder"
    shutil.copytree(quick[1], folder)
    for made_from_the_runs in ("results.json", "results.md"):
        (folder / made_from_the_runs).unlink()
    made = json.loads((folder / "made.json").read_text())
    (folder / "made.json").write_text(json.dumps({name: {**m, "tree": "0123456789ab"} for name, m in made.items()}))
    expected = json.loads((quick[1] / "results.json").read_text())
    results = compare.main(["--quick", "--seeds", "0,1", "--output", str(folder)])
    assert results["protocol"]["trees"] == ["0123456789ab"]
    assert json.loads((folder / "made.json").read_text()) == {n: {**m, "tree": "0123456789ab"} for n, m in made.items()}

    assert _measured(results["runs"]) == _measured(expected["runs"])
    assert "tree 0123456789ab" in (folder / "results.md").read_text()
    evaluation = next(folder.glob("runs/augmix*-s1/eval-test"))
    shutil.rmtree(evaluation)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        compare.main(["--quick", "--seeds", "0,1", "--output", str(folder)])
    assert f"{evaluation.relative_to(folder)} is missing and would be made here" in capsys.readouterr().err
    assert not evaluation.exists()


def test_gitignore_keeps_a_comparisons_records_and_drops_its_weights():
    """What a comparison commits as it runs: every run's record and evaluations, not its weights or checkpoints
    (.gitignore); the top-level runs/ of local training stays ignored."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    run = "docs/results/fashion-mnist/runs/standard-s0"
    kept = [f"{run}/run.json", f"{run}/eval-test/results.json", "docs/results/fashion-mnist/made.json"]
    ignored = [f"{run}/model.safetensors", f"{run}/checkpoints/epoch_1/model.safetensors", "runs/demo/run.json"]
    paths = kept + ignored
    done = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=root, capture_output=True, text=True)
    if done.returncode == 128:
        pytest.skip(f"not a git checkout: {done.stderr.strip()}")
    assert done.stdout.split() == ignored


def test_the_readme_table_is_the_committed_comparisons_summary():
    """The README's Results table is not typed: it is the summary the report builds from the committed comparison's
    raw results (docs/results/fashion-mnist/results.json), every row and figure, over the protocol's every seed."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    results = json.loads((root / "docs/results/fashion-mnist/results.json").read_text())
    every = compare.every_seed(results["selection"])
    # each run by its folder's seed (an evaluation's own "seed" is the corruptions' draw, 0 in every run)
    seeds = {family: [int(run["run"].rsplit("-s", 1)[1]) for run in runs] for family, runs in results["runs"].items()}
    assert results["protocol"]["seeds"] == [0, 1, 2, 3, 4]
    expected = {f: results["protocol"]["seeds"][: None if f in every else compare.FEW_SEEDS] for f in results["runs"]}
    assert seeds == expected and compare.FEW_SEEDS == 3
    table = compare.summary_table(results["runs"])
    assert table.count("\n") >= 10 and table in (root / "README.md").read_text()
