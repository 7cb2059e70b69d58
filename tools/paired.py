"""Paired differences between two rows of a comparison's results.json, per column: mean [95 % t-interval] over seeds.

    python tools/paired.py docs/results/fashion/results.json "isvs fixed, events solver" "isvs fixed"
    python tools/paired.py docs/results/fashion/results.json "isvs fixed:smoothed" "isvs fixed:plain"

A row is ``family[:pipeline]`` (pipeline ``plain`` by default), as in the comparison's tables; both rows need the same
seeds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: the repository root
from recipes.compare import _columns, difference  # noqa: E402


def _row(runs: dict, name: str) -> list[dict]:
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
    args = parser.parse_args(argv)
    runs = json.loads(Path(args.results).read_text())["runs"]
    a, b = _row(runs, args.a), _row(runs, args.b)
    for column, read in _columns(runs):
        cell = difference(a, b, read)
        if cell:  # a column with a missing value (an attack not run) is left out
            print(f"{column:>22}: {cell}")


if __name__ == "__main__":
    main()
