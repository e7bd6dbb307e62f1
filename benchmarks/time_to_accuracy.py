"""Training time until Fashion-MNIST test accuracy first reaches a target (issue 5: 88%).

    python benchmarks/time_to_accuracy.py [--spec models/fashion_mnist.toml] [--target 0.88]
        [--max-epochs 20] [--data-root DIR] [--device auto] [--threads N] [--out FILE.json]

Trains the spec (784-400-400-10 BBB by default) with ``fit`` one epoch at a time, as one run
(the callback evaluates between epochs, with the training RNG untouched), and after every epoch
measures test accuracy of a 10-draw posterior predictive. Reports the training seconds summed
over the epochs up to the first one at or above ``--target`` (evaluation time excluded), the
epoch, and the whole curve, as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import pyro
import torch

from pyro_bbb.config import apply_overrides, load_config
from pyro_bbb.experiment import build_model, hardware_string, json_safe, load_data
from pyro_bbb.guide import MeanFieldGuide
from pyro_bbb.infer import fit
from pyro_bbb.predict import predictive_accuracy

ROOT = Path(__file__).resolve().parents[1]


class _Reached(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, default=ROOT / "models" / "fashion_mnist.toml")
    parser.add_argument("--target", type=float, default=0.88)
    parser.add_argument("--max-epochs", type=int, default=20)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = [f"training.epochs={args.max_epochs}", f'training.device="{args.device}"']
    if args.data_root is not None:
        overrides.append(f"data.root={json.dumps(str(args.data_root.resolve()))}")
    config = apply_overrides(load_config(args.spec), overrides)
    data = load_data(config)
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
    try:
        fit(model, guide, data.x_train, data.y_train, epochs=t.epochs, batch_size=t.batch_size,
            lr=t.lr, num_particles=t.num_particles, kl_weighting=t.kl_weighting,
            seed=config.seed, device=t.device, progress=False, callback=track,
            lr_schedule=t.lr_schedule, cuda_graph=t.cuda_graph)
    except _Reached:
        pass
    reached = curve[-1]["test_accuracy"] >= args.target
    result = {"spec": str(args.spec), "target": args.target, "reached": reached,
              "epochs": curve[-1]["epoch"],
              "seconds_to_target": curve[-1]["train_seconds"] if reached else None,
              "curve": curve, "device": str(next(guide.parameters()).device),
              "hardware": hardware_string(next(guide.parameters()).device),
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    text = json.dumps(json_safe(result), indent=1)
    if args.out is not None:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
