"""Compare inference methods on one model and one data set: one table, one figure.

``compare(model, x_train, y_train, x_test, y_test, methods=[...])`` runs every method of
``infer.methods`` on the same BayesianMLP and the same data and returns a pandas DataFrame, one
row per method:

regression       rmse, test_log_likelihood (mean over test points of
                 log (1/S) Σ_s p(y_n | x_n, w_s)), interval_coverage (central ``level`` interval),
                 mean_std (predictive std on the test inputs)
classification   accuracy, nll, ece
both             std_inside / std_outside: mean predictive std (regression) or predictive
                 entropy (classification) on the training inputs and on ``x_outside``, and their
                 ratio; train_seconds, predict_seconds; divergences (NUTS; NaN for others);
                 fs_r_hat: function-space R-hat over the test inputs (methods with ≥ 2 chains,
                 i.e. NUTS; NaN for others); num_samples
PSIS-LOO         elpd_loo, elpd_loo_se, p_loo, pareto_k_over_0.7 (share of training points whose
                 Pareto k exceeds 0.7): ArviZ's ``az.loo`` on each method's log p(y_n | x_n, w_s)
                 for every draw s and *training* point n (see ``psis_loo``)

``run_comparison`` also returns ``Comparison.loo``, ArviZ's ``az.compare`` table over the methods
(rank, elpd_loo, p_loo, elpd_diff, weight (stacking), se, dse, warning, scale), best first, and
``Comparison.elpd``, each method's ``ELPDData``. PSIS-LOO (Vehtari, Gelman & Gabry 2017)
estimates elpd_loo = Σ_n log p(y_n | x_n, D₋ₙ) from one fit: p(y_n | D₋ₙ) ≈
Σ_s r̃_ns p(y_n | w_s) / Σ_s r̃_ns with r_ns = 1 / p(y_n | w_s) Pareto-smoothed into r̃_ns.
It judges the draws as a posterior for this model; it is an in-sample quantity on the training
data, complementary to the held-out test log-likelihood. Read it with the diagnostics: k > 0.7
means the importance ratios are too heavy-tailed for that point (always the case for the 5 draws
of a small ensemble), and a repeated point (delta, deterministic) gets the plug-in
Σ_n log p(y_n | x_n, ŵ) with p_loo = 0 and k reported as NaN: its in-sample fit, optimistic next
to the other methods (see ``psis_loo``).

A spec file for ``pyro-bbb compare`` is an experiment spec (see ``config``) plus a ``[compare]``
table: ``methods`` (list of names), ``num_samples`` and one sub-table of keyword options per
method, e.g. ``[compare.nuts] num_samples = 200`` (checked against the runner's keywords when the
spec is loaded; see ``method_options``). The spec's data, network, prior, likelihood, seed and
``evaluation.level`` / ``num_bins`` are used; ``evaluation.num_samples`` is the default of
``compare.num_samples``. ``[training]`` and ``[guide]`` are not used (each method trains with its
own ``[compare.<method>]`` options, e.g. ``[compare.bbb] epochs = 3000``): loading a spec that
has them warns. See ``models/compare_toy.toml``.
"""

from __future__ import annotations

import difflib
import inspect
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .infer.methods import _ALIASES, METHODS, MethodResult, run_autoguide, run_bbb, run_method
from .inputs import as_features, as_targets
from .likelihoods import RegressionPrediction
from .metrics import (
    accuracy,
    expected_calibration_error,
    interval_coverage,
    nll,
    rmse,
    standard_error,
)
from .predict import log_likelihood, posterior_predictive

if TYPE_CHECKING:  # pragma: no cover
    import pandas
    from arviz import ELPDData
    from matplotlib.figure import Figure

    from .config import ExperimentConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "Comparison",
    "CompareSpec",
    "compare",
    "run_comparison",
    "evaluate_draws",
    "psis_loo",
    "loo_compare",
    "bands_figure",
    "write_table",
    "summarize_seeds",
    "format_seed_summary",
    "load_compare_spec",
    "apply_compare_overrides",
    "method_options",
    "DEFAULT_METHODS",
]

