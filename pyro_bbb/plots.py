"""Figures of an experiment: regression band, reliability diagram, training curves, uncertainty
histograms and the most uncertain images. Prior predictive checks (functions and class
probabilities drawn from the prior, before any fitting) are in ``pyro_bbb.prior_plots``.

Every function returns a matplotlib Figure and never shows it. pyplot is imported lazily; when no
backend has been chosen yet (no pyplot import, no MPLBACKEND, no rcParams backend) the headless
Agg backend is selected first, so plotting works without a display.
"""

from __future__ import annotations

import numbers
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .inputs import as_int
from .likelihoods import ClassificationPrediction, RegressionPrediction
from .metrics import expected_calibration_error, reliability_curve

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from .infer.fit import FitResult

__all__ = [
    "regression_band",
    "reliability_diagram",
    "training_curves",
    "uncertainty_histogram",
    "most_uncertain_indices",
    "most_uncertain_images",
    "save_figure",
]

UNCERTAINTY_KINDS = ("total", "aleatoric", "epistemic")

#: One colour per kind of uncertainty, the same in every figure that shows them apart
#: (``uncertainty_histogram``, ``uncertainty_plots.uncertainty_over_x``).
UNCERTAINTY_COLORS = {"total": "black", "aleatoric": "tab:blue", "epistemic": "tab:orange"}


def _pyplot():
    """matplotlib.pyplot, selecting Agg first if nobody chose a backend."""
    import matplotlib

    chosen = getattr(matplotlib.rcParams, "_get_backend_or_none", lambda: None)()
    if "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND") and not chosen:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _np(values) -> np.ndarray:
    """A flat float numpy array from a tensor, array or sequence."""
    if torch.is_tensor(values):
        values = values.detach().cpu()
    return np.asarray(values, dtype=float).reshape(-1)


def _numbers(values, name: str) -> np.ndarray:
    """``values`` as a float numpy array of its own shape, or ValueError naming ``name``."""
    if torch.is_tensor(values):
        values = values.detach().cpu()
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numeric, got {type(values).__name__}") from None


def _inputs_1d(x, name: str = "x_grid") -> np.ndarray:
    """1-D inputs, shape (N,) or (N, 1), as a flat float array: non-empty and finite."""
    array = _numbers(x, name)
    if not (array.ndim == 1 or (array.ndim == 2 and array.shape[1] == 1)):
        raise ValueError(f"{name} must be 1-D inputs of shape (N,) or (N, 1), got shape "
                         f"{array.shape}")
    array = array.reshape(-1)
    if not array.size:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _training_points(x, y=None, name: str = "x_train") -> tuple[np.ndarray, np.ndarray | None]:
    """Training points to draw: 1-D inputs ``x`` (``_inputs_1d``) and, given, one finite target
    per input, as flat float arrays."""
    xt = _inputs_1d(x, name)
    if y is None:
        return xt, None
    yt = _numbers(y, "the training targets").reshape(-1)
    if yt.size != xt.size:
        raise ValueError(f"the training data has {xt.size} inputs but {yt.size} targets")
    if not np.isfinite(yt).all():
        raise ValueError("the training targets contain NaN or infinite values")
    return xt, yt


def _shade_training_range(ax, x_train) -> tuple[float, float]:
    """Shade [min, max] of the 1-D training inputs on ``ax``; return the two edges."""
    xt = _inputs_1d(x_train, "x_train")
    lo, hi = float(xt.min()), float(xt.max())
    ax.axvspan(lo, hi, color="0.92", zorder=0, label="training range")
    return lo, hi


