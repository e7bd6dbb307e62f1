"""ArviZ figures of posterior draws: predictive checks, weight marginals, Pareto k, R-hat of f(x).

The figures of notebooks 02 and 03 as functions, so that ``pyro-bbb diagnose`` and ``pyro-bbb
compare`` draw them too. Every function returns a matplotlib Figure and never shows it; save it
with ``pyro_bbb.plots.save_figure``. ``diagnostic_figures`` draws and saves the three figures of
one posterior (ppc.png, posterior.png, khat.png) and returns ``az.loo`` with them.

- ``ppc_figure``: ``az.plot_ppc`` of the prior predictive (cumulative, when the InferenceData
  has one) and of the posterior predictive against the observed targets;
- ``posterior_figure``: ``az.plot_posterior`` of the output layer's first biases and weights
  (``var_names``/``coords`` keep it to about ten panels whatever the network's width);
- ``khat_figure``: Pareto k of a PSIS-LOO result in ``az.plot_khat``'s bins, and Pareto k
  against the input for 1-D inputs;
- ``function_space_rhat_figure``: R-hat of the prediction at each input across chains
  (``diagnostics.function_space_summary``), against x for 1-D inputs, else against the input index;
- ``loo_compare_figure``: ``az.plot_compare`` of an ``az.compare`` table (``Comparison.loo``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .compare import PARETO_K_THRESHOLD
from .inputs import as_int
from .plots import _inputs_1d, _np, _numbers, _pyplot, _shade_training_range, save_figure

if TYPE_CHECKING:
    import arviz
    import pandas
    from arviz import ELPDData
    from matplotlib.figure import Figure

    from .diagnostics import FunctionSpaceSummary

__all__ = [
    "DiagnosticFigures",
    "diagnostic_figures",
    "function_space_rhat_figure",
    "khat_figure",
    "loo_compare_figure",
    "posterior_figure",
    "ppc_figure",
]

def _az():
    from .diagnostics import _arviz

    return _arviz()


def ppc_figure(idata: arviz.InferenceData, *, num_pp_samples: int = 50,
               title: str | None = None) -> Figure:
    """``az.plot_ppc``: prior predictive (cumulative; only when ``idata`` has that group) beside
    the posterior predictive, each against the observed targets.

    Each panel's title gives the number of predictive draws drawn; the legend sits below the
    panel, where it covers no curve.
    """
    az, plt = _az(), _pyplot()
    num_pp_samples = as_int(num_pp_samples, "num_pp_samples")
    prior = "prior_predictive" in idata.groups()
    fig, axes = plt.subplots(1, 2 if prior else 1, figsize=(10 if prior else 5.5, 3.8),
                             squeeze=False)
    axes = list(axes.flat)
    num = min(num_pp_samples, idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"])
    if prior:
        num_prior = min(num_pp_samples, idata.prior.sizes["chain"] * idata.prior.sizes["draw"])
        az.plot_ppc(idata, group="prior", kind="cumulative", num_pp_samples=num_prior,
                    ax=axes[0], random_seed=0, textsize=_TEXTSIZE)
        axes[0].set_title(f"prior predictive, {num_prior} draws (cumulative)")
        axes[0].set_ylabel("cumulative probability")
    az.plot_ppc(idata, num_pp_samples=num, ax=axes[-1], random_seed=0, textsize=_TEXTSIZE)
    axes[-1].set_title(f"posterior predictive, {num} draws")
    axes[-1].set_ylabel("density")
    for ax in axes:
        _legend_below(ax)
    if title:
        fig.suptitle(title)
    _tight(fig)
    return fig


_TEXTSIZE = 9  # ArviZ's text size in these figures, near matplotlib's default tick labels


def _legend_below(ax) -> None:
    """Move an axes' legend (ArviZ puts it over the curves) below the x-axis label."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.2),
                  ncol=len(handles), fontsize=8, frameon=False)