DEFAULT_METHODS = ("bbb", "nuts", "normal", "delta", "dropout", "ensemble")


@dataclass
class Comparison:
    """The table (one row per method, indexed by method name), each method's result, and the
    PSIS-LOO comparison: ``loo`` is ``az.compare``'s table (None when LOO was not computed or
    only one method ran),
    ``elpd`` each method's ``az.loo`` result (with pointwise values)."""

    table: pandas.DataFrame
    results: dict[str, MethodResult]
    model: Any
    loo: pandas.DataFrame | None = None
    elpd: dict[str, ELPDData] = field(default_factory=dict)


def _model(model_or_factory):
    from .config import ExperimentConfig

    if isinstance(model_or_factory, ExperimentConfig):
        raise TypeError("pass an ExperimentConfig through compare_spec / load_compare_spec, which "
                        "also load its data")
    if hasattr(model_or_factory, "network") and hasattr(model_or_factory, "likelihood"):
        return model_or_factory
    if callable(model_or_factory):
        return model_or_factory()
    raise TypeError(f"expected a BayesianMLP or a factory returning one, got {model_or_factory!r}")


# runners taking ``**options`` and the runner those options go to
_FORWARDED = {"normal": run_autoguide, "lowrank": run_autoguide, "delta": run_autoguide,
              "bbb_mixture": run_bbb}


def method_options(name: str) -> list[str]:
    """The keyword options the runner of method ``name`` accepts (``[compare.<name>]`` keys)."""
    key = _ALIASES.get(name, name)
    names = []
    for runner in (METHODS[key], _FORWARDED.get(key)):
        if runner is not None:
            names += [p.name for p in inspect.signature(runner).parameters.values()
                      if p.kind is p.KEYWORD_ONLY and p.name != "kind"]
    return list(dict.fromkeys(names))


def _unknown_key(key, where: str, valid: Sequence[str]) -> ValueError:
    close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ValueError(f"unknown key {key!r} in {where}{hint} (valid: {', '.join(valid)})")


def _check_methods(methods, where: str = "methods", choices: Sequence[str] = (*METHODS, *_ALIASES)
                   ) -> tuple[str, ...]:
    """``methods`` as a tuple; ValueError unless it lists distinct names from ``choices``."""
    given = methods
    if not isinstance(methods, (str, bytes)) and isinstance(methods, Iterable):
        methods = tuple(methods)
    if not isinstance(methods, tuple) or not all(isinstance(m, str) for m in methods):
        raise ValueError(f"{where} must be a list of method names, e.g. [\"bbb\", \"nuts\"], "
                         f"got {given!r}")
    if not methods:
        raise ValueError(f"{where} is empty; choose from {list(METHODS)}")
    unknown = [m for m in methods if m not in choices]
    if unknown:
        raise ValueError(f"{where}: unknown method(s) {unknown}; choose from {list(METHODS)}")
    seen = {}
    for m in methods:
        key = _ALIASES.get(m, m)
        if key in seen:
            alias = "" if seen[key] == m else f" (as {seen[key]!r} and {m!r})"
            raise ValueError(f"{where} lists {key!r} twice{alias}")
        seen[key] = m
    return methods


def _check_options(name: str, options) -> None:
    """ValueError naming the first key of ``options`` that method ``name`` does not accept."""
    if not isinstance(options, Mapping):
        raise ValueError(f"[compare.{name}] must be a table of options, got {options!r}")
    valid = method_options(name)
    for key in options:
        if key not in valid:
            raise _unknown_key(key, f"[compare.{name}]", valid)


def _entropy(probs: torch.Tensor) -> torch.Tensor:
    return -(probs * probs.clamp_min(1e-12).log()).sum(-1)


def _spread(pred) -> torch.Tensor:
    """Predictive std (regression) or predictive entropy (classification) per input."""
    if isinstance(pred, RegressionPrediction):
        return pred.std
    return _entropy(pred.probs)


