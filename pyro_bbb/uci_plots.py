"""The UCI benchmark as a figure: test log-likelihood and RMSE per method, one dot per split
beside the mean ± standard error over splits (``pyro_bbb.uci.summarize``), in original units.

Returns a matplotlib Figure and never shows it; pyplot is imported lazily through
``pyro_bbb.plots``. ``pyro-bbb uci --out DIR`` saves it as ``DIR/uci_splits.png``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .plots import _pyplot, save_figure
from .uci import summarize

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["uci_figure", "save_figure"]

_COLUMNS = ("method", "split", "rmse", "test_ll", "train_seconds")
_PANELS = (("test_ll", "ll", "test log-likelihood (higher is better)"),
           ("rmse", "rmse", "test RMSE (lower is better)"))


def _check_table(table) -> pd.DataFrame:
    """``run_uci``'s table (or its ``uci_splits.csv`` read back): the columns, rows, finite."""
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame (run_uci output or uci_splits.csv), "
                        f"got {type(table).__name__}")
    missing = [c for c in _COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"table has no column {', '.join(missing)} (expected run_uci output "
                         f"with {', '.join(_COLUMNS)})")
    if table.empty:
        raise ValueError("table has no rows to plot")
    values = table[["rmse", "test_ll"]].to_numpy(dtype=float)
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        rows = table.loc[bad, ["method", "split"]].to_dict("records")
        raise ValueError(f"non-finite rmse or test_ll in {rows[:3]}")
    return table


def uci_figure(table: pd.DataFrame, title: str | None = None) -> Figure:
    """Two panels, test log-likelihood and RMSE: per method (in the table's order) every split's
    value as a dot and, to its right, the mean over splits with ± one standard error."""
    table = _check_table(table)
    summary = summarize(table).set_index("method")
    methods = list(summary.index)
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(2.5 + 1.3 * len(methods), 3.6) if len(methods) > 2
                             else (6.5, 3.6), squeeze=False)
    for ax, (column, short, label) in zip(axes[0], _PANELS, strict=True):
        for i, method in enumerate(methods):
            values = table.loc[table["method"] == method, column].to_numpy(dtype=float)
            # seeded jitter, not spaced by split: an order along x would look like a trend
            offsets = np.random.default_rng(i).uniform(-0.25, 0.05, len(values))
            ax.scatter(i + offsets, values, s=10, alpha=0.5, color=f"C{i}")
            ax.errorbar(i + 0.2, summary.loc[method, f"{short}_mean"],
                        yerr=summary.loc[method, f"{short}_se"], fmt="o", color="black",
                        capsize=4, markersize=5)
        ax.set_xticks(range(len(methods)), methods)
        ax.set_xlim(-0.6, len(methods) - 0.4)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    splits = int(summary["splits"].max())
    fig.suptitle(title or f"UCI regression: {splits} split(s) per method; dots = splits, "
                 "black = mean ± standard error", fontsize=10)
    fig.tight_layout()
    return fig
