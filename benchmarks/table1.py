"""Blundell et al. 2015, Table 1 on Fashion-MNIST: test error, NLL and ECE of 784-H-H-10 networks.

    python benchmarks/table1.py [--widths 400 800 1200] [--methods sgd dropout bbb_gaussian
        bbb_mixture] [--epochs 20] [--out DIR] [--data-root DIR] [--threads N] [--smoke]
        (--help lists every option)

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
rerun (delete it to recompute), so an interrupted grid continues where it stopped. A cell is
reused only if it was computed with the same settings (the BBB cell's whole spec, the point
methods' data, network, epochs, batch size, lr, seed and dropout; not the data folder's path):
a rerun with other settings into the same OUT stops with an error naming the differences
before anything trains. An OUT without ``cells/`` that already holds ``table1.json``,
``table1.md`` or ``runs/`` (another tool's, or a results folder) is refused. The script prints
and writes ``OUT/table1.json`` and ``OUT/table1.md`` (the README table). Each cell records the
hardware it trained on: the spec's device for BBB, the CPU for SGD and dropout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pyro
import torch

from pyro_bbb import __version__
from pyro_bbb.argtypes import number_in, positive_float, positive_int, run_script, seed
from pyro_bbb.compare import evaluate_draws
from pyro_bbb.config import apply_overrides, config_to_dict, load_config, smoke_config
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
    parser.add_argument("--widths", type=positive_int, nargs="+", default=[400, 800, 1200],
                        metavar="H", help="hidden widths H of 784-H-H-10 (400 800 1200)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS),
                        help="rows of the table (all four)")
    parser.add_argument("--epochs", type=positive_int, default=20,
                        help="training epochs of every cell (20)")
    parser.add_argument("--spec", type=Path, default=ROOT / "models" / "fashion_mnist.toml",
                        help="Fashion-MNIST BBB spec whose width and prior the grid replaces "
                        "(models/fashion_mnist.toml)")
    parser.add_argument("--lr", type=positive_float, default=1e-3,
                        help="Adam learning rate of every cell (1e-3)")
    parser.add_argument("--lr-schedule", choices=["constant", "cosine"], default="cosine",
                        help="learning-rate schedule of the BBB cells (cosine)")
    parser.add_argument("--dropout", type=number_in(0.0, 1.0, include_low=True), default=0.5,
                        help="dropout rate p of the dropout row, in [0, 1) (0.5)")
    parser.add_argument("--gaussian-sigma", type=positive_float, default=1.0,
                        help="σ of the N(0, σ²) prior of the bbb_gaussian row (1.0)")
    parser.add_argument("--num-samples", type=positive_int, default=100,
                        help="posterior draws / dropout masks of the test evaluation (100)")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="Fashion-MNIST IDX folder (default: the spec's, else "
                        "/usr/share/datasets/fashion-mnist)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder, reused by a rerun (default runs/table1; with "
                        "--smoke runs/table1_smoke, apart from real cells)")
    parser.add_argument("--seed", type=seed, default=0, help="seed of every cell (0)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny run: 512 training and test images, 1 epoch, 10 samples")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
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


def cell_settings(args, method: str, config) -> dict:
    """What a cached cell must have been computed with to be reused: a BBB cell's whole spec
    (but its name and data folder), the point methods' data, network, seed, epochs, batch
    size and lr, and the dropout row's rate and number of masks."""
    spec = config_to_dict(config)  # cell_config(args, method, width)
    spec.pop("name")
    spec["data"].pop("root", None)
    if method.startswith("bbb"):
        return spec
    settings = {"data": spec["data"], "network": spec["network"], "seed": spec["seed"],
                "training": {k: spec["training"][k] for k in ("epochs", "batch_size", "lr")}}
    if method == "dropout":
        settings.update(dropout=args.dropout, num_samples=spec["evaluation"]["num_samples"])
    return settings


