"""fit(): stochastic variational inference for a BayesianMLP with the Trace_ELBO estimator.

Each step draws a minibatch of B of the N points, K weight samples from the guide (vectorised),
and minimises

    loss_i = E_q[−log p(D_i|w)]·N/B + c_i · E_q[log q(w|θ) − log p(w)]

with Adam. ``kl_weighting="uniform"`` (default) uses c_i = 1: the plate's N/B scaling makes the
loss an unbiased estimate of the full-data −ELBO. ``"blundell"`` uses c_i = M·π_i with
π_i = 2^(M−i)/(2^M−1) over the M minibatches of an epoch (Blundell et al. 2015, eq. 9): early
minibatches carry most of the complexity cost, and the weights still sum to one per epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import pyro
import torch
from tqdm.auto import tqdm

from ..inputs import as_features, as_targets
from .elbo import elbo_terms
from .engine import FastELBO, supports_fast_elbo

__all__ = ["fit", "FitResult", "EpochRecord", "NonFiniteLossError", "kl_weights", "resolve_device"]


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
    guide: torch.nn.Module
    history: list[EpochRecord] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    device: str = "cpu"

    def history_dict(self) -> dict[str, list[float]]:
        """Columns of the history, e.g. for pandas.DataFrame or JSON."""
        rows = [asdict(r) for r in self.history]
        return {k: [r[k] for r in rows] for k in (rows[0] if rows else {})}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """"auto" → CUDA when available, else CPU; anything else is checked to exist."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA device is available")
    return device


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


def _check_settings(epochs, batch_size, lr, num_particles):
    for name, value in (("epochs", epochs), ("batch_size", batch_size),
                        ("num_particles", num_particles)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")


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
) -> FitResult:
    """Fit ``guide`` to the posterior of ``model`` given data (x, y) by SVI.

    Data is moved to ``device`` once; minibatches are drawn there. ``optimizer`` is a factory
    ``params -> torch.optim.Optimizer`` (default Adam(lr)). Losses are checked for NaN/inf every
    ``check_every`` steps (default: 1 on CPU, 50 on CUDA, so the GPU is not synced every step);
    on a non-finite loss the guide is restored to the last checked parameters and
    ``NonFiniteLossError`` names the step. ``engine="fast"`` computes each step's ELBO with
    ``FastELBO`` (same estimator, no Pyro tracing), ``"pyro"`` with Pyro traces (any model and
    guide); ``"auto"`` picks the fast one whenever the model and guide allow it.
    """
    _check_settings(epochs, batch_size, lr, num_particles)
    device = resolve_device(device)
    x = as_features(x, getattr(model, "input_size", None))
    y = as_targets(y, model.likelihood, x.shape[0]) if hasattr(model, "likelihood") else y
    x, y = x.to(device), y.to(device)
    if seed is not None:
        pyro.set_rng_seed(seed)
    guide.to(device)
    params = list(guide.parameters())
    opt = optimizer(params) if optimizer is not None else torch.optim.Adam(params, lr=lr)
    num_data = x.shape[0]
    batch_size = min(batch_size, num_data)
    num_batches = math.ceil(num_data / batch_size)
    weights = kl_weights(num_batches, kl_weighting).tolist()
    check_every = check_every or (1 if device.type == "cpu" else 50)
    step_terms = _step_terms(model, guide, num_particles, engine)
    guard = _FiniteGuard(guide, check_every)
    result = FitResult(guide, device=str(device))
    start = time.perf_counter()
    bar = tqdm(range(epochs), desc="fit", unit="epoch", disable=not progress, leave=False,
               mininterval=0.5)
    with pyro.validation_enabled(False):
        for epoch in bar:
            epoch_start = time.perf_counter()
            sums = torch.zeros(3, device=device)
            order = torch.randperm(num_data, device=device)
            for i in range(num_batches):
                idx = order[i * batch_size : (i + 1) * batch_size]
                terms = step_terms(x[idx], y[idx], num_data)
                loss = terms.data + weights[i] * terms.complexity
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                result.steps += 1
                sums += torch.stack([loss, terms.data, terms.complexity]).detach()
                guard.record(loss.detach(), result.steps, epoch)
            guard.check()
            record = _epoch_record(epoch, sums / num_batches, time.perf_counter() - epoch_start)
            result.history.append(record)
            bar.set_postfix(elbo=f"{record.elbo:.4g}", nll=f"{record.nll:.4g}",
                            kl=f"{record.complexity:.4g}", refresh=False)
            if callback is not None:
                callback(record)
    result.seconds = time.perf_counter() - start
    return result


def _step_terms(model, guide, num_particles: int, engine: str) -> Callable:
    """The ELBO estimator of one step: ``(x, y, num_data) -> ELBOTerms``."""
    if engine not in ("auto", "fast", "pyro"):
        raise ValueError(f"engine must be 'auto', 'fast' or 'pyro', got {engine!r}")
    if engine == "fast" or (engine == "auto" and supports_fast_elbo(model, guide)):
        return FastELBO(model, guide, num_particles)

    def pyro_terms(x, y, num_data):
        return elbo_terms(model, guide, x, y, num_data=num_data, num_particles=num_particles)

    return pyro_terms


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
