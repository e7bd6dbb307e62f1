"""The one-dimensional regression curve of Blundell et al. 2015 (Bayes by Backprop), section 5.2.

    y = x + 0.3 sin(2π(x + ε)) + 0.3 sin(4π(x + ε)) + ε,   ε ~ N(0, 0.02²)

Since the same ε enters everywhere, y = f(x + ε) with f the noise-free curve
f(x) = x + 0.3 sin(2πx) + 0.3 sin(4πx) (:func:`toy_regression_truth`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ..inputs import as_int, is_finite_number

__all__ = [
    "ToyRegression",
    "toy_regression",
    "toy_regression_heldout",
    "toy_regression_truth",
]


class ToyRegression(NamedTuple):
    """Inputs ``x`` of shape (N, 1) and targets ``y`` of shape (N,), both float32."""

    x: torch.Tensor
    y: torch.Tensor


def toy_regression_truth(x: torch.Tensor) -> torch.Tensor:
    """Noise-free curve f(x) = x + 0.3 sin(2πx) + 0.3 sin(4πx), elementwise."""
    x = torch.as_tensor(x)
    return x + 0.3 * torch.sin(2 * math.pi * x) + 0.3 * torch.sin(4 * math.pi * x)


def _check(num_points, x_range, noise_std) -> tuple[int, float, float, float]:
    """(num_points, low, high, noise_std) checked: a positive int, finite low < high, a finite
    noise_std >= 0."""
    num_points = as_int(num_points, "num_points")
    pair = tuple(x_range) if isinstance(x_range, (tuple, list)) else ()
    if len(pair) != 2 or not all(is_finite_number(v) for v in pair):
        raise ValueError(f"x_range must be (low, high) of two finite numbers, got {x_range!r}")
    low, high = float(pair[0]), float(pair[1])
    if not low < high:
        raise ValueError(f"x_range must satisfy low < high, got {x_range}")
    if not is_finite_number(noise_std):
        raise ValueError(f"noise_std must be a finite number, got {noise_std!r}")
    if noise_std < 0:
        raise ValueError(f"noise_std must be non-negative, got {noise_std}")
    return num_points, low, high, float(noise_std)


def _observe(x: torch.Tensor, noise_std: float, generator: torch.Generator) -> ToyRegression:
    """Targets y = f(x + ε), ε ~ N(0, noise_std²), for inputs x of shape (N,)."""
    eps = noise_std * torch.randn(x.shape, generator=generator, dtype=torch.float64)
    y = toy_regression_truth(x.double() + eps)
    return ToyRegression(x.float().unsqueeze(-1), y.float())


def toy_regression(
    num_points: int = 100,
    seed: int = 0,
    x_range: tuple[float, float] = (0.0, 0.5),
    noise_std: float = 0.02,
) -> ToyRegression:
    """Training set: x ~ Uniform(x_range) (returned sorted), y = f(x + ε), ε ~ N(0, noise_std²).

    Seeded by a local ``torch.Generator``; the global RNG is untouched.
    """
    num_points, low, high, noise_std = _check(num_points, x_range, noise_std)
    generator = torch.Generator().manual_seed(as_int(seed, "seed", minimum=0))
    u = torch.rand(num_points, generator=generator, dtype=torch.float64)
    return _observe((low + (high - low) * u).sort().values, noise_std, generator)


def toy_regression_heldout(
    num_points: int = 200,
    x_range: tuple[float, float] = (-0.2, 1.2),
    noise_std: float = 0.0,
    seed: int = 1,
) -> ToyRegression:
    """Held-out points on an even grid over a wider range than the training data.

    With the default ``noise_std=0`` the targets lie on the true curve f; pass ``noise_std=0.02``
    to draw fresh observations y = f(x + ε) for predictive-interval coverage checks.
    """
    num_points, low, high, noise_std = _check(num_points, x_range, noise_std)
    generator = torch.Generator().manual_seed(as_int(seed, "seed", minimum=0))
    x = torch.linspace(low, high, num_points, dtype=torch.float64)
    return _observe(x, noise_std, generator)
