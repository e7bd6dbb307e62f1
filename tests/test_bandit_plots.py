import numpy as np
import pytest
import torch

from pyro_bbb.bandit_plots import (
    AGENT_COLORS,
    action_rate_figure,
    binned_eat_rates,
    regret_curve_figure,
    save_figure,
)
from pyro_bbb.bandits import BanditRun
from pyro_bbb.plots import _pyplot


@pytest.fixture(autouse=True)
def _close_figures():
    """Close what a test leaves open: past 20 open figures pyplot warns."""
    yield
    _pyplot().close("all")


def regret_curves(seeds: int, steps: int, rate: float, seed: int = 0) -> np.ndarray:
    """(seeds, steps) cumulative regrets with per-step regret ~ rate·{0, 5, 40} ≥ 0."""
    rng = np.random.default_rng(seed)
    per_step = rng.choice([0.0, 5.0, 40.0], size=(seeds, steps), p=[1 - rate, rate / 2, rate / 2])
    per_step[:, 0] = 5.0  # positive from the first step: every point shows on a log axis
    return np.cumsum(per_step, axis=1)


def bold_lines(ax):
    return {line.get_label(): line for line in ax.get_lines() if line.get_linewidth() == 2}


def test_regret_curve_renders_with_labels_and_line_counts(tmp_path):
    steps = np.arange(1, 201)
    curves = {"BBB": regret_curves(3, 200, 0.1), "Greedy": regret_curves(3, 200, 0.3, seed=1),
              "Oracle": np.zeros((3, 200))}
    fig = regret_curve_figure(steps, curves, title="three agents")
    (ax,) = fig.axes
    assert ax.get_xlabel() == "step" and ax.get_ylabel() == "cumulative regret"
    assert ax.get_title() == "three agents" and ax.get_yscale() == "log"
    assert ax.get_xscale() == "linear"
    # 3 faint + 1 bold per learning agent; the oracle (0 throughout) is an empty legend line
    assert len(ax.get_lines()) == 2 * (3 + 1) + 1
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels[0].startswith("BBB: final ") and labels[1].startswith("Greedy: final ")
    assert labels[2] == "Oracle (regret 0 throughout)"
    finals = ", ".join(f"{v:,.0f}" for v in curves["BBB"][:, -1])
    assert labels[0] == f"BBB: final {finals}"
    assert bold_lines(ax)[labels[0]].get_color() == AGENT_COLORS["BBB"]
    path = save_figure(fig, tmp_path / "regret.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_bold_line_is_the_mean_of_the_seeds():
    steps = np.array([1, 2, 3, 4])
    runs = np.array([[5.0, 10.0, 10.0, 50.0],
                     [5.0, 45.0, 85.0, 90.0],
                     [40.0, 35.0, 75.0, 70.0]])
    fig = regret_curve_figure(steps, {"BBB": runs})
    ax = fig.axes[0]
    (bold,) = bold_lines(ax).values()
    np.testing.assert_allclose(bold.get_xdata(), steps)
    np.testing.assert_allclose(bold.get_ydata(), [50 / 3, 30.0, 170 / 3, 70.0])
    faint = [line for line in ax.get_lines() if line.get_linewidth() != 2]
    assert len(faint) == 3
    for line, run in zip(faint, runs, strict=True):
        np.testing.assert_allclose(line.get_ydata(), run)
    assert bold.get_label() == "BBB: final 50, 90, 70"


def test_linear_axis_keeps_non_positive_points_and_single_seed_has_no_faint_lines():
    steps = np.arange(1, 6)
    lucky = np.array([-5.0, -10.0, 30.0, 25.0, 20.0])  # lucky eats of poisonous mushrooms
    fig = regret_curve_figure(steps, {"BBB": lucky, "Oracle": np.zeros(5)}, log_regret=False,
                              log_steps=True)
    ax = fig.axes[0]
    assert ax.get_yscale() == "linear" and ax.get_xscale() == "log"
    assert len(ax.get_lines()) == 2  # one bold line per agent, the oracle drawn at 0
    np.testing.assert_allclose(bold_lines(ax)["BBB: final 20"].get_ydata(), lucky)
    on_log = regret_curve_figure(steps, {"BBB": torch.tensor(lucky)}).axes[0]
    assert np.isnan(on_log.get_lines()[0].get_ydata()[:2]).all()  # ≤ 0 is left off a log axis


def test_regret_curve_rejects_bad_input():
    steps = np.arange(1, 11)
    with pytest.raises(ValueError, match=r"'Greedy'.*9 points but steps has 10"):
        regret_curve_figure(steps, {"BBB": np.ones((2, 10)), "Greedy": np.ones((2, 9))})
    with pytest.raises(ValueError, match="no curves"):
        regret_curve_figure(steps, {})
    with pytest.raises(ValueError, match="increasing"):
        regret_curve_figure(steps[::-1], {"BBB": np.ones(10)})
    with pytest.raises(ValueError, match="shape"):
        regret_curve_figure(steps, {"BBB": np.ones((2, 2, 10))})


def fake_run(actions, edible) -> BanditRun:
    actions = np.asarray(actions, dtype=np.int8)
    zeros = np.zeros(actions.size)
    return BanditRun(zeros, actions, np.asarray(edible, dtype=bool), zeros.astype(np.float32),
                     0.0)


def test_binned_eat_rates_known_answer():
    # 8 steps, 2 blocks of 4; poisonous at steps 1, 2, 5; the second run eats everything
    edible = [False, False, True, True, False, True, True, True]
    first = fake_run([1, 0, 1, 0, 0, 1, 1, 0], edible)
    second = fake_run([1] * 8, edible)
    ends, poisonous, eaten = binned_eat_rates([first, second], bins=2)
    np.testing.assert_array_equal(ends, [4, 8])
    np.testing.assert_allclose(poisonous, [3 / 4, 1 / 2])  # pooled counts over the two runs
    np.testing.assert_allclose(eaten, [3 / 4, 5 / 6])
    _, poisonous, _ = binned_eat_rates([fake_run([0, 1], [True, True])], bins=2)
    assert np.isnan(poisonous).all()  # no poisonous mushroom met: no rate
    with pytest.raises(ValueError, match="same number of steps"):
        binned_eat_rates([first, fake_run([1, 0], [True, False])])
    with pytest.raises(ValueError, match="bins"):
        binned_eat_rates([first], bins=9)


def test_action_rate_figure(tmp_path):
    rng = np.random.default_rng(0)
    steps = 400
    edible = rng.random((2, steps)) < 0.5
    explorer = [fake_run(np.where(e, 1, rng.random(steps) < np.linspace(0.5, 0.0, steps)), e)
                for e in edible]
    oracle = fake_run(edible[0].astype(int), edible[0])
    fig = action_rate_figure({"BBB": explorer, "Oracle": oracle}, bins=8, title="rates")
    ax_poison, ax_edible = fig.axes
    assert fig._suptitle.get_text() == "rates"
    assert ax_poison.get_title().startswith("(a) poisonous")
    assert ax_edible.get_title().startswith("(b) edible")
    assert ax_poison.get_xlabel() == ax_edible.get_xlabel() == "step (end of block)"
    # BBB: pooled (bold) then each of its 2 seeds (faint); the oracle's one run
    lines = ax_poison.get_lines()
    assert len(lines) == len(ax_edible.get_lines()) == 4
    assert [text.get_text() for text in ax_poison.get_legend().get_texts()] == [
        "BBB (2 seeds pooled)", "Oracle"]
    bbb, seed_lines, oracle_line = lines[0], lines[1:3], lines[3]
    assert len(bbb.get_xdata()) == 8 and bbb.get_xdata()[-1] == steps
    for line, run in zip(seed_lines, explorer, strict=True):
        np.testing.assert_allclose(line.get_ydata(), binned_eat_rates([run], 8)[1])
    assert 0.3 < ax_poison.get_ylim()[1] < 1.03  # zoomed in on the rates
    assert bbb.get_ydata()[0] > 0.3 > 0.1 > bbb.get_ydata()[-1]
    np.testing.assert_array_equal(oracle_line.get_ydata(), 0.0)
    np.testing.assert_array_equal(ax_edible.get_lines()[3].get_ydata(), 1.0)
    quiet = action_rate_figure({"BBB": explorer}, bins=8, show_seeds=False)
    assert len(quiet.axes[0].get_lines()) == 1
    path = save_figure(fig, tmp_path / "rates.png")
    assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 5000
    with pytest.raises(ValueError, match="differ in length"):
        action_rate_figure({"BBB": explorer, "short": fake_run([0] * 8, [True] * 8)}, bins=8)
    with pytest.raises(ValueError, match="no runs"):
        action_rate_figure({})


def test_eat_probability_figure(tmp_path):
    from pyro_bbb.bandit_plots import eat_probability_figure

    p_eat = np.array([0.0, 0.01, 0.99, 1.0, 0.5, 0.0])
    edible = np.array([False, False, True, True, True, False])
    fig = eat_probability_figure(p_eat, edible, title="t", bins=10)
    (ax,) = fig.axes
    assert ax.get_title() == "t" and ax.get_yscale() == "log"
    (edible_bars,) = ax.containers  # edible filled; poisonous an outline, so they never blend
    assert sum(p.get_height() for p in edible_bars) == 3
    (outline,) = [p for p in ax.patches if not p.get_fill()]
    assert outline.get_xy()[:, 1].max() == 3  # the three poisonous ones, all in the first bin
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["edible", "poisonous"]
    save_figure(fig, tmp_path / "eat.png")
    assert (tmp_path / "eat.png").read_bytes().startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="one length"):
        eat_probability_figure(p_eat, edible[:3])


