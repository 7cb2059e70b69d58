"""Robustness of a trained run: clean, the benchmark's corruptions x severities, low resolution x2 / x4, and the
attack suite over an epsilon sweep (robust accuracy = the worst case per image over FGSM, APGD with restarts and the
bpda and exact-projection gradients through the smoothing, Square, transfer); for the plain model and with test-time
smoothing, each with sanity checks (random noise of the same norm, APGD at 32/255).

    python tools/evaluate.py runs/demo                      # the run's own test data; writes runs/demo/eval/
    accelerate launch tools/evaluate.py runs/cifar --data-dir ~/cifar10 -b 256
    python tools/evaluate.py runs/demo --epsilons 2,8 --pgd-steps 50 --pipelines smoothed
    python tools/evaluate.py runs/demo --attack naive       # only to see what gradient masking would report
    python tools/evaluate.py runs/demo --attack-limit 200   # attack 200 images, every other condition on all
    python tools/evaluate.py runs/demo --quick              # a first look in minutes (robustness.QUICK)

Writes results.json, results.csv, results.md (the tables it also prints), corruptions.png and adversarial.png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from accelerate import PartialState

from isvs_triton import cli
from isvs_triton.data import DataError
from isvs_triton.robustness import QUICK, EvalConfig, evaluate_run, markdown
from isvs_triton.robustness.config import choices, describe


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python tools/evaluate.py",
        usage="%(prog)s RUN [-h] [--quick] [--SETTING VALUE ...]",
        description=__doc__.split("\n\n")[0],
        argument_default=argparse.SUPPRESS,  # only the flags given reach the settings: --quick's stay under them
    )
    parser.add_argument("run", help="a run folder (model.safetensors and run.json)")
    parser.add_argument(
        "--quick", action="store_true", help=f"a first look in minutes: {describe(QUICK)}, under the flags given"
    )
    epsilons = {"type": lambda text: [e / 255 for e in cli.comma_list(float)(text)], "metavar": "EPS/255,...",
                "help": "L-inf radii in 1/255, comma-separated (default: 1,2,4,8 to 64 px, else 1,2,4)"}  # fmt: skip
    output = {"help": "the report's folder (default: RUN/eval)"}
    special = {"epsilons": epsilons, "output": output, "batch_size": {"names": ["--batch-size", "-b"]}}
    cli.add_fields(parser, EvalConfig, accepted=choices(), special=special)
    return parser


def main(argv: list[str] | None = None) -> dict:
    parser = _parser()
    given = vars(parser.parse_args(argv))
    run, quick = given.pop("run"), given.pop("quick", False)
    settings = {"output": str(Path(run) / "eval"), **(QUICK if quick else {}), **given}
    try:
        results = evaluate_run(run, **settings)
    except (ValueError, DataError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    if PartialState().is_main_process:
        print(markdown(results))
        print(f"{results['test_images']} images in {results['seconds']:.1f} s; written to {settings['output']}")
    return results


if __name__ == "__main__":
    main()
