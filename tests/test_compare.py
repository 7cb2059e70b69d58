"""recipes/compare.py --quick end to end: every configuration, three seeds, the table, plots and figure (CI)."""

import json

import pytest

from recipes import compare


@pytest.mark.slow
def test_quick_comparison(tmp_path):
    results = compare.main(["--quick", "--output", str(tmp_path)])
    assert list(results) == list(compare.CONFIGURATIONS) and all(len(runs) == 3 for runs in results.values())
    report = (tmp_path / "results.md").read_text()
    for name in compare.CONFIGURATIONS:
        assert f"| {name} | plain |" in report
    for name in compare.SMOOTHED_AT_TEST:
        assert f"| {name} | smoothed (BPDA) |" in report
        assert all(r["attacks"]["gradient_through_smoothing"] == "bpda" for r in results[name])
    assert report.count("±") > 100
    seeds = {
        json.loads((tmp_path / "runs" / f"standard-s{s}" / "run.json").read_text())["config"]["seed"] for s in (0, 1, 2)
    }
    assert seeds == {0, 1, 2}
    for png in ("comparison.png", "examples.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    again = compare.main(["--quick", "--output", str(tmp_path), "--configurations", "standard", "--seeds", "0"])
    assert again["standard"][0] == results["standard"][0], "finished runs are reused, not retrained"
