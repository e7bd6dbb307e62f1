"""Evaluation metrics as pure tensor functions (no Pyro).

Classification metrics take ``probs`` of shape ``(N, C)`` (predictive class probabilities, rows
summing to one) and integer ``labels`` of shape ``(N,)``. Regression metrics take tensors of equal
shape. Inputs may be tensors or anything :func:`torch.as_tensor` accepts; every function returns
a Python ``float`` except :func:`reliability_curve`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from numpy.typing import ArrayLike

from .inputs import as_int

__all__ = [
    "ReliabilityCurve",
    "accuracy",
    "brier_score",
    "expected_calibration_error",
    "gaussian_log_likelihood",
    "interval_coverage",
    "mixture_gaussian_log_likelihood",
    "nll",
    "reliability_curve",
    "rmse",
    "standard_error",
]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


class ReliabilityCurve(NamedTuple):
    """Per-bin summary of confidence against accuracy; empty bins hold NaN accuracy/confidence."""

    bin_centers: torch.Tensor  # (B,)
    accuracy: torch.Tensor  # (B,) fraction correct among examples in the bin
    confidence: torch.Tensor  # (B,) mean max-probability among examples in the bin
    counts: torch.Tensor  # (B,) int64 number of examples in the bin


# --------------------------------------------------------------------------- validation helpers


def _tensor(x: ArrayLike, name: str) -> torch.Tensor:
    """Convert to a floating tensor, rejecting empty inputs and NaN."""
    t = torch.as_tensor(x)
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    if t.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)})")
    if torch.isnan(t).any():
        raise ValueError(f"{name} contains NaN")
    return t


def _same_shape(**tensors: torch.Tensor) -> None:
    """Raise if the named tensors do not all have the same shape."""
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(f"shape mismatch: {listed}")


def _classification(probs: ArrayLike, labels: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate ``probs`` (N, C) and ``labels`` (N,) in [0, C)."""
    p = _tensor(probs, "probs")
    y = torch.as_tensor(labels)
    if p.dim() != 2:
        raise ValueError(f"probs must have shape (N, C), got {tuple(p.shape)}")
    if y.is_complex() or (y.is_floating_point() and not bool(
            (torch.isfinite(y) & (y == y.round())).all())):
        raise ValueError(f"labels must be integers, got non-integer values of dtype {y.dtype}")
    y = y.long()  # integer-valued floats and bools, as fit takes them
    if y.shape != p.shape[:1]:
        raise ValueError(
            f"shape mismatch: probs {tuple(p.shape)} needs labels of shape ({p.shape[0]},), "
            f"got labels {tuple(y.shape)}"
        )
    num_classes = p.shape[1]
    if ((y < 0) | (y >= num_classes)).any():
        raise ValueError(
            f"labels out of range [0, {num_classes}): found min {int(y.min())}, max {int(y.max())}"
        )
    if (p < 0).any() or (p > 1).any():
        raise ValueError("probs must lie in [0, 1]")
    if not torch.allclose(p.sum(-1), torch.ones((), dtype=p.dtype), atol=1e-3):
        raise ValueError("probs rows must sum to 1 (were logits passed instead of probabilities?)")
    return p, y.long()


def _regression(**inputs: ArrayLike) -> list[torch.Tensor]:
    """Convert and validate equally shaped regression inputs, in the order given."""
    tensors = {name: _tensor(x, name) for name, x in inputs.items()}
    _same_shape(**tensors)
    return list(tensors.values())


def _positive(t: torch.Tensor, name: str) -> None:
    if (t <= 0).any():
        raise ValueError(f"{name} must be positive")


