"""fit(): stochastic variational inference for a BayesianMLP with the Trace_ELBO estimator.

Each step draws a minibatch of B of the N points, K weight samples from the guide (vectorised),
and minimises

    loss_i = E_q[−log p(D_i|w)]·N/B + c_i · E_q[log q(w|θ) − log p(w)]

with Adam. ``kl_weighting="uniform"`` (default) uses c_i = 1: the plate's N/B scaling makes the
loss an unbiased estimate of the full-data −ELBO. ``"blundell"`` uses c_i = M·π_i with
π_i = 2^(M−i)/(2^M−1) over the M minibatches of an epoch (Blundell et al. 2015, eq. 9): early
minibatches carry most of the complexity cost, and the weights still sum to one per epoch.

Training can be checkpointed and resumed: ``fit(..., on_checkpoint=save)`` hands a
``TrainingState`` (guide parameters, optimizer state, RNG states, position, history) to ``save``
every ``checkpoint_every`` epochs and at the end, and ``fit(..., state=saved)`` continues from it.
The per-epoch permutation and the weight noise come from the restored RNG, the optimizer from its
restored moments and the KL weights from the restored minibatch position, so on the CPU a resumed
run reproduces the uninterrupted one bit for bit (tests/test_resume.py).

Data-parallel training: under ``torchrun`` (or in an initialised process group) ``fit`` trains on
W ranks at once (``distributed="auto"``, see ``pyro_bbb.infer.distributed`` for the math).
``batch_size`` is then the per-rank batch B: each step takes the next n = W·B indices of the
epoch's permutation (drawn on rank 0, broadcast), rank r its r-th contiguous shard, with its own
weight noise; every rank scales its shard's likelihood by N·W/n (= N/B) and the gradients are
averaged, so a step is a single-process step with global batch W·B whose estimate averages W
single-sample estimates. Parameters are broadcast from rank 0 at the start and stay identical on
all ranks; only rank 0 shows progress and receives ``on_checkpoint``.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import random
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pyro
import torch
from tqdm import tqdm  # plain bars: tqdm.auto warns in notebooks without ipywidgets

from ..inputs import as_features, as_int, as_targets
from .captured import CapturedStep, CudaGraph, is_capturable
from .distributed import (
    GradientAverager,
    broadcast_module,
    rank_seed,
    setup_distributed,
)
from .elbo import elbo_terms
from .engine import FastELBO, supports_fast_elbo
from .optim import default_adam

__all__ = [
    "fit",
    "FitResult",
    "EpochRecord",
    "NonFiniteLossError",
    "TrainingInterrupted",
    "TrainingState",
    "kl_weights",
    "resolve_device",
]


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN/inf loss; the guide holds the last parameters checked finite."""

    def __init__(self, message: str, step: int, epoch: int):
        super().__init__(message)
        self.step, self.epoch = step, epoch


@dataclass
class EpochRecord:
    """Means over one epoch's steps, in full-data units: −elbo = nll + complexity."""

    epoch: int
    loss: float
    nll: float
    complexity: float
    elbo: float
    seconds: float


@dataclass
class FitResult:
    """The fitted guide, per-epoch history, step count, training seconds (summed over resumed
    sessions) and ``state``: the final TrainingState, to continue with ``fit(state=...)``.
    ``cuda_graph``: None for an eager run, else what the captured step did (``captures``,
    ``replays``: steps run by replaying the graph, ``disabled``: why it stayed eager, if so)."""

    guide: torch.nn.Module
    history: list[EpochRecord] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    device: str = "cpu"
    state: TrainingState | None = None
    lr_reductions: list[dict[str, Any]] = field(default_factory=list)
    cuda_graph: dict[str, Any] | None = None

    def history_dict(self) -> dict[str, list[float]]:
        """Columns of the history, e.g. for pandas.DataFrame or JSON."""
        rows = [asdict(r) for r in self.history]
        return {k: [r[k] for r in rows] for k in (rows[0] if rows else {})}


_RECORD_FIELDS = tuple(f.name for f in fields(EpochRecord))
#: settings that fix the sequence of minibatches and estimates; a resumed fit must match them
_RESUME_SETTINGS = ("num_data", "batch_size", "num_particles", "kl_weighting", "engine")


