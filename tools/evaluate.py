"""Robustness of a trained run: clean, the benchmark's corruptions x severities, low resolution x2 / x4, and the
attack suite over an epsilon sweep (robust accuracy = the worst case per image over FGSM, PGD with restarts and the
bpda and exact-projection gradients through the smoothing, Square, transfer); for the plain model and with test-time
smoothing, each with sanity checks (random noise of the same norm, PGD at 32/255).

    python tools/evaluate.py runs/demo                      # the run's own test data; writes runs/demo/eval/
    accelerate launch tools/evaluate.py runs/cifar --data-dir ~/cifar10 -b 256
    python tools/evaluate.py runs/demo --epsilons 2,8 --pgd-steps 50 --pipelines smoothed
    python tools/evaluate.py runs/demo --attack naive       # only to see what gradient masking would report
    python tools/evaluate.py runs/demo --attack-limit 200   # attack 200 images, every other condition on all

Writes results.json, results.csv, results.md (the tables it also prints), corruptions.png and adversarial.png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from accelerate import PartialState

from isvs_triton.data import DataError
from isvs_triton.robustness import (
    ATTACK_MODES,
    CONSTANTS,
    CORRUPTIONS,
    DEFAULT_PIPELINES,
    PIPELINES,
    SPLITS,
    evaluate_run,
    markdown,
)


def _list(kind):
    def parse(text: str):
        try:
            return [kind(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated values, got {text!r}") from None

    return parse


class _Defaults(argparse.ArgumentDefaultsHelpFormatter):
    """Every flag's default after its help, except the ones whose help says what None means."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=_Defaults)
    parser.add_argument("run", help="a run folder (model.safetensors and run.json)")
    parser.add_argument("--dataset", help="default: the run's dataset")
    parser.add_argument("--data-dir", help="a local copy of the data (default: the run's)")
    parser.add_argument("--test-split", help="default: the run's")
    parser.add_argument("--image-column", help="default: the run's")
    parser.add_argument("--label-column", help="default: the run's")
    parser.add_argument("--limit-test", type=int, help="evaluate a fixed random subset (seed 0) of this size")
    parser.add_argument(
        "--split",
        choices=SPLITS,
        default="test",
        help="test, or validation: the training images the run held out (--val-fraction)",
    )
    parser.add_argument("-b", "--batch-size", type=int, default=128, help="test images per batch")
    parser.add_argument("--corruptions", type=_list(str), default=list(CORRUPTIONS), help="comma-separated names")
    parser.add_argument("--severities", type=_list(int), default=[1, 2, 3, 4, 5], help="comma-separated, 1-5")
    parser.add_argument("--resolutions", type=_list(int), default=[2, 4], help="low-resolution factors")
    parser.add_argument("--epsilons", type=_list(float), help="in 1/255 (default 1,2,4,8 at 32 px; 1,2,4 at 224 px)")
    parser.add_argument("--pgd-steps", type=int, default=20, help="PGD iterations per start (step 2.5 eps / steps)")
    parser.add_argument("--restarts", type=int, default=2, help="PGD random starts per gradient, losses alternating")
    parser.add_argument("--square-queries", type=int, default=1000, help="Square attack queries per image (0: none)")
    parser.add_argument(
        "--attack-limit", type=int, help="attack only the test images of index below this (default: all)"
    )
    parser.add_argument("--no-sanity", action="store_true", help="skip the random-noise and 32/255 sanity checks")
    parser.add_argument(
        "--pipelines",
        type=_list(str),
        default=list(DEFAULT_PIPELINES),
        help=f"of {list(PIPELINES)}; plain: the model; smoothed: the run's test-time smoothing; adaptive: with the "
        "noise stop; median / gaussian / bilateral / nlmeans: that filter at test time; trained: a filter baseline's "
        f"own filter (default: {','.join(DEFAULT_PIPELINES)})",
    )
    parser.add_argument("--median-size", type=int, default=3, help="the median pipeline's window side (default: 3)")
    parser.add_argument("--gaussian-sigma", type=float, default=0.5, help="the gaussian pipeline's sigma, px (0.5)")
    parser.add_argument(
        "--bilateral-sigma",
        type=float,
        default=0.1,
        help="the bilateral pipeline's value sigma, in [0, 1] units (5 x 5 window, spatial sigma 1 px; default: 0.1)",
    )
    parser.add_argument("--nlmeans-h", type=float, default=0.1, help="the nlmeans pipeline's filter strength (0.1)")
    parser.add_argument(
        "--smoothing-sparsity", type=float, help="the smoothed / adaptive pipelines' sparsity (default: the run's)"
    )
    parser.add_argument(
        "--attack",
        choices=ATTACK_MODES,
        default="suite",
        help="suite: robust accuracy = the worst case over FGSM, PGD (bpda and projection gradients through the "
        "smoothing, restarts), Square and transfer; bpda / projection / naive: PGD with that gradient alone "
        "(naive: what gradient masking would report)",
    )
    parser.add_argument(
        "--constants",
        choices=["auto", *CONSTANTS],
        default="auto",
        help="corruption severity constants; auto: by image size",
    )
    parser.add_argument("--seed", type=int, default=0, help="of the corruptions' and attacks' random draws")
    parser.add_argument("--output", help="default: RUN/eval")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    output = args.output or Path(args.run) / "eval"
    try:
        results = evaluate_run(
            args.run,
            dataset=args.dataset,
            data_dir=args.data_dir,
            test_split=args.test_split,
            image_column=args.image_column,
            label_column=args.label_column,
            limit_test=args.limit_test,
            split=args.split,
            batch_size=args.batch_size,
            corruptions=tuple(args.corruptions),
            severities=tuple(args.severities),
            resolutions=tuple(args.resolutions),
            epsilons=None if args.epsilons is None else [e / 255 for e in args.epsilons],
            pgd_steps=args.pgd_steps,
            restarts=args.restarts,
            square_queries=args.square_queries,
            attack_limit=args.attack_limit,
            attack=args.attack,
            sanity=not args.no_sanity,
            pipelines=tuple(args.pipelines),
            median_size=args.median_size,
            gaussian_sigma=args.gaussian_sigma,
            bilateral_sigma=args.bilateral_sigma,
            nlmeans_h=args.nlmeans_h,
            smoothing_sparsity=args.smoothing_sparsity,
            constants=args.constants,
            seed=args.seed,
            output=output,
            progress=not args.no_progress,
        )
    except (ValueError, DataError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    if PartialState().is_main_process:
        print(markdown(results))
        print(f"{results['test_images']} images in {results['seconds']:.1f} s; written to {output}")
    return results


if __name__ == "__main__":
    main()