def evaluate_draws(
    model,
    draws: Mapping[str, torch.Tensor],
    x_train,
    x_test,
    y_test,
    *,
    x_outside=None,
    level: float = 0.95,
    num_bins: int = 15,
) -> dict[str, float]:
    """Test metrics of one set of posterior draws (the columns of the comparison table)."""
    x_test = as_features(x_test, model.input_size)
    y_test = as_targets(y_test, model.likelihood, x_test.shape[0])
    start = time.perf_counter()
    pred = posterior_predictive(model, draws, x_test, level=level)
    log_p = log_likelihood(model, draws, x_test, y_test)
    seconds = time.perf_counter() - start
    if isinstance(pred, RegressionPrediction):
        test_ll = float((log_p.logsumexp(0) - math.log(log_p.shape[0])).mean())
        row = {"rmse": rmse(pred.mean, y_test), "test_log_likelihood": test_ll,
               "interval_coverage": interval_coverage(pred.lower, pred.upper, y_test),
               "mean_std": float(pred.std.mean())}
    else:
        row = {"accuracy": accuracy(pred.probs, y_test), "nll": nll(pred.probs, y_test),
               "ece": expected_calibration_error(pred.probs, y_test, num_bins)}
    inside = float(_spread(posterior_predictive(model, draws, x_train, level=level)).mean())
    outside = math.nan
    if x_outside is not None and len(x_outside):
        outside = float(_spread(posterior_predictive(model, draws, x_outside, level=level)).mean())
    row.update(std_inside=inside, std_outside=outside,
               std_ratio=outside / inside if inside > 0 else math.nan,
               predict_seconds=seconds)
    return row


def _outside_inputs(x_train: torch.Tensor, x_test: torch.Tensor) -> torch.Tensor | None:
    """Test inputs outside the training data's bounding box (None when there are none)."""
    low, high = x_train.min(0).values, x_train.max(0).values
    outside = ((x_test < low) | (x_test > high)).any(1)
    return x_test[outside] if outside.any() else None


def _fs_r_hat(model, result: MethodResult, x: torch.Tensor) -> float:
    chains = result.extras.get("num_chains", 1)
    if chains < 2:
        return math.nan
    from .diagnostics import function_space_summary

    return function_space_summary(model, result.draws, x, chains=chains).max_r_hat


PARETO_K_THRESHOLD = 0.7  # above it PSIS is unreliable whatever the number of draws
_PARETO_WARNING = "Estimated shape parameter of Pareto distribution"


def _is_point(draws: Mapping[str, torch.Tensor]) -> bool:
    """Whether every draw equals the first (a point estimate repeated)."""
    return all(bool((v == v[:1]).all()) for v in draws.values())


def psis_loo(model, draws: Mapping[str, torch.Tensor], x_train, y_train, *,
             chains: int = 1) -> ELPDData:
    """PSIS-LOO of one method's draws on its training data: ``az.loo(..., pointwise=True)``.

    The log-likelihood matrix log p(y_n | x_n, w_s) comes from ``predict.log_likelihood`` through
    ``diagnostics.to_inference_data`` (float64; draws split into ``chains`` chains of S/chains,
    chain-major as MCMC draws are flattened), so ArviZ's relative efficiency uses the chains.

    ArviZ warns when a Pareto k exceeds min(1 − 1/log10 S, 0.7). That is a real property of the
    draws, not noise, and is kept in the returned object (``pareto_k``, ``warning``) and in the
    comparison table (share of k > 0.7) instead of being printed once per method.

    A repeated point (every draw identical: delta/MAP, deterministic) has equal importance ratios,
    so its elpd_loo is exactly the plug-in log predictive Σ_n log p(y_n | x_n, ŵ) with p_loo = 0:
    the in-sample fit, not an estimate of leave-one-out refitting, hence optimistic next to the
    Bayesian methods (nothing is charged for fitting ŵ to the same points) and ranked high by
    ``az.compare``. Pareto k is undefined there (ArviZ's fit to a constant tail returns inf): it
    is set to NaN and ``warning`` to False.
    """
    from .diagnostics import _arviz, to_inference_data

    az = _arviz()
    idata = to_inference_data(model, draws, x_train, y_train, chains=chains,
                              posterior_predictive=False)
    with warnings.catch_warnings():
        # Pareto-k warnings are recorded in the result (pareto_k, warning) and summarised in
        # the comparison table; ignoring only that message here keeps one warning per method
        # from flooding the output. Every other ArviZ warning passes through.
        warnings.filterwarnings("ignore", message=_PARETO_WARNING, category=UserWarning)
        elpd = az.loo(idata, pointwise=True)
    if _is_point(draws):
        elpd["pareto_k"] = elpd["pareto_k"] * math.nan
        elpd["warning"] = False
    return elpd


