"""Prior predictive checks: what a network does before it has seen any data.

The figures show the prior predictive: outputs f(x; w) of networks whose weights are drawn from the
prior, w ~ p(w), with no fitting. For 1-D regression, whole functions x ↦ f(x; w_s) and the
pointwise central band of f(x) (``prior_predictive_functions``); for classifiers, how confident
single draws p(y | x, w_s) and their mean p̄(y | x) = (1/S) Σ_s p(y | x, w_s) are
(``prior_class_probabilities``). ``prior_variants`` puts a model next to copies under Gaussian
priors N(0, σ²) so the figures compare priors side by side.

Every function that draws returns a matplotlib Figure and never shows it (headless Agg backend when
no backend was chosen, as in ``pyro_bbb.plots``); save it with ``pyro_bbb.plots.save_figure``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from .plots import _numbers, _pyplot, _training_points

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = [
    "DEFAULT_PRIOR_SIGMAS",
    "prior_variants",
    "prior_function_draws",
    "prior_predictive_functions",
    "prior_probability_draws",
    "prior_class_probabilities",
]

#: Gaussian prior scales that ``prior_variants`` compares with a model's own prior by default.
DEFAULT_PRIOR_SIGMAS = (0.1, 0.3, 1.0)


def _prior_label(priors: Sequence) -> str:
    """A short description of a model's priors, e.g. ``N(0, 0.3²)``."""
    from .distributions import prior_to_spec

    def one(prior) -> str:
        try:
            spec = prior_to_spec(prior)
        except ValueError:
            return type(prior).__name__
        kind = spec.pop("kind")
        if kind == "gaussian":
            return f"N(0, {spec['sigma']:.3g}²)"
        if kind == "scale_mixture":
            return (f"scale mixture (π={spec['pi']:.3g}, σ1={spec['sigma1']:.3g}, "
                    f"σ2={spec['sigma2']:.3g})")
        return f"{kind}({', '.join(f'{k}={v:.3g}' for k, v in spec.items())})"

    labels = [one(p) for p in priors]
    return labels[0] if len(set(labels)) == 1 else " / ".join(labels)


def prior_variants(model, sigmas: Sequence[float] = DEFAULT_PRIOR_SIGMAS) -> dict:
    """``model`` (labelled by its prior) and copies with Gaussian priors N(0, σ²), one per σ.

    Same layer sizes, likelihood and activation: label → BayesianMLP, ready for
    ``prior_predictive_functions`` / ``prior_class_probabilities``.
    """
    from .distributions import gaussian_prior
    from .model import BayesianMLP

    if isinstance(sigmas, (str, bytes)) or not isinstance(sigmas, (Sequence, np.ndarray)):
        raise ValueError("sigmas must be a sequence of prior scales such as (0.1, 1.0), got "
                         f"{sigmas!r}")
    variants = {_prior_label(model.priors): model}
    for sigma in sigmas:
        prior = gaussian_prior(float(sigma))  # ValueError for σ ≤ 0 or non-finite
        variants.setdefault(_prior_label([prior]),
                            BayesianMLP(model.layer_sizes, model.likelihood, prior,
                                        model.activation))
    return variants


def _models(models) -> dict:
    """label → BayesianMLP from one model or a mapping of them."""
    from .model import BayesianMLP

    if isinstance(models, BayesianMLP):
        return {_prior_label(models.priors): models}
    if not isinstance(models, Mapping) or not models:
        raise ValueError("models must be a BayesianMLP or a non-empty mapping label → "
                         f"BayesianMLP, got {models!r}")
    for label, model in models.items():
        if not isinstance(model, BayesianMLP):
            raise ValueError(f"models[{label!r}] is not a BayesianMLP: {model!r}")
    return {str(k): v for k, v in models.items()}


def _check_draws(num_draws, name: str = "num_draws") -> int:
    if isinstance(num_draws, bool) or not isinstance(num_draws, (int, np.integer)) \
            or num_draws < 1:
        raise ValueError(f"{name} must be a positive int, got {num_draws!r}")
    return int(num_draws)


def _prior_outputs(model, x: torch.Tensor, num_draws: int, seed: int | None) -> torch.Tensor:
    """f(x; w_s) for w_s ~ p(w), s = 1..S: shape (S, N, d_L), in chunks of inputs (CPU)."""
    from .diagnostics import sample_prior
    from .predict import default_chunk_size

    draws = sample_prior(model, num_draws, seed=seed)
    chunk = default_chunk_size(num_draws, max(model.layer_sizes))
    with torch.no_grad():
        return torch.cat([model.network(x[i : i + chunk], draws)
                          for i in range(0, x.shape[0], chunk)], dim=-2)


