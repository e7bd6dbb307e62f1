"""Pruning by signal-to-noise on Fashion-MNIST (Blundell et al. 2015, Table 2 and Figure 4).

    python benchmarks/pruning.py --checkpoint RUN/checkpoint.pt [--data-root DIR] [--out DIR]
                                 [--proportions 0 0.5 0.75 0.95 0.98] [--num-samples 100]
                                 [--seed 0] [--include-biases] [--threads N] [--smoke]

Without ``--checkpoint`` it first trains ``--spec`` (default models/fashion_mnist.toml) with
``pyro_bbb.experiment.run_experiment`` into ``OUT/training_run``. For each proportion p the p of
weights with the lowest |μ|/σ are set to exactly zero (``pyro_bbb.pruning.prune``) and the pruned
posterior is evaluated on the Fashion-MNIST test set with ``--num-samples`` draws from a generator
seeded with ``--seed`` (the same draws for every p; seed 0 and 100 samples reproduce
``pyro-bbb run``'s own evaluation at p = 0). Prints JSON (rows of proportion, accuracy, error,
NLL, ECE, kept weights, dense and sparse bytes; the target check; hardware and date) and writes
it to OUT/pruning.json with the figures OUT/snr_histogram.png and OUT/pruning_curve.png. An OUT
that already holds any of these (or a training_run/ when training) is refused, never overwritten.
Ctrl-C during the evaluation writes the proportions done so far (exit status 130) and names the
command that evaluates the trained checkpoint without training again.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from pyro_bbb import Categorical, __version__, pruning, pruning_plots
from pyro_bbb.argtypes import int_at_least, run_script
from pyro_bbb.checkpoint import CheckpointError, describe_spec, load_checkpoint
from pyro_bbb.data import DEFAULT_FASHION_MNIST_ROOT, load_fashion_mnist
from pyro_bbb.experiment import hardware_string, json_safe

ROOT = Path(__file__).resolve().parents[1]
TARGET_DROP_AT_95 = 0.002  # issue 3: at 95% removed, accuracy drops by at most 0.2 points
OUTPUTS = ("pruning.json", "snr_histogram.png", "pruning_curve.png")
DEFAULT_SPEC = ROOT / "models" / "fashion_mnist.toml"


def _proportion(text: str) -> float:
    try:
        return pruning.check_proportion(float(text))
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="a pyro-bbb run's checkpoint.pt; "
                        "without it, --spec is trained first")
    parser.add_argument("--spec", type=Path, default=None,
                        help="Fashion-MNIST spec to train when no checkpoint is given "
                        "(models/fashion_mnist.toml)")
    parser.add_argument("--data-root", type=Path, default=None,
                        help=f"Fashion-MNIST IDX folder (default {DEFAULT_FASHION_MNIST_ROOT})")
    parser.add_argument("--out", type=Path, default=None,
                        help="new folder for pruning.json and the figures (default "
                        "runs/pruning-DATE)")
    parser.add_argument("--proportions", type=_proportion, nargs="+",
                        default=list(pruning.DEFAULT_PROPORTIONS),
                        help="fractions of the weights removed, each in [0, 1) "
                        f"({' '.join(f'{p:g}' for p in pruning.DEFAULT_PROPORTIONS)})")
    parser.add_argument("--num-samples", type=int_at_least(1), default=100,
                        help="posterior draws of the test evaluation (100)")
    parser.add_argument("--seed", type=int_at_least(0), default=0,
                        help="seed of the evaluation's draws (0)")
    parser.add_argument("--include-biases", action="store_true",
                        help="rank and prune biases together with the weights")
    parser.add_argument("--threads", type=int_at_least(1), default=None,
                        help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny run: 500 test images, 10 samples (and a 1-epoch training)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no training progress bar and no line per proportion")
    return parser


def _spec_config(args):
    """The spec to train (``--spec``, ``--data-root``, ``--smoke`` applied)."""
    from pyro_bbb.config import apply_overrides, load_config, smoke_config

    config = load_config(args.spec)
    if args.data_root is not None:
        config = apply_overrides(config, [f"data.root={json.dumps(str(args.data_root.resolve()))}"])
    if config.data.kind != "fashion_mnist":
        raise ValueError(f"--spec {args.spec}: pruning.py evaluates on Fashion-MNIST and needs a "
                         f"Fashion-MNIST spec, got kind {config.data.kind!r}")
    return smoke_config(config) if args.smoke else config


def _train(config, out: Path, progress: bool):
    from pyro_bbb.experiment import run_experiment

    result = run_experiment(config, out / "training_run", progress=progress)
    return result.model, result.guide, str(result.files["checkpoint"]), result.metrics


def _check_out(parser: argparse.ArgumentParser, out: Path, training: bool) -> None:
    if out.exists() and not out.is_dir():
        parser.error(f"--out {out} is a file, not a folder")
    earlier = [name for name in OUTPUTS + (("training_run",) if training else ())
               if (out / name).exists()]
    if earlier:
        parser.error(f"--out {out} already holds {', '.join(earlier)} (an earlier run's results, "
                     "never replaced): choose another folder")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.checkpoint is not None and args.spec is not None:
        parser.error("--spec is what is trained without --checkpoint: give one of them")
    if args.out is not None:
        _check_out(parser, args.out, training=args.checkpoint is None)
    try:  # everything that can fail on the user's input, before OUT is made or anything trains
        test = load_fashion_mnist(args.data_root, split="test")
        if args.checkpoint is not None:
            checkpoint = load_checkpoint(args.checkpoint)
            model, guide = checkpoint.model, checkpoint.guide
        else:
            args.spec = args.spec or DEFAULT_SPEC
            config = _spec_config(args)
    except (OSError, ValueError, CheckpointError) as err:
        parser.error(str(err))
    if args.checkpoint is not None:
        if test.images.shape[1] != model.input_size:
            parser.error(f"--checkpoint {args.checkpoint}: the model "
                         f"{describe_spec(model.spec())} takes {model.input_size} features, the "
                         f"Fashion-MNIST test images have {test.images.shape[1]}")
        if not isinstance(model.likelihood, Categorical) or model.likelihood.num_classes != 10:
            parser.error(f"--checkpoint {args.checkpoint}: the model "
                         f"{describe_spec(model.spec())} is not a 10-class classifier")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.out is None:
        from pyro_bbb.experiment import new_run_dir

        args.out = new_run_dir("pruning", ROOT / "runs")
    out = args.out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        parser.error(f"--out {out}: cannot create the folder ({err.strerror or err})")
    started = time.perf_counter()
    if args.checkpoint is not None:
        source = str(args.checkpoint)
        saved_metrics = checkpoint.metadata.get("metrics")
    else:
        model, guide, source, saved_metrics = _train(config, out, not args.no_progress)
    x, y = test.images, test.labels
    num_samples = args.num_samples
    if args.smoke:
        x, y, num_samples = x[:500], y[:500], min(num_samples, 10)
    if x.shape[1] != model.input_size:
        raise SystemExit(f"error: the test images have {x.shape[1]} features, the model "
                         f"{describe_spec(model.spec())} takes {model.input_size}")

    evaluated = time.perf_counter()
    rows, interrupted = [], None
    try:
        for proportion in args.proportions:  # one at a time, for progress: the same rows (each
            # proportion's draws come from a generator seeded afresh with --seed)
            rows += pruning.pruning_curve(model, guide, x, y, [proportion],
                                          num_samples=num_samples,
                                          include_biases=args.include_biases, seed=args.seed)
            if not args.no_progress:
                print(f"{proportion:g} removed: test accuracy {rows[-1]['accuracy']:.4f} "
                      f"({time.perf_counter() - evaluated:.0f} s of evaluation)",
                      file=sys.stderr, flush=True)
    except KeyboardInterrupt:  # keep what is done: the trained model, the rows so far
        again = f"python benchmarks/pruning.py --checkpoint {source}"
        if not rows:
            print(f"\ninterrupted before the first proportion was evaluated; `{again}` "
                  "evaluates the model", file=sys.stderr)
            return 130
        interrupted = (f"Ctrl-C after {len(rows)} of {len(args.proportions)} proportions; "
                       f"`{again}` evaluates them all")
    seconds_eval = time.perf_counter() - evaluated
    by_p = {row["proportion"]: row for row in rows}
    target = None
    if 0.0 in by_p and 0.95 in by_p:
        drop = by_p[0.0]["accuracy"] - by_p[0.95]["accuracy"]
        target = {"accuracy_drop_at_95": drop, "max_drop": TARGET_DROP_AT_95,
                  "met": drop <= TARGET_DROP_AT_95 + 1e-12}

    log_snr = pruning.log10_snr(guide, args.include_biases)
    # the plot spans the 0.1% to 100% quantiles: a few weights with μ ≈ 0 reach far to the left
    span = (float(log_snr.quantile(0.001)), float(log_snr.max()))
    histogram = pruning.log_snr_histogram(log_snr, bins=120, value_range=span)
    thresholds = {p: row["threshold"] for p, row in by_p.items() if p > 0}
    title = f"{describe_spec(model.spec())}: signal-to-noise of {histogram.num_weights:,} weights"
    figures = {
        "snr_histogram": pruning_plots.save_figure(
            pruning_plots.snr_histogram_figure(histogram, thresholds, title=title),
            out / "snr_histogram.png"),
        "pruning_curve": pruning_plots.save_figure(
            pruning_plots.pruning_curve_figure(
                rows, TARGET_DROP_AT_95,
                title=f"Fashion-MNIST test set ({len(y):,} images), "
                      f"{describe_spec(model.spec())}, {num_samples} posterior samples"),
            out / "pruning_curve.png"),
    }
    report = {
        "benchmark": "pruning by signal-to-noise |mu|/sigma",
        "checkpoint": source,
        "model": describe_spec(model.spec()),
        "data": {"name": "fashion_mnist", "split": "test", "num_test": int(y.shape[0]),
                 "root": str(args.data_root or DEFAULT_FASHION_MNIST_ROOT)},
        "num_samples": num_samples,
        "seed": args.seed,
        "include_biases": args.include_biases,
        "rows": rows,
        "target": target,
        "unpruned_metrics_saved_in_checkpoint": saved_metrics,
        "log10_snr_quantiles": {str(q): float(log_snr.quantile(q))
                                for q in (0.001, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)},
        "figures": {k: str(v) for k, v in figures.items()},
        "seconds": {"evaluation": seconds_eval, "total": time.perf_counter() - started},
        "hardware": hardware_string("cpu"),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "pyro_bbb_version": __version__,
        "command": " ".join(["python", "benchmarks/pruning.py", *argv]),
    }
    if interrupted:
        report["interrupted"] = interrupted
    text = json.dumps(json_safe(report), indent=2, allow_nan=False)
    (out / "pruning.json").write_text(text + "\n")
    print(text)
    if interrupted:
        print(f"interrupted ({interrupted}): the rows so far are written", file=sys.stderr)
        return 130
    return 0


def cli(argv: list[str] | None = None) -> int:
    """``main`` with a diverged training and Ctrl-C reported in one line (``run_script``)."""
    return run_script(main, argv, "nothing was written (the results are written at the end)")


if __name__ == "__main__":
    raise SystemExit(cli())