@dataclass
class TrainingState:
    """Everything ``fit`` needs to continue a run exactly where it stopped.

    ``epoch`` epochs and ``batch`` minibatches of the next epoch are done (``batch`` is 0 at an
    epoch boundary; mid-epoch, ``order`` is that epoch's permutation of the data and ``sums`` its
    partial sums of (loss, nll, complexity)); ``step`` optimizer steps in all. ``guide_state`` and
    ``optimizer_state`` are state dicts on the CPU; ``rng`` holds the torch CPU (and CUDA, when
    training ran there), Python ``random`` and NumPy global RNG states as tensors and numbers;
    ``settings`` records what fixes the minibatch sequence (data size, batch size, particles, KL
    weighting, engine) plus the seed, lr, epoch target, device and torch thread count, for
    checks and information.
    ``to_dict`` gives plain containers of tensors and numbers that load with
    ``torch.load(weights_only=True)``; ``from_dict`` validates and rebuilds.
    """

    epoch: int
    step: int
    guide_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any]
    rng: dict[str, Any]
    history: list[EpochRecord] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    batch: int = 0
    order: torch.Tensor | None = None
    sums: torch.Tensor | None = None
    epoch_seconds: float = 0.0

    def to_dict(self, include_guide: bool = True) -> dict[str, Any]:
        """Plain dict (tensors, numbers, str, None, lists, dicts); ``include_guide=False`` leaves
        out the guide parameters (a checkpoint stores them once, beside the state)."""
        out = {
            "epoch": self.epoch,
            "batch": self.batch,
            "step": self.step,
            "seconds": float(self.seconds),
            "epoch_seconds": float(self.epoch_seconds),
            "optimizer_state": self.optimizer_state,
            "rng": self.rng,
            "history": [asdict(r) for r in self.history],
            "settings": dict(self.settings),
            "order": self.order,
            "sums": self.sums,
        }
        if include_guide:
            out["guide_state"] = self.guide_state
        return out

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], guide_state: Mapping[str, torch.Tensor] | None = None
    ) -> TrainingState:
        """Rebuild from ``to_dict`` output (``guide_state`` supplies the parameters when the dict
        has none); ValueError naming the first problem for anything malformed."""
        _need(isinstance(data, Mapping), "it is not a dict")
        keys = ("epoch", "batch", "step", "seconds", "epoch_seconds", "optimizer_state", "rng",
                "history", "settings", "order", "sums")
        missing = [k for k in keys if k not in data]
        _need(not missing, f"missing {missing}")
        for key in ("epoch", "batch", "step"):
            value = data[key]
            _need(isinstance(value, int) and not isinstance(value, bool) and value >= 0,
                  f"{key} must be a non-negative int, got {value!r}")
        for key in ("seconds", "epoch_seconds"):
            _need(isinstance(data[key], (int, float)) and not isinstance(data[key], bool),
                  f"{key} must be a number, got {data[key]!r}")
        guide = data.get("guide_state", guide_state)
        _need(isinstance(guide, Mapping) and all(torch.is_tensor(v) for v in guide.values()),
              "guide_state must be a dict of tensors")
        optim = data["optimizer_state"]
        _need(isinstance(optim, Mapping) and isinstance(optim.get("state"), Mapping)
              and isinstance(optim.get("param_groups"), list),
              "optimizer_state must be an optimizer state_dict (state, param_groups)")
        settings = data["settings"]
        _need(isinstance(settings, Mapping), "settings must be a dict")
        history = [_record(row, i) for i, row in enumerate(_list(data["history"], "history"))]
        _need(len(history) == data["epoch"],
              f"history has {len(history)} epochs but epoch is {data['epoch']}")
        order, sums = data["order"], data["sums"]
        if data["batch"]:
            num_data = settings.get("num_data")
            _need(torch.is_tensor(order) and order.dtype == torch.int64 and order.dim() == 1
                  and isinstance(num_data, int) and order.numel() == num_data
                  and torch.equal(order.sort().values, torch.arange(num_data)),
                  "a mid-epoch state needs order, a permutation of the data indices")
            _need(torch.is_tensor(sums) and sums.shape == (3,) and sums.is_floating_point(),
                  "a mid-epoch state needs sums, a float tensor of shape (3,)")
        else:
            order = sums = None
        return cls(
            epoch=data["epoch"], step=data["step"], guide_state=dict(guide),
            optimizer_state=dict(optim), rng=_check_rng(data["rng"]), history=history,
            settings=dict(settings), seconds=float(data["seconds"]), batch=data["batch"],
            order=order, sums=sums, epoch_seconds=float(data["epoch_seconds"]))


class TrainingInterrupted(KeyboardInterrupt):
    """``fit`` stopped because its ``stop()`` returned True.

    ``state`` continues the run (``fit(..., state=err.state)``); ``checkpointed`` says whether it
    was handed to ``on_checkpoint``. A KeyboardInterrupt, so generic handlers treat it as Ctrl-C.
    """

    def __init__(self, state: TrainingState, checkpointed: bool):
        super().__init__(f"training stopped after step {state.step} (epoch {state.epoch}, "
                         f"minibatch {state.batch})")
        self.state, self.checkpointed = state, checkpointed


