"""Observation models: the data site of the model and the predictive summaries of each.

A likelihood turns network outputs ``f`` of shape ``(*batch, N, output_size)`` (``batch`` is any
leading weight-sample shape) into a distribution over targets. It may own global latent sites
(the learned noise scale of a Gaussian), sampled in the model outside the data plate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
from torch.distributions import constraints

from .distributions import check_prior, distribution_to, prior_from_spec, prior_to_spec
from .inputs import as_int

__all__ = [
    "Likelihood",
    "Categorical",
    "Bernoulli",
    "Gaussian",
    "HeteroscedasticGaussian",
    "ClassificationPrediction",
    "RegressionPrediction",
    "likelihood_from_spec",
]


@dataclass
class ClassificationPrediction:
    """Posterior predictive of a classifier over S weight samples.

    probs = E_w[p(y|x,w)]; total = H[probs] = aleatoric + epistemic, where
    aleatoric = E_w[H[p(y|x,w)]] and epistemic = total − aleatoric (mutual information I(y; w)).
    """

    probs: torch.Tensor
    total_entropy: torch.Tensor
    aleatoric: torch.Tensor
    epistemic: torch.Tensor

    @property
    def predicted(self) -> torch.Tensor:
        return self.probs.argmax(-1)


@dataclass
class RegressionPrediction:
    """Posterior predictive of a regressor over S weight samples (a mixture of S Gaussians).

    mean = E_w[f]; std² = aleatoric_std² + epistemic_std² with aleatoric_std² = E_w[σ²] and
    epistemic_std² = Var_w[f]; [lower, upper] is the central interval of the mixture at ``level``.
    """

    mean: torch.Tensor
    std: torch.Tensor
    aleatoric_std: torch.Tensor
    epistemic_std: torch.Tensor
    lower: torch.Tensor
    upper: torch.Tensor
    level: float


def _entropy(probs: torch.Tensor) -> torch.Tensor:
    return -(probs * probs.clamp_min(1e-30).log()).sum(-1)


class Likelihood:
    """Base class. ``output_size`` is the width of the network's last layer."""

    output_size: int

    def latent_priors(self, device: torch.device | None = None) -> dict[str, dist.Distribution]:
        """Priors of the likelihood's own global latent sites (on ``device`` if given)."""
        return {}

    def sample_latents(self, device: torch.device) -> dict[str, torch.Tensor]:
        """Sample the likelihood's own global latent sites (outside the data plate)."""
        return {name: pyro.sample(name, prior)
                for name, prior in self.latent_priors(device).items()}

    def distribution(self, f: torch.Tensor, latents: dict) -> dist.Distribution:
        raise NotImplementedError

    def observe(self, f: torch.Tensor, y: torch.Tensor | None, latents: dict) -> torch.Tensor:
        """The data site ``obs`` (call inside the data plate)."""
        return pyro.sample("obs", self.distribution(f, latents), obs=y)

    def log_prob(self, f: torch.Tensor, y: torch.Tensor, latents: dict) -> torch.Tensor:
        """Per-datapoint log p(y_n | x_n, w) for every weight sample: shape ``f.shape[:-1]``."""
        return self.distribution(f, latents).log_prob(y)

    def summarize(self, f: torch.Tensor, latents: dict, level: float = 0.95):
        """Posterior predictive summary from outputs f of S weight draws, shape (S, N, out)."""
        raise NotImplementedError

    def check_targets(self, y: torch.Tensor) -> torch.Tensor:
        """Targets as a checked tensor (label range, finiteness, shape), or ValueError."""
        raise NotImplementedError

    def spec(self) -> dict:
        """A plain dict from which ``likelihood_from_spec`` rebuilds this likelihood."""
        raise NotImplementedError


