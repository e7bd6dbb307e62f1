"""Figures for the Mushroom contextual bandit (Blundell et al. 2015, section 5.3, Figure 6):
cumulative regret against step, and how often each agent eats poisonous and edible mushrooms
as the run goes on.

Every function returns a matplotlib Figure and never shows it; pyplot is imported lazily through
``pyro_bbb.plots``, which selects the headless Agg backend when none was chosen. Save with
``pyro_bbb.plots.save_figure``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .inputs import as_int
from .plots import _np, _numbers, _pyplot, save_figure

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = [
    "AGENT_COLORS",
    "regret_curve_figure",
    "binned_eat_rates",
    "action_rate_figure",
    "eat_probability_figure",
    "save_figure",
]

# The agents of ``pyro_bbb.bandits.default_agents``; others take matplotlib's colour cycle.
AGENT_COLORS: dict[str, str] = {"BBB": "tab:blue", "Greedy": "tab:red", "1% Greedy": "tab:orange",
                                "5% Greedy": "tab:green", "Oracle": "tab:gray"}
_CYCLE = ("tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")


def _colors(names: Sequence[str]) -> dict[str, str]:
    others = iter(_CYCLE * (1 + len(names) // len(_CYCLE)))
    return {name: AGENT_COLORS.get(name) or next(others) for name in names}


def _as_runs(name: str, values, length: int) -> np.ndarray:
    """``values`` as a (seeds, length) float array: one curve (length,) or several."""
    if hasattr(values, "detach"):
        values = values.detach().cpu()
    runs = _numbers(values, f"curves[{name!r}]")
    if runs.ndim == 1:
        runs = runs[None]
    if runs.ndim != 2 or runs.shape[0] == 0:
        raise ValueError(f"{name!r}: expected one curve (steps,) or curves (seeds, steps), got "
                         f"shape {runs.shape}")
    if runs.shape[1] != length:
        raise ValueError(f"{name!r}: its curves have {runs.shape[1]} points but steps has "
                         f"{length}; give the regret at exactly the plotted steps")
    return runs


def regret_curve_figure(
    steps,
    curves: Mapping[str, object],
    title: str | None = None,
    *,
    log_regret: bool = True,
    log_steps: bool = False,
    colors: Mapping[str, str] | None = None,
    figsize: tuple[float, float] = (7.5, 4.8),
) -> Figure:
    """Cumulative regret R_t = Σ_{s≤t} (oracle reward − reward) against the step t.

    Args:
        steps: the step numbers t (T,) at which the curves are given, increasing (e.g.
            ``np.arange(1, T + 1)``, or a subset of them).
        curves: agent name → its cumulative regret at ``steps``, one seed (T,) or several
            (seeds, T) (``ExperimentResult.cumulative_regret`` at full resolution). Each agent
            is drawn as the mean over seeds (bold, labelled with every seed's final regret)
            and, when there are several, each seed (faint).
        title: axes title (default "Mushroom bandit: cumulative regret").
        log_regret: log regret axis (the default, as in the paper). On it the points where a
            curve is ≤ 0 are left out, and an agent whose regret is 0 throughout (the oracle)
            appears in the legend only; the axis starts near the lowest mean regret after the
            first 1% of steps, so the first few steps do not stretch it down to ~1.
        log_steps: log step axis (shows the early exploration better).
        colors: agent name → colour, overriding ``AGENT_COLORS``.

    Raises ValueError when ``curves`` is empty, ``steps`` is empty or not increasing, or a
    curve's length differs from ``len(steps)``.
    """
    t = _np(steps)
    if t.size == 0:
        raise ValueError("steps is empty")
    if np.any(np.diff(t) <= 0):
        raise ValueError("steps must be strictly increasing")
    if not curves:
        raise ValueError("no curves to plot")
    runs_of = {name: _as_runs(name, values, t.size) for name, values in curves.items()}
    palette = {**_colors(list(runs_of)), **(colors or {})}
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=figsize)

    def shown(values: np.ndarray) -> np.ndarray:
        return np.where(values > 0, values, np.nan) if log_regret else values

    for name, runs in runs_of.items():
        color = palette[name]
        if log_regret and not runs.any():
            ax.plot([], [], color=color, lw=2, label=f"{name} (regret 0 throughout)")
            continue
        if runs.shape[0] > 1:
            for run in runs:
                ax.plot(t, shown(run), color=color, alpha=0.3, lw=0.8)
        finals = ", ".join(f"{v:,.0f}" for v in runs[:, -1])
        ax.plot(t, shown(runs.mean(0)), color=color, lw=2, label=f"{name}: final {finals}")
    if log_regret:
        ax.set_yscale("log")
        after = t >= t[-1] / 100
        lowest = [float(runs.mean(0)[after].min()) for runs in runs_of.values()]
        lowest = [v for v in lowest if v > 0]
        if lowest:
            ax.set_ylim(bottom=max(1.0, 0.5 * min(lowest)))
    if log_steps:
        ax.set_xscale("log")
        ax.set_xlim(max(t[0], 1.0), t[-1])
    else:
        ax.set_xlim(0, t[-1])
    ax.set_xlabel("step")
    ax.set_ylabel("cumulative regret")
    ax.set_title(title or "Mushroom bandit: cumulative regret", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    several = any(runs.shape[0] > 1 for runs in runs_of.values())
    ax.legend(loc="lower right" if log_regret else "upper left", fontsize=8, title_fontsize=8,
              title="mean (bold), seeds (faint); final per seed" if several else None)
    fig.tight_layout()
    return fig


def _flags(values, name: str) -> np.ndarray:
    """``values`` as a flat bool array: booleans or 0/1 numbers, anything else refused."""
    if hasattr(values, "detach"):
        values = values.detach().cpu()
    flags = np.asarray(values).reshape(-1)
    if flags.dtype == bool:
        return flags
    if not np.issubdtype(flags.dtype, np.number):
        raise ValueError(f"{name} must hold booleans (or 0/1), got dtype {flags.dtype}; e.g. "
                         "for 'e'/'p' labels pass labels == 'e'")
    if not np.isin(flags, (0, 1)).all():
        others = np.unique(flags[~np.isin(flags, (0, 1))])[:3].tolist()
        raise ValueError(f"{name} must hold booleans (or 0/1), got values such as {others}")
    return flags.astype(bool)


class _Played(Protocol):
    """What ``action_rate_figure`` reads from a ``pyro_bbb.bandits.BanditRun``."""

    actions: np.ndarray
    edible: np.ndarray


def binned_eat_rates(runs: Sequence[_Played], bins: int = 20
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fraction of "eat" among the poisonous and among the edible mushrooms, per block of steps.

    The steps 1..T of runs of equal length T are cut into ``bins`` consecutive blocks of
    (nearly) equal size; within a block the counts of all runs are pooled:
    rate_b = #(eat ∧ poisonous in block b) / #(poisonous in block b), likewise for edible
    (NaN where a block holds no such mushroom). Returns (the last step of each block,
    poisonous rates, edible rates), each (bins,).
    """
    if not runs:
        raise ValueError("no runs")
    if not all(hasattr(run, "actions") and hasattr(run, "edible") for run in runs):
        raise ValueError("runs must be BanditRun-like objects with .actions and .edible, got "
                         f"{[type(run).__name__ for run in runs][:3]}")
    bins = as_int(bins, "bins")
    actions = [_flags(run.actions, "actions (1 = eat, 0 = pass)") for run in runs]
    edible = [_flags(run.edible, "edible") for run in runs]
    length = actions[0].size
    if any(a.size != length or e.size != length for a, e in zip(actions, edible, strict=True)):
        raise ValueError("runs must have the same number of steps, with one label per action; "
                         f"got {[a.size for a in actions]} actions, {[e.size for e in edible]} "
                         "labels")
    if not length:
        raise ValueError("the runs have no steps")
    if not 1 <= bins <= length:
        raise ValueError(f"bins must lie in [1, {length}] (the number of steps), got {bins}")
    eat = np.stack(actions)
    edible_all = np.stack(edible)
    edges = np.linspace(0, length, bins + 1).round().astype(int)
    rates = np.full((2, bins), np.nan)
    for b, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        for row, mask in enumerate((~edible_all[:, lo:hi], edible_all[:, lo:hi])):
            if mask.any():
                rates[row, b] = eat[:, lo:hi][mask].mean()
    return edges[1:].astype(float), rates[0], rates[1]


def action_rate_figure(
    runs: Mapping[str, _Played | Sequence[_Played]],
    bins: int = 20,
    title: str | None = None,
    *,
    show_seeds: bool = True,
    colors: Mapping[str, str] | None = None,
    figsize: tuple[float, float] = (11, 4.2),
) -> Figure:
    """How often each agent eats (a) poisonous and (b) edible mushrooms as the run goes on.

    ``runs`` maps an agent name to one ``BanditRun`` (from ``pyro_bbb.bandits.run_bandit``) or
    several (seeds) of equal length; rates are pooled over the seeds in ``bins`` consecutive
    blocks of steps (``binned_eat_rates``) and drawn at each block's last step (bold, with
    markers); with ``show_seeds`` and several seeds, each seed's rates are drawn faintly too
    (a greedy agent that locked into passing shows up there). The oracle sits at 0 in (a) and
    1 in (b); an explorer starts in between and moves there. Panel (a) zooms in on its rates;
    panel (b) spans [0, 1].
    """
    if not runs:
        raise ValueError("no runs to plot")
    grouped = {name: [value] if hasattr(value, "actions") else list(value)
               for name, value in runs.items()}
    rates = {name: binned_eat_rates(group, bins) for name, group in grouped.items()}
    lengths = {name: int(r[0][-1]) for name, r in rates.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"agents' runs differ in length: {lengths}")
    palette = {**_colors(list(rates)), **(colors or {})}
    plt = _pyplot()
    fig, (ax_poison, ax_edible) = plt.subplots(1, 2, figsize=figsize, sharex=True)
    for name, (ends, poisonous, edible) in rates.items():
        group, color = grouped[name], palette[name]
        label = name if len(group) == 1 else f"{name} ({len(group)} seeds pooled)"
        ax_poison.plot(ends, poisonous, color=color, marker=".", lw=1.6, label=label)
        ax_edible.plot(ends, edible, color=color, marker=".", lw=1.6, label=label)
        if show_seeds and len(group) > 1:
            for run in group:
                _, seed_poisonous, seed_edible = binned_eat_rates([run], bins)
                ax_poison.plot(ends, seed_poisonous, color=color, alpha=0.3, lw=0.8)
                ax_edible.plot(ends, seed_edible, color=color, alpha=0.3, lw=0.8)
    block = next(iter(lengths.values())) / bins
    ax_poison.set_title("(a) poisonous mushrooms eaten (lower is better)")
    ax_edible.set_title("(b) edible mushrooms eaten (higher is better)")
    ax_poison.set_ylabel(f"fraction eaten per block of ~{block:,.0f} steps")
    shown = np.concatenate([np.asarray(line.get_ydata(), dtype=float)
                            for line in ax_poison.get_lines()])
    top = float(np.nanmax(shown)) if np.isfinite(shown).any() else 0.0
    ax_poison.set_ylim(0, min(1.03, max(0.05, 1.3 * top)))
    ax_edible.set_ylim(-0.03, 1.03)
    for ax in (ax_poison, ax_edible):
        ax.set_xlabel("step (end of block)")
        ax.set_xlim(0, next(iter(lengths.values())))
        ax.grid(alpha=0.3)
    # below the panel: inside, it would hide the faint per-seed rates, which reach 1 early on
    ax_poison.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8,
                     frameon=False)
    fig.suptitle(title or "Mushroom bandit: how often each agent eats")
    fig.tight_layout()
    return fig