def _need(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(f"invalid training state: {what}")


def _list(value: Any, where: str) -> list:
    _need(isinstance(value, (list, tuple)), f"{where} must be a list")
    return list(value)


def _record(row: Any, index: int) -> EpochRecord:
    _need(isinstance(row, Mapping) and set(row) == set(_RECORD_FIELDS),
          f"history[{index}] must have the keys {list(_RECORD_FIELDS)}")
    _need(all(isinstance(row[k], (int, float)) and not isinstance(row[k], bool)
              for k in _RECORD_FIELDS), f"history[{index}] values must be numbers")
    return EpochRecord(int(row["epoch"]), *(float(row[k]) for k in _RECORD_FIELDS[1:]))


def _byte_tensor(value: Any, where: str) -> torch.Tensor:
    _need(torch.is_tensor(value) and value.dtype == torch.uint8 and value.dim() == 1,
          f"{where} must be a 1-D uint8 tensor")
    return value.cpu()


def _int_tensor(value: Any, size: int, high: int, where: str) -> torch.Tensor:
    _need(torch.is_tensor(value) and value.dtype == torch.int64 and value.shape == (size,)
          and bool(((value >= 0) & (value < high)).all()),
          f"{where} must be an int64 tensor of {size} values in [0, {high})")
    return value.cpu()


def _check_rng(rng: Any) -> dict[str, Any]:
    _need(isinstance(rng, Mapping) and {"torch", "python", "numpy"} <= set(rng),
          "rng must hold the torch, python and numpy states")
    out = {"torch": _byte_tensor(rng["torch"], "rng.torch")}
    if rng.get("cuda") is not None:
        out["cuda"] = _byte_tensor(rng["cuda"], "rng.cuda")
    py, npy = rng["python"], rng["numpy"]
    _need(isinstance(py, Mapping) and isinstance(py.get("version"), int)
          and (py.get("gauss_next") is None or isinstance(py.get("gauss_next"), float)),
          "rng.python must hold version, state and gauss_next")
    out["python"] = {"version": py["version"], "gauss_next": py["gauss_next"],
                     "state": _int_tensor(py.get("state"), 625, 2**32, "rng.python.state")}
    _need(isinstance(npy, Mapping) and npy.get("kind") == "MT19937"
          and isinstance(npy.get("pos"), int) and isinstance(npy.get("has_gauss"), int)
          and isinstance(npy.get("cached_gaussian"), float),
          "rng.numpy must hold an MT19937 state (kind, keys, pos, has_gauss, cached_gaussian)")
    out["numpy"] = {**{k: npy[k] for k in ("kind", "pos", "has_gauss", "cached_gaussian")},
                    "keys": _int_tensor(npy.get("keys"), 624, 2**32, "rng.numpy.keys")}
    return out


def _get_rng_state(device: torch.device) -> dict[str, Any]:
    """The global RNG states as tensors and numbers (CUDA: only ``device``'s generator)."""
    version, internal, gauss_next = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    rng = {
        "torch": torch.get_rng_state(),
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64),
                   "gauss_next": gauss_next},
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
    }
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return rng


def _set_rng_state(rng: Mapping[str, Any], device: torch.device) -> None:
    torch.set_rng_state(rng["torch"])
    py, npy = rng["python"], rng["numpy"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss_next"]))
    np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"],
                         npy["has_gauss"], npy["cached_gaussian"]))
    if device.type == "cuda" and rng.get("cuda") is not None:
        torch.cuda.set_rng_state(rng["cuda"], device)