def posterior_figure(idata: arviz.InferenceData, model, *, max_outputs: int = 2,
                     max_inputs: int = 4, title: str | None = None) -> Figure:
    """``az.plot_posterior`` of the output layer's first ``max_outputs`` biases and their weights
    from the first ``max_inputs`` hidden units (at most max_outputs·(1 + max_inputs) panels)."""
    az = _az()
    max_outputs, max_inputs = as_int(max_outputs, "max_outputs"), as_int(max_inputs, "max_inputs")
    last = model.num_layers - 1
    post = idata.posterior
    out_dim, in_dim = f"layer{last}_out", f"layer{last}_in"
    if out_dim not in post.sizes or in_dim not in post.sizes:
        raise ValueError(f"idata has no output-layer dims {out_dim!r}, {in_dim!r}: was it made by "
                         "diagnostics.to_inference_data for this model?")
    coords = {out_dim: list(range(min(max_outputs, post.sizes[out_dim]))),
              in_dim: list(range(min(max_inputs, post.sizes[in_dim])))}
    panels = len(coords[out_dim]) * (1 + len(coords[in_dim]))
    cols = min(panels, 5)
    rows = -(-panels // cols)
    axes = az.plot_posterior(idata, var_names=[f"layer{last}_bias", f"layer{last}_weight"],
                             coords=coords, figsize=(2.6 * cols, 2.3 * rows),
                             grid=(rows, cols), textsize=8)
    from matplotlib.ticker import MaxNLocator

    for ax in np.asarray(axes).flat:  # narrow posteriors get long tick labels that collide
        ax.xaxis.set_major_locator(MaxNLocator(nbins=3))
    fig = _np_first(axes).get_figure()
    draws = post.sizes["chain"] * post.sizes["draw"]
    fig.suptitle(f"{title or f'posterior of output-layer (layer{last}) weights'} "
                 f"({draws} draws; KDE, 94% HDI)")
    _tight(fig)
    return fig


def _tight(fig) -> None:
    """``tight_layout``, quiet when ArviZ's text (e.g. plot_khat's bin labels) cannot fit."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Tight layout not applied", category=UserWarning)
        fig.tight_layout()


def _np_first(axes):
    import numpy as np

    return np.asarray(axes).flat[0]


def khat_figure(elpd: ELPDData, x=None, *, title: str | None = None) -> Figure:
    """Pareto k of a PSIS-LOO result (``az.loo(..., pointwise=True)``) per observation, as
    ``az.plot_khat`` draws it; with 1-D inputs ``x`` (the points LOO was computed on) a second
    panel shows k against x.

    Points are coloured by ArviZ's bins: k ≤ good_k (the sample-size dependent threshold
    min(1 − 1/log10 S, 0.7) of ``az.loo``), good_k < k ≤ 1 and k > 1; the legend counts them.
    Non-finite k (e.g. a log-likelihood equal in every draw) are drawn as triangles at the top
    and counted, rather than left out.
    """
    plt = _pyplot()
    if getattr(elpd, "pareto_k", None) is None:
        raise ValueError("khat_figure needs a pointwise PSIS-LOO result, "
                         f"az.loo(..., pointwise=True); got {type(elpd).__name__}")
    k = _np(elpd.pareto_k.values)
    xs = None
    if x is not None:
        x = _numbers(x, "x")
        if x.ndim == 0 or len(x) != k.size:
            raise ValueError(f"x has {len(x) if x.ndim else 0} points but the LOO result has "
                             f"{k.size}; pass the inputs LOO was computed on")
        if x.ndim == 1 or (x.ndim == 2 and x.shape[1] == 1):
            xs = _inputs_1d(x, "x")
    good_k = _good_k(elpd)
    finite = np.isfinite(k)
    top = max(float(k[finite].max()) if finite.any() else 1.0, 1.0)
    low = min(float(k[finite].min()) if finite.any() else 0.0, good_k)
    marker_y = top + 0.08 * (top - low + 0.1)
    bins = [(finite & (k <= good_k), f"k ≤ {good_k:.2g} (good)", "tab:blue", "+"),
            (finite & (k > good_k) & (k <= 1), f"{good_k:.2g} < k ≤ 1 (bad)", "tab:orange", "+"),
            (finite & (k > 1), "k > 1 (very bad)", "tab:red", "+"),
            (~finite, "k not finite (drawn at the top)", "tab:red", "^")]
    fig, axes = plt.subplots(1, 2 if xs is not None else 1,
                             figsize=(11 if xs is not None else 6.5, 3.4), squeeze=False)
    axes = list(axes.flat)
    index = np.arange(k.size)
    for ax, where in zip(axes, (index, xs), strict=False):
        for mask, label, color, marker in bins:
            if mask.any():
                share = f"{mask.sum()} ({100 * mask.mean():.0f}%)"
                ax.scatter(where[mask], np.where(finite, k, marker_y)[mask], s=14, color=color,
                           marker=marker, label=f"{label}: {share}")
        ax.axhline(good_k, color="0.4", linestyle="--", linewidth=1)
        ax.axhline(1.0, color="tab:red", linestyle=":", linewidth=1)
        ax.set_ylim(low - 0.05 * (top - low + 0.1), marker_y + 0.08 * (top - low + 0.1))
        ax.set_ylabel("Pareto k")
        ax.grid(alpha=0.3)
    axes[0].set_xlabel("observation")
    axes[0].set_title(f"Pareto k per observation ({int(_elpd_value(elpd, 'n_samples', 0))} "
                      "draws)")
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False,
                    title=f"{k.size} observations", title_fontsize=8)
    if xs is not None:
        axes[1].set_xlabel("x")
        axes[1].set_title("Pareto k against the input")
    if title:
        fig.suptitle(title)
    _tight(fig)
    return fig


def _elpd_value(elpd, key: str, default):
    try:
        value = elpd[key]
    except (KeyError, IndexError, TypeError):
        return default
    return default if value is None else value


def _good_k(elpd) -> float:
    """ArviZ's threshold of reliable k for this number of draws, min(1 − 1/log10 S, 0.7)."""
    value = _elpd_value(elpd, "good_k", None)
    if value is None or not np.isfinite(float(value)):
        return PARETO_K_THRESHOLD
    return float(value)


