"""Train and evaluate one experiment described by an ExperimentConfig, and write its run folder.

``run_experiment(config, out_dir)`` is what ``pyro-bbb run`` does, callable from notebooks. A run
folder holds ``checkpoint.pt``, ``metrics.json``, ``history.json``, ``config.toml`` and figures.
Regression metrics are in the data's original units (UCI targets are standardised for training).

During training ``checkpoint.pt`` is rewritten (atomically) every ``[training] checkpoint_every``
epochs, or when unset at the first epoch end ``CHECKPOINT_SECONDS`` after the previous one, and
at the end; it holds the TrainingState, so ``run_experiment(config, out_dir, resume=True)``
continues an interrupted run and, on the CPU, ends with the parameters an uninterrupted run has.

Under ``torchrun`` every rank runs the experiment (data-parallel training, see
``pyro_bbb.infer.distributed``) but only rank 0 writes the run folder and checkpoints;
``new_run_dir`` creates the folder on rank 0 and hands its name to the other ranks.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyro
import torch

from . import __version__
from .checkpoint import (
    Checkpoint,
    CheckpointError,
    check_compatible,
    load_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
)
from .config import (
    ExperimentConfig,
    FashionMNISTData,
    ToyRegressionData,
    UCIData,
    config_from_dict,
    config_to_dict,
    config_to_toml,
    load_config,
)
from .data import (
    Standardizer,
    load_fashion_mnist,
    load_uci_split,
    toy_regression,
    toy_regression_heldout,
    toy_regression_truth,
)
from .guide import MeanFieldGuide
from .infer import FitResult, fit, resolve_device
from .infer.distributed import broadcast_object, setup_distributed
from .infer.fit import TrainingState
from .inputs import as_features
from .likelihoods import ClassificationPrediction, RegressionPrediction
from .metrics import (
    accuracy,
    brier_score,
    expected_calibration_error,
    interval_coverage,
    nll,
    rmse,
)
from .model import BayesianMLP
from .predict import log_likelihood, posterior_predictive
from .runlock import run_folder_lock

__all__ = [
    "ExperimentData",
    "Evaluation",
    "ExperimentResult",
    "load_data",
    "build_model",
    "evaluate",
    "evaluate_checkpoint",
    "run_experiment",
    "run_spec",
    "spec_differences",
    "write_run",
    "CHECKPOINT_SECONDS",
    "RESUMABLE_KEYS",
    "new_run_dir",
    "hardware_string",
    "json_safe",
    "prediction_table",
    "standardizer_from_metadata",
]

Prediction = ClassificationPrediction | RegressionPrediction

#: With ``[training] checkpoint_every`` unset, checkpoint at the first epoch end this many seconds
#: after the previous checkpoint (a killed run loses about this much work at most).
CHECKPOINT_SECONDS = 60.0
#: Spec keys (dotted; a table name covers its keys) that may differ when a run is resumed.
RESUMABLE_KEYS = ("name", "training.epochs", "training.lr", "training.device",
                  "training.checkpoint_every", "evaluation")


@dataclass
class ExperimentData:
    """Training and test data as the model sees them (standardised when ``standardizer``)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    standardizer: Standardizer | None = None
    truth: Callable[[torch.Tensor], torch.Tensor] | None = None  # noise-free curve, if known


@dataclass
class Evaluation:
    """Test metrics (plain floats) and the predictions behind them, in original units.

    For 1-D regression ``grid``/``grid_prediction`` span the training and test inputs and
    ``outside_x``; they feed the regression-band figure.
    """

    metrics: dict[str, float]
    prediction: Prediction
    grid: torch.Tensor | None = None
    grid_prediction: RegressionPrediction | None = None


@dataclass
class ExperimentResult:
    config: ExperimentConfig
    model: BayesianMLP
    guide: MeanFieldGuide
    fit: FitResult
    evaluation: Evaluation
    data: ExperimentData
    files: dict[str, Path] = field(default_factory=dict)
    resumed_from: TrainingState | None = None  # the checkpointed state training continued from

    @property
    def metrics(self) -> dict[str, float]:
        return self.evaluation.metrics


# --------------------------------------------------------------------------- data and model