def _cpu_copy(value: Any) -> Any:
    """A copy of nested containers with every tensor detached and copied to the CPU."""
    if torch.is_tensor(value):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, Mapping):
        return {k: _cpu_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cpu_copy(v) for v in value)
    return value


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """"auto" → CUDA when available, else CPU; "cpu", "cuda" or "cuda:N" are checked to exist
    here (ValueError naming the device otherwise)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        resolved = None
    if resolved is None or resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} was asked for but no CUDA device is available")
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device {str(device)!r} was asked for but this machine has "
                         f"{torch.cuda.device_count()} CUDA device(s)")
    return resolved


def kl_weights(num_batches: int, scheme: str) -> torch.Tensor:
    """c_i for i = 1..M: ones ("uniform") or M·2^(M−i)/(2^M−1) ("blundell"); mean is 1."""
    if scheme == "uniform":
        return torch.ones(num_batches)
    if scheme == "blundell":
        i = torch.arange(1, num_batches + 1, dtype=torch.float64)
        # 2^(M−i)/(2^M−1) = 2^(−i)/(1−2^(−M)), stable for large M
        pi = torch.exp2(-i) / -torch.expm1(torch.tensor(-num_batches * math.log(2.0)))
        return (num_batches * pi).float()
    raise ValueError(f"kl_weighting must be 'uniform' or 'blundell', got {scheme!r}")


LR_SCHEDULES = ("constant", "cosine")


def schedule_factor(schedule: str, epoch: int, epochs: int) -> float:
    """The learning-rate multiplier of epoch ``epoch`` (0-based) of ``epochs``: 1 for
    "constant", ½(1 + cos(π·epoch/epochs)) for "cosine"."""
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    return 1.0


def _check_settings(epochs, batch_size, lr, num_particles, seed
                    ) -> tuple[int, int, int, int | None]:
    """(epochs, batch_size, num_particles, seed) as Python ints (numpy ints accepted; seed may
    be None), or ValueError naming the bad setting."""
    counts = tuple(as_int(value, name) for name, value in (
        ("epochs", epochs), ("batch_size", batch_size), ("num_particles", num_particles)))
    if not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr)
            and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if seed is not None and not (isinstance(seed, numbers.Integral) and not isinstance(seed, bool)
                                 and 0 <= seed < 2**32):
        raise ValueError(f"seed must be None or an int in [0, 2**32), got {seed!r}")
    return (*counts, None if seed is None else int(seed))


def fit(
    model,
    guide: torch.nn.Module,
    x,
    y,
    *,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1e-3,
    num_particles: int = 1,
    kl_weighting: str = "uniform",
    optimizer: Callable | None = None,
    seed: int | None = 0,
    device: str | torch.device = "auto",
    progress: bool = True,
    check_every: int | None = None,
    callback: Callable[[EpochRecord], None] | None = None,
    engine: str = "auto",
    state: TrainingState | None = None,
    checkpoint_every: int | None = None,
    checkpoint_interval: float | None = None,
    on_checkpoint: Callable[[TrainingState], None] | None = None,
    stop: Callable[[], bool] | None = None,
    distributed: bool | str = "auto",
    rank_noise: bool = True,
    lr_schedule: str = "constant",
    on_divergence: str = "stop",
    max_lr_reductions: int = 3,
    cuda_graph: bool | str = "auto",
) -> FitResult:
    """Fit ``guide`` to the posterior of ``model`` given data (x, y) by SVI.

    Data is moved to ``device`` once; minibatches are drawn there. ``optimizer`` is a factory
    ``params -> torch.optim.Optimizer`` (default Adam(lr), fused where torch supports it).
    Losses are checked for NaN/inf every ``check_every`` steps (default 50: each check syncs a
    GPU and copies the parameters, too costly to do every step on CPU or GPU; the first bad step
    is still named exactly);
    on a non-finite loss the guide is restored to the last checked parameters and
    ``NonFiniteLossError`` names the step. ``on_divergence="lower_lr"`` instead continues from
    those parameters with a fresh optimizer at a tenth of the learning rate, at most
    ``max_lr_reductions`` times (``FitResult.lr_reductions`` lists them); the steps since the
    last check are lost. ``lr_schedule="cosine"`` sets the learning rate of epoch e (of E) to
    lr·½(1 + cos(π e/E)); ``"constant"`` keeps lr. ``engine="fast"`` computes each step's ELBO with
    ``FastELBO`` (same estimator, no Pyro tracing; on the CPU through a compiled kernel, which
    ``PYRO_BBB_COMPILED_KERNEL=0`` turns off), ``"pyro"`` with Pyro traces (any model and
    guide); ``"auto"`` picks the fast one whenever the model and guide allow it.
    ``cuda_graph="auto"`` (on a CUDA device, with the fast engine, in one process) records the
    whole step in a CUDA graph once and replays it for every full minibatch
    (``pyro_bbb.infer.captured``; the default optimizer is then Adam with ``capturable=True``
    and its lr a device tensor); the ragged last minibatch and the first steps run eagerly.
    ``False`` turns it off, ``True`` requires it (ValueError where it cannot apply).

    Checkpoints and resuming: ``on_checkpoint(state)`` receives a ``TrainingState`` (a CPU
    snapshot, taken after a finiteness check) at the end of every ``checkpoint_every``-th epoch,
    at the first epoch end ``checkpoint_interval`` seconds after the previous checkpoint, after
    the last epoch, and when ``stop()`` returns True; ``stop`` is polled after every step (a
    Python call, no device sync), and a True answer ends training at that step boundary with
    ``TrainingInterrupted`` carrying the state. ``state`` continues such a run to ``epochs``
    (a total, not a number of further epochs): the guide, optimizer and global RNGs are restored
    (``seed`` is ignored), and data size, batch size, particles, KL weighting and engine must be
    those of the saved run. With the default Adam, ``lr`` replaces the saved learning rate (the
    same value continues the run exactly). ``FitResult.state`` is always the final state.

    Distributed (``distributed="auto"``: when a process group is initialised or torchrun's
    environment is set, ``True``: require one, ``False``: never): W ranks train one guide on
    shards of a global minibatch of W·``batch_size`` points (module docstring). Rank 0 draws the
    noise a single process seeded with ``seed`` would; rank r > 0 a stream seeded from (seed, r).
    ``rank_noise=False`` gives every rank rank 0's stream (the same ε everywhere: then a step
    equals a single-process step with batch W·``batch_size`` up to float summation order, which
    is what tests/test_distributed.py checks). ``stop()`` is polled on every rank and the run
    stops when any rank says so. A resumed distributed run restores rank 0's RNG; ranks r > 0
    reseed from (seed, r, step), so it is a valid continuation but not bitwise the
    uninterrupted run; the world size must be the saved one.
    """
    epochs, batch_size, num_particles, seed = _check_settings(epochs, batch_size, lr,
                                                              num_particles, seed)
    if hasattr(model, "check_sites") and hasattr(guide, "site_shapes"):
        model.check_sites(guide.site_shapes(), "the guide")
    _check_trainable(guide)
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
    if on_divergence not in ("stop", "lower_lr"):
        raise ValueError(f"on_divergence must be 'stop' or 'lower_lr', got {on_divergence!r}")
    if not isinstance(max_lr_reductions, int) or max_lr_reductions < 0:
        raise ValueError(f"max_lr_reductions must be an int >= 0, got {max_lr_reductions!r}")
    if checkpoint_every is not None and (not isinstance(checkpoint_every, int)
                                         or isinstance(checkpoint_every, bool)
                                         or checkpoint_every < 1):
        raise ValueError(f"checkpoint_every must be a positive int or None, got "
                         f"{checkpoint_every!r}")
    if checkpoint_interval is not None and not checkpoint_interval >= 0:
        raise ValueError(f"checkpoint_interval must be >= 0 seconds, got {checkpoint_interval!r}")
    device = resolve_device(device)
    info = setup_distributed(distributed)
    if info is not None and info.world_size == 1:
        info = None
    world, rank = (1, 0) if info is None else (info.world_size, info.rank)
    main = rank == 0
    if info is not None and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", info.local_rank)
    x = as_features(x, getattr(model, "input_size", None))
    y = as_targets(y, model.likelihood, x.shape[0]) if hasattr(model, "likelihood") else y
    x, y = _like_guide(x, y, guide, device)
    if seed is not None and state is None:
        pyro.set_rng_seed(rank_seed(seed, rank) if rank_noise else seed)
    guide.to(device)
    if info is not None:
        broadcast_module(guide)
    params = list(guide.parameters())
    step_terms, engine = _step_terms(model, guide, num_particles, engine)
    graph_factory = _graph_factory(cuda_graph, device, engine, info is not None)

    def new_optimizer() -> torch.optim.Optimizer:
        if optimizer is not None:
            return optimizer(params)
        return default_adam(params, lr, capturable=graph_factory is not None)

    opt = new_optimizer()
    if cuda_graph is True and not is_capturable(opt):
        raise ValueError("cuda_graph=True needs an optimizer built with capturable=True, e.g. "
                         "torch.optim.Adam(params, lr=torch.tensor(1e-3, device='cuda'), "
                         "capturable=True)")
    base_lrs = [float(group["lr"]) for group in opt.param_groups]
    lr_factor = 1.0  # 0.1 per recovery from divergence (on_divergence="lower_lr")
    num_data = x.shape[0]
    batch_size = min(batch_size, num_data)
    global_batch = min(world * batch_size, num_data)
    num_batches = math.ceil(num_data / global_batch)
    weights = kl_weights(num_batches, kl_weighting).tolist()
    check_every = check_every or 50
    settings = {"num_data": num_data, "batch_size": batch_size, "num_particles": num_particles,
                "kl_weighting": kl_weighting, "engine": engine, "seed": seed, "lr": float(lr),
                "epochs": epochs, "device": str(device), "threads": torch.get_num_threads(),
                "world_size": world, "lr_schedule": lr_schedule, "lr_factor": lr_factor}
    result = FitResult(guide, device=str(device))
    start_epoch, first_batch, order, sums, carried, previous = 0, 0, None, None, 0.0, 0.0
    if state is not None:
        _restore(state, guide, opt, settings, epochs, lr if optimizer is None else None, device)
        if optimizer is None:
            _default_adam_mode(opt, device, capturable=graph_factory is not None)
        if rank_noise and rank > 0:
            pyro.set_rng_seed(rank_seed(state.settings.get("seed") or 0, rank, state.step))
        result.history, result.steps = list(state.history), state.step
        lr_factor = settings["lr_factor"] = float(state.settings.get("lr_factor", 1.0))
        start_epoch, first_batch, previous = state.epoch, state.batch, state.seconds
        if first_batch:
            order, sums = state.order.to(device), state.sums.to(device)
            carried = state.epoch_seconds
    guard = _FiniteGuard(guide, check_every)
    captured = None
    if graph_factory is not None:
        captured = CapturedStep(step_terms, opt, x, y, global_batch, num_data,
                                graph_factory=graph_factory)
    average = GradientAverager(params, world) if info is not None else None
    start = last_checkpoint = time.perf_counter()

    def snapshot(epoch: int, batch: int, epoch_seconds: float = 0.0) -> TrainingState:
        guard.check()  # never hand out non-finite parameters
        mid = batch > 0
        partial = sums
        if mid and average is not None:  # the epoch's partial sums over all ranks
            partial = _mean_over_ranks(sums, world)
        return TrainingState(
            epoch=epoch, step=result.steps,
            guide_state=_cpu_copy(guide.state_dict()), optimizer_state=_cpu_copy(opt.state_dict()),
            rng=_get_rng_state(device), history=list(result.history), settings=dict(settings),
            seconds=previous + time.perf_counter() - start, batch=batch,
            order=_cpu_copy(order) if mid else None, sums=_cpu_copy(partial) if mid else None,
            epoch_seconds=epoch_seconds)

    def interrupt(snap: TrainingState) -> TrainingInterrupted:
        if on_checkpoint is not None and main:
            on_checkpoint(snap)
        return TrainingInterrupted(snap, on_checkpoint is not None)

    def set_lr(epoch: int) -> None:
        scale = lr_factor * schedule_factor(lr_schedule, epoch, epochs)
        for group, base in zip(opt.param_groups, base_lrs, strict=True):
            _set_group_lr(group, base * scale)

    def recover(err: NonFiniteLossError, epoch: int) -> None:
        """Continue after divergence with a fresh optimizer at a tenth of the lr, or re-raise."""
        nonlocal opt, lr_factor, sums, counted
        if on_divergence != "lower_lr" or len(result.lr_reductions) >= max_lr_reductions:
            raise err
        sums.zero_()  # the epoch's means restart from the restored parameters
        counted = 0
        lr_factor = settings["lr_factor"] = lr_factor * 0.1
        opt = new_optimizer()
        if captured is not None:
            captured.optimizer = opt  # a new capture follows
        set_lr(epoch)
        result.lr_reductions.append({"step": err.step, "epoch": err.epoch, "lr_factor": lr_factor})
        warnings.warn(f"{err} Continuing with learning rate x{lr_factor:g} "
                      f"(reduction {len(result.lr_reductions)} of {max_lr_reductions}).",
                      RuntimeWarning, stacklevel=3)

    def should_stop() -> bool:
        asked = stop is not None and stop()
        if average is None:
            return asked
        return bool(_mean_over_ranks(torch.tensor([float(asked)], device=device), world) > 0)

    bar = tqdm(range(start_epoch, epochs), desc="fit", unit="epoch",
               disable=not (progress and main),
               leave=False, mininterval=0.5, total=epochs, initial=start_epoch)
    with pyro.validation_enabled(False), contextlib.closing(bar):
        for epoch in bar:
            epoch_start = time.perf_counter() - carried
            set_lr(epoch)
            counted = first_batch  # steps summed into this epoch's means
            if first_batch == 0:
                sums = torch.zeros(3, device=device)
                order = torch.randperm(num_data, device=device)
                if average is not None:
                    torch.distributed.broadcast(order, 0)
            for i in range(first_batch, num_batches):
                idx = order[i * global_batch : (i + 1) * global_batch]
                stopping = False
                if captured is not None:  # (loss, data, complexity) after the step
                    values = captured(idx, weights[i])
                else:
                    if average is None:
                        terms = step_terms(x[idx], y[idx], num_data)
                        data = terms.data
                    else:
                        data, terms = _shard_terms(step_terms, x, y, idx, num_data, world, rank)
                    loss = data + weights[i] * terms.complexity
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if average is not None:
                        poll = stop is not None and i + 1 < num_batches
                        stopping = average(stop() if poll else None)
                    opt.step()
                    values = torch.stack([loss, data, terms.complexity]).detach()
                result.steps += 1
                sums += values
                counted += 1
                try:
                    guard.record(values[0], result.steps, epoch)
                except NonFiniteLossError as err:
                    recover(err, epoch)
                if average is None and stop is not None and i + 1 < num_batches:
                    stopping = stop()
                if stopping:
                    raise interrupt(snapshot(epoch, i + 1, time.perf_counter() - epoch_start))
            first_batch, carried = 0, 0.0
            if average is not None:
                sums = _mean_over_ranks(sums, world)
            try:
                guard.check()
            except NonFiniteLossError as err:
                recover(err, epoch)
            means = sums / counted if counted else torch.full_like(sums, math.nan)
            record = _epoch_record(epoch, means, time.perf_counter() - epoch_start)
            result.history.append(record)
            bar.set_postfix(elbo=f"{record.elbo:.4g}", nll=f"{record.nll:.4g}",
                            kl=f"{record.complexity:.4g}", refresh=False)
            if callback is not None:
                callback(record)
            last = epoch + 1 == epochs
            if not last and stop is not None and should_stop():
                raise interrupt(snapshot(epoch + 1, 0))
            due = on_checkpoint is not None and (
                (checkpoint_every is not None and (epoch + 1) % checkpoint_every == 0)
                or (checkpoint_interval is not None
                    and time.perf_counter() - last_checkpoint >= checkpoint_interval))
            if last or due:
                result.state = snapshot(epoch + 1, 0)
                if on_checkpoint is not None:
                    if main:
                        on_checkpoint(result.state)
                    last_checkpoint = time.perf_counter()
    if start_epoch == epochs:  # nothing left to train: the given state is the final one
        result.state = state
    if captured is not None:
        result.cuda_graph = {"captures": captured.captures, "replays": captured.replays,
                             "disabled": captured.disabled}
    result.seconds = previous + time.perf_counter() - start
    return result


def _restore(state: TrainingState, guide, opt, settings: dict, epochs: int, lr: float | None,
             device: torch.device) -> None:
    """Load ``state`` into guide, optimizer and global RNGs, after checking it fits this run."""
    if not isinstance(state, TrainingState):
        raise TypeError(f"state must be a TrainingState, got {type(state).__name__}")
    for key in _RESUME_SETTINGS:
        if state.settings.get(key) != settings[key]:
            raise ValueError(
                f"cannot resume: the training state was saved with {key}="
                f"{state.settings.get(key)!r}, this fit has {key}={settings[key]!r}")
    if state.settings.get("world_size", 1) != settings["world_size"]:
        raise ValueError(f"cannot resume: the training state was saved with world_size="
                         f"{state.settings.get('world_size', 1)}, this fit runs on "
                         f"{settings['world_size']} processes")
    if state.epoch > epochs or (state.epoch == epochs and state.batch):
        raise ValueError(f"cannot resume: the training state is past epoch {state.epoch}, "
                         f"beyond epochs={epochs}")
    settings_keys = [set(group) for group in opt.param_groups]
    try:
        opt.load_state_dict(state.optimizer_state)
        for group, keys in zip(opt.param_groups, settings_keys, strict=True):
            if not keys <= set(group):  # torch copies the saved groups' settings over
                raise ValueError(f"it has no {sorted(keys - set(group))}: it was saved by "
                                 f"another kind of optimizer than {type(opt).__name__}")
    except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as err:
        raise ValueError(f"cannot resume: the training state's optimizer state does not fit "
                         f"this optimizer: {err}") from None
    try:
        guide.load_state_dict(state.guide_state)
    except (RuntimeError, KeyError) as err:
        raise ValueError(f"cannot resume: the training state's guide parameters do not fit "
                         f"this guide: {err}") from None
    if lr is not None:
        for group in opt.param_groups:
            _set_group_lr(group, lr)
    try:
        _set_rng_state(state.rng, device)
    except (ValueError, TypeError, RuntimeError) as err:
        raise ValueError(f"cannot resume: invalid RNG state: {err}") from None


def _set_group_lr(group: dict, value: float) -> None:
    """Set a parameter group's lr; a tensor lr (capturable Adam) is filled in place, where the
    captured step reads it."""
    if torch.is_tensor(group["lr"]):
        group["lr"].fill_(value)
    else:
        group["lr"] = value


def _default_adam_mode(opt: torch.optim.Optimizer, device: torch.device, capturable: bool
                       ) -> None:
    """After loading a saved state into the default Adam: the lr and ``capturable`` of this
    run's mode, whatever the saved run's was (a capturable Adam's lr is a tensor on ``device``
    and its step counts live there too)."""
    for group in opt.param_groups:
        lr = float(group["lr"])
        group["lr"] = torch.tensor(lr, device=device) if capturable else lr
        group["capturable"] = capturable
    if capturable:
        for param_state in opt.state.values():
            if torch.is_tensor(param_state.get("step")):
                param_state["step"] = param_state["step"].to(device, torch.float32)


def _graph_factory(cuda_graph: bool | str, device: torch.device, engine: str,
                   distributed: bool):
    """The graph class of the captured step (``CudaGraph``), or None for the eager step."""
    if cuda_graph not in (True, False, "auto"):
        raise ValueError(f"cuda_graph must be True, False or 'auto', got {cuda_graph!r}")
    why = ("it needs a CUDA device" if device.type != "cuda" else
           "it needs engine='fast'" if engine != "fast" else
           "distributed training is not captured" if distributed else None)
    if cuda_graph is True and why is not None:
        raise ValueError(f"cuda_graph=True cannot apply: {why} (device {device}, engine "
                         f"{engine!r})")
    return CudaGraph if cuda_graph is not False and why is None else None


@torch.no_grad()
def _check_trainable(guide) -> None:
    """ValueError when the guide's parameters hold NaN/inf or it was pruned (σ = 0 entries:
    point masses whose log q is not finite, and training would move them off zero)."""
    bad = [name for name, p in guide.named_parameters() if not bool(torch.isfinite(p).all())]
    if bad:
        raise ValueError(f"the guide's parameters {bad} hold NaN or inf values (a diverged "
                         "fit?); start from a fresh guide or a checkpoint")
    if hasattr(guide, "scales"):
        pruned = sum(int((scale == 0).sum()) for scale in guide.scales().values())
        if pruned:
            raise ValueError(f"the guide has {pruned} entries with σ = softplus(ρ) = 0 (pruned, "
                             "or ρ too negative): a pruned guide cannot be trained further; "
                             "train the unpruned guide, then prune")


def _like_guide(x: torch.Tensor, y: torch.Tensor, guide, device: torch.device):
    """x (and real-valued y) on ``device`` in the floating dtype of the guide's parameters, so
    that a float64 guide trains on float32 data and vice versa."""
    dtype = next((p.dtype for p in guide.parameters() if p.is_floating_point()), x.dtype)
    return x.to(device, dtype), y.to(device, dtype if y.is_floating_point() else None)


def _step_terms(model, guide, num_particles: int, engine: str) -> tuple[Callable, str]:
    """The ELBO estimator of one step, ``(x, y, num_data) -> ELBOTerms``, and its engine name."""
    if engine not in ("auto", "fast", "pyro"):
        raise ValueError(f"engine must be 'auto', 'fast' or 'pyro', got {engine!r}")
    if engine == "fast" or (engine == "auto" and supports_fast_elbo(model, guide)):
        return FastELBO(model, guide, num_particles), "fast"

    def pyro_terms(x, y, num_data):
        return elbo_terms(model, guide, x, y, num_data=num_data, num_particles=num_particles)

    return pyro_terms, "pyro"


def _mean_over_ranks(value: torch.Tensor, world: int) -> torch.Tensor:
    total = value.clone()
    torch.distributed.all_reduce(total)
    return total / world


def _shard_terms(step_terms, x, y, idx, num_data: int, world: int, rank: int):
    """Rank ``rank``'s terms for the global minibatch ``idx`` (n points, W contiguous shards
    whose sizes differ by at most one): the data term scaled by N·W/n, so that the mean over the
    ranks is the global batch's (N/n)·Σ nll; an empty shard contributes only complexity."""
    n = idx.shape[0]
    shard = idx.tensor_split(world)[rank]
    size = shard.shape[0]
    if size == 0:
        terms = step_terms(x[shard], y[shard], None)
        return terms.data * 0.0, terms
    terms = step_terms(x[shard], y[shard], num_data)
    factor = world * size / n
    return (terms.data if factor == 1.0 else terms.data * factor), terms