def eat_probability_figure(p_eat, edible, *, title: str | None = None, bins: int = 40) -> Figure:
    """Histogram (log count) of P(eat | x) under a Thompson agent's posterior over the mushrooms,
    edible and poisonous apart (``ThompsonAgent.eat_probability``): a finished learner puts the
    edible ones at 1 and the poisonous ones at 0; mass in between is what it still explores."""
    p_eat, edible = _np(p_eat), _flags(edible, "edible")
    if p_eat.shape != edible.shape or p_eat.size == 0:
        raise ValueError(f"p_eat and edible must be non-empty and of one length, got "
                         f"{p_eat.size} and {edible.size}")
    bins = as_int(bins, "bins")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    edges = np.linspace(0, 1, bins + 1)
    # filled green and a red outline: two translucent fills would mix into a brown that the
    # legend does not show
    ax.hist(p_eat[edible], bins=edges, color="tab:green", alpha=0.6, label="edible")
    ax.hist(p_eat[~edible], bins=edges, color="tab:red", histtype="step", linewidth=1.6,
            label="poisonous")
    ax.set_yscale("log")
    ax.set_xlabel("P(eat) under the posterior")
    ax.set_ylabel("mushrooms")
    ax.set_title(title or "Thompson sampling policy")
    ax.legend(loc="upper center", fontsize=9)
    fig.tight_layout()
    return fig