def _loo_row(elpd: ELPDData) -> dict[str, float]:
    k = elpd["pareto_k"].values
    share = math.nan if k.size and all(map(math.isnan, k.ravel())) else float(
        (k > PARETO_K_THRESHOLD).mean())
    return {"elpd_loo": float(elpd["elpd_loo"]), "elpd_loo_se": float(elpd["se"]),
            "p_loo": float(elpd["p_loo"]), f"pareto_k_over_{PARETO_K_THRESHOLD}": share}


def loo_compare(elpd: Mapping[str, ELPDData], **compare_kwargs) -> pandas.DataFrame:
    """``az.compare`` of the methods' PSIS-LOO results (best first; index named "method").

    Columns: rank, elpd_loo, p_loo, elpd_diff (to the best), weight (stacking by default),
    se, dse (standard error of the difference), warning, scale. ``compare_kwargs`` go to
    ``az.compare`` (e.g. ``method="BB-pseudo-BMA"``).
    """
    from .diagnostics import _arviz

    table = _arviz().compare(dict(elpd), ic="loo", **compare_kwargs)
    table.index.name = "method"
    return table


def run_comparison(
    model_or_factory,
    x_train,
    y_train,
    x_test,
    y_test,
    methods: Sequence[str] = DEFAULT_METHODS,
    *,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    x_outside=None,
    num_samples: int | None = None,
    level: float = 0.95,
    num_bins: int = 15,
    seed: int = 0,
    r_hat_points: int = 50,
    on_result: Callable[[str, dict[str, float]], None] | None = None,
    loo: bool = True,
    progress: bool = False,
) -> Comparison:
    """Run ``methods`` on the same model and data; return the table and every method's draws.

    ``options[name]`` are keyword options of that method's runner (``infer.methods``; checked
    before anything trains, see ``method_options``); ``methods`` must be distinct;
    ``num_samples`` (when given) is passed to every method that draws samples. ``x_outside``
    defaults to the test inputs outside the training inputs' bounding box. Function-space
    R-hat uses at most ``r_hat_points`` evenly spaced test inputs. ``on_result(name, row)`` is
    called after each method (e.g. to report progress); ``progress`` shows each method's own
    progress bar (training steps, epochs or NUTS iterations). With ``loo`` (needs ArviZ), every
    method also gets PSIS-LOO columns on the training data (``psis_loo``, using the method's
    chains) and ``Comparison.loo`` is ``az.compare`` across methods (None for a single method);
    deterministic methods get the plug-in log predictive (see the module docstring).
    """
    model = _model(model_or_factory)
    x_train = as_features(x_train, model.input_size)
    y_train = as_targets(y_train, model.likelihood, x_train.shape[0])
    x_test = as_features(x_test, model.input_size)
    if x_outside is None:
        x_outside = _outside_inputs(x_train, x_test)
    elif not torch.is_tensor(x_outside) or x_outside.dim() != 2:
        x_outside = as_features(x_outside, model.input_size)
    options = dict(options or {})
    methods = _check_methods(methods)
    options = {name: options.get(name, options.get(_ALIASES.get(name, name), {}))
               for name in methods}  # an alias (map) gets its method's (delta) options
    for name in methods:
        _check_options(name, options[name])
    rows, results, elpd = [], {}, {}
    stride = max(1, x_test.shape[0] // r_hat_points)
    for name in methods:
        kwargs = {"seed": seed, "progress": progress, **dict(options[name])}
        if num_samples is not None and name not in ("ensemble",) and "num_samples" not in kwargs:
            kwargs["num_samples"] = num_samples
        result = run_method(name, model, x_train, y_train, **kwargs)
        results[name] = result
        row = {"method": name}
        row.update(evaluate_draws(model, result.draws, x_train, x_test, y_test,
                                  x_outside=x_outside, level=level, num_bins=num_bins))
        row.update(train_seconds=result.train_seconds,
                   divergences=float(result.extras.get("divergences", math.nan)),
                   fs_r_hat=_fs_r_hat(model, result, x_test[::stride]),
                   num_samples=result.num_samples)
        if loo:
            elpd[name] = psis_loo(model, result.draws, x_train, y_train,
                                  chains=result.extras.get("num_chains", 1))
            row.update(_loo_row(elpd[name]))
        rows.append(row)
        if on_result is not None:
            on_result(name, row)
    import pandas

    table = pandas.DataFrame(rows).set_index("method")
    loo_table = loo_compare(elpd) if len(elpd) >= 2 else None  # az.compare needs 2 methods
    return Comparison(table, results, model, loo_table, elpd)


def compare(
    model_or_factory,
    x_train,
    y_train,
    x_test,
    y_test,
    methods: Sequence[str] = DEFAULT_METHODS,
    *,
    x_outside=None,
    **kwargs,
) -> pandas.DataFrame:
    """The comparison table of ``run_comparison`` (one row per method; see the module doc)."""
    return run_comparison(model_or_factory, x_train, y_train, x_test, y_test, methods,
                          x_outside=x_outside, **kwargs).table


def write_table(table: pandas.DataFrame, out_dir: str | os.PathLike,
                stem: str = "comparison") -> dict[str, Path]:
    """Write ``<stem>.csv`` and ``<stem>.json`` (records; NaN → null) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv, js = out / f"{stem}.csv", out / f"{stem}.json"
    table.to_csv(csv, float_format="%.6g")
    table.reset_index().to_json(js, orient="records", indent=2, double_precision=6)
    return {"csv": csv, "json": js}


def summarize_seeds(table: pandas.DataFrame) -> pandas.DataFrame:
    """Per method (in order of first appearance), the mean and standard error over seeds of
    every numeric column of ``table``, whose rows are one (method, seed) run each (index
    ``method``, a ``seed`` column; as ``pyro-bbb compare --seeds`` writes it): columns ``<col>``
    (mean of the non-NaN values), ``<col>_seed_se`` (its standard error s/√n over the seeds,
    ``metrics.standard_error``; not to be confused with ``elpd_loo_se``, ArviZ's standard error
    within one run, which is averaged like any column) and ``seeds``.
    """
    import pandas

    if "seed" not in table.columns:
        raise ValueError("summarize_seeds needs a 'seed' column (one row per method and seed)")
    numeric = [c for c in table.columns if c != "seed"
               and pandas.api.types.is_numeric_dtype(table[c])]
    rows = []
    for name, group in table.groupby(level=0, sort=False):
        row = {"method": name, "seeds": int(group["seed"].nunique())}
        for col in numeric:
            row[col] = float(group[col].mean())
            row[f"{col}_seed_se"] = standard_error(group[col])
        rows.append(row)
    return pandas.DataFrame(rows).set_index("method")


SEED_SUMMARY_COLUMNS = ("rmse", "test_log_likelihood", "interval_coverage", "std_ratio",
                        "accuracy", "nll", "ece", "elpd_loo", "train_seconds")


def format_seed_summary(summary: pandas.DataFrame,
                        columns: Sequence[str] = SEED_SUMMARY_COLUMNS) -> str:
    """``summarize_seeds``'s table as text: one line per method, "mean ± standard error over the
    seeds" per column (the columns of ``columns`` that it has)."""
    columns = [c for c in columns if c in summary.columns]
    cells = {name: [f"{row[c]:.4g} ± {row[c + '_seed_se']:.2g}" for c in columns]
             for name, row in summary.iterrows()}
    widths = [max(len(c), *(len(v[i]) for v in cells.values())) for i, c in enumerate(columns)]
    width = max(len("method"), *(len(str(n)) for n in cells))
    lines = ["  ".join([f"{'method':<{width}}", f"{'seeds':>5}",
                        *(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True))])]
    for name, values in cells.items():
        lines.append("  ".join([f"{name!s:<{width}}", f"{int(summary.loc[name, 'seeds']):>5}",
                                *(f"{v:>{w}}" for v, w in zip(values, widths, strict=True))]))
    return "\n".join(lines)


