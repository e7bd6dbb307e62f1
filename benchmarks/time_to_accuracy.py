"""Training time until Fashion-MNIST test accuracy first reaches a target (issue 5: 88%).

    python benchmarks/time_to_accuracy.py [--spec models/fashion_mnist.toml] [--target 0.88]
        [--max-epochs 20] [--data-root DIR] [--device auto] [--threads N] [--out FILE.json]

Trains the spec (784-400-400-10 BBB by default) with ``fit`` one epoch at a time, as one run
(the callback evaluates between epochs, with the training RNG untouched), and after every epoch
measures test accuracy of a 10-draw posterior predictive. Reports the training seconds summed
over the epochs up to the first one at or above ``--target`` (evaluation time excluded), the
epoch, and the whole curve, as JSON (printed, and written to ``--out`` when given: a new file;
an existing one is never replaced). Ctrl-C after the first epoch still reports the curve so far
(exit status 130).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import pyro
import torch

from pyro_bbb.argtypes import number_in, positive_int, run_script
from pyro_bbb.config import apply_overrides, load_config
from pyro_bbb.experiment import build_model, hardware_string, json_safe, load_data
from pyro_bbb.guide import MeanFieldGuide
from pyro_bbb.infer import fit, resolve_device
from pyro_bbb.predict import predictive_accuracy

ROOT = Path(__file__).resolve().parents[1]


class _Reached(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, default=ROOT / "models" / "fashion_mnist.toml",
                        help="classification spec to train (models/fashion_mnist.toml)")
    parser.add_argument("--target", type=number_in(0.0, 1.0, include_high=True), default=0.88,
                        help="test accuracy to reach, a fraction in (0, 1] (0.88)")
    parser.add_argument("--max-epochs", type=positive_int, default=20,
                        help="stop after this many epochs if the target is not reached (20)")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="Fashion-MNIST IDX folder (default: the spec's, else "
                        "/usr/share/datasets/fashion-mnist)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (auto)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=None,
                        help="also write the JSON to this new file (never replaces one)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.out is not None:
        if args.out.is_dir():
            parser.error(f"--out {args.out} is a folder: give a new file name, e.g. "
                         f"{args.out / 'time_to_accuracy.json'}")
        if args.out.exists():
            parser.error(f"--out {args.out} already exists: choose a new file name (an earlier "
                         "result is never replaced)")
        if args.out.parent.exists() and not args.out.parent.is_dir():
            parser.error(f"--out {args.out}: {args.out.parent} is not a folder")
    overrides = [f"training.epochs={args.max_epochs}",
                 f"training.device={json.dumps(args.device)}"]
    if args.data_root is not None:
        overrides.append(f"data.root={json.dumps(str(args.data_root.resolve()))}")
    try:
        config = apply_overrides(load_config(args.spec), overrides)
        if config.data.task != "classification":
            raise ValueError(f"--spec {args.spec}: test accuracy needs a classification spec, "
                             f"got {config.data.kind!r} data ({config.data.task})")
        resolve_device(config.training.device)  # "cuda" without a GPU: say so now
        data = load_data(config)
    except (OSError, ValueError) as err:
        parser.error(str(err))
    if args.out is not None:
        try:  # now, not after the training
            args.out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            parser.error(f"--out {args.out}: cannot create its folder ({err.strerror or err})")
    if args.threads:
        torch.set_num_threads(args.threads)
    model = build_model(config, data.x_train.shape[1])
    pyro.set_rng_seed(config.seed)  # the guide's initial locs: as run_experiment draws them
    guide = MeanFieldGuide(model, init_rho=config.guide.init_rho)
    curve: list[dict] = []

    def track(record) -> None:
        acc = predictive_accuracy(model, guide, data.x_test, data.y_test, num_samples=10)
        seconds = (curve[-1]["train_seconds"] if curve else 0.0) + record.seconds
        curve.append({"epoch": record.epoch + 1, "train_seconds": seconds, "test_accuracy": acc})
        print(f"epoch {record.epoch + 1}: {seconds:.1f} s of training, test accuracy {acc:.4f}",
              flush=True)
        if acc >= args.target:
            raise _Reached

    t = config.training
    interrupted = None
    try:
        fit(model, guide, data.x_train, data.y_train, epochs=t.epochs, batch_size=t.batch_size,
            lr=t.lr, num_particles=t.num_particles, kl_weighting=t.kl_weighting,
            seed=config.seed, device=t.device, progress=False, callback=track,
            lr_schedule=t.lr_schedule, cuda_graph=t.cuda_graph)
    except _Reached:
        pass
    except KeyboardInterrupt:  # keep the epochs done
        if not curve:
            raise
        interrupted = f"Ctrl-C in epoch {curve[-1]['epoch'] + 1}: the curve up to then"
    reached = curve[-1]["test_accuracy"] >= args.target
    result = {"spec": str(args.spec), "target": args.target, "reached": reached,
              "epochs": curve[-1]["epoch"],
              "seconds_to_target": curve[-1]["train_seconds"] if reached else None,
              "curve": curve, "device": str(next(guide.parameters()).device),
              "hardware": hardware_string(next(guide.parameters()).device),
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if interrupted:
        result["interrupted"] = interrupted
    text = json.dumps(json_safe(result), indent=1)
    print(text)
    if args.out is not None:
        try:
            with open(args.out, "x") as f:  # "x": never replaces a file made meanwhile
                f.write(text + "\n")
        except OSError as err:
            print(f"error: could not write --out {args.out} ({err}); the JSON is printed above",
                  file=sys.stderr)
            return 1
    if interrupted:
        print(f"interrupted ({interrupted} is in the JSON above)", file=sys.stderr)
        return 130
    return 0


def cli(argv: list[str] | None = None) -> int:
    """``main`` with a diverged training and Ctrl-C reported in one line (``run_script``)."""
    return run_script(main, argv, "before the first epoch ended: nothing was written")


if __name__ == "__main__":
    sys.exit(cli())