def function_space_rhat_figure(summaries: Mapping[str, FunctionSpaceSummary] | FunctionSpaceSummary,
                               x, *, x_train=None, title: str | None = None) -> Figure:
    """R-hat of the prediction at each input (``function_space_summary(...).table["r_hat"]``),
    one line per method; against x for 1-D inputs (training range shaded when ``x_train`` is
    given), else against the input index (classification: the largest R-hat over classes)."""
    if not isinstance(summaries, Mapping):
        summaries = {"": summaries}
    x = _numbers(x, "x")
    if x.ndim == 0 or not len(x):
        raise ValueError(f"x must hold the inputs of the summaries, got shape {x.shape}")
    one_d = x.ndim == 1 or (x.ndim == 2 and x.shape[1] == 1)
    n = x.shape[0]
    xs = _inputs_1d(x, "x") if one_d else None
    order = xs.argsort() if one_d else None
    if one_d and x_train is not None:
        x_train = _inputs_1d(x_train, "x_train")
    values = {}
    for name, summary in summaries.items():
        table = getattr(summary, "table", None)
        if table is None or "r_hat" not in table:
            raise ValueError(f"summaries[{name!r}] is not a FunctionSpaceSummary "
                             "(diagnostics.function_space_summary)")
        count = _num_inputs(table)
        if count != n:
            raise ValueError(f"summaries[{name!r}] covers {count} inputs but x has {n}; pass the "
                             "inputs it was computed at")
        r_hat = table["r_hat"].to_numpy(dtype=float)
        values[name] = r_hat.reshape(n, -1).max(1)  # classification: the worst class per input
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    if one_d and x_train is not None:
        _shade_training_range(ax, x_train)
    for name, r_hat in values.items():
        if one_d:
            ax.plot(xs[order], r_hat[order], marker=".", label=name or None)
        else:
            ax.plot(r_hat, marker=".", linestyle="none", label=name or None)
    ax.axhline(1.01, color="tab:red", linestyle="--", linewidth=1, label="R-hat 1.01")
    ax.set_xlabel("x" if one_d else "test input")
    ax.set_ylabel("R-hat of f(x)")
    ax.set_title(title or "function-space R-hat: agreement between chains")
    ax.legend(fontsize=8)
    _tight(fig)
    return fig


def _num_inputs(table) -> int:
    """How many inputs a function-space table covers: its rows are f[n] or probs[n, c]."""
    return len({str(label).split("[")[-1].split(",")[0] for label in table.index})


def loo_compare_figure(table: pandas.DataFrame, *, title: str | None = None) -> Figure:
    """``az.plot_compare`` of an ``az.compare`` table (e.g. ``Comparison.loo``): elpd_loo ± se
    per method, best on top, and each method's difference to the best ± dse."""
    az = _az()
    if not hasattr(table, "columns") or not len(table):
        raise ValueError("table must be a non-empty az.compare DataFrame (e.g. Comparison.loo), "
                         f"got {type(table).__name__}")
    height = 1.2 + 0.45 * len(table)
    ax = az.plot_compare(table, figsize=(7, height), textsize=9)
    fig = ax.get_figure()
    ax.set_title(title or "PSIS-LOO on the training data (az.compare)")
    _tight(fig)
    return fig


@dataclass
class DiagnosticFigures:
    """What ``diagnostic_figures`` wrote: file paths by name and the ``az.loo`` result."""

    files: dict[str, Path]
    loo: ELPDData
    idata: Any = field(repr=False, default=None)


def diagnostic_figures(model, draws, x, y, out_dir: str | os.PathLike, *,
                       prior_draws=None, num_pp_samples: int = 50, seed: int = 0,
                       name: str | None = None) -> DiagnosticFigures:
    """Draw and save ppc.png, posterior.png and khat.png of posterior ``draws`` on data (x, y).

    ``draws`` and ``prior_draws`` are in any layout ``diagnostics.to_inference_data`` accepts
    (``prior_draws`` adds the prior predictive panel to ppc.png); the log-likelihood is float64.
    Returns the paths and ``az.loo(idata, pointwise=True)`` (its Pareto-k warning, if any, is not
    printed: ``loo.warning`` and khat.png show it).
    """
    from .diagnostics import to_inference_data

    az = _az()
    if y is None:
        raise ValueError("diagnostic_figures needs the training targets y")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {out} is a file, not a folder")
    idata = to_inference_data(model, draws, x, y, prior_draws=prior_draws, seed=seed)
    if idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"] < 2:
        raise ValueError("PSIS-LOO needs at least 2 posterior draws, got 1")
    out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto",
                                category=UserWarning)
        loo = az.loo(idata, pointwise=True)
    prefix = f"{name}: " if name else ""
    files = {
        "ppc": save_figure(ppc_figure(idata, num_pp_samples=num_pp_samples,
                                      title=f"{prefix}predictive checks on {len(y)} training "
                                      "points"), out / "ppc.png"),
        "posterior": save_figure(posterior_figure(
            idata, model, title=f"{prefix}posterior of output-layer weights"),
            out / "posterior.png"),
        "khat": save_figure(khat_figure(loo, x, title=f"{prefix}PSIS-LOO Pareto k"),
                            out / "khat.png"),
    }
    return DiagnosticFigures(files, loo, idata)