def regression_band(
    x_train,
    y_train,
    x_grid,
    prediction: RegressionPrediction,
    truth: Callable | Sequence[float] | torch.Tensor | None = None,
    title: str = "Posterior predictive",
) -> Figure:
    """Training points, predictive mean, central ``prediction.level`` band over 1-D ``x_grid``.

    ``truth`` (values at ``x_grid`` or a function of x) adds the true curve; the training input
    range is shaded and bounded by dashed vertical lines.
    """
    if not isinstance(prediction, RegressionPrediction):
        raise ValueError("regression_band needs a RegressionPrediction, got "
                         f"{type(prediction).__name__}")
    xg = _inputs_1d(x_grid)
    mean, lower, upper = (_np(getattr(prediction, k)) for k in ("mean", "lower", "upper"))
    if not len(xg) == len(mean) == len(lower) == len(upper):
        raise ValueError(f"x_grid has {len(xg)} points but the prediction has {len(mean)}")
    xt, yt = _training_points(x_train, y_train)
    order = np.argsort(xg)
    xg, mean, lower, upper = xg[order], mean[order], lower[order], upper[order]
    if truth is not None:
        values = _numbers(truth(torch.as_tensor(xg)) if callable(truth) else truth,
                          "truth").reshape(-1)
        if values.size != len(xg):
            raise ValueError(f"truth has {values.size} values for the {len(xg)} points of x_grid")
        if not callable(truth):
            values = values[order]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for edge in _shade_training_range(ax, xt):
        ax.axvline(edge, color="0.5", linestyle="--", linewidth=0.8)
    ax.fill_between(xg, lower, upper, color="tab:blue", alpha=0.25,
                    label=f"{prediction.level:.0%} predictive interval")
    ax.plot(xg, mean, color="tab:blue", linewidth=1.8, label="predictive mean")
    if truth is not None:
        ax.plot(xg, values, color="black", linestyle=":", linewidth=1.2, label="true function")
    ax.scatter(xt, yt, s=10, color="tab:red", zorder=3, label="training data")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    return fig


def reliability_diagram(probs, labels, num_bins: int = 15, title: str | None = None) -> Figure:
    """Accuracy against confidence per equal-width bin (top) and bin counts (bottom).

    The dashed diagonal is perfect calibration; the title reports the ECE over the same bins.
    """
    plt = _pyplot()
    curve = reliability_curve(probs, labels, num_bins)
    ece = expected_calibration_error(probs, labels, num_bins)
    centers, acc, conf, counts = (_np(t) for t in curve)
    width = 1.0 / num_bins
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5, 6), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})
    filled = counts > 0
    top.bar(centers[filled], acc[filled], width=width, edgecolor="black", color="tab:blue",
            alpha=0.8, label="accuracy")
    top.bar(centers[filled], (conf - acc)[filled], bottom=acc[filled], width=width,
            color="tab:red", alpha=0.3, edgecolor="tab:red", hatch="//",
            label="gap to confidence")
    top.plot([0, 1], [0, 1], linestyle="--", color="black", label="perfect calibration")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.set_title(title or f"Reliability (ECE = {ece:.4f}, {num_bins} bins)")
    top.legend(loc="upper left", fontsize="small")
    bottom.bar(centers, counts, width=width, color="0.5", edgecolor="black")
    bottom.set_xlabel("confidence")
    bottom.set_ylabel("count")
    positive = counts[counts > 0]
    if positive.size and positive.max() > 100 * positive.min():
        # a few full bins would flatten the rest, whose counts say how far to trust their bars
        bottom.set_yscale("log")
        bottom.set_ylim(0.5, 2 * positive.max())
    fig.tight_layout()
    return fig