def _flat(table: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def cache_differences(cached: dict, method: str, settings: dict) -> list[str]:
    """How the settings of a cached cell differ from this run's, as "key: cached A, now B".
    Cells written before the settings were recorded are compared on what they kept: epochs,
    the dropout rate, a BBB cell's prior, init_rho and lr schedule."""
    if "settings" in cached:
        old, new = _flat(cached["settings"]), _flat(settings)
    else:
        now = _flat(settings)
        kept = {"training.epochs": "epochs", "dropout": "dropout",
                "training.lr_schedule": "lr_schedule", "guide.init_rho": "init_rho"}
        old = {key: cached[name] for key, name in kept.items() if key in now and name in cached}
        if isinstance(cached.get("prior"), dict) and method.startswith("bbb"):
            old.update(_flat(cached["prior"], "prior."))
        new = {key: now.get(key) for key in old}
    return [f"{key}: cached {old.get(key, 'unset')!r}, now {new.get(key, 'unset')!r}"
            for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]


def check_args(parser: argparse.ArgumentParser, args) -> dict[str, dict]:
    """Everything that can be checked before a cell trains, with a one-line ``parser.error``
    (exit status 2) and before OUT is created: repeated widths or methods, OUT, the spec and
    every cell's settings, cached cells computed with other settings, the data. Returns the
    cached cells that will be reused."""
    for option, values in (("--widths", args.widths), ("--methods", args.methods)):
        repeated = sorted({str(v) for v in values if values.count(v) > 1})
        if repeated:
            parser.error(f"{option}: {', '.join(repeated)} given more than once")
    if args.out is None:  # smoke cells must not land among (and be reused as) real ones
        args.out = ROOT / "runs" / ("table1_smoke" if args.smoke else "table1")
    out = args.out
    if out.exists() and not out.is_dir():
        parser.error(f"--out {out} is a file, not a folder")
    if out.is_dir() and not (out / "cells").is_dir():  # not an OUT of this script
        taken = [name for name in ("table1.json", "table1.md", "runs") if (out / name).exists()]
        if taken:
            parser.error(f"--out {out} already holds {', '.join(taken)} but no cells/ folder "
                         "(not an earlier table1.py OUT; its files are never replaced): choose "
                         "another folder")
    cached: dict[str, dict] = {}
    first_config = None
    for width in args.widths:
        for method in args.methods:
            name = f"{method}_{width}"
            try:
                config = cell_config(args, method, width)
                settings = cell_settings(args, method, config)
            except (OSError, ValueError) as err:
                parser.error(str(err))
            if config.data.kind != "fashion_mnist":
                parser.error(f"--spec {args.spec}: table1.py needs a Fashion-MNIST spec "
                             f"([data] kind = \"fashion_mnist\"), got kind {config.data.kind!r}")
            path = out / "cells" / f"{name}.json"
            if not path.exists():
                first_config = first_config or config
                continue
            try:
                cell = json.loads(path.read_text())
                if not isinstance(cell, dict):
                    raise ValueError("not a JSON object")
            except (OSError, ValueError) as err:
                parser.error(f"cached cell {path} is unreadable ({err}): delete it to recompute "
                             "the cell")
            differences = cache_differences(cell, method, settings)
            if differences:
                parser.error(f"cached cell {path} was computed with other settings ("
                             f"{'; '.join(differences)}): use another --out, or delete the file "
                             "to recompute the cell")
            cached[name] = cell
    if first_config is not None:  # some cell will train: its data must load
        try:
            load_data(first_config)
        except (OSError, ValueError) as err:
            parser.error(str(err))
    return cached


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
            "init_rho": config.guide.init_rho, "lr_schedule": t.lr_schedule,
            "hardware": hardware_string(next(guide.parameters()).device)}


def run_point_method(args, method: str, width: int) -> dict:
    config = cell_config(args, method, width)  # same data, network and seed as the BBB cells
    data = load_data(config)
    model = build_model(config, data.x_train.shape[1])
    common = dict(epochs=config.training.epochs, batch_size=config.training.batch_size,
                  lr=args.lr, weight_decay=0.0, seed=args.seed)
    common["progress"] = not args.no_progress
    if method == "sgd":
        result = run_deterministic(model, data.x_train, data.y_train, num_samples=1, **common)
    else:
        result = run_mc_dropout(model, data.x_train, data.y_train, p=args.dropout,
                                num_samples=config.evaluation.num_samples, **common)
    row = evaluate_draws(model, result.draws, data.x_train[:2000], data.x_test, data.y_test)
    return {"accuracy": row["accuracy"], "nll": row["nll"], "ece": row["ece"],
            "train_seconds": result.train_seconds, "epochs": config.training.epochs,
            "dropout": args.dropout if method == "dropout" else 0.0,
            "hardware": hardware_string("cpu")}  # the point methods train on the CPU


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
    parser = build_parser()
    args = parser.parse_args(argv)
    cached = check_args(parser, args)
    try:
        (args.out / "cells").mkdir(parents=True, exist_ok=True)
    except OSError as err:
        parser.error(f"--out {args.out}: cannot create the folder ({err.strerror or err})")
    if args.threads:
        torch.set_num_threads(args.threads)
    cells: dict[str, dict] = {}
    for width in args.widths:  # width by width: a stopped grid has whole columns
        for method in args.methods:
            name = f"{method}_{width}"
            path = args.out / "cells" / f"{name}.json"
            if name in cached:
                cells[name] = cached[name]
                continue
            start = time.perf_counter()
            runner = run_bbb if method.startswith("bbb") else run_point_method
            cell = runner(args, method, width)
            cell.update(method=method, width=width, wall_seconds=time.perf_counter() - start,
                        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        settings=cell_settings(args, method,
                                               cell_config(args, method, width)))
            _write_atomic(path, json.dumps(json_safe(cell), indent=1))
            cells[name] = cell
            print(f"{name}: accuracy {cell['accuracy']:.4f}, NLL {cell['nll']:.4f}, "
                  f"ECE {cell['ece']:.4f}, {cell['train_seconds']:.0f} s", flush=True)
    table = markdown(cells, args.widths, args.methods)
    summary = {"cells": cells, "markdown": table, "settings": {
        k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "hardware": hardware_string("cpu"), "threads": torch.get_num_threads(),
        "pyro_bbb_version": __version__}
    _write_atomic(args.out / "table1.json", json.dumps(json_safe(summary), indent=1))
    _write_atomic(args.out / "table1.md", table + "\n")
    print(table)
    return 0


def _write_atomic(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all: an interrupted write leaves no truncated cell."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


def cli(argv: list[str] | None = None) -> int:
    """``main`` with a diverged training and Ctrl-C reported in one line (``run_script``)."""
    return run_script(main, argv, "the finished cells are kept in OUT/cells; the same command "
                      "continues from there")


if __name__ == "__main__":
    sys.exit(cli())