def _toy(cfg: ToyRegressionData) -> ExperimentData:
    train = toy_regression(cfg.num_points, cfg.seed, cfg.x_range, cfg.noise_std)
    test = toy_regression_heldout(cfg.num_test, cfg.test_range, cfg.test_noise_std, cfg.seed + 1)
    return ExperimentData(train.x, train.y, test.x, test.y, truth=toy_regression_truth)


def _fashion(cfg: FashionMNISTData) -> ExperimentData:
    train = load_fashion_mnist(cfg.root, "train")
    test = load_fashion_mnist(cfg.root, "test")
    n, m = cfg.limit_train, cfg.limit_test
    return ExperimentData(train.images[:n], train.labels[:n], test.images[:m], test.labels[:m])


def _uci(cfg: UCIData) -> ExperimentData:
    split = load_uci_split(cfg.folder, cfg.split)
    standardizer = Standardizer.fit(split.x_train, split.y_train)
    return ExperimentData(*standardizer.transform(split), standardizer=standardizer)


_LOADERS: dict[type, Callable[[Any], ExperimentData]] = {
    ToyRegressionData: _toy,
    FashionMNISTData: _fashion,
    UCIData: _uci,
}


def load_data(config: ExperimentConfig) -> ExperimentData:
    """Load (and for UCI standardise) the training and test data of ``config``."""
    return _LOADERS[type(config.data)](config.data)


def build_model(config: ExperimentConfig, input_size: int) -> BayesianMLP:
    """The BayesianMLP of ``config`` for inputs of width ``input_size``."""
    likelihood = config.likelihood.build(config.data.num_classes)
    sizes = config.network.layer_sizes(input_size, likelihood.output_size)
    return BayesianMLP(sizes, likelihood, config.prior.build(), config.network.activation)


# --------------------------------------------------------------------------- evaluation


def _to_original(pred: Prediction, standardizer: Standardizer | None) -> Prediction:
    """The prediction on the CPU, regression outputs mapped back to original target units."""
    pred = replace(pred, **{f.name: getattr(pred, f.name).cpu() for f in fields(pred)
                            if torch.is_tensor(getattr(pred, f.name))})
    if standardizer is None or not isinstance(pred, RegressionPrediction):
        return pred
    loc, scale = standardizer.inverse_target, standardizer.inverse_scale
    return replace(pred, mean=loc(pred.mean), lower=loc(pred.lower), upper=loc(pred.upper),
                   std=scale(pred.std), aleatoric_std=scale(pred.aleatoric_std),
                   epistemic_std=scale(pred.epistemic_std))


def _regression(config, model, samples, data) -> Evaluation:
    ev, std = config.evaluation, data.standardizer
    pred = _to_original(posterior_predictive(model, samples, data.x_test, chunk_size=ev.chunk_size,
                                             level=ev.level), std)
    y = data.y_test if std is None else std.inverse_target(data.y_test)
    log_p = log_likelihood(model, samples, data.x_test, data.y_test, chunk_size=ev.chunk_size)
    test_ll = (log_p.logsumexp(0) - math.log(log_p.shape[0])).mean().cpu()
    if std is not None:  # density in original units: divide by σ_y
        test_ll = test_ll - std.y_std.log()
    metrics = {
        "rmse": rmse(pred.mean, y),
        "test_log_likelihood": float(test_ll),
        "interval_coverage": interval_coverage(pred.lower, pred.upper, y),
        "mean_std": float(pred.std.mean()),
        "num_test": int(y.shape[0]),
    }
    evaluation = Evaluation(metrics, pred)
    if model.input_size == 1:
        _band(config, model, samples, data, evaluation)
    return evaluation