class Categorical(Likelihood):
    """y ~ Categorical(softmax(f)) with ``num_classes`` classes."""

    def __init__(self, num_classes: int):
        num_classes = as_int(num_classes, "Categorical: num_classes", minimum=2)
        self.num_classes = self.output_size = num_classes

    def distribution(self, f, latents):
        return dist.Categorical(logits=f, validate_args=False)

    def log_prob(self, f, y, latents):
        """log softmax(f)_y, computed as −cross_entropy (one fused kernel, no distribution)."""
        labels = y.long().expand(f.shape[:-1]).reshape(-1)
        nll = torch.nn.functional.cross_entropy(f.reshape(-1, f.shape[-1]), labels,
                                                reduction="none")
        return -nll.view(f.shape[:-1])

    def check_targets(self, y):
        return _check_labels(y, self.num_classes)

    def summarize(self, f: torch.Tensor, latents: dict, level: float = 0.95):
        return _classification_summary(torch.softmax(f, -1))

    def spec(self):
        return {"kind": "categorical", "num_classes": self.num_classes}


class Bernoulli(Likelihood):
    """y ~ Bernoulli(sigmoid(f)), a single logit; summaries report probabilities of (0, 1)."""

    output_size = 1

    def distribution(self, f, latents):
        return dist.Bernoulli(logits=f.squeeze(-1), validate_args=False)

    def check_targets(self, y):
        return _check_labels(y, 2).to(torch.get_default_dtype())

    def summarize(self, f, latents, level: float = 0.95):
        p1 = torch.sigmoid(f)
        return _classification_summary(torch.cat([1 - p1, p1], -1))

    def spec(self):
        return {"kind": "bernoulli"}


