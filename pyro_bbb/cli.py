"""The ``pyro-bbb`` command: run an experiment spec, evaluate or predict with a checkpoint, draw
the figures of a run, check what a spec's prior implies before fitting.

    pyro-bbb run [SPEC.toml] [--out DIR] [--set key=value ...] [--device D] [--smoke]
                 [--checkpoint-every N]
    pyro-bbb run [SPEC.toml] --resume RUN_DIR [--set training.epochs=E ...]
    pyro-bbb evaluate CHECKPOINT [--spec SPEC.toml] [--set key=value ...] [--output FILE.json]
    pyro-bbb predict CHECKPOINT --input FILE.csv|.npy [--header auto|yes|no] [--output FILE.csv]
                     [--num-samples S]
    pyro-bbb compare SPEC.toml [--methods bbb nuts ...] [--out DIR] [--set key=value ...]
                     [--seeds 0 1 2 ...] [--no-progress]
    pyro-bbb uci --data-dir FOLDER [--splits 0 1 ...] [--methods bbb ...] [--epochs N]
                 [--noise homoscedastic|heteroscedastic] [--out DIR]
    pyro-bbb figures RUN_DIR [--out DIR] [--num-samples S]
    pyro-bbb diagnose RUN_DIR [--out DIR] [--num-samples S] [--max-points N] [--seeds 0 1 2 3]
    pyro-bbb prior SPEC.toml [--out DIR] [--num-draws N] [--compare-sigmas 0.1 1 3]
                   [--num-inputs N] [--set key=value ...]

Every command takes ``--threads N`` (torch CPU threads).

Bad input (unknown config keys, missing files, corrupt checkpoints, wrong feature counts) prints
``error: <message>`` to stderr and exits with status 2, without a traceback. An ``--output``
that is the same file as an input (checkpoint, spec, features) is refused. A new run that
fails having written only its config.toml removes it (and the folder it created).

``run`` keeps ``checkpoint.pt`` in the run folder up to date during training. Ctrl-C (SIGINT) or
SIGTERM stops training at the next step boundary, saves a checkpoint there, prints the command
that resumes the run and exits with status 130 (SIGINT) or 143 (SIGTERM); a second Ctrl-C aborts
at once (the previous checkpoint stays). Once training is over (its last checkpoint written), a
signal aborts the evaluation at once. ``run --resume RUN_DIR`` continues from the checkpoint
(with no SPEC, the run's own saved spec) and evaluates as usual.

``figures`` re-evaluates a run folder's checkpoint on its spec's test data and writes every figure
that applies (default into RUN_DIR/figures): classification: reliability diagram, uncertainty
histograms (correct vs wrong), the most uncertain test images and the out-of-distribution figure
(image data: test images against rotated, inverted and uniform-noise copies; the AUROC table is
printed), the log-SNR histogram; regression: the predictive band and the aleatoric / epistemic std
over x (1-D inputs), uncertainty histograms; both: the training curves from history.json.

``diagnose`` draws a run folder's posterior (and as many prior draws) and writes ArviZ figures on
a random subset of at most ``--max-points`` (2000) training points (default into
RUN_DIR/diagnostics): ppc.png (``az.plot_ppc`` of the prior and posterior predictive), posterior.png
(``az.plot_posterior`` of a few output-layer weights), khat.png (Pareto k of ``az.loo`` per point);
it prints the ``az.loo`` summary. In Python: ``diagnostic_plots.diagnostic_figures``. ``--seeds``
refits the spec from each seed and adds fs_rhat_seeds.png (R-hat of the predictions across the
fits) and, for regression with 1-D inputs, seed_bands.png (one predictive band per fit beside the
R-hat of f(x) over a grid; ``uncertainty_plots.seed_bands``).

``compare`` writes comparison.csv/.json, with two or more methods loo_compare.csv/.json and
loo_compare.png (``az.plot_compare``), bands.png (1-D regression) and, when a method ran ≥ 2
chains (NUTS), fs_rhat.png: the function-space R-hat of each test input's prediction across
chains. Each method trains with its ``[compare.<method>]`` options (``[training]`` and
``[guide]`` are not used; ``--set`` on them is refused, while ``--set compare.bbb.epochs=200``,
``compare.methods=[...]`` and ``compare.num_samples=N`` override the ``[compare]`` table).
``--seeds`` repeats the comparison per seed (the data stay those of the spec's ``[data]`` seed):
comparison.csv/.json then hold one row per method and seed, comparison_summary.csv/.json the
mean and standard error over the seeds per method (``compare.summarize_seeds``).

``prior`` is a prior predictive check (the spec may be a comparison spec; its ``[compare]`` table
is not used): it builds the spec's model (the data only give the input
width, the inputs and, for scale, the training points) and writes ``prior_predictive.png``
comparing the spec's prior with Gaussian priors N(0, σ²) of the ``--compare-sigmas``: functions
f(x; w), w ~ prior, with their central 95% band for regression with 1-D inputs; histograms of the
max class probability of single prior draws and of their mean over training inputs for
classification. Nothing is trained.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import os
import shlex
import signal
import sys
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .argtypes import int_at_least, number_in, positive_float, positive_int, seed
from .checkpoint import CheckpointError, load_checkpoint
from .config import (
    ExperimentConfig,
    apply_overrides,
    config_from_dict,
    load_config,
    packaged_spec,
    smoke_config,
)
from .infer import NonFiniteLossError
from .infer.distributed import is_main_process
from .infer.fit import TrainingInterrupted
from .prior_plots import DEFAULT_PRIOR_SIGMAS

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyro-bbb", description="Bayes by Backprop (Blundell et al. 2015) on Pyro.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train and evaluate an experiment spec; write a run folder")
    run.add_argument("spec", nargs="?", type=Path,
                     help="experiment spec (TOML); default: the packaged toy_regression.toml")
    run.add_argument("--out", type=Path, help="run folder (must not exist or be empty); "
                     "default runs/<name>-<YYYYmmdd-HHMMSS>")
    run.add_argument("--resume", type=Path, metavar="RUN_DIR",
                     help="continue the run in RUN_DIR from its checkpoint.pt to the spec's "
                     "epochs, then evaluate (a finished run is re-evaluated); without SPEC the "
                     "run's own saved spec is used")
    run.add_argument("--checkpoint-every", type=positive_int, metavar="N",
                     help="rewrite RUN_DIR/checkpoint.pt every N epochs (default: "
                     "[training] checkpoint_every, else at the first epoch end a minute after "
                     "the previous checkpoint); there is always one at the end")
    _add_config_options(run)
    run.add_argument("--device", help="training device: auto, cpu, cuda, cuda:1, …")
    run.add_argument("--smoke", action="store_true",
                     help="tiny run (1 epoch, few samples, at most 512 points) to check a spec")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_threads_option(run)

    ev = sub.add_parser("evaluate", help="re-evaluate a checkpoint on its spec's test data")
    ev.add_argument("checkpoint", type=Path)
    ev.add_argument("--spec", type=Path,
                    help="spec giving the test data (default: the spec saved in the checkpoint)")
    _add_config_options(ev)
    ev.add_argument("--output", type=Path, help="also write the metrics JSON to this file")
    _add_threads_option(ev)

    pr = sub.add_parser("predict", help="predict with a checkpoint for inputs in a CSV/NPY file")
    pr.add_argument("checkpoint", type=Path)
    pr.add_argument("--input", type=Path, required=True,
                    help=".npy array or .csv (comma-separated, optional header) of features")
    pr.add_argument("--header", choices=["auto", "yes", "no"], default="auto",
                    help="CSV: is line 1 a header? auto (default): yes iff a field is not a "
                    "number (a note says so)")
    pr.add_argument("--output", type=Path, help="CSV file to write (default: stdout)")
    pr.add_argument("--num-samples", type=positive_int, default=100, help="posterior samples (100)")
    pr.add_argument("--level", type=number_in(0.0, 1.0), default=0.95,
                    help="central interval level, in (0, 1) (0.95)")
    pr.add_argument("--seed", type=seed, default=0, help="seed of the posterior samples (0)")
    _add_threads_option(pr)

    cmp = sub.add_parser("compare", help="compare inference methods on one spec's model and data; "
                         "print the table and write CSV/JSON, a bands figure (1-D regression), "
                         "the az.plot_compare figure and, for methods with ≥ 2 chains, the "
                         "function-space R-hat figure")
    cmp.add_argument("spec", type=Path, help="comparison spec (TOML), e.g. "
                     "models/compare_toy.toml")
    cmp.add_argument("--methods", nargs="+", metavar="NAME",
                     help="methods to run (default: the spec's [compare] methods): "
                     "nuts normal lowrank delta bbb bbb_mixture deterministic dropout "
                     "ensemble")
    cmp.add_argument("--out", type=Path, help="folder for comparison.csv/.json (with --seeds "
                     "also comparison_summary.csv/.json), "
                     "loo_compare.csv/.json/.png, bands.png, fs_rhat.png and meta.json "
                     "(default runs/<name>-<YYYYmmdd-HHMMSS>)")
    cmp.add_argument("--num-samples", type=positive_int, metavar="S",
                     help="posterior draws per method (default: the spec's)")
    cmp.add_argument("--seeds", type=seed, nargs="+", metavar="SEED",
                     help="run the whole comparison once per seed (default: the spec's seed) "
                     "and also write comparison_summary.csv/.json: per method the mean and "
                     "standard error over the seeds; the figures and loo_compare are the first "
                     "seed's")
    cmp.add_argument("--no-progress", action="store_true",
                     help="no progress bar per method (training steps, epochs, NUTS iterations)")
    _add_config_options(cmp)
    _add_threads_option(cmp)

    uci = sub.add_parser("uci", help="UCI regression benchmark on a folder in the standard split "
                         "format: test RMSE and log-likelihood (original units), mean ± SE")
    uci.add_argument("--data-dir", type=Path, required=True, metavar="FOLDER",
                     help="dataset folder with data.txt, index_*.txt, n_*.txt")
    uci.add_argument("--splits", nargs="+", type=int_at_least(0), metavar="K",
                     help="splits (default all)")
    uci.add_argument("--methods", nargs="+", default=["bbb"], metavar="NAME",
                     help="methods (default bbb): bbb normal delta deterministic dropout ...")
    uci.add_argument("--epochs", type=positive_int, metavar="N",
                     help="training epochs (default n_epochs.txt × --epoch-multiplier)")
    uci.add_argument("--epoch-multiplier", type=positive_int, default=10, metavar="M",
                     help="default epochs = n_epochs.txt × M (10, as Gal & Ghahramani)")
    uci.add_argument("--num-samples", type=positive_int, default=100, metavar="S",
                     help="posterior draws for the test predictions (100)")
    uci.add_argument("--noise", choices=["homoscedastic", "heteroscedastic"],
                     default="homoscedastic", help="one learned noise σ (the papers' model; "
                     "default) or σ(x) from a second network output")
    uci.add_argument("--seed", type=seed, default=0, help="base seed; split k uses seed + k (0)")
    uci.add_argument("--out", type=Path, help="folder for uci_splits.csv, uci_summary.csv, "
                     "uci.json and uci_splits.png (must not exist or be empty)")
    _add_threads_option(uci)

    fg = sub.add_parser("figures", help="draw every figure that applies to a run folder: "
                        "reliability, uncertainty histograms, most uncertain images, "
                        "out-of-distribution images, SNR, band, uncertainty over x, training "
                        "curves")
    _add_run_dir_options(fg, "figures", "posterior draws for the predictions")
    _add_threads_option(fg)

    dg = sub.add_parser("diagnose", help="ArviZ diagnostics of a run folder's posterior on its "
                        "training data: ppc.png, posterior.png, khat.png and the az.loo summary")
    _add_run_dir_options(dg, "diagnostics", "posterior (and prior) draws")
    dg.add_argument("--max-points", type=positive_int, default=2000, metavar="N",
                    help="use a random subset of at most N training points (2000), which keeps "
                    "classification data sets fast")
    dg.add_argument("--seeds", type=seed, nargs="+", metavar="SEED",
                    help="also refit the spec from these seeds (≥ 2; the spec's training "
                    "settings, all training data) and draw fs_rhat_seeds.png: R-hat of the "
                    "predictions across the fits as chains, and (1-D regression) "
                    "seed_bands.png: one predictive band per fit")
    _add_threads_option(dg)

    pp = sub.add_parser("prior", help="prior predictive check: draw functions (1-D regression) or "
                        "class probabilities (classification) from the spec's prior and from "
                        "Gaussian priors; write prior_predictive.png")
    pp.add_argument("spec", type=Path, help="experiment spec or comparison spec (TOML)")
    pp.add_argument("--out", type=Path, metavar="DIR",
                    help="folder for prior_predictive.png (default runs/<name>-prior-"
                    "<YYYYmmdd-HHMMSS>; a file of the same name is replaced)")
    pp.add_argument("--num-draws", type=positive_int, metavar="N",
                    help="prior draws per model: functions drawn (default 20; the band uses at "
                    "least 1000) or networks per input (default 50)")
    pp.add_argument("--compare-sigmas", type=positive_float, nargs="*", metavar="SIGMA",
                    help="σ of the Gaussian priors N(0, σ²) shown beside the spec's prior "
                    f"(default {' '.join(f'{s:g}' for s in DEFAULT_PRIOR_SIGMAS)}; none: only the "
                    "spec's prior)")
    pp.add_argument("--num-inputs", type=positive_int, default=500, metavar="N",
                    help="classification: the first N training inputs (500)")
    _add_config_options(pp)
    _add_threads_option(pp)
    return parser


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override a spec value, e.g. --set training.epochs=5 (repeatable)")


def _add_run_dir_options(parser: argparse.ArgumentParser, folder: str, draws: str) -> None:
    """RUN_DIR, --out (default RUN_DIR/<folder>) and --num-samples of a run-folder command."""
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                        help="run folder written by pyro-bbb run (checkpoint.pt with its spec)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help=f"folder for the PNG files (default RUN_DIR/{folder}; files of the "
                        "same name are replaced)")
    parser.add_argument("--num-samples", type=positive_int, metavar="S",
                        help=f"{draws} (default: the spec's evaluation.num_samples)")


def _add_threads_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=positive_int, metavar="N",
                        help="CPU threads for torch (default: torch's choice); 1 is often "
                        "fastest for small networks or on a busy machine")


def _config(spec: Path | None, overrides: Sequence[str], *, comparison_ok: bool = False
            ) -> ExperimentConfig:
    """The spec (default: the packaged toy spec) with ``--set`` overrides; a comparison spec is
    read for its experiment when ``comparison_ok``, else refused with the command it needs."""
    path = spec if spec is not None else packaged_spec()
    if comparison_ok:
        config = _spec_or_comparison(path)
    elif _has_compare_table(path):
        raise ValueError(f"{path} is a comparison spec (it has a [compare] table): run it with "
                         f"`pyro-bbb compare {path}`")
    else:
        config = load_config(path)
    return apply_overrides(config, overrides) if overrides else config


def _saved_spec(where: Path, read):
    """``read()`` a spec saved with a checkpoint; its errors name ``where``, not a spec file."""
    try:
        return read()
    except CheckpointError:  # the checkpoint itself is unreadable: the message names it
        raise
    except ValueError as err:
        raise ValueError(f"{where}: its saved spec is not valid here: {err}") from None


def _run_spec(run_dir: Path) -> ExperimentConfig:
    """``experiment.run_spec``, with errors in a checkpoint's saved spec naming the checkpoint
    (errors in the folder's config.toml name that file already)."""
    from .experiment import run_spec

    if not (run_dir / "checkpoint.pt").exists():
        return run_spec(run_dir)
    return _saved_spec(run_dir / "checkpoint.pt", lambda: run_spec(run_dir))


def _run(args) -> int:
    from .experiment import new_run_dir, run_experiment

    resume = args.resume
    if resume is not None and args.out is not None and args.out.resolve() != resume.resolve():
        raise ValueError(f"--resume {resume} and --out {args.out} name different folders; "
                         "a resumed run is written into its own folder")
    if resume is not None and args.spec is None:
        config = _run_spec(resume)
        config = apply_overrides(config, args.overrides) if args.overrides else config
    else:
        config = _config(args.spec, args.overrides)
    if args.device:
        config = apply_overrides(config, [f"training.device={args.device}"])
    if args.checkpoint_every:
        config = apply_overrides(config, [f"training.checkpoint_every={args.checkpoint_every}"])
    if args.smoke:
        config = smoke_config(config)
    if resume is not None:
        out = resume
        if not (out / "checkpoint.pt").exists():
            print(f"{out} has no checkpoint yet: starting {config.name} from the beginning",
                  flush=True)
        else:
            _announce_resume(config.name, out)
    else:
        out = args.out if args.out is not None else new_run_dir(config.name)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise FileExistsError(_occupied(out))
        print(f"running {config.name} → {out}", flush=True)
    existed = out.exists()
    try:
        with _StopOnSignal() as stop:
            result = run_experiment(config, out, progress=not args.no_progress,
                                    resume=resume is not None, stop=stop,
                                    on_trained=stop.trained)
    except TrainingInterrupted as err:
        return _interrupted(err, stop.signal, out, args)
    except NonFiniteLossError:
        if (out / "checkpoint.pt").exists():
            print(f"the last checkpoint with finite parameters is {out / 'checkpoint.pt'}",
                  file=sys.stderr)
        elif resume is None:
            _remove_failed_run(out, existed)
        raise
    except Exception:
        if resume is None:
            _remove_failed_run(out, existed)
        raise
    except _Aborted as err:  # after training: the checkpoint holds the whole run
        _print_resume_hint(out, args, f"{signal.Signals(err.signum).name} after training: "
                           "evaluation aborted (training is complete: resuming only evaluates)")
        return 128 + err.signum
    except KeyboardInterrupt:  # a second Ctrl-C, or one outside training
        _print_resume_hint(out, args, "aborted")
        return 130
    fitted, start = result.fit, result.resumed_from
    if start is not None and start.step == fitted.steps:
        print(f"the run had finished training ({config.training.epochs} epochs, {fitted.steps} "
              "steps); evaluated it again")
    else:
        done = f"resumed at epoch {start.epoch} (step {start.step}); " if start else ""
        print(f"{done}trained {config.training.epochs} epochs ({fitted.steps} steps) in "
              f"{fitted.seconds:.1f} s on {fitted.device}")
    _print_metrics(result.metrics)
    print(f"wrote {', '.join(sorted(p.name for p in result.files.values()))} to {out}")
    return 0


def _occupied(out: Path) -> str:
    """The error for ``run --out OUT`` into a folder that is not empty."""
    if not out.is_dir():
        return f"run folder {out} exists and is not a folder; choose another --out"
    text = f"run folder {out} already exists and is not empty"
    if not (out / "config.toml").is_file():
        return text + "; choose another --out"
    stage = "" if (out / "checkpoint.pt").exists() else " (it stopped before its first checkpoint)"
    return (text + f": it holds a pyro_bbb run{stage}; continue it with `pyro-bbb run --resume "
            f"{shlex.quote(str(out))}` or choose another --out")


def _remove_failed_run(out: Path, existed: bool) -> None:
    """Undo a new run that failed having written nothing but its config.toml: remove that file
    and the folder if this run created it."""
    if not is_main_process() or not out.is_dir() or os.listdir(out) != ["config.toml"]:
        return
    (out / "config.toml").unlink()
    if not existed:
        out.rmdir()


def _announce_resume(name: str, out: Path) -> None:
    state = load_checkpoint(out / "checkpoint.pt").training_state
    where = "" if state is None else f" from epoch {state.epoch}, step {state.step}"
    print(f"resuming {name} in {out}{where}", flush=True)
    threads = None if state is None else state.settings.get("threads")
    if isinstance(threads, int) and threads != torch.get_num_threads():
        print(f"note: the run trained with {threads} torch threads and this session uses "
              f"{torch.get_num_threads()} (--threads): sums are split differently, so the result "
              "will not be bit-identical to an uninterrupted run", file=sys.stderr)


class _Aborted(KeyboardInterrupt):
    """A signal that stops a run at once; ``signum`` gives the exit status 128 + signum."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class _StopOnSignal:
    """Context manager and ``stop()`` callable: SIGINT / SIGTERM set a flag that ``fit`` polls
    after every step, so training stops at a step boundary with a checkpoint. A second SIGINT
    (Ctrl-C again) raises KeyboardInterrupt at once; a repeated SIGTERM is ignored, since
    schedulers and torchrun may send it to a process that is already stopping. After
    ``trained()`` (training over, its checkpoint written) either signal aborts at once
    (``_Aborted``): nothing polls any more, and nothing is lost. Outside the main thread it
    installs nothing."""

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self):
        self.signal: int | None = None
        self.finished = False
        self._previous: dict[int, object] = {}

    def __call__(self) -> bool:
        return self.signal is not None

    def trained(self) -> None:
        """Training is over: a signal from now on (or one that came after the last poll)
        aborts the evaluation."""
        self.finished = True
        if self.signal is not None:
            raise _Aborted(self.signal)

    def _handle(self, signum, frame) -> None:
        if self.finished:
            raise _Aborted(signum)
        if self.signal is not None:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            return
        self.signal = signum
        # os.write: safe inside a signal handler, unlike print (tqdm may be writing to stderr);
        # under torchrun every rank gets the signal and only rank 0 says so
        if is_main_process():
            os.write(2, b"\nstopping at the next training step and saving a checkpoint "
                        b"(Ctrl-C again to abort now)\n")

    def __enter__(self) -> _StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                signum = getattr(signal, name, None)
                if signum is not None:
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


def _resume_command(out: Path, args) -> str:
    words = ["pyro-bbb", "run"]
    if args.spec is not None:
        words.append(str(args.spec))
    words += ["--resume", str(out)]
    for item in args.overrides:
        words += ["--set", item]
    if args.device:
        words += ["--device", args.device]
    if args.smoke:
        words.append("--smoke")
    return shlex.join(words)


def _print_resume_hint(out: Path, args, what: str) -> None:
    checkpoint = out / "checkpoint.pt"
    if not is_main_process():  # under torchrun rank 0 alone reports (and saves)
        return
    if checkpoint.exists():
        print(f"{what}; the run folder {out} keeps its last checkpoint ({checkpoint}). Resume "
              f"with:\n  {_resume_command(out, args)}", file=sys.stderr)
    else:
        print(f"{what} before the first checkpoint; start again with:\n  "
              f"{_resume_command(out, args)}", file=sys.stderr)


def _interrupted(err: TrainingInterrupted, signum: int | None, out: Path, args) -> int:
    name = signal.Signals(signum).name if signum is not None else "a stop request"
    state = err.state
    if is_main_process():  # under torchrun every rank stops; rank 0 alone saved and reports
        print(f"interrupted by {name}: saved a checkpoint after step {state.step} (epoch "
              f"{state.epoch}, minibatch {state.batch}) to {out / 'checkpoint.pt'}. Resume "
              f"with:\n  {_resume_command(out, args)}", file=sys.stderr)
    return 128 + (signum if signum is not None else signal.SIGINT)


def _print_metrics(metrics: dict) -> None:
    width = max(len(k) for k in metrics)
    for key, value in metrics.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"  {key:<{width}}  {shown}")


def _evaluate(args) -> int:
    from .experiment import evaluate_checkpoint, json_safe

    _refuse_overwrite(args.output, checkpoint=args.checkpoint, spec=args.spec)
    checkpoint = load_checkpoint(args.checkpoint)
    if args.spec is not None:
        config = _config(args.spec, args.overrides, comparison_ok=True)
    else:
        spec = checkpoint.metadata.get("spec")
        if not isinstance(spec, dict):
            raise ValueError(f"{args.checkpoint} has no saved spec; pass --spec SPEC.toml")
        config = _saved_spec(args.checkpoint, lambda: config_from_dict(spec))
        config = apply_overrides(config, args.overrides) if args.overrides else config
    metrics = evaluate_checkpoint(checkpoint, config).metrics
    text = json.dumps(json_safe({"checkpoint": str(args.checkpoint), "name": config.name,
                                 "metrics": metrics}), indent=2, allow_nan=False)
    if args.output is not None:
        args.output.write_text(text + "\n")
    print(text)
    return 0


def _read_features(path: Path, header: str = "auto") -> np.ndarray:
    """Features from .npy or .csv (comma-separated, UTF-8 with or without BOM). ``header``:
    "yes" skips line 1, "no" reads it as data, "auto" skips it iff a field is not a number
    (saying so on stderr); a numeric line 1 of column indices 0..D-1 is refused as ambiguous."""
    if not path.is_file():
        raise FileNotFoundError(f"input file not found: {path}")
    if path.suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as err:
            raise ValueError(f"{path}: not a numeric .npy array ({err})") from None
    if path.suffix != ".csv":
        raise ValueError(f"{path}: input must be a .csv or .npy file")
    try:
        lines = path.read_bytes().decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text (byte {err.start}: {err.reason}); save it "
                         "as UTF-8 CSV") from None
    if not any(line.strip() for line in lines):
        raise ValueError(f"{path} is empty")
    for sep, name in ((";", "semicolons"), ("\t", "tabs")):
        if "," not in lines[0] and sep in lines[0]:
            raise ValueError(f"{path}: line 1 is separated by {name}; predict reads "
                             "comma-separated values")
    fields = [f.strip() for f in lines[0].split(",")]
    skip = header == "yes"
    if header == "auto":
        skip = bool(lines[0].strip()) and not all(_is_number(f) for f in fields)
        if not skip and fields == [str(i) for i in range(len(fields))] and len(lines) > 1:
            raise ValueError(f"{path}: line 1 ({lines[0].strip()!r}) may be a header of column "
                             "numbers (as pandas writes) or data; pass --header yes or --header no")
    rows = lines[1:] if skip else lines
    if not any(row.strip() for row in rows):
        raise ValueError(f"{path} has no data rows after its header line")
    try:
        x = np.loadtxt(rows, delimiter=",", ndmin=2)
    except ValueError as err:
        raise ValueError(f"{path}: not a numeric CSV ({err})") from None
    if skip and header == "auto":
        print(f"note: {path}: line 1 ({lines[0].strip()!r}) is not numeric and was taken as a "
              "header (--header no reads it as data)", file=sys.stderr)
    return x


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _refuse_overwrite(output: Path | None, **inputs: Path | None) -> None:
    """ValueError when ``output`` is the same file as one of ``inputs`` (name=path)."""
    if output is None or not output.exists():
        return
    for name, path in inputs.items():
        if path is not None and path.exists() and os.path.samefile(output, path):
            raise ValueError(f"--output {output} is the {name} {path}; writing it would destroy "
                             "that file. Choose another --output")


def _predict(args) -> int:
    from .experiment import prediction_table

    _refuse_overwrite(args.output, input=args.input, checkpoint=args.checkpoint)
    checkpoint = load_checkpoint(args.checkpoint)
    x = _read_features(args.input, args.header)
    if x.ndim == 1 and checkpoint.model.input_size == 1:
        x = x[:, None]
    names, table = prediction_table(checkpoint, x, num_samples=args.num_samples,
                                    level=args.level, seed=args.seed)
    buffer = io.StringIO()
    fmt = ["%d" if n == "predicted" else "%.6g" for n in names]
    np.savetxt(buffer, table.numpy(), delimiter=",", header=",".join(names), comments="", fmt=fmt)
    if args.output is not None:
        args.output.write_text(buffer.getvalue())
        print(f"wrote {table.shape[0]} predictions to {args.output}")
    else:
        sys.stdout.write(buffer.getvalue())
    return 0


def _compare(args) -> int:
    import time
    from datetime import datetime, timezone

    from .compare import (
        apply_compare_overrides,
        bands_figure,
        format_seed_summary,
        load_compare_spec,
        run_comparison,
        summarize_seeds,
        write_table,
    )
    from .diagnostic_plots import function_space_rhat_figure, loo_compare_figure
    from .diagnostics import function_space_summary
    from .experiment import build_model, hardware_string, json_safe, load_data, new_run_dir
    from .plots import save_figure

    keys = {o: o.partition("=")[0].strip() for o in args.overrides or ()}
    unused = [o for o, key in keys.items()
              if key.startswith(("training.", "guide.", "evaluation.num_samples"))]
    if unused:
        raise ValueError(f"pyro-bbb compare does not use {', '.join(unused)}: each method "
                         "trains with its [compare.<method>] options (--set "
                         "compare.bbb.epochs=200), and --num-samples sets the draws")
    own = [o for o, key in keys.items() if key.startswith("compare.")]
    spec = apply_compare_overrides(load_compare_spec(args.spec), own)
    rest = [o for o in keys if o not in own]
    config = apply_overrides(spec.config, rest) if rest else spec.config
    methods = tuple(args.methods) if args.methods else spec.methods
    num_samples = args.num_samples or spec.num_samples
    seeds = list(args.seeds) if args.seeds else [config.seed]
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ValueError(f"--seeds repeats {', '.join(map(str, repeated))}: each seed would "
                         "give the same runs again")
    several = len(seeds) > 1
    out = args.out if args.out is not None else new_run_dir(config.name)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"output folder {out} already exists and is not empty")
    data = load_data(config)
    model = build_model(config, data.x_train.shape[1])
    print(f"comparing {', '.join(methods)} on {config.name} ({model!r}) → {out}"
          + (f", seeds {' '.join(map(str, seeds))}" if several else ""), flush=True)
    start = time.perf_counter()

    rows: list[dict] = []

    def report(seed_run, name, row):
        rows.append({**row, "seed": seed_run} if several else row)
        print(f"  {name}: trained in {row['train_seconds']:.1f} s", flush=True)

    import pandas

    try:
        for seed_run in seeds:
            if several:
                print(f"seed {seed_run}:", flush=True)
            result = run_comparison(
                model, data.x_train, data.y_train, data.x_test, data.y_test, methods,
                options=spec.options, num_samples=num_samples, level=config.evaluation.level,
                num_bins=config.evaluation.num_bins, seed=seed_run,
                on_result=functools.partial(report, seed_run), progress=not args.no_progress)
            if seed_run == seeds[0]:
                comparison = result  # the figures and az.compare are the first seed's
    except KeyboardInterrupt:  # keep the methods (and seeds) that finished: their rows
        if not rows:
            raise
        files = write_table(pandas.DataFrame(rows).set_index("method"), out)
        done = ", ".join(f"{r['method']} (seed {r['seed']})" if several else r["method"]
                         for r in rows)
        print(f"interrupted: wrote the rows of {done} "
              f"({', '.join(sorted(p.name for p in files.values()))}) to {out}",
              file=sys.stderr)
        return 130
    seconds = time.perf_counter() - start
    table = pandas.DataFrame(rows).set_index("method") if several else comparison.table
    out.mkdir(parents=True, exist_ok=True)
    files = write_table(table, out)
    if several:
        summary = summarize_seeds(table)
        summary_files = write_table(summary, out, stem="comparison_summary")
        files.update({f"summary_{kind}": path for kind, path in summary_files.items()})
    if comparison.loo is not None:
        loo_files = write_table(comparison.loo, out, stem="loo_compare")
        files.update({f"loo_{kind}": path for kind, path in loo_files.items()})
        files["loo_figure"] = save_figure(loo_compare_figure(comparison.loo),
                                          out / "loo_compare.png")
    chained = {name: result for name, result in comparison.results.items()
               if result.extras.get("num_chains", 1) >= 2
               and result.num_samples // result.extras["num_chains"] >= 4}
    if chained:  # R-hat of f(x) across chains at (at most about 200 of) the test inputs
        x_fs = data.x_test[:: max(1, data.x_test.shape[0] // 200)].cpu()
        summaries = {name: function_space_summary(model, result.draws, x_fs,
                                                  chains=result.extras["num_chains"])
                     for name, result in chained.items()}
        files["fs_rhat"] = save_figure(
            function_space_rhat_figure(summaries, x_fs, x_train=data.x_train.cpu()),
            out / "fs_rhat.png")
    if model.input_size == 1 and config.data.task == "regression":
        xs = torch.cat([data.x_train[:, 0], data.x_test[:, 0]])
        grid = torch.linspace(float(xs.min()), float(xs.max()), 300)[:, None]
        fig = bands_figure(comparison, data.x_train, data.y_train, grid, truth=data.truth,
                           level=config.evaluation.level)
        files["figure"] = save_figure(fig, out / "bands.png")
    meta = {"spec": str(args.spec), "command": shlex.join(["pyro-bbb", "compare",
                                                           *sys.argv[2:]]),
            "methods": list(methods), "seeds": seeds, "seconds": seconds,
            "hardware": hardware_string("cpu"),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    (out / "meta.json").write_text(json.dumps(json_safe(meta), indent=2) + "\n")
    text = table.to_string(float_format=lambda v: f"{v:.4g}")
    print(text)
    if several:
        print(f"mean ± standard error over {len(seeds)} seeds:")
        print(format_seed_summary(summary))
    if comparison.loo is not None:
        print("PSIS-LOO on the training data (az.compare"
              + (f", seed {seeds[0]}):" if several else "):"))
        print(comparison.loo.to_string(float_format=lambda v: f"{v:.4g}"))
    print(f"total {seconds:.1f} s; wrote {', '.join(sorted(p.name for p in files.values()))}, "
          f"meta.json to {out}")
    return 0


def _uci(args) -> int:
    import time
    from datetime import datetime, timezone

    from .experiment import hardware_string, json_safe
    from .plots import save_figure
    from .uci import format_summary, run_uci, summarize
    from .uci_plots import uci_figure

    out = args.out
    if out is not None and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"output folder {out} already exists and is not empty")
    print(f"UCI benchmark on {args.data_dir}: {', '.join(args.methods)}, {args.noise} noise",
          flush=True)

    rows: list[dict] = []

    def report(row):
        rows.append(row)
        print(f"  {row['method']} split {row['split']}: RMSE {row['rmse']:.4g}, test LL "
              f"{row['test_ll']:.4g} ({row['train_seconds']:.1f} s)", flush=True)

    start = time.perf_counter()
    interrupted = None
    try:
        table = run_uci(args.data_dir, splits=args.splits, methods=args.methods,
                        epochs=args.epochs, epoch_multiplier=args.epoch_multiplier,
                        num_samples=args.num_samples, noise=args.noise, seed=args.seed,
                        on_row=report)
    except KeyboardInterrupt:  # keep the (method, split) rows that finished
        if not rows or out is None:
            raise
        import pandas

        table = pandas.DataFrame(rows)
        interrupted = f"Ctrl-C after {len(rows)} (method, split) rows"
    seconds = time.perf_counter() - start
    summary = summarize(table)
    print(format_summary(summary))
    print(f"total {seconds:.1f} s")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "uci_splits.csv", index=False)
        summary.to_csv(out / "uci_summary.csv", index=False)
        meta = {"data_dir": str(args.data_dir),
                "command": shlex.join(["pyro-bbb", "uci", *sys.argv[2:]]),
                "methods": list(args.methods), "noise": args.noise, "seconds": seconds,
                "hardware": hardware_string("cpu"),
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "summary": summary.to_dict(orient="records"),
                "splits": table.to_dict(orient="records")}
        if interrupted:
            meta["interrupted"] = interrupted
        (out / "uci.json").write_text(json.dumps(json_safe(meta), indent=2) + "\n")
        save_figure(uci_figure(table, title=f"{Path(args.data_dir).name}: {args.noise} noise; "
                               "dots = splits, black = mean ± standard error"),
                    out / "uci_splits.png")
        print(f"wrote uci_splits.csv, uci_summary.csv, uci.json, uci_splits.png to {out}")
    if interrupted:
        print(f"interrupted ({interrupted}): the summary above is of those rows only",
              file=sys.stderr)
        return 130
    return 0


_SNR_PROPORTIONS = (0.5, 0.75, 0.95, 0.98)
_OOD_IMAGES = 2000  # test images (and as many of each shift) in the out-of-distribution figure


def _load_run(run_dir: Path):
    """A run folder's spec, checkpoint (checked against the spec's model) and data."""
    from .checkpoint import check_compatible
    from .experiment import build_model, load_data

    config = _run_spec(run_dir)  # FileNotFoundError for a missing folder or a non-run folder
    if not (run_dir / "checkpoint.pt").is_file():
        raise FileNotFoundError(f"{run_dir} has no checkpoint.pt (a run that has not saved one "
                                "yet); finish or resume it first")
    checkpoint = load_checkpoint(run_dir / "checkpoint.pt")
    data = load_data(config)
    check_compatible(checkpoint, build_model(config, data.x_train.shape[1]))
    return config, checkpoint, data


def _figures(args) -> int:
    from dataclasses import replace

    from . import plots
    from . import uncertainty_plots as uplots
    from .data import FASHION_MNIST_CLASSES
    from .experiment import evaluate
    from .likelihoods import ClassificationPrediction
    from .pruning import log_snr_histogram, snr_threshold
    from .pruning_plots import snr_histogram_figure

    run_dir = args.run_dir
    config, checkpoint, data = _load_run(run_dir)
    if args.num_samples:
        config = replace(config, evaluation=replace(config.evaluation,
                                                    num_samples=args.num_samples))
    model, guide = checkpoint.model, checkpoint.guide
    history = None
    if (run_dir / "history.json").is_file():
        try:
            history = json.loads((run_dir / "history.json").read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{run_dir / 'history.json'} is not valid JSON ({err})") from None
    out = args.out if args.out is not None else run_dir / "figures"
    print(f"evaluating {config.name} from {run_dir} with {config.evaluation.num_samples} "
          f"posterior samples", flush=True)
    evaluation = evaluate(config, model, guide, data)
    pred = evaluation.prediction
    out.mkdir(parents=True, exist_ok=True)
    written = []

    def save(fig, name: str) -> None:
        written.append(plots.save_figure(fig, out / name))

    if isinstance(pred, ClassificationPrediction):
        labels = data.y_test.cpu()
        save(plots.reliability_diagram(pred.probs, labels, config.evaluation.num_bins),
             "reliability.png")
        save(plots.uncertainty_histogram(pred, correct=pred.predicted == labels,
                                         title=f"{config.name}: predictive uncertainty of "
                                         f"{len(labels)} test points"), "uncertainty.png")
        if config.data.kind == "fashion_mnist":
            save(plots.most_uncertain_images(data.x_test, pred, labels,
                                             class_names=FASHION_MNIST_CLASSES, k=16),
                 "most_uncertain.png")
            inputs = uplots.shifted_images(data.x_test[:_OOD_IMAGES], seed=config.seed)
            ood = uplots.ood_uncertainties(model, guide, inputs,
                                           num_samples=config.evaluation.num_samples,
                                           seed=config.seed)
            print(uplots.format_ood_summary(uplots.ood_summary(ood)))
            save(uplots.ood_figure(inputs, ood, title=f"{config.name}: epistemic uncertainty of "
                                   f"{inputs['test (clean)'].shape[0]} test images and shifted "
                                   "copies"), "ood.png")
        thresholds = {p: snr_threshold(guide, p) for p in _SNR_PROPORTIONS}
        save(snr_histogram_figure(log_snr_histogram(guide), thresholds), "snr_histogram.png")
    else:
        if evaluation.grid_prediction is not None:
            std = data.standardizer
            x_train = data.x_train if std is None else data.x_train * std.x_std + std.x_mean
            y_train = data.y_train if std is None else std.inverse_target(data.y_train)
            save(plots.regression_band(x_train, y_train, evaluation.grid,
                                       evaluation.grid_prediction, truth=data.truth,
                                       title=f"{config.name}: posterior predictive"),
                 "regression_band.png")
            save(uplots.uncertainty_over_x(evaluation.grid, evaluation.grid_prediction,
                                           x_train=x_train,
                                           title=f"{config.name}: where the predictive std "
                                           "comes from"), "uncertainty_over_x.png")
        save(plots.uncertainty_histogram(pred, title=f"{config.name}: predictive uncertainty "
                                         f"of {pred.mean.shape[0]} test points"),
             "uncertainty.png")
    if isinstance(history, dict) and history.get("epoch"):
        save(plots.training_curves(history), "training_curves.png")
    for path in written:
        print(path)
    return 0


def _prior(args) -> int:
    from . import plots, prior_plots
    from .experiment import build_model, load_data, new_run_dir

    config = _spec_or_comparison(args.spec)
    config = apply_overrides(config, args.overrides) if args.overrides else config
    task = config.data.task
    data = load_data(config)
    model = build_model(config, data.x_train.shape[1])
    if task == "regression" and model.input_size != 1:
        raise ValueError(f"the prior predictive plot of a regression spec needs 1-D inputs; "
                         f"{config.name} has {model.input_size} input features")
    sigmas = DEFAULT_PRIOR_SIGMAS if args.compare_sigmas is None else args.compare_sigmas
    models = prior_plots.prior_variants(model, sigmas)
    out = args.out if args.out is not None else new_run_dir(f"{config.name}-prior")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"output folder {out} exists and is not a folder")
    units = "" if data.standardizer is None else " (standardised units)"
    print(f"prior predictive of {config.name} ({model!r}): {', '.join(models)}", flush=True)
    if task == "regression":
        xs = torch.cat([data.x_train[:, 0], data.x_test[:, 0]])
        grid = torch.linspace(float(xs.min()), float(xs.max()), 200)
        num_draws = args.num_draws or 20
        fig = prior_plots.prior_predictive_functions(
            models, grid, num_draws, seed=config.seed, data=(data.x_train, data.y_train),
            title=f"{config.name}: {num_draws} functions per prior{units}")
    else:
        x = data.x_train[: args.num_inputs]
        num_draws = args.num_draws or 50
        fig = prior_plots.prior_class_probabilities(
            models, x, num_draws, seed=config.seed,
            title=f"{config.name}: max class probability of {num_draws} prior draws × "
            f"{x.shape[0]} training inputs (dotted: uniform)")
    out.mkdir(parents=True, exist_ok=True)
    print(plots.save_figure(fig, out / "prior_predictive.png"))
    return 0


def _spec_or_comparison(path: Path) -> ExperimentConfig:
    """An experiment spec, or the experiment of a comparison spec (``[compare]`` ignored)."""
    from .compare import load_compare_spec

    if not _has_compare_table(path):
        return load_config(path)
    with warnings.catch_warnings():  # that compare ignores [training] does not matter here
        warnings.simplefilter("ignore", UserWarning)
        return load_compare_spec(path).config


def _has_compare_table(path: Path) -> bool:
    """Whether the TOML file at ``path`` has a ``[compare]`` table (False when unreadable:
    load_config then reports the missing file or the invalid TOML)."""
    from .config import tomllib  # tomli before Python 3.11

    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(raw.get("compare"), dict)


def _diagnose(args) -> int:
    from .diagnostic_plots import diagnostic_figures
    from .diagnostics import sample_prior

    if args.seeds is not None and len(set(args.seeds)) < 2:
        raise ValueError(f"--seeds needs at least two different seeds, got {args.seeds}")
    run_dir = args.run_dir
    config, checkpoint, data = _load_run(run_dir)
    num_samples = args.num_samples or config.evaluation.num_samples
    model, guide = checkpoint.model, checkpoint.guide
    x, y = data.x_train.cpu(), data.y_train.cpu()
    if x.shape[0] > args.max_points:
        generator = torch.Generator().manual_seed(config.seed)
        keep = torch.randperm(x.shape[0], generator=generator)[: args.max_points].sort().values
        x, y = x[keep], y[keep]
    out = args.out if args.out is not None else run_dir / "diagnostics"
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"output folder {out} exists and is not a folder")
    print(f"diagnosing {config.name} from {run_dir}: {num_samples} posterior draws on "
          f"{x.shape[0]} training points", flush=True)
    generator = torch.Generator().manual_seed(config.seed)  # checkpoints load on the CPU
    with torch.no_grad():
        draws = {k: v.detach().cpu() for k, v in
                 guide.sample_posterior(num_samples, generator=generator).items()}
    result = diagnostic_figures(model, draws, x, y, out,
                                prior_draws=sample_prior(model, num_samples, seed=config.seed),
                                seed=config.seed, name=config.name)
    print(result.loo)
    files = list(result.files.values())
    if args.seeds:
        files.extend(_seed_chains_figures(args.seeds, config, model, data, x, out))
    for path in files:
        print(path)
    return 0


def _seed_chains_figures(seeds, config, model, data, x, out: Path) -> list[Path]:
    """Refit the spec from each seed (``diagnostics.fit_chains``) and save the R-hat of the
    predictions at (at most 200 of) the inputs ``x`` across the fits; for 1-D regression also
    one predictive band per fit over a grid, beside the R-hat there (seed_bands.png)."""
    from .diagnostic_plots import function_space_rhat_figure
    from .diagnostics import fit_chains, function_space_summary
    from .guide import MeanFieldGuide
    from .plots import save_figure
    from .uncertainty_plots import chain_predictions, seed_bands

    t = config.training
    print(f"refitting {config.name} from seeds {seeds} ({t.epochs} epochs each)", flush=True)
    chains = fit_chains(model, data.x_train, data.y_train, seeds=seeds, num_samples=100,
                        guide_factory=lambda m: MeanFieldGuide(m, init_rho=config.guide.init_rho),
                        epochs=t.epochs, batch_size=t.batch_size, lr=t.lr,
                        num_particles=t.num_particles, kl_weighting=t.kl_weighting,
                        device=t.device, progress=True, lr_schedule=t.lr_schedule)
    points = x[: min(200, x.shape[0])]
    summary = function_space_summary(model, chains.draws, points)
    print(f"function-space R-hat across {len(seeds)} fits: max {summary.max_r_hat:.3f}")
    fig = function_space_rhat_figure({f"{len(seeds)} seeds": summary}, points,
                                     x_train=data.x_train,
                                     title=f"{config.name}: R-hat of f(x) across VI fits")
    out.mkdir(parents=True, exist_ok=True)
    files = [save_figure(fig, out / "fs_rhat_seeds.png")]
    if config.data.task == "regression" and model.input_size == 1:
        xs = torch.cat([data.x_train[:, 0], data.x_test[:, 0]]).cpu()
        grid = torch.linspace(float(xs.min()), float(xs.max()), 200)[:, None]
        predictions = chain_predictions(model, chains.draws, grid,
                                        labels=[f"seed {s}" for s in chains.seeds],
                                        level=config.evaluation.level)
        units = "" if data.standardizer is None else " (standardised units)"
        fig = seed_bands(predictions, grid, data=(data.x_train.cpu(), data.y_train.cpu()),
                         r_hat=function_space_summary(model, chains.draws, grid),
                         title=f"{config.name}: {len(seeds)} VI fits{units}")
        files.append(save_figure(fig, out / "seed_bands.png"))
    return files


_COMMANDS = {"run": _run, "evaluate": _evaluate, "predict": _predict, "compare": _compare,
             "uci": _uci, "figures": _figures, "prior": _prior, "diagnose": _diagnose}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pyro-bbb``; returns the exit status (2 for bad input)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse has printed its usage message
        return int(exit_.code or 0)
    if args.threads:
        torch.set_num_threads(args.threads)
    # under torchrun only rank 0 reports; the others keep stderr for their errors
    quiet = contextlib.nullcontext() if is_main_process() else contextlib.redirect_stdout(
        io.StringIO())
    try:
        with quiet:
            return _COMMANDS[args.command](args)
    except (ValueError, CheckpointError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