class _Run:
    """A run with whatever actions and labels the test gives (BanditRun casts them)."""

    def __init__(self, actions, edible):
        self.actions, self.edible = np.asarray(actions), np.asarray(edible)


def test_edible_flags_accept_0_1_and_refuse_strings():
    from pyro_bbb.bandit_plots import eat_probability_figure

    actions, edible = [1, 0, 1, 1], [True, False, False, True]
    as_bool = binned_eat_rates([_Run(actions, edible)], bins=2)
    as_int = binned_eat_rates([_Run(actions, np.array(edible, dtype=int))], bins=2)
    np.testing.assert_array_equal(as_int, as_bool)
    letters = np.array(["e", "p", "p", "e"])
    for call in (lambda: binned_eat_rates([_Run(actions, letters)], bins=2),
                 lambda: action_rate_figure({"A": _Run(actions, letters)}, bins=2),
                 lambda: eat_probability_figure(np.full(4, 0.5), letters)):
        with pytest.raises(ValueError, match="edible must hold booleans .* got dtype <U1"):
            call()
    with pytest.raises(ValueError, match=r"edible must hold booleans .* values such as \[2\]"):
        binned_eat_rates([_Run(actions, [1, 2, 0, 1])], bins=2)
    with pytest.raises(ValueError, match=r"actions \(1 = eat, 0 = pass\) must hold booleans"):
        binned_eat_rates([_Run([1, 0, 3, 1], edible)], bins=2)


@pytest.mark.parametrize("runs, bins, message", [
    ([_Run([1, 0], [True, True])], 2.0, "bins must be a positive int, got 2.0"),
    ([_Run([1, 0], [True, True])], True, "bins must be a positive int, got True"),
    ([_Run([], [])], 1, "the runs have no steps"),
    ({"a": _Run([1], [True])}, 1, "runs must be BanditRun-like objects"),
])
def test_binned_eat_rates_bad_input(runs, bins, message):
    with pytest.raises(ValueError, match=message):
        binned_eat_rates(runs, bins=bins)


def test_eat_probability_figure_bins_and_regret_strings():
    from pyro_bbb.bandit_plots import eat_probability_figure

    with pytest.raises(ValueError, match="bins must be a positive int, got 2.5"):
        eat_probability_figure(np.full(4, 0.5), np.ones(4, bool), bins=2.5)
    with pytest.raises(ValueError, match=r"curves\['A'\] must be numeric"):
        regret_curve_figure([1, 2, 3], {"A": ["a", "b", "c"]})
