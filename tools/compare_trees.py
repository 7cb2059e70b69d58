"""Throughput of ``isvs.sparsify`` at the defaults in two or more source trees, alternating, in one run.

    python tools/compare_trees.py 'b5b9b57^' .             # a revision against the working tree
    python tools/compare_trees.py HEAD . --sizes 32,224 --rounds 3 --threads 1
    python tools/compare_trees.py HEAD . --preset fast     # a preset's constants instead of the defaults

A tree is a git revision (checked out into a temporary worktree, removed afterwards) or a directory holding an
``isvs_triton`` package (``.``: the working tree). Every round times each tree in a fresh process, one after the
other (best of ``--repeat`` warm calls on the same bundled-photograph crops, saved once by this tree so that every
tree smooths the same images), so that a drift of the machine's speed reaches every tree alike; the ratios are
taken round by round against the last tree. This machine's timings move by +-15 % between runs: read the range of
the ratios, not one round.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: the repository root
from isvs_triton.config import PRESETS  # noqa: E402
from isvs_triton.samples import BENCH_SETTINGS, crops  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# run in each tree's own process, the tree first on the path; prints images/s
TIMING = """
import sys, time
sys.path.insert(0, sys.argv[1])
import torch
import isvs_triton as isvs
from isvs_triton.config import PRESETS
assert isvs.__file__.startswith(sys.argv[1]), isvs.__file__
torch.set_num_threads(int(sys.argv[5]))
x, sparsity, repeat = torch.load(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
solver = PRESETS[sys.argv[6]].kwargs() if sys.argv[6] else {}
for _ in range(2):
    isvs.sparsify(x, sparsity, **solver)
best = float("inf")
for _ in range(repeat):
    start = time.perf_counter()
    isvs.sparsify(x, sparsity, **solver)
    best = min(best, time.perf_counter() - start)
print(x.shape[0] / best)
"""


def checkout(tree: str, into: Path) -> Path:
    """The directory of ``tree``: as given when it holds the package, else a worktree of the git revision."""
    path = Path(tree)
    if (path / "isvs_triton" / "__init__.py").is_file():
        return path.resolve()
    target = into / tree.replace("/", "_").replace("^", "-parent").replace("~", "-back")
    add = ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(target), tree]
    done = subprocess.run(add, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{tree!r} is neither a directory with isvs_triton/ nor a git revision: {done.stderr}")
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trees", nargs="+", help="git revisions or directories; ratios are against the last")
    parser.add_argument("--sizes", default="32", help=f"comma-separated, of {sorted(BENCH_SETTINGS)}")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the trees timed in alternation")
    parser.add_argument("--repeat", type=int, default=5, help="warm calls per tree and round; the best is kept")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads of each tree's run")
    parser.add_argument("--preset", default="", choices=["", *PRESETS], help="a preset (default: the defaults)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    unknown = [s for s in sizes if s not in BENCH_SETTINGS]
    if len(args.trees) < 2 or unknown:
        parser.error(f"give two trees or more and sizes of {sorted(BENCH_SETTINGS)} (got {args.trees}, {sizes})")
    with tempfile.TemporaryDirectory(prefix="isvs-trees-") as scratch:
        scratch = Path(scratch)
        dirs: list[Path] = []
        try:
            for tree in args.trees:  # one at a time: a refused tree still removes the worktrees made before it
                dirs.append(checkout(tree, scratch))
            for size in sizes:
                batch, sparsity = BENCH_SETTINGS[size]
                data = scratch / f"crops{size}.pt"
                torch.save(crops(size, batch, seed=0), data)
                solver = f"the {args.preset} preset" if args.preset else "the defaults"
                print(f"\n{size}x{size}x3, B={batch}, sparsity {sparsity}, {solver}, {args.threads} threads: images/s")
                ratios: list[list[float]] = [[] for _ in args.trees[:-1]]
                for round_ in range(args.rounds):
                    rates = []
                    for tree, path in zip(args.trees, dirs):
                        command = [sys.executable, "-c", TIMING, str(path), str(data), str(sparsity), str(args.repeat)]
                        command += [str(args.threads), args.preset]
                        out = subprocess.run(command, capture_output=True, text=True)
                        if out.returncode:
                            raise SystemExit(f"{tree}: the timing failed:\n{out.stderr}")
                        rates.append(float(out.stdout.split()[-1]))
                    for i, rate in enumerate(rates[:-1]):
                        ratios[i].append(rates[-1] / rate)
                    cells = ", ".join(f"{tree} {rate:,.1f}" for tree, rate in zip(args.trees, rates))
                    print(f"  round {round_ + 1}: {cells}")
                for tree, values in zip(args.trees, ratios):
                    print(f"  {args.trees[-1]} / {tree}: {min(values):.2f}-{max(values):.2f}x over the rounds")
        finally:
            for path in dirs:  # the worktrees made for revisions
                if path.is_relative_to(scratch):
                    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=False)


if __name__ == "__main__":
    main()