def _band(config, model, samples, data, evaluation: Evaluation) -> None:
    """1-D regression: predictions on a grid and the std ratio outside vs inside the data."""
    std, ev = data.standardizer, config.evaluation

    def original(x):
        return x if std is None else x * std.x_std + std.x_mean

    x_train, x_test = original(data.x_train)[:, 0], original(data.x_test)[:, 0]
    lo = min(float(x_train.min()), float(x_test.min()), ev.outside_x)
    hi = max(float(x_train.max()), float(x_test.max()), ev.outside_x)
    grid = torch.cat([torch.linspace(lo, hi, 400), torch.tensor([ev.outside_x])])[:, None]
    inputs = grid if std is None else std.transform_features(grid)
    pred = _to_original(posterior_predictive(model, samples, inputs, level=ev.level), std)
    inside = (grid[:-1, 0] >= x_train.min()) & (grid[:-1, 0] <= x_train.max())
    std_inside, std_outside = float(pred.std[:-1][inside].mean()), float(pred.std[-1])
    evaluation.metrics.update(std_inside=std_inside, std_outside=std_outside,
                              std_ratio=std_outside / std_inside)
    evaluation.grid = grid[:-1, 0]
    evaluation.grid_prediction = replace(pred, **{
        f.name: getattr(pred, f.name)[:-1] for f in fields(pred)
        if torch.is_tensor(getattr(pred, f.name))})


def _classification(config, model, samples, data) -> Evaluation:
    ev = config.evaluation
    pred = _to_original(posterior_predictive(model, samples, data.x_test, chunk_size=ev.chunk_size,
                                             level=ev.level), None)
    probs, y = pred.probs, data.y_test
    metrics = {
        "accuracy": accuracy(probs, y),
        "nll": nll(probs, y),
        "ece": expected_calibration_error(probs, y, ev.num_bins),
        "brier": brier_score(probs, y),
        "mean_epistemic": float(pred.epistemic.mean()),
        "num_test": int(y.shape[0]),
    }
    return Evaluation(metrics, pred)


def evaluate(
    config: ExperimentConfig, model: BayesianMLP, guide: MeanFieldGuide, data: ExperimentData
) -> Evaluation:
    """Test metrics from ``config.evaluation.num_samples`` posterior draws (seeded by
    ``config.seed``). Classification: accuracy, nll, ece, brier; regression: rmse,
    test_log_likelihood (MC mixture density), interval_coverage, and for 1-D inputs
    std_inside / std_outside / std_ratio."""
    device = next(guide.parameters()).device
    generator = torch.Generator(device=device).manual_seed(config.seed)
    samples = guide.sample_posterior(config.evaluation.num_samples, generator=generator)
    task = _regression if config.data.task == "regression" else _classification
    return task(config, model, samples, data)


def evaluate_checkpoint(checkpoint: Checkpoint, config: ExperimentConfig) -> Evaluation:
    """Re-evaluate a saved model on ``config``'s test data (architectures must match)."""
    data = load_data(config)
    check_compatible(checkpoint, build_model(config, data.x_train.shape[1]))
    return evaluate(config, checkpoint.model, checkpoint.guide, data)


# --------------------------------------------------------------------------- running


def run_experiment(
    config: ExperimentConfig,
    out_dir: str | os.PathLike | None = None,
    progress: bool = False,
    *,
    resume: bool = False,
    stop: Callable[[], bool] | None = None,
    on_trained: Callable[[], None] | None = None,
) -> ExperimentResult:
    """Load data, fit the mean-field guide by SVI (seeded), evaluate; with ``out_dir`` also
    write the run folder (see ``write_run``): ``config.toml`` once the data has loaded,
    ``checkpoint.pt`` during training (see the module docstring), the rest at the end.

    ``resume=True`` continues the run in ``out_dir`` from its ``checkpoint.pt`` to
    ``config.training.epochs`` (a finished run is just re-evaluated; a folder without a
    checkpoint yet starts from the beginning). ``config`` must be the run's spec up to
    ``RESUMABLE_KEYS``; anything else (data, network, prior, likelihood, guide, seed, batch
    size, ...) raises ValueError naming the keys. ``stop`` is polled after every training step:
    when it returns True the run is checkpointed and ``TrainingInterrupted`` raised.
    ``on_trained()`` is called once training has finished (its last checkpoint written), before
    the evaluation. While it
    trains, the run folder holds a lock file (``pyro_bbb.runlock``): a second process resuming
    or writing the same folder gets ``RunFolderLocked`` instead of corrupting it.
    """
    out = None if out_dir is None else Path(out_dir)
    if resume and out is None:
        raise ValueError("resume=True needs the run folder to resume (out_dir)")
    info = setup_distributed("auto")
    if info is not None:  # every rank has made its own checks before rank 0 writes anything
        torch.distributed.barrier()
    writer = info is None or info.is_main
    with contextlib.ExitStack() as lock:
        return _run(config, out, progress, resume, stop, on_trained, info, writer, lock)


