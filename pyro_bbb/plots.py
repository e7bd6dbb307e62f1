"""Figures of an experiment: regression band, reliability diagram, training curves.

Every function returns a matplotlib Figure and never shows it. pyplot is imported lazily; when no
backend has been chosen yet (no pyplot import, no MPLBACKEND, no rcParams backend) the headless
Agg backend is selected first, so plotting works without a display.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .likelihoods import RegressionPrediction
from .metrics import expected_calibration_error, reliability_curve

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["regression_band", "reliability_diagram", "training_curves", "save_figure"]


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
    plt = _pyplot()
    xg = _np(x_grid)
    mean, lower, upper = (_np(getattr(prediction, k)) for k in ("mean", "lower", "upper"))
    if not len(xg) == len(mean) == len(lower) == len(upper):
        raise ValueError(f"x_grid has {len(xg)} points but the prediction has {len(mean)}")
    order = np.argsort(xg)
    xg, mean, lower, upper = xg[order], mean[order], lower[order], upper[order]
    xt, yt = _np(x_train), _np(y_train)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    lo, hi = float(xt.min()), float(xt.max())
    ax.axvspan(lo, hi, color="0.92", zorder=0, label="training range")
    for edge in (lo, hi):
        ax.axvline(edge, color="0.5", linestyle="--", linewidth=0.8)
    ax.fill_between(xg, lower, upper, color="tab:blue", alpha=0.25,
                    label=f"{prediction.level:.0%} predictive interval")
    ax.plot(xg, mean, color="tab:blue", linewidth=1.8, label="predictive mean")
    if truth is not None:
        values = truth(torch.as_tensor(xg)) if callable(truth) else _np(truth)[order]
        ax.plot(xg, _np(values), color="black", linestyle=":", linewidth=1.2, label="true function")
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
    fig.tight_layout()
    return fig


def training_curves(history: Mapping[str, Sequence[float]]) -> Figure:
    """The two terms of −ELBO per epoch: expected NLL (left) and complexity cost (right).

    ``history`` is ``FitResult.history_dict()`` (keys epoch, nll, complexity, ...). Each panel
    shows the per-epoch values and, from 100 epochs on, their moving average over 2% of the run;
    the y range follows the later 90% of epochs so an early spike does not flatten the curve.
    """
    missing = [k for k in ("epoch", "nll", "complexity") if k not in history]
    if missing:
        raise ValueError(f"history lacks {missing}; pass FitResult.history_dict()")
    plt = _pyplot()
    epochs = _np(history["epoch"]) + 1
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    panels = [(left, "nll", "tab:blue", "data term: E_q[−log p(D|w)]", "expected NLL"),
              (right, "complexity", "tab:orange", "complexity: E_q[log q(w|θ) − log p(w)]",
               "complexity cost (KL)")]
    for ax, key, color, title, label in panels:
        _curve(ax, epochs, _np(history[key]), color)
        ax.set_title(title)
        ax.set_ylabel(label)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _curve(ax, epochs: np.ndarray, values: np.ndarray, color: str) -> None:
    window = len(values) // 50
    smooth = window >= 2
    ax.plot(epochs, values, color=color, linewidth=0.8 if smooth else 1.5,
            alpha=0.35 if smooth else 1.0, label="per epoch")
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


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 120, close: bool = True) -> Path:
    """Save ``fig`` (format from the suffix) and, by default, close it to free its memory."""
    path = Path(path)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    if close:
        _pyplot().close(fig)
    return path
