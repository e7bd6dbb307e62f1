"""Figures for signal-to-noise pruning: the log-SNR density (Blundell et al. 2015, Figure 4) and
test error against the proportion of weights removed (their Table 2 as a curve).

Every function returns a matplotlib Figure and never shows it; pyplot is imported lazily through
``pyro_bbb.plots``, which selects the headless Agg backend when none was chosen. Save with
``pyro_bbb.plots.save_figure``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from .inputs import is_finite_number
from .plots import _np, _pyplot, save_figure
from .pruning import SNRHistogram, check_proportion

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["snr_histogram_figure", "pruning_curve_figure", "save_figure"]

_LINE_COLORS = ("tab:orange", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive")


def _percent(proportion: float) -> str:
    return f"{100 * proportion:.4g}%"


def _check_thresholds(thresholds) -> dict[float, float]:
    """{proportion: SNR threshold} checked: proportions in [0, 1), thresholds finite and >= 0."""
    if thresholds is None:
        return {}
    if not isinstance(thresholds, Mapping):
        raise TypeError(f"thresholds must be a dict {{proportion: SNR threshold}} (snr_threshold "
                        f"output), got {type(thresholds).__name__}")
    out = {}
    for proportion, threshold in thresholds.items():
        threshold = float(threshold) if is_finite_number(threshold) else threshold
        if not (is_finite_number(threshold) and threshold >= 0):
            raise ValueError(f"thresholds[{proportion!r}] is {threshold!r}; expected a finite "
                             "SNR >= 0 (snr_threshold output)")
        out[check_proportion(proportion)] = threshold
    return out


_CURVE_KEYS = ("proportion", "error", "dense_bytes", "sparse_bytes")


def _curve_rows(rows) -> list[Mapping]:
    """``rows`` (a list of dicts or a DataFrame) checked to hold finite values of _CURVE_KEYS."""
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # pandas DataFrame
        rows = rows.to_dict("records")
    if isinstance(rows, Mapping) or not isinstance(rows, Sequence):
        raise TypeError(f"rows must be a list of dicts (pruning_curve output) or a DataFrame, "
                        f"got {type(rows).__name__}")
    if not rows:
        raise ValueError("no rows to plot")
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise TypeError(f"row {i} is a {type(row).__name__}, not a dict")
        missing = [key for key in _CURVE_KEYS if key not in row]
        if missing:
            raise ValueError(f"row {i} lacks {missing}; rows need {list(_CURVE_KEYS)} "
                             "(pruning_curve output)")
        bad = [key for key in _CURVE_KEYS if not is_finite_number(row[key])]
        if bad:
            raise ValueError(f"row {i} has non-finite or non-numeric "
                             f"{', '.join(f'{k}={row[k]!r}' for k in bad)}")
        check_proportion(row["proportion"])
    return list(rows)


def snr_histogram_figure(
    histogram: SNRHistogram,
    thresholds: Mapping[float, float] | None = None,
    title: str | None = None,
) -> Figure:
    """Density (left) and CDF (right) of log10 SNR = log10(|μ|/σ) over the weights.

    ``thresholds`` maps a proportion removed p to its SNR threshold t (``snr_threshold``): each is
    drawn as a vertical line at log10 t, the weights left of it being the ones pruned.
    """
    if not isinstance(histogram, SNRHistogram):
        raise TypeError(f"snr_histogram_figure expects an SNRHistogram (log_snr_histogram of the "
                        f"guide), got {type(histogram).__name__}")
    thresholds = _check_thresholds(thresholds)
    plt = _pyplot()
    edges, density, cdf = _np(histogram.edges), _np(histogram.density), _np(histogram.cdf)
    if len(edges) != len(density) + 1 or len(cdf) != len(edges):
        raise ValueError(f"histogram has {len(edges)} edges for {len(density)} bins")
    fig, (ax_pdf, ax_cdf) = plt.subplots(1, 2, figsize=(11, 4.2))
    widths = np.diff(edges)
    ax_pdf.bar(edges[:-1], density, width=widths, align="edge", color="tab:blue", alpha=0.75,
               edgecolor="none")
    ax_cdf.plot(edges, cdf, color="tab:blue", linewidth=1.8)
    for i, (proportion, threshold) in enumerate(sorted(thresholds.items())):
        if threshold == 0:  # log10 0 = −∞: nothing to draw
            continue
        x = float(np.log10(threshold))
        color = _LINE_COLORS[i % len(_LINE_COLORS)]
        label = f"{_percent(proportion)} removed (SNR < {threshold:.3g})"
        for ax in (ax_pdf, ax_cdf):
            ax.axvline(x, color=color, linestyle="--", linewidth=1.2, label=label)
        ax_cdf.axhline(proportion, color=color, linestyle=":", linewidth=0.8)
    ax_pdf.set_ylabel("density")
    ax_pdf.set_title("(a) density of log10 signal-to-noise")
    ax_cdf.set_ylabel("cumulative fraction of weights")
    ax_cdf.set_ylim(0, 1.02)
    ax_cdf.set_title("(b) cumulative distribution")
    lo, hi, left_out = _visible_range(edges, cdf, thresholds)
    for ax in (ax_pdf, ax_cdf):
        ax.set_xlabel("log10 SNR = log10(|μ| / σ)")
        ax.set_xlim(lo, hi)
        ax.grid(alpha=0.3)
    if left_out:  # said under the title, where it covers nothing
        ax_pdf.set_title(f"(a) density of log10 signal-to-noise\n({left_out} of the weights lie "
                         "outside the x range)", fontsize="medium")
    if any(t > 0 for t in thresholds.values()):
        ax_pdf.legend(loc="upper left", fontsize=8, frameon=False)
    fig.suptitle(title or f"Signal-to-noise ratio of {histogram.num_weights:,} weights")
    fig.tight_layout()
    return fig


def _visible_range(edges: np.ndarray, cdf: np.ndarray, thresholds: Mapping[float, float],
                   tail: float = 1e-3) -> tuple[float, float, str]:
    """The x range to draw: the histogram's, less a tail of at most ``tail`` of the weights on
    either side when that tail stretches the axis by more than a quarter (a few weights with
    a tiny SNR would squash the density into a corner). Every threshold stays in view. Returns
    (low, high, the share of weights left out as text, "" when none is)."""
    lo, hi = float(edges[0]), float(edges[-1])
    first = max(int(np.searchsorted(cdf, tail, side="right")) - 2, 0)  # cdf[first] <= tail
    last = min(int(np.searchsorted(cdf, 1 - tail, side="left")) + 1, len(edges) - 1)
    new_lo, new_hi = float(edges[first]), float(edges[last])
    shown = [float(np.log10(t)) for t in thresholds.values() if t > 0]
    if shown:
        new_lo, new_hi = min(new_lo, min(shown)), max(new_hi, max(shown))
    span = hi - lo
    if new_lo - lo > 0.25 * span:
        lo = new_lo
    if hi - new_hi > 0.25 * span:
        hi = new_hi
    out = float(np.interp(lo, edges, cdf)) + 1 - float(np.interp(hi, edges, cdf))
    trimmed = lo > float(edges[0]) or hi < float(edges[-1])
    return lo, hi, f"{100 * out:.2g}%" if trimmed else ""


def pruning_curve_figure(
    rows: Sequence[Mapping[str, float]],
    target_drop: float | None = 0.002,
    title: str | None = None,
) -> Figure:
    """Test error (left) and storage (right) against the proportion of weights removed.

    ``rows`` are ``pyro_bbb.pruning.pruning_curve`` output. The x axis is the fraction of weights
    kept on a log scale (labelled by the proportion removed), so 95% and 98% do not crowd.
    ``target_drop`` (an accuracy drop, 0.002 = 0.2 points) shades the band of errors within that
    drop of the unpruned error, when a row with proportion 0 is present.
    """
    rows = _curve_rows(rows)
    if target_drop is not None and not (is_finite_number(target_drop) and target_drop >= 0):
        raise ValueError(f"target_drop must be a finite number >= 0 or None, got {target_drop!r}")
    plt = _pyplot()
    rows = sorted(rows, key=lambda r: r["proportion"])
    removed = np.array([r["proportion"] for r in rows], dtype=float)
    kept = 1.0 - removed
    error = 100 * np.array([r["error"] for r in rows], dtype=float)
    fig, (ax_err, ax_mem) = plt.subplots(1, 2, figsize=(11, 4.2))
    if target_drop is not None and removed[0] == 0:
        ax_err.axhspan(error[0], error[0] + 100 * target_drop, color="tab:green", alpha=0.15,
                       label=f"within {100 * target_drop:.2g} points of unpruned")
        ax_err.axhline(error[0], color="0.4", linestyle="--", linewidth=1)
    ax_err.plot(kept, error, marker="o", color="tab:blue", linewidth=1.8, label="test error")
    for k, e in zip(kept, error, strict=True):
        ax_err.annotate(f"{e:.2f}%", (k, e), textcoords="offset points", xytext=(0, 7),
                        ha="center", fontsize=8)
    ax_err.set_ylabel("test error (%)")
    low, high = float(error.min()), float(error.max())
    if target_drop is not None and removed[0] == 0:
        high = max(high, error[0] + 100 * target_drop)
    pad = max(0.15 * (high - low), 0.1)
    ax_err.set_ylim(max(0.0, low - pad), max(min(high + 2 * pad, 100.0), high + 0.5 * pad))
    ax_err.legend(loc="upper left", fontsize=8, frameon=False)
    ax_err.set_title("(a) test error")
    dense = np.array([r["dense_bytes"] for r in rows], dtype=float) / 2**20
    sparse = np.array([r["sparse_bytes"] for r in rows], dtype=float) / 2**20
    ax_mem.plot(kept, dense, marker="s", color="0.4", label="dense (μ, σ float32)")
    ax_mem.plot(kept, sparse, marker="o", color="tab:red", label="sparse where it pays (CSR)")
    ax_mem.set_ylabel("storage (MiB)")
    ax_mem.set_ylim(0, 1.1 * float(max(dense.max(), sparse.max())))
    ax_mem.legend(loc="center right", fontsize=8, frameon=False)
    ax_mem.set_title("(b) memory of the posterior")
    for ax in (ax_err, ax_mem):
        ax.set_xscale("log")
        ax.set_xlim(kept.max() * 1.4, kept.min() / 1.4)  # more pruning to the right
        ax.set_xticks(kept)
        crowded = len(kept) > 1 and float(np.diff(np.log10(kept)).__abs__().min()) < 0.1
        ax.set_xticklabels([_percent(p) for p in removed], rotation=45 if crowded else 0)
        ax.minorticks_off()
        ax.set_xlabel("proportion of weights removed (log scale of weights kept)")
        ax.grid(alpha=0.3)
    fig.suptitle(title or "Pruning by signal-to-noise |μ|/σ")
    fig.tight_layout()
    return fig