def _run(config, out, progress, resume, stop, on_trained, info, writer,
         lock: contextlib.ExitStack) -> ExperimentResult:
    """run_experiment's body; ``lock`` holds the run folder's lock once it is taken."""
    resolve_device(config.training.device)  # a device missing here fails before any folder
    checkpoint = None
    if out is not None:
        if resume:
            if writer and out.is_dir():
                lock.enter_context(run_folder_lock(out))
            checkpoint = _resume_point(out, config) if writer else _read_resume_point(out)
        elif writer and out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise FileExistsError(f"run folder {out} already exists and is not empty")
    data = load_data(config)
    model = build_model(config, data.x_train.shape[1])
    if out is not None and writer:  # only once the data loaded: a bad path leaves no folder
        out.mkdir(parents=True, exist_ok=True)
        if not resume:
            lock.enter_context(run_folder_lock(out))
        (out / "config.toml").write_text(config_to_toml(config))
    pyro.set_rng_seed(config.seed)
    guide = MeanFieldGuide(model, init_rho=config.guide.init_rho)
    state = None
    if checkpoint is not None:
        check_compatible(checkpoint, model)
        state = checkpoint.training_state
    on_checkpoint = None
    if out is not None and writer:
        metadata = _checkpoint_metadata(config, data)

        def on_checkpoint(snapshot: TrainingState) -> None:
            save_checkpoint(out / "checkpoint.pt", model, guide, {**metadata, "date": _now()},
                            training_state=snapshot)

    t = config.training
    fitted = fit(model, guide, data.x_train, data.y_train, epochs=t.epochs,
                 batch_size=t.batch_size, lr=t.lr, num_particles=t.num_particles,
                 kl_weighting=t.kl_weighting, seed=config.seed, device=t.device,
                 progress=progress, state=state, checkpoint_every=t.checkpoint_every,
                 checkpoint_interval=CHECKPOINT_SECONDS if t.checkpoint_every is None else None,
                 on_checkpoint=on_checkpoint, stop=stop, lr_schedule=t.lr_schedule,
                 on_divergence=t.on_divergence, cuda_graph=t.cuda_graph)
    if on_trained is not None:
        on_trained()
    result = ExperimentResult(config, model, guide, fitted, evaluate(config, model, guide, data),
                              data, resumed_from=state)
    if out is not None and writer:
        write_run(result, out, exist_ok=True)
    if info is not None:  # the run folder is complete when any rank returns
        torch.distributed.barrier()
    return result


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _checkpoint_metadata(config: ExperimentConfig, data: ExperimentData) -> dict[str, Any]:
    return {"spec": config_to_dict(config),
            "standardizer": _standardizer_metadata(data.standardizer),
            "pyro_bbb_version": __version__}


