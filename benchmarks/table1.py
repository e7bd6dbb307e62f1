"""Blundell et al. 2015, Table 1 on Fashion-MNIST: test error, NLL and ECE of 784-H-H-10 networks.

    python benchmarks/table1.py [--widths 400 800 1200] [--methods sgd dropout bbb_gaussian
        bbb_mixture] [--epochs 20] [--out DIR] [--data-root DIR] [--threads N] [--smoke]

Cells (one per method × width H), all trained with minibatch 128 and Adam:

* ``sgd``: the deterministic network (maximum likelihood), evaluated at its weights;
* ``dropout``: the same trained with dropout rate ``--dropout`` on the hidden layers, evaluated
  as MC dropout over ``--num-samples`` masks;
* ``bbb_gaussian`` / ``bbb_mixture``: Bayes by Backprop (``models/fashion_mnist.toml`` with
  the width and prior replaced: N(0, ``--gaussian-sigma``²), or the spec's scale mixture),
  evaluated over ``--num-samples`` posterior draws. BBB cells are written as run folders
  (``OUT/runs/<cell>/``, checkpoint included, e.g. for ``benchmarks/pruning.py``) and record the
  test accuracy of a 10-draw predictive after every epoch, from which the time to 88% comes.

Every cell's JSON goes to ``OUT/cells/<cell>.json`` as soon as it finishes and is reused on a
rerun (delete it to recompute), so an interrupted grid continues where it stopped. The script
prints and writes ``OUT/table1.json`` and ``OUT/table1.md`` (the README table).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pyro
import torch

from pyro_bbb import __version__
from pyro_bbb.compare import evaluate_draws
from pyro_bbb.config import apply_overrides, load_config, smoke_config
from pyro_bbb.experiment import (
    ExperimentResult,
    build_model,
    evaluate,
    hardware_string,
    json_safe,
    load_data,
    write_run,
)
from pyro_bbb.guide import MeanFieldGuide
from pyro_bbb.infer import fit
from pyro_bbb.infer.methods import run_deterministic, run_mc_dropout
from pyro_bbb.predict import predictive_accuracy

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("sgd", "dropout", "bbb_gaussian", "bbb_mixture")
LABELS = {"sgd": "SGD, no dropout", "dropout": "SGD, dropout (MC)",
          "bbb_gaussian": "BBB, Gaussian prior", "bbb_mixture": "BBB, scale-mixture prior"}
TRACK_SAMPLES = 10
TARGET_ACCURACY = 0.88  # issue 5: time to 88% test accuracy


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", type=int, nargs="+", default=[400, 800, 1200])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--spec", type=Path, default=ROOT / "models" / "fashion_mnist.toml",
                        help="BBB spec whose width and prior the grid replaces")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-schedule", choices=["constant", "cosine"], default="cosine")
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--gaussian-sigma", type=float, default=1.0)
    parser.add_argument("--num-samples", type=int, default=100)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "table1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny run: 512 training and test images, 1 epoch, 10 samples")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def cell_config(args, method: str, width: int):
    """The BBB spec of one cell: the base spec with this width, prior, epochs and schedule."""
    config = load_config(args.spec)
    overrides = [f"network.hidden_sizes=[{width}, {width}]", f"training.epochs={args.epochs}",
                 f"training.lr={args.lr}", f"training.lr_schedule={json.dumps(args.lr_schedule)}",
                 f"evaluation.num_samples={args.num_samples}", f"seed={args.seed}",
                 f'name="table1_{method}_{width}"']
    if method == "bbb_gaussian":
        overrides += ['prior.kind="gaussian"', f"prior.sigma={args.gaussian_sigma}"]
    if args.data_root is not None:
        overrides.append(f"data.root={json.dumps(str(args.data_root.resolve()))}")
    config = apply_overrides(config, overrides)
    return smoke_config(config) if args.smoke else config


def run_bbb(args, method: str, width: int) -> dict:
    config = cell_config(args, method, width)
    data = load_data(config)
    model = build_model(config, data.x_train.shape[1])
    pyro.set_rng_seed(config.seed)  # the guide's initial locs: as run_experiment draws them
    guide = MeanFieldGuide(model, init_rho=config.guide.init_rho)
    curve: list[dict] = []

    def track(record) -> None:  # a 10-draw predictive each epoch, off the training RNG stream
        acc = predictive_accuracy(model, guide, data.x_test, data.y_test,
                                  num_samples=TRACK_SAMPLES)
        seconds = sum(r["epoch_seconds"] for r in curve) + record.seconds
        curve.append({"epoch": record.epoch + 1, "epoch_seconds": record.seconds,
                      "train_seconds": seconds, "test_accuracy": acc})

    t = config.training
    fitted = fit(model, guide, data.x_train, data.y_train, epochs=t.epochs,
                 batch_size=t.batch_size, lr=t.lr, num_particles=t.num_particles,
                 kl_weighting=t.kl_weighting, seed=config.seed, device=t.device,
                 progress=not args.no_progress, callback=track, lr_schedule=t.lr_schedule)
    evaluation = evaluate(config, model, guide, data)
    run_dir = args.out / "runs" / config.name
    write_run(ExperimentResult(config, model, guide, fitted, evaluation, data), run_dir,
              exist_ok=True)
    reached = next((c["train_seconds"] for c in curve if c["test_accuracy"] >= TARGET_ACCURACY),
                   None)
    m = evaluation.metrics
    return {"accuracy": m["accuracy"], "nll": m["nll"], "ece": m["ece"], "brier": m["brier"],
            "train_seconds": fitted.seconds, "epochs": t.epochs, "run_dir": str(run_dir),
            "curve": curve, "seconds_to_88": reached, "prior": config.prior.to_dict(),
            "init_rho": config.guide.init_rho, "lr_schedule": t.lr_schedule}


def run_point_method(args, method: str, width: int) -> dict:
    config = cell_config(args, method, width)  # same data, network and seed as the BBB cells
    data = load_data(config)
    model = build_model(config, data.x_train.shape[1])
    common = dict(epochs=config.training.epochs, batch_size=config.training.batch_size,
                  lr=args.lr, weight_decay=0.0, seed=args.seed)
    if method == "sgd":
        result = run_deterministic(model, data.x_train, data.y_train, num_samples=1, **common)
    else:
        result = run_mc_dropout(model, data.x_train, data.y_train, p=args.dropout,
                                num_samples=config.evaluation.num_samples, **common)
    row = evaluate_draws(model, result.draws, data.x_train[:2000], data.x_test, data.y_test)
    return {"accuracy": row["accuracy"], "nll": row["nll"], "ece": row["ece"],
            "train_seconds": result.train_seconds, "epochs": config.training.epochs,
            "dropout": args.dropout if method == "dropout" else 0.0}


def markdown(cells: dict[str, dict], widths: list[int], methods: list[str]) -> str:
    lines = ["| method | " + " | ".join(f"H = {w}: error / NLL / ECE" for w in widths) + " |",
             "|---|" + "---|" * len(widths)]
    for method in methods:
        entries = []
        for width in widths:
            c = cells.get(f"{method}_{width}")
            entries.append("–" if c is None else
                           f"{100 * (1 - c['accuracy']):.2f}% / {c['nll']:.3f} / {c['ece']:.4f}")
        lines.append(f"| {LABELS[method]} | " + " | ".join(entries) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.epochs < 1:
        print(f"error: --epochs must be at least 1, got {args.epochs}", file=sys.stderr)
        return 2
    (args.out / "cells").mkdir(parents=True, exist_ok=True)
    cells: dict[str, dict] = {}
    for width in args.widths:  # width by width: a stopped grid has whole columns
        for method in args.methods:
            name = f"{method}_{width}"
            path = args.out / "cells" / f"{name}.json"
            if path.exists():
                cells[name] = json.loads(path.read_text())
                continue
            start = time.perf_counter()
            runner = run_bbb if method.startswith("bbb") else run_point_method
            cell = runner(args, method, width)
            cell.update(method=method, width=width, wall_seconds=time.perf_counter() - start,
                        date=datetime.now(timezone.utc).isoformat(timespec="seconds"))
            path.write_text(json.dumps(json_safe(cell), indent=1))
            cells[name] = cell
            print(f"{name}: accuracy {cell['accuracy']:.4f}, NLL {cell['nll']:.4f}, "
                  f"ECE {cell['ece']:.4f}, {cell['train_seconds']:.0f} s", flush=True)
    table = markdown(cells, args.widths, args.methods)
    summary = {"cells": cells, "markdown": table, "settings": {
        k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "hardware": hardware_string("cpu"), "threads": torch.get_num_threads(),
        "pyro_bbb_version": __version__}
    (args.out / "table1.json").write_text(json.dumps(json_safe(summary), indent=1))
    (args.out / "table1.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