def _gaussian_log_prob(
    loc: torch.Tensor, scale: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """Elementwise log N(target | loc, scale²)."""
    z = (target - loc) / scale
    return -0.5 * z**2 - scale.log() - _LOG_SQRT_2PI


# --------------------------------------------------------------------------- classification


def accuracy(probs: ArrayLike, labels: ArrayLike) -> float:
    """Fraction of examples whose arg-max class equals the label: mean 1[argmax_c p_ic = y_i]."""
    p, y = _classification(probs, labels)
    return (p.argmax(-1) == y).double().mean().item()


def nll(probs: ArrayLike, labels: ArrayLike, eps: float = 1e-12) -> float:
    """Mean negative log-likelihood −(1/N) Σ_i log max(p_{i,y_i}, eps)."""
    p, y = _classification(probs, labels)
    picked = p.gather(-1, y.unsqueeze(-1)).squeeze(-1)
    return -picked.clamp_min(eps).log().mean().item()


def brier_score(probs: ArrayLike, labels: ArrayLike) -> float:
    """Multi-class Brier score (1/N) Σ_i Σ_c (p_ic − 1[y_i = c])², which lies in [0, 2]."""
    p, y = _classification(probs, labels)
    one_hot = torch.nn.functional.one_hot(y, p.shape[1]).to(p.dtype)
    return (p - one_hot).pow(2).sum(-1).mean().item()


def reliability_curve(probs: ArrayLike, labels: ArrayLike, num_bins: int = 15) -> ReliabilityCurve:
    """Bin examples by confidence max_c p_ic into equal-width bins ((b−1)/B, b/B], b = 1..B.

    For each bin returns the mean accuracy and mean confidence of its examples and their count.
    """
    num_bins = as_int(num_bins, "num_bins")
    p, y = _classification(probs, labels)
    confidence, predicted = p.max(-1)
    correct = (predicted == y).to(p.dtype)
    edges = torch.linspace(0.0, 1.0, num_bins + 1, dtype=p.dtype)
    # right=False puts x into bin b with edges[b] < x <= edges[b + 1]: bins are right-closed.
    bins = torch.bucketize(confidence, edges[1:-1], right=False)
    counts = torch.bincount(bins, minlength=num_bins)

    def bin_mean(values: torch.Tensor) -> torch.Tensor:
        sums = torch.zeros(num_bins, dtype=p.dtype).index_add_(0, bins, values)
        return sums / counts  # 0 / 0 = NaN marks empty bins

    centers = 0.5 * (edges[:-1] + edges[1:])
    return ReliabilityCurve(centers, bin_mean(correct), bin_mean(confidence), counts)


def expected_calibration_error(probs: ArrayLike, labels: ArrayLike, num_bins: int = 15) -> float:
    """ECE = Σ_b (n_b / N) |acc_b − conf_b| over equal-width confidence bins (Guo et al. 2017)."""
    curve = reliability_curve(probs, labels, num_bins)
    weights = curve.counts.to(curve.confidence.dtype) / curve.counts.sum()  # not float32
    gaps = (curve.accuracy - curve.confidence).abs()
    return torch.nansum(weights * gaps).item()


# --------------------------------------------------------------------------- regression


def rmse(mean: ArrayLike, target: ArrayLike) -> float:
    """Root mean squared error sqrt((1/N) Σ_i (μ_i − y_i)²)."""
    mu, y = _regression(mean=mean, target=target)
    return (mu - y).pow(2).mean().sqrt().item()


def gaussian_log_likelihood(mean: ArrayLike, std: ArrayLike, target: ArrayLike) -> float:
    """Mean Gaussian log density (1/N) Σ_i log N(y_i | μ_i, σ_i²)."""
    mu, sigma, y = _regression(mean=mean, std=std, target=target)
    _positive(sigma, "std")
    return _gaussian_log_prob(mu, sigma, y).mean().item()


def mixture_gaussian_log_likelihood(locs: ArrayLike, scales: ArrayLike, target: ArrayLike) -> float:
    """Mean log density of an equal-weight Gaussian mixture over S posterior samples.

    locs, scales: (S, N, ...); target: (N, ...). Per point
    log (1/S) Σ_s N(y | loc_s, scale_s²) = logsumexp_s log N(y | loc_s, scale_s²) − log S,
    averaged over points: the Monte Carlo estimate of test log-likelihood.
    """
    mu, sigma = _regression(locs=locs, scales=scales)
    y = _tensor(target, "target")
    if mu.dim() != y.dim() + 1 or mu.shape[1:] != y.shape:
        raise ValueError(
            f"shape mismatch: locs {tuple(mu.shape)} must be (S, *target.shape) "
            f"with target {tuple(y.shape)}"
        )
    _positive(sigma, "scales")
    log_probs = _gaussian_log_prob(mu, sigma, y)
    return (log_probs.logsumexp(0) - math.log(mu.shape[0])).mean().item()


def interval_coverage(lower: ArrayLike, upper: ArrayLike, target: ArrayLike) -> float:
    """Fraction of targets inside their interval: (1/N) Σ_i 1[l_i ≤ y_i ≤ u_i]."""
    lo, hi, y = _regression(lower=lower, upper=upper, target=target)
    if (lo > hi).any():
        raise ValueError(f"lower exceeds upper at {int((lo > hi).sum())} points")
    return ((lo <= y) & (y <= hi)).double().mean().item()


def standard_error(values: ArrayLike) -> float:
    """Standard error of the mean over the non-NaN values (those pandas' ``mean`` averages):
    s/√n with the sample std (ddof 1); 0 for one value, NaN for none (or an infinite one)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[~np.isnan(x)]
    if x.size == 0 or not np.isfinite(x).all():
        return math.nan
    return float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else 0.0