def _flatten(table: Mapping, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def spec_differences(saved: Mapping, given: Mapping, allowed: Sequence[str] = RESUMABLE_KEYS
                     ) -> list[str]:
    """Dotted keys whose values differ between two spec dicts (``config_to_dict`` form), as
    ``"key (run: A, given: B)"``, leaving out keys under ``allowed``."""
    old, new = _flatten(saved), _flatten(given)

    def free(key: str) -> bool:
        return any(key == a or key.startswith(a + ".") for a in allowed)

    return [f"{key} (run: {old.get(key, 'unset')!r}, given: {new.get(key, 'unset')!r})"
            for key in sorted(set(old) | set(new))
            if not free(key) and old.get(key, _UNSET) != new.get(key, _UNSET)]


_UNSET = object()


def run_spec(run_dir: str | os.PathLike) -> ExperimentConfig:
    """The spec a run folder was trained with: its checkpoint's, else its ``config.toml``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder not found: {run_dir}")
    if (run_dir / "checkpoint.pt").exists():
        checkpoint = load_checkpoint(run_dir / "checkpoint.pt")
        spec = checkpoint.metadata.get("spec")
        if not isinstance(spec, dict):
            raise CheckpointError(f"{checkpoint.path} has no saved spec")
        return config_from_dict(spec)
    if (run_dir / "config.toml").is_file():
        return load_config(run_dir / "config.toml")
    raise FileNotFoundError(f"{run_dir} is not a run folder: it has neither checkpoint.pt nor "
                            "config.toml")


def _read_resume_point(out: Path) -> Checkpoint | None:
    """A non-zero rank's view of ``_resume_point``: rank 0 checked the folder; read only."""
    path = out / "checkpoint.pt"
    return load_checkpoint(path) if path.exists() else None


def _resume_point(out: Path, config: ExperimentConfig) -> Checkpoint | None:
    """The checkpoint to resume ``out`` from (None: no checkpoint yet), after checking that
    ``config`` is the run's spec up to RESUMABLE_KEYS."""
    if not out.is_dir():
        raise FileNotFoundError(f"cannot resume: run folder {out} not found")
    path = out / "checkpoint.pt"
    remove_stale_temporaries(path)  # left by a save that was killed mid-write
    if path.exists():
        checkpoint = load_checkpoint(path)
        saved = checkpoint.metadata.get("spec")
        if not isinstance(saved, dict):
            raise CheckpointError(f"cannot resume: {path} has no saved spec")
        if checkpoint.training_state is None:
            raise CheckpointError(f"cannot resume: {path} holds no training state (it was "
                                  "written by a pyro_bbb without resumable checkpoints)")
    elif (out / "config.toml").is_file():
        checkpoint, saved = None, config_to_dict(load_config(out / "config.toml"))
    else:
        raise FileNotFoundError(f"cannot resume: {out} is not a run folder (it has neither "
                                "checkpoint.pt nor config.toml)")
    differences = spec_differences(saved, config_to_dict(config))
    if differences:
        raise ValueError(
            f"cannot resume {out}: the spec differs from the run's in " + "; ".join(differences)
            + ". Only " + ", ".join(RESUMABLE_KEYS) + " may change when resuming; resume with "
            "the run's own spec (saved in the run folder) or start a new run")
    if checkpoint is not None and checkpoint.training_state.epoch > config.training.epochs:
        raise ValueError(f"cannot resume {out}: it has trained {checkpoint.training_state.epoch} "
                         f"epochs, more than the {config.training.epochs} asked for")
    return checkpoint


def hardware_string(device: str | torch.device = "cpu") -> str:
    """Platform, CPU count, torch version and threads, and the GPU name when on CUDA."""
    device = torch.device(device)
    parts = [platform.platform(), platform.processor() or platform.machine(),
             f"{os.cpu_count()} CPUs", f"torch {torch.__version__} ({torch.get_num_threads()} "
             "threads)"]
    if device.type == "cuda":
        parts.append(torch.cuda.get_device_name(device))
    return "; ".join(parts)


def json_safe(value: Any) -> Any:
    """Replace non-finite floats by None so the file is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(json_safe(value), indent=2, allow_nan=False) + "\n")
    return path


def new_run_dir(name: str, root: str | os.PathLike = "runs") -> Path:
    """Create and return ``root/<name>-<YYYYmmdd-HHMMSS>`` (suffix -2, -3, … if taken).

    Under torchrun rank 0 creates it and every rank returns rank 0's path."""
    info = setup_distributed("auto")
    if info is not None and info.world_size > 1:
        path = _new_run_dir(name, root) if info.is_main else None
        return Path(broadcast_object(None if path is None else str(path)))
    return _new_run_dir(name, root)


def _new_run_dir(name: str, root: str | os.PathLike) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    Path(root).mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 1000):
        path = Path(root) / (f"{name}-{stamp}" + (f"-{attempt}" if attempt > 1 else ""))
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"could not find a free run folder name under {root}")


def _standardizer_metadata(standardizer: Standardizer | None) -> dict | None:
    if standardizer is None:
        return None
    return {k: getattr(standardizer, k).tolist()
            for k in ("x_mean", "x_std", "y_mean", "y_std")}


def standardizer_from_metadata(metadata: Mapping) -> Standardizer | None:
    """The Standardizer saved in a checkpoint's metadata, if any."""
    saved = metadata.get("standardizer")
    if saved is None:
        return None
    return Standardizer(**{k: torch.tensor(v, dtype=torch.float32) for k, v in saved.items()})