class Gaussian(Likelihood):
    """y ~ N(f, σ²) with σ fixed (``noise=0.1``) or learned (``noise=None``).

    A learned σ is a global latent site ``noise`` with prior ``noise_prior`` (default LogNormal(0,
    1), for standardised targets); the mean-field guide gives it its own entry.
    """

    output_size = 1

    def __init__(self, noise: float | None = None, noise_prior=None):
        if noise is not None and not (math.isfinite(noise) and noise > 0):
            raise ValueError(f"Gaussian: noise must be a positive finite number, got {noise!r}")
        if noise is not None and noise_prior is not None:
            raise ValueError("Gaussian: give either a fixed noise or a noise_prior, not both")
        self.noise = noise
        self.noise_prior = dist.LogNormal(0.0, 1.0) if noise_prior is None else check_prior(
            noise_prior, "Gaussian: noise_prior", (constraints.positive, constraints.nonnegative))
        self._priors: dict[torch.device, dist.Distribution] = {}

    def latent_priors(self, device=None):
        if self.noise is not None:
            return {}
        if device is None:
            return {"noise": self.noise_prior}
        if device not in self._priors:
            self._priors[device] = distribution_to(self.noise_prior, device, validate_args=False)
        return {"noise": self._priors[device]}

    def _loc(self, f: torch.Tensor) -> torch.Tensor:
        return f.squeeze(-1)

    def _scale(self, f: torch.Tensor, latents: dict) -> torch.Tensor | float:
        if self.noise is not None:
            return self.noise
        return latents["noise"].unsqueeze(-1)  # (*batch) -> (*batch, 1) against (*batch, N)

    def loc_scale(self, f: torch.Tensor, latents: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std of y for outputs ``f`` (*batch, N, out), each of shape (*batch, N)."""
        loc = self._loc(f)
        scale = torch.as_tensor(self._scale(f, latents), dtype=loc.dtype, device=loc.device)
        return loc, scale.expand_as(loc)

    def distribution(self, f, latents):  # the training step: a fixed noise stays a number
        return dist.Normal(self._loc(f), self._scale(f, latents), validate_args=False)

    def check_targets(self, y):
        y = torch.as_tensor(y, dtype=torch.get_default_dtype())
        if y.dim() == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.dim() != 1:
            raise ValueError(f"regression targets must have shape (N,), got {tuple(y.shape)}")
        _check_finite(y, "y")
        return y

    def summarize(self, f, latents, level: float = 0.95):
        locs, scales = self.loc_scale(f, latents)  # (S, N) each
        mean = locs.mean(0)
        aleatoric = scales.pow(2).mean(0).sqrt()
        epistemic = locs.var(0, unbiased=False).sqrt()
        tail = (1 - level) / 2
        lower = mixture_quantile(locs, scales, tail)
        upper = mixture_quantile(locs, scales, 1 - tail)
        std = (aleatoric**2 + epistemic**2).sqrt()
        return RegressionPrediction(mean, std, aleatoric, epistemic, lower, upper, level)

    def spec(self):
        prior = None if self.noise is not None else prior_to_spec(self.noise_prior)
        return {"kind": "gaussian", "noise": self.noise, "noise_prior": prior}


class HeteroscedasticGaussian(Gaussian):
    """y ~ N(f₀, σ(x)²) with σ(x) = softplus(f₁) + ``min_scale``: the network's two outputs are
    the mean and the (pre-softplus) noise scale of each input, so the noise varies with x. No
    global latent sites; ``min_scale`` (default 1e-3) keeps σ away from 0."""

    output_size = 2

    def __init__(self, min_scale: float = 1e-3):
        if not (math.isfinite(min_scale) and min_scale >= 0):
            raise ValueError(f"HeteroscedasticGaussian: min_scale must be a finite number >= 0, "
                             f"got {min_scale!r}")
        super().__init__()
        self.min_scale = float(min_scale)

    def latent_priors(self, device=None):
        return {}

    def _loc(self, f):
        return f[..., 0]

    def _scale(self, f, latents):
        return torch.nn.functional.softplus(f[..., 1]) + self.min_scale

    def spec(self):
        return {"kind": "heteroscedastic_gaussian", "min_scale": self.min_scale}


def mixture_quantile(locs: torch.Tensor, scales: torch.Tensor, q: float, iters: int = 50):
    """q-quantile of the equal-weight Gaussian mixture (1/S) Σ_s N(loc_s, scale_s²), per column.

    Bisection on the mixture CDF; ``locs`` and ``scales`` have shape (S, N).
    """
    lo = (locs - 10 * scales).min(0).values
    hi = (locs + 10 * scales).max(0).values
    normal = dist.Normal(locs, scales, validate_args=False)
    for _ in range(iters):
        mid = (lo + hi) / 2
        below = normal.cdf(mid).mean(0) < q
        lo = torch.where(below, mid, lo)
        hi = torch.where(below, hi, mid)
    return (lo + hi) / 2


def _classification_summary(probs: torch.Tensor) -> ClassificationPrediction:
    mean = probs.mean(0)
    total = _entropy(mean)
    aleatoric = _entropy(probs).mean(0)
    return ClassificationPrediction(mean, total, aleatoric, (total - aleatoric).clamp_min(0))


def _check_finite(t: torch.Tensor, name: str) -> None:
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s)")


def _check_labels(y, num_classes: int) -> torch.Tensor:
    y = torch.as_tensor(y)
    if y.dim() == 2 and y.shape[1] == 1:  # a column of labels, as Gaussian takes (N, 1)
        y = y[:, 0]
    if y.dim() != 1:
        raise ValueError(f"class labels must have shape (N,) or (N, 1), got {tuple(y.shape)}")
    if y.is_floating_point():
        _check_finite(y, "y")
        if not bool((y == y.round()).all()):
            raise ValueError("class labels must be integers, got non-integer values")
    y = y.long()
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(
            f"class labels must lie in [0, {num_classes - 1}], got range "
            f"[{int(y.min())}, {int(y.max())}]"
        )
    return y


def likelihood_from_spec(spec: dict) -> Likelihood:
    """Rebuild a likelihood from ``Likelihood.spec()``."""
    kind = spec.get("kind")
    if kind == "categorical":
        return Categorical(int(spec["num_classes"]))
    if kind == "bernoulli":
        return Bernoulli()
    if kind == "gaussian":
        prior = spec.get("noise_prior")
        return Gaussian(spec.get("noise"), None if prior is None else prior_from_spec(prior))
    if kind == "heteroscedastic_gaussian":
        return HeteroscedasticGaussian(float(spec.get("min_scale", 1e-3)))
    raise ValueError(f"unknown likelihood kind {kind!r}; expected categorical, bernoulli, "
                     "gaussian, heteroscedastic_gaussian")
