"""Paired differences between two rows of a comparison's results.json, per column: mean [95 % t-interval] over seeds.

    python tools/paired.py docs/results/fashion-mnist/results.json "isvs fixed + events solver" "isvs fixed"
    python tools/paired.py docs/results/fashion-mnist/results.json "isvs fixed:smoothed" "isvs fixed:plain"
    python tools/paired.py A/results.json "isvs fixed" "isvs fixed" \
        --b-results B/results.json                  # row b from another comparison of the same protocol and seeds

A row is ``family[:pipeline]`` (pipeline ``plain`` by default), as in the comparison's tables; both rows need the same
seeds (with --b-results: the same seeds of the same setting, so that each seed's validation split, training subset
and test images are the same in both runs).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: the repository root
from recipes.compare import _columns, difference  # noqa: E402


def _row(runs: dict, name: str) -> list[dict]:
    """The row's pipeline results, one per seed (in the order of the protocol's seeds)."""
    family, _, pipeline = name.partition(":")
    if family not in runs or (pipeline or "plain") not in runs[family][0]["pipelines"]:
        accepted = [f"{f}:{p}" for f, seeds in runs.items() for p in seeds[0]["pipelines"]]
        raise SystemExit(f"no row {name!r} in the results; accepted: {accepted}")
    return [seed["pipelines"][pipeline or "plain"] for seed in runs[family]]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", help="a comparison's results.json")
    parser.add_argument("a", help="family[:pipeline]")
    parser.add_argument("b", help="family[:pipeline], subtracted")
    parser.add_argument("--b-results", help="read row b from this results.json (another run of the same setting)")
    args = parser.parse_args(argv)
    results = json.loads(Path(args.results).read_text())
    other = json.loads(Path(args.b_results).read_text()) if args.b_results else results
    for key in ("setting", "seeds", "train"):  # the same protocol, so that seed k means the same split in both
        if other["protocol"][key] != results["protocol"][key]:
            raise SystemExit(f"--b-results ran {key} {other['protocol'][key]!r}, not {results['protocol'][key]!r}")
    a, b = _row(results["runs"], args.a), _row(other["runs"], args.b)
    print(f"{min(len(a), len(b))} seeds both rows have")  # a family of fewer seeds has the first of them
    for column, read in _columns(results["runs"]):
        cell = difference(a, b, read)
        if cell:  # a column with a missing value (an attack not run) is left out
            print(f"{column:>22}: {cell}")


if __name__ == "__main__":
    main()