def write_run(
    result: ExperimentResult, out_dir: str | os.PathLike, *, exist_ok: bool = False
) -> dict[str, Path]:
    """Write checkpoint.pt (with the final TrainingState), metrics.json, history.json,
    config.toml and the figures.

    ``out_dir`` is created; an existing non-empty folder is refused (never overwritten) unless
    ``exist_ok`` (the run's own folder, as ``run_experiment`` writes it: files are replaced).
    """
    from . import plots  # matplotlib only when figures are written

    out = Path(out_dir)
    if not exist_ok and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"run folder {out} already exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    config, fitted, evaluation = result.config, result.fit, result.evaluation
    date = _now()
    spec = config_to_dict(config)
    resumed = result.resumed_from
    training = {"seconds": fitted.seconds, "epochs": config.training.epochs,
                "steps": fitted.steps, "device": fitted.device, "cuda_graph": fitted.cuda_graph,
                "resumed_from_step": None if resumed is None else resumed.step,
                "final_epoch": asdict(fitted.history[-1]) if fitted.history else None}
    files = {
        "checkpoint": save_checkpoint(out / "checkpoint.pt", result.model, result.guide, {
            "spec": spec, "standardizer": _standardizer_metadata(result.data.standardizer),
            "metrics": json_safe(evaluation.metrics), "date": date,
            "pyro_bbb_version": __version__}, training_state=fitted.state),
        "metrics": _write_json(out / "metrics.json", {
            "name": config.name, "metrics": evaluation.metrics, "training": training,
            "hardware": hardware_string(fitted.device), "date": date,
            "pyro_bbb_version": __version__, "spec": spec}),
        "history": _write_json(out / "history.json", fitted.history_dict()),
        "config": out / "config.toml",
    }
    files["config"].write_text(config_to_toml(config))
    history = fitted.history_dict()
    if history:
        files["training_curves"] = plots.save_figure(plots.training_curves(history),
                                                     out / "training_curves.png")
    if isinstance(evaluation.prediction, ClassificationPrediction):
        fig = plots.reliability_diagram(evaluation.prediction.probs, result.data.y_test,
                                        config.evaluation.num_bins)
        files["reliability"] = plots.save_figure(fig, out / "reliability.png")
    elif evaluation.grid_prediction is not None:
        data, std = result.data, result.data.standardizer
        x_train = data.x_train if std is None else data.x_train * std.x_std + std.x_mean
        y_train = data.y_train if std is None else std.inverse_target(data.y_train)
        m = evaluation.metrics
        fig = plots.regression_band(
            x_train, y_train, evaluation.grid, evaluation.grid_prediction, truth=data.truth,
            title=f"{config.name}: std at x={config.evaluation.outside_x:g} is "
                  f"{m['std_ratio']:.1f}× the mean std inside the data")
        files["regression_band"] = plots.save_figure(fig, out / "regression_band.png")
    result.files = files
    return files


def prediction_table(
    checkpoint: Checkpoint, x, num_samples: int = 100, level: float = 0.95, seed: int = 0
) -> tuple[list[str], torch.Tensor]:
    """Column names and an (N, columns) table of predictions for raw features ``x``.

    Classification: predicted, prob_0…, total_entropy, aleatoric, epistemic. Regression: mean,
    std, lower, upper, aleatoric_std, epistemic_std (original units; a saved Standardizer is
    applied to x and undone on the outputs).
    """
    model, guide = checkpoint.model, checkpoint.guide
    standardizer = standardizer_from_metadata(checkpoint.metadata)
    x = as_features(x, model.input_size)
    if standardizer is not None:
        x = standardizer.transform_features(x)
    device = next(guide.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    samples = guide.sample_posterior(num_samples, generator=generator)
    pred = _to_original(posterior_predictive(model, samples, x, level=level), standardizer)
    if isinstance(pred, ClassificationPrediction):
        names = ["predicted"] + [f"prob_{c}" for c in range(pred.probs.shape[1])]
        names += ["total_entropy", "aleatoric", "epistemic"]
        columns = [pred.predicted[:, None].to(pred.probs.dtype), pred.probs,
                   pred.total_entropy[:, None], pred.aleatoric[:, None], pred.epistemic[:, None]]
        return names, torch.cat(columns, 1)
    names = ["mean", "std", "lower", "upper", "aleatoric_std", "epistemic_std"]
    return names, torch.stack([getattr(pred, n) for n in names], 1)