def training_curves(history: Mapping[str, Sequence[float]] | FitResult) -> Figure:
    """The two terms of −ELBO per epoch: expected NLL (left) and complexity cost (right).

    ``history`` is a ``FitResult`` or its ``history_dict()`` (keys epoch, nll, complexity, ...).
    Each panel shows the per-epoch values and, from 100 epochs on, their moving average over 2%
    of the run; the y range follows the later 90% of epochs so an early spike does not flatten
    the curve.
    """
    if hasattr(history, "history_dict"):
        history = history.history_dict()
    if not isinstance(history, Mapping):
        raise ValueError("history must be a FitResult or FitResult.history_dict(), got "
                         f"{type(history).__name__}")
    if not history:
        raise ValueError("history is empty (no epochs)")
    missing = [k for k in ("epoch", "nll", "complexity") if k not in history]
    if missing:
        raise ValueError(f"history lacks {missing}; pass a FitResult or its history_dict()")
    columns = {k: _numbers(history[k], f"history[{k!r}]").reshape(-1)
               for k in ("epoch", "nll", "complexity")}
    lengths = {k: v.size for k, v in columns.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"history columns differ in length: {lengths}")
    if not lengths["epoch"]:
        raise ValueError("history is empty (no epochs)")
    plt = _pyplot()
    epochs = columns["epoch"] + 1
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    panels = [(left, "nll", "tab:blue", "data term: E_q[−log p(D|w)]", "expected NLL"),
              (right, "complexity", "tab:orange", "complexity: E_q[log q(w|θ) − log p(w)]",
               "complexity cost (KL)")]
    from matplotlib.ticker import MaxNLocator

    for ax, key, color, title, label in panels:
        _curve(ax, epochs, columns[key], color)
        ax.set_title(title)
        ax.set_ylabel(label)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 0.96
        if epochs.size == 1:  # a locator over a range of one point still ticks fractions
            ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _curve(ax, epochs: np.ndarray, values: np.ndarray, color: str) -> None:
    window = len(values) // 50
    smooth = window >= 2
    ax.plot(epochs, values, color=color, linewidth=0.8 if smooth else 1.5,
            alpha=0.35 if smooth else 1.0, label="per epoch",
            marker="o" if len(values) <= 20 else None, markersize=4)  # one epoch is one point
    if smooth:
        mean = np.convolve(values, np.ones(window) / window, mode="valid")
        ax.plot(epochs[window - 1 :], mean, color=color, linewidth=1.8,
                label=f"mean of {window} epochs")
        ax.legend(loc="upper right", fontsize="small")
    tail = values[len(values) // 10 :]
    tail = tail[np.isfinite(tail)]
    if tail.size >= 10:
        lo, hi = np.percentile(tail, [0.5, 99.5])
        finite = values[np.isfinite(values)]
        if hi > lo and finite.max() - finite.min() > 3 * (hi - lo):
            pad = 0.1 * (hi - lo)
            ax.set_ylim(lo - pad, hi + pad)


def _uncertainties(prediction) -> tuple[dict[str, np.ndarray], str]:
    """The total / aleatoric / epistemic values per point and their unit.

    Classification: entropies in nats (total = aleatoric + epistemic); regression: standard
    deviations (total² = aleatoric² + epistemic²).
    """
    if isinstance(prediction, ClassificationPrediction):
        values = (prediction.total_entropy, prediction.aleatoric, prediction.epistemic)
        unit = "entropy (nats)"
    elif isinstance(prediction, RegressionPrediction):
        values = (prediction.std, prediction.aleatoric_std, prediction.epistemic_std)
        unit = "standard deviation"
    else:
        raise ValueError("prediction must be a ClassificationPrediction or RegressionPrediction, "
                         f"got {type(prediction).__name__}")
    arrays = dict(zip(UNCERTAINTY_KINDS, (_np(v) for v in values), strict=True))
    if not len(arrays["total"]):
        raise ValueError("the prediction holds no points")
    return arrays, unit


_HISTOGRAM_TITLES = {
    ClassificationPrediction: ("total: entropy of the mean prediction",
                               "aleatoric: expected entropy",
                               "epistemic: mutual information"),
    RegressionPrediction: ("total: predictive std", "aleatoric: noise std",
                           "epistemic: std of the mean over weights"),
}


def uncertainty_histogram(
    prediction: ClassificationPrediction | RegressionPrediction,
    correct=None,
    bins: int = 30,
    title: str | None = None,
) -> Figure:
    """Histograms of the total (left), aleatoric (middle) and epistemic (right) uncertainty.

    Classification: entropies in nats, H[E_w p] = E_w H[p] + I(y; w); regression: standard
    deviations, std² = aleatoric_std² + epistemic_std². ``correct`` (booleans, one per point,
    e.g. ``prediction.predicted == labels``) splits each panel into correct and wrong points,
    drawn as densities over shared bins with a dashed line at each group's mean; without it
    each panel shows counts and a dashed line at the mean.
    """
    values, unit = _uncertainties(prediction)
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be a positive int, got {bins!r}")
    n = len(values["total"])
    groups: list[tuple[str, np.ndarray, str | None]]
    if correct is None:
        groups = [("all", np.ones(n, dtype=bool), None)]  # None: the kind's own colour
    else:
        mask = correct.detach().cpu().numpy() if torch.is_tensor(correct) else np.asarray(correct)
        mask = mask.reshape(-1)
        if mask.dtype != bool:
            raise ValueError(f"correct must hold booleans, got dtype {mask.dtype}")
        if len(mask) != n:
            raise ValueError(f"correct has {len(mask)} entries but the prediction has {n} points")
        groups = [(f"correct (n={int(mask.sum())})", mask, "tab:green"),
                  (f"wrong (n={int((~mask).sum())})", ~mask, "tab:red")]
    from matplotlib.lines import Line2D

    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    panel_titles = _HISTOGRAM_TITLES[type(prediction)]
    for ax, kind, panel_title in zip(axes, UNCERTAINTY_KINDS, panel_titles, strict=True):
        v = values[kind]
        edges = _histogram_edges(v[np.isfinite(v)], bins)
        for label, mask, color in groups:
            part = v[mask]
            if not part.size:
                continue
            color = color or UNCERTAINTY_COLORS[kind]
            ax.hist(part, bins=edges, density=correct is not None, color=color, alpha=0.5,
                    label=label)
            ax.axvline(float(part.mean()), color=color, linestyle="--", linewidth=1.2)
        ax.set_title(panel_title)
        ax.set_xlabel(unit)
        ax.set_ylabel("count" if correct is None else "density")
        ax.grid(alpha=0.3)
        # the dashed lines explain themselves whatever the title; room above the bars for it
        handles, labels = ax.get_legend_handles_labels()
        if correct is None:
            handles, labels = [], []
        mean = v[np.isfinite(v)].mean() if np.isfinite(v).any() else float("nan")
        handles.append(Line2D([], [], color="0.3", linestyle="--", linewidth=1.2))
        labels.append("mean" if correct is not None else f"mean {mean:.3g}")
        ax.set_ylim(0, 1.3 * max((p.get_height() for p in ax.patches), default=1.0) or 1.0)
        ax.legend(handles, labels, loc="best", fontsize="small")
    fig.suptitle(title or f"Predictive uncertainty of {n} points")
    fig.tight_layout()
    return fig


def _histogram_edges(finite: np.ndarray, bins: int) -> np.ndarray:
    """``bins`` equal bins over the values' range; a constant (e.g. a fixed noise std) gets a
    narrow range around it, not [v, v + 1], which would squash its bar into a corner."""
    if not finite.size:
        return np.linspace(0.0, 1.0, bins + 1)
    lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        half = 0.05 * abs(lo) if lo != 0 else 0.5
        lo, hi = lo - half, hi + half
    return np.linspace(lo, hi, bins + 1)


def most_uncertain_indices(
    prediction: ClassificationPrediction | RegressionPrediction, k: int = 16,
    kind: str = "epistemic",
) -> np.ndarray:
    """Indices of the ``k`` points of highest ``kind`` uncertainty (total, aleatoric or
    epistemic), most uncertain first; ties keep the earlier point first. k > N gives all N."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if kind not in UNCERTAINTY_KINDS:
        raise ValueError(f"kind must be one of {', '.join(UNCERTAINTY_KINDS)}, got {kind!r}")
    values = _uncertainties(prediction)[0][kind]
    return np.argsort(-values, kind="stable")[: int(k)]


def most_uncertain_images(
    images,
    prediction: ClassificationPrediction,
    labels=None,
    class_names: Sequence[str] | None = None,
    k: int = 16,
    kind: str = "epistemic",
    ncols: int | None = None,
) -> Figure:
    """A grid of the ``k`` images of highest ``kind`` uncertainty, most uncertain first.

    ``images`` are (N, H, W) or flattened square (N, H·W) greyscale images, one per predicted
    point. Each panel's title gives the predicted class, the true class (``labels``, when given;
    the title is red where the prediction is wrong) and the uncertainty value in nats.
    """
    if not isinstance(prediction, ClassificationPrediction):
        raise ValueError("most_uncertain_images needs a ClassificationPrediction, got "
                         f"{type(prediction).__name__}")
    pixels = images.detach().cpu().numpy() if torch.is_tensor(images) else np.asarray(images)
    pixels = pixels.astype(float)
    n = int(prediction.probs.shape[0])
    if pixels.ndim == 2:
        side = int(round(pixels.shape[1] ** 0.5))
        if side * side != pixels.shape[1]:
            raise ValueError(f"flattened images must be square, got {pixels.shape[1]} pixels; "
                             "pass them as (N, H, W)")
        pixels = pixels.reshape(-1, side, side)
    if pixels.ndim != 3:
        raise ValueError(f"images must have shape (N, H, W) or (N, H*W), got {pixels.shape}")
    if len(pixels) != n:
        raise ValueError(f"there are {len(pixels)} images but the prediction has {n} points")
    num_classes = int(prediction.probs.shape[-1])
    truth = None
    if labels is not None:
        raw = _numbers(labels, "labels").reshape(-1)
        if len(raw) != n:
            raise ValueError(f"labels has {len(raw)} entries but the prediction has {n} points")
        if not (np.isfinite(raw).all() and (raw == np.round(raw)).all()):
            raise ValueError("labels must be integer class indices")
        if raw.size and not 0 <= raw.min() <= raw.max() < num_classes:
            raise ValueError(f"labels must lie in [0, {num_classes}) for {num_classes} classes, "
                             f"got values in [{raw.min():g}, {raw.max():g}]")
        truth = raw.astype(int)
    if class_names is not None and len(class_names) < num_classes:
        raise ValueError(f"class_names has {len(class_names)} names for {num_classes} classes")
    names = list(class_names) if class_names is not None else [str(c) for c in
                                                               range(num_classes)]
    order = most_uncertain_indices(prediction, k, kind)
    values = _uncertainties(prediction)[0][kind]
    predicted = _np(prediction.predicted).astype(int)
    count = len(order)
    if ncols is None:
        ncols = min(count, int(np.ceil(np.sqrt(count))))
    ncols = as_int(ncols, "ncols")
    nrows = int(np.ceil(count / ncols))
    plt = _pyplot()
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.0 * ncols, 2.35 * nrows + 0.4),
                             squeeze=False)
    flat = axes.reshape(-1)
    for ax in flat[count:]:
        fig.delaxes(ax)
    for ax, index in zip(flat, order, strict=False):
        ax.imshow(pixels[index], cmap="gray", interpolation="nearest")
        lines = [f"#{index} pred: {names[predicted[index]]}"]
        color = "black"
        if truth is not None:
            lines.append(f"true: {names[truth[index]]}")
            color = "tab:green" if truth[index] == predicted[index] else "tab:red"
        lines.append(f"{kind}: {values[index]:.3g}")
        ax.set_title("\n".join(lines), fontsize=8, color=color)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"The {count} images of highest {kind} uncertainty (nats)")
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 120, close: bool = True) -> Path:
    """Save ``fig`` to the file ``path`` and, by default, close it to free its memory.

    The format follows the suffix, which is required (``out/figure.png``, not ``out/figure``);
    missing parent folders are created. Returns ``path``, the only file written.
    """
    if not hasattr(fig, "savefig") or not hasattr(fig, "canvas"):
        raise ValueError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    if isinstance(dpi, bool) or not isinstance(dpi, numbers.Real) or not dpi > 0:
        raise ValueError(f"dpi must be a positive number, got {dpi!r}")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give a file name such as {path / 'figure.png'}")
    formats = fig.canvas.get_supported_filetypes()
    if not path.suffix:
        raise ValueError(f"{path} has no suffix to choose the format; give a file name such as "
                         f"{path.with_suffix('.png')}")
    if path.suffix[1:].lower() not in formats:
        raise ValueError(f"cannot save a figure as {path.suffix!r} ({path}); use one of "
                         f"{', '.join('.' + f for f in sorted(formats))}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    if close:
        _pyplot().close(fig)
    return path