def bands_figure(
    comparison: Comparison,
    x_train,
    y_train,
    grid,
    *,
    truth: Callable[[torch.Tensor], torch.Tensor] | None = None,
    level: float = 0.95,
    ncols: int = 3,
) -> Figure:
    """Each method's predictive mean and central ``level`` band over a 1-D ``grid``, side by
    side with shared axes (training data in red, training range shaded, true curve dotted; one
    legend for all). The y-range covers the data and the true curve with a margin, so a band
    that widens far beyond them runs off the panel instead of flattening the others."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from .plots import _np, _pyplot

    model = comparison.model
    if model.input_size != 1:
        raise ValueError("bands_figure needs 1-D inputs")
    plt = _pyplot()
    grid = as_features(grid, 1)
    xg, xt, yt = _np(grid), _np(x_train), _np(y_train)
    names = list(comparison.results)
    nrows = math.ceil(len(names) / ncols)
    cols = min(ncols, len(names))
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3.2 * nrows + 0.6), sharex=True,
                             sharey=True, squeeze=False)
    curve = None if truth is None else _np(truth(grid[:, 0]))
    for i, (ax, name) in enumerate(zip(axes.flat, names, strict=False)):
        pred = posterior_predictive(model, comparison.results[name].draws, grid, level=level)
        ax.axvspan(xt.min(), xt.max(), color="0.92", zorder=0)
        ax.fill_between(xg, _np(pred.lower), _np(pred.upper), color="tab:blue", alpha=0.3)
        ax.plot(xg, _np(pred.mean), color="tab:blue", linewidth=1.5)
        if curve is not None:
            ax.plot(xg, curve, color="black", linestyle=":", linewidth=1)
        ax.scatter(xt, yt, s=6, color="tab:red", zorder=3)
        ax.set_title(f"{name} ({comparison.results[name].num_samples} draws)")
        if i + cols >= len(names):  # nothing below it: its x-axis is the column's
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel("x")
        if i % cols == 0:
            ax.set_ylabel("y")
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    lo, hi = float(min(xt.min(), xg.min())), float(max(xt.max(), xg.max()))
    ax0 = axes.flat[0]
    ax0.set_xlim(lo, hi)
    shown = yt if curve is None else np.concatenate([yt.reshape(-1), curve.reshape(-1)])
    span = float(shown.max() - shown.min()) or 1.0
    ax0.set_ylim(float(shown.min()) - 0.35 * span, float(shown.max()) + 0.35 * span)
    handles = [Line2D([], [], color="tab:red", marker="o", linestyle="", markersize=4),
               Line2D([], [], color="tab:blue", linewidth=1.5),
               Patch(color="tab:blue", alpha=0.3), Patch(color="0.92")]
    labels = ["training data", "predictive mean", f"central {level:.0%} interval",
              "training range"]
    if curve is not None:
        handles.append(Line2D([], [], color="black", linestyle=":", linewidth=1))
        labels.append("true curve")
    fig.suptitle(f"posterior predictive: mean and {level:.0%} band")
    fig.legend(handles, labels, loc="lower center", ncol=len(handles), frameon=False,
               fontsize=9)
    fig.tight_layout(rect=(0, 0.05, 1, 1), w_pad=4)
    return fig


# --------------------------------------------------------------------------- spec files


@dataclass
class CompareSpec:
    """An experiment spec (data, network, prior, likelihood, evaluation) and the ``[compare]``
    table: methods, num_samples and per-method options."""

    config: ExperimentConfig
    methods: tuple[str, ...] = DEFAULT_METHODS
    num_samples: int | None = None
    options: dict[str, dict[str, Any]] = field(default_factory=dict)


def apply_compare_overrides(spec: CompareSpec, overrides: Sequence[str]) -> CompareSpec:
    """Apply the ``compare.*`` overrides of ``--set`` (``compare.methods=["bbb", "delta"]``,
    ``compare.num_samples=50``, ``compare.bbb.epochs=200``), checked as the spec file is; the
    others go to the experiment spec (``config.apply_overrides``)."""
    from .config import _parse_value

    methods, num_samples = spec.methods, spec.num_samples
    options = {name: dict(opts) for name, opts in spec.options.items()}
    for item in overrides:
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        value = _parse_value(text)
        if not sep or parts[0] != "compare" or len(parts) not in (2, 3):
            raise ValueError(f"override {item!r} must look like compare.KEY=value or "
                             "compare.METHOD.KEY=value")
        if parts[1:] == ["methods"]:
            methods = _check_methods(value, "compare.methods", list(METHODS))
        elif parts[1:] == ["num_samples"]:
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ValueError(f"compare.num_samples must be a positive integer, got {value!r}")
            num_samples = value
        elif len(parts) == 3 and parts[1] in METHODS:
            _check_options(parts[1], {parts[2]: value})
            options.setdefault(parts[1], {})[parts[2]] = value
        else:
            raise _unknown_key(".".join(parts[1:]), "[compare]",
                               ["methods", "num_samples", *(f"{m}.KEY" for m in METHODS)])
    return CompareSpec(spec.config, methods, num_samples, options)


def load_compare_spec(path: str | os.PathLike) -> CompareSpec:
    """Read a comparison spec: an experiment spec plus an optional ``[compare]`` table.

    Errors are ValueErrors naming the file and the key. ``[training]`` and ``[guide]`` are not
    used by the comparison: a UserWarning says so (see the module docstring).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"spec not found: {path}")
    with path.open("rb") as f:
        try:
            raw = tomllib.load(f)
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{path}: invalid TOML ({err})") from None
    try:
        spec = _compare_spec(raw, path)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    ignored = [f"[{key}]" for key in ("training", "guide") if key in raw]
    if ignored:
        warnings.warn(f"{path}: pyro-bbb compare does not use {' and '.join(ignored)}; each "
                      "method trains with its [compare.<method>] options (e.g. [compare.bbb] "
                      "epochs = 3000)", UserWarning, stacklevel=2)
    return spec


def _compare_spec(raw: dict[str, Any], path: Path) -> CompareSpec:
    from .config import config_from_dict

    table = raw.pop("compare", {})
    if not isinstance(table, Mapping):
        raise ValueError(f"[compare] must be a table, got compare = {table!r}")
    table = dict(table)
    config = config_from_dict(raw, base_dir=path.parent, default_name=path.stem)
    methods = table.pop("methods", DEFAULT_METHODS)
    methods = _check_methods(methods, "compare.methods", list(METHODS))
    num_samples = table.pop("num_samples", raw.get("evaluation", {}).get("num_samples"))
    if num_samples is not None and (not isinstance(num_samples, int)
                                    or isinstance(num_samples, bool) or num_samples < 1):
        raise ValueError(f"compare.num_samples must be a positive integer, got {num_samples!r}")
    options = {}
    for key, value in table.items():
        if key not in METHODS:
            raise _unknown_key(key, "[compare]", ["methods", "num_samples", *METHODS])
        _check_options(key, value)
        options[key] = dict(value)
    return CompareSpec(config, methods, num_samples, options)