def _epoch_record(epoch: int, means: torch.Tensor, seconds: float) -> EpochRecord:
    loss, nll, complexity = means.tolist()
    return EpochRecord(epoch, loss, nll, complexity, -(nll + complexity), seconds)


class _FiniteGuard:
    """Every ``every`` steps, checks the recorded losses and the parameters in one sync.

    Keeps a copy of the last parameters that were finite and reached only through finite losses;
    on failure it restores them and raises NonFiniteLossError naming the first bad step.
    """

    def __init__(self, module: torch.nn.Module, every: int):
        self.module, self.every = module, every
        self.good = {k: v.detach().clone() for k, v in module.state_dict().items()}
        self.good_step = 0
        self.pending: list[tuple[torch.Tensor, int, int]] = []

    def record(self, loss: torch.Tensor, step: int, epoch: int) -> None:
        self.pending.append((loss, step, epoch))
        if len(self.pending) >= self.every:
            self.check()

    def check(self) -> None:
        if not self.pending:
            return
        losses = torch.stack([loss for loss, _, _ in self.pending])
        params_ok = torch.stack([torch.isfinite(p).all() for p in self.module.parameters()])
        flags = torch.cat([torch.isfinite(losses), params_ok.all().reshape(1)]).tolist()
        if all(flags):
            self.good_step = self.pending[-1][1]
            for name, value in self.module.state_dict().items():
                self.good[name].copy_(value)
            self.pending.clear()
            return
        first = flags.index(False)
        if first < len(self.pending):
            loss, step, epoch = self.pending[first]
            what = f"the loss became non-finite ({loss.item()}) at step {step} (epoch {epoch})"
        else:
            _, step, epoch = self.pending[-1]
            what = f"the parameters became non-finite after step {step} (epoch {epoch})"
        self.module.load_state_dict(self.good)
        self.pending.clear()
        raise NonFiniteLossError(
            f"{what}; the guide was restored to its parameters after step {self.good_step}, the "
            "last check at which losses and parameters were finite. Try a lower learning rate "
            "or a smaller init_rho.",
            step,
            epoch,
        )