def _inputs(x, model, label: str) -> torch.Tensor:
    x = torch.as_tensor(_numbers(x, "inputs"), dtype=torch.get_default_dtype())
    if x.dim() == 1 and model.input_size == 1:
        x = x[:, None]
    if x.dim() != 2 or x.shape[1] != model.input_size or x.shape[0] < 1:
        raise ValueError(f"inputs must have shape (N, {model.input_size}) for model {label!r}, "
                         f"got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("inputs must be finite")
    return x


def prior_function_draws(model, x_grid, num_draws: int = 20, *,
                         seed: int | None = 0) -> torch.Tensor:
    """Functions drawn from the prior: f(x_g; w_s) with w_s ~ p(w), shape (num_draws, G).

    ``model`` is a single-output BayesianMLP with 1-D inputs; ``x_grid`` has G points, shape (G,)
    or (G, 1). Seeded draws are reproducible and leave torch's global RNG as it was.
    """
    num_draws = _check_draws(num_draws)
    x = _grid(x_grid)
    if model.input_size != 1 or model.layer_sizes[-1] != 1:
        raise ValueError("prior functions need a model with one input and one output, got "
                         f"{model!r}")
    return _prior_outputs(model, x[:, None], num_draws, seed)[..., 0]


def _grid(x_grid) -> torch.Tensor:
    x = torch.as_tensor(_numbers(x_grid, "x_grid"), dtype=torch.get_default_dtype())
    if x.dim() == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if x.dim() != 1 or x.shape[0] < 2:
        raise ValueError("x_grid must be a 1-D grid of at least two points, shape (G,) or (G, 1); "
                         f"got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("x_grid must be finite")
    return x


def prior_predictive_functions(
    models,
    x_grid,
    num_draws: int = 20,
    *,
    seed: int | None = 0,
    band_draws: int = 1000,
    level: float = 0.95,
    data: tuple | None = None,
    title: str | None = None,
) -> Figure:
    """Prior predictive check for 1-D regression: functions f(x; w), w ~ p(w), one panel per model.

    ``models`` is a BayesianMLP or a mapping label → BayesianMLP (e.g. ``prior_variants``); panels
    share the y-axis so priors compare at a glance, unless their mean band widths (in every
    panel's title) differ by more than a factor 10: then each panel has its own y range, so that
    no panel is a flat line. Each panel draws ``num_draws`` functions and
    shades the central ``level`` band of f(x) — the pointwise quantiles (1∓level)/2 of f(x; w)
    over ``max(num_draws, band_draws)`` prior draws, whose first ``num_draws`` are the lines.
    ``data`` = (x, y) overlays training points for scale. Every model gets the same ``seed``.
    """
    models = _models(models)
    num_draws = _check_draws(num_draws)
    band_draws = _check_draws(band_draws, "band_draws")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    x = _grid(x_grid)
    if data is not None:
        if not isinstance(data, (tuple, list)) or len(data) != 2:
            raise ValueError("data must be a pair (x, y) of training inputs and targets")
        data = _training_points(*data, name="data x")
    order = torch.argsort(x)
    tail = (1 - level) / 2
    curves = {}
    for label, model in models.items():
        f = prior_function_draws(model, x[order], max(num_draws, band_draws), seed=seed)
        band = torch.quantile(f, torch.tensor([tail, 1 - tail], dtype=f.dtype), dim=0)
        curves[label] = (f[:num_draws].numpy(), band.numpy())
    plt = _pyplot()
    count = len(curves)
    widths = [float(np.mean(band[1] - band[0])) for _, band in curves.values()]
    # one y-axis for all while the priors are of one order of magnitude; beyond that a shared
    # axis would draw the narrow priors (and the data) as flat lines
    shared = min(widths) > 0 and max(widths) <= 10 * min(widths)
    fig, axes = plt.subplots(1, count, figsize=(3.6 * count + 0.8, 3.6), sharey=shared,
                             squeeze=False)
    xs = x[order].numpy()
    for ax, (label, (lines, band)) in zip(axes[0], curves.items(), strict=True):
        ax.fill_between(xs, band[0], band[1], color="tab:blue", alpha=0.2,
                        label=f"central {level:.0%} of f(x)")
        ax.plot(xs, lines.T, color="tab:blue", linewidth=0.8, alpha=0.6)
        if data is not None:
            ax.scatter(*data, s=6, color="tab:red", zorder=3,
                       label="training data")
        ax.set_title(f"{label}\nmean band width {float(np.mean(band[1] - band[0])):.3g}",
                     fontsize="medium")
        ax.set_xlabel("x")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("f(x; w),  w ~ prior")
    axes[0, 0].legend(loc="upper left", fontsize="small")
    fig.suptitle(title or f"Prior predictive: {num_draws} functions per prior")
    fig.tight_layout()
    return fig


def prior_probability_draws(model, x, num_draws: int = 50, *,
                            seed: int | None = 0) -> torch.Tensor:
    """Class probabilities p(y = c | x_n, w_s) with w_s ~ p(w): shape (num_draws, N, C).

    softmax(f) for a Categorical likelihood, (1 − σ(f), σ(f)) for a Bernoulli one. Seeded draws
    are reproducible and leave torch's global RNG as it was.
    """
    from .likelihoods import Bernoulli, Categorical

    num_draws = _check_draws(num_draws)
    if not isinstance(model.likelihood, (Categorical, Bernoulli)):
        raise ValueError(f"class probabilities need a classifier (Categorical or Bernoulli "
                         f"likelihood), got {type(model.likelihood).__name__}")
    f = _prior_outputs(model, _inputs(x, model, repr(model)), num_draws, seed)
    if isinstance(model.likelihood, Bernoulli):
        p1 = torch.sigmoid(f)
        return torch.cat([1 - p1, p1], -1)
    return torch.softmax(f, -1)


_CLASS_STATISTICS = {
    "max_prob": ("max class probability", "max_c p(y=c | x, w)"),
    "entropy": ("entropy (nats)", "H[p(y | x, w)]"),
}


def prior_class_probabilities(
    models,
    x,
    num_draws: int = 50,
    *,
    seed: int | None = 0,
    statistic: str = "max_prob",
    bins: int = 30,
    title: str | None = None,
) -> Figure:
    """Prior predictive check for classifiers: how confident is a network drawn from the prior?

    Per model (a BayesianMLP or a mapping label → BayesianMLP) a panel with two histograms over
    the inputs ``x``: the ``statistic`` of single prior draws, max_c p(y=c | x_n, w_s) (or the
    entropy H[p(y | x_n, w_s)]) over all draws s and inputs n, and the same statistic of the
    prior predictive mean p̄(y | x_n) = (1/S) Σ_s p(y | x_n, w_s). A prior whose single draws sit
    near 1 (entropy near 0) makes the network overconfident before it has seen data, even when
    the mean is near uniform (max 1/C, entropy log C; dotted line). Panels share the x-axis.
    """
    models = _models(models)
    num_draws = _check_draws(num_draws)
    if statistic not in _CLASS_STATISTICS:
        raise ValueError(f"statistic must be one of {', '.join(_CLASS_STATISTICS)}, "
                         f"got {statistic!r}")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be a positive int, got {bins!r}")

    def stat(p: torch.Tensor) -> np.ndarray:
        if statistic == "max_prob":
            return p.max(-1).values.reshape(-1).double().numpy()
        return (-(p * p.clamp_min(1e-30).log()).sum(-1)).reshape(-1).double().numpy()

    values = {}
    classes = set()
    for label, model in models.items():
        probs = prior_probability_draws(model, x, num_draws, seed=seed)
        classes.add(probs.shape[-1])
        values[label] = (stat(probs), stat(probs.mean(0)))
    if len(classes) != 1:
        raise ValueError(f"the models disagree on the number of classes: {sorted(classes)}")
    num_classes = classes.pop()
    reference = 1 / num_classes if statistic == "max_prob" else float(np.log(num_classes))
    lo, hi = (reference, 1.0) if statistic == "max_prob" else (0.0, reference)
    edges = np.linspace(lo, hi, bins + 1)
    axis_label, formula = _CLASS_STATISTICS[statistic]
    plt = _pyplot()
    count = len(values)
    fig, axes = plt.subplots(1, count, figsize=(3.6 * count + 0.8, 3.4), sharex=True,
                             squeeze=False)
    for ax, (label, (single, mean)) in zip(axes[0], values.items(), strict=True):
        ax.hist(np.clip(single, lo, hi), bins=edges, density=True, color="tab:red", alpha=0.5,
                label=f"single draws (mean {single.mean():.2f})")
        ax.hist(np.clip(mean, lo, hi), bins=edges, density=True, color="tab:blue", alpha=0.5,
                label=f"prior predictive mean ({mean.mean():.2f})")
        ax.axvline(reference, color="black", linestyle=":", linewidth=1.2)
        ax.set_title(label, fontsize="medium")
        ax.set_xlabel(axis_label)
        ax.legend(loc="upper center", fontsize="x-small")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("density")
    n = len(next(iter(values.values()))[1])
    fig.suptitle(title or f"Prior predictive {formula}: {num_draws} draws × {n} inputs "
                 f"(dotted: uniform over {num_classes} classes)")
    fig.tight_layout()
    return fig
