"""What a reader sees: figures keep their text apart, their legends off the data, their axes on
the data, and the same colour for the same quantity. Each test pins a defect found by drawing
every figure at smoke size and looking at it."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from pyro_bbb import plots, prior_plots
from pyro_bbb.likelihoods import ClassificationPrediction, RegressionPrediction


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plots._pyplot().close("all")


def _renderer(fig):
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def _overlap(a, b) -> bool:
    """Whether two display-space boxes share area (touching edges do not count)."""
    return a.x0 < b.x1 - 0.5 and b.x0 < a.x1 - 0.5 and a.y0 < b.y1 - 0.5 and b.y0 < a.y1 - 0.5


def _legend_box(ax, renderer):
    legend = ax.get_legend()
    assert legend is not None, "expected a legend"
    return legend.get_window_extent(renderer)


def _regression_prediction(n=200, aleatoric=0.05, seed=0) -> RegressionPrediction:
    generator = torch.Generator().manual_seed(seed)
    epistemic = 0.005 + 0.03 * torch.rand(n, generator=generator)
    noise = torch.full((n,), aleatoric)
    std = (noise**2 + epistemic**2).sqrt()
    mean = torch.zeros(n)
    return RegressionPrediction(mean, std, noise, epistemic, mean - 2 * std, mean + 2 * std,
                                0.95)


def _loo(log_lik: np.ndarray):
    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = az.from_dict(posterior={"a": np.zeros(log_lik.shape[:2])},
                             log_likelihood={"y": log_lik})
        return az.loo(idata, pointwise=True)


# ------------------------------------------------------------------------ diagnostic_plots


def test_khat_figure_with_non_finite_k_is_drawn_at_a_sane_size(tmp_path):
    """A posterior whose draws all give the same log-likelihood (a smoke run with tiny σ) has
    k = inf everywhere: az.plot_khat drew nothing and put its bin labels at x ≈ 10⁵ data units,
    so the saved khat.png was 750,000 pixels wide. Non-finite k are now drawn and counted."""
    from PIL import Image

    from pyro_bbb.diagnostic_plots import khat_figure

    log_lik = np.tile(np.random.default_rng(0).normal(size=(1, 1, 300)), (1, 10, 1))
    loo = _loo(log_lik)
    assert not np.isfinite(loo.pareto_k.values).any()
    fig = khat_figure(loo, title="all k infinite")
    path = plots.save_figure(fig, tmp_path / "khat.png")
    width, height = Image.open(path).size
    assert width < 2000 and height < 1000
    fig = khat_figure(loo)
    (ax,) = fig.axes
    drawn = sum(len(c.get_offsets()) for c in ax.collections)
    assert drawn == 300
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["k not finite (drawn at the top): 300 (100%)"]
    bottom, top = ax.get_ylim()
    assert all(bottom < y < top for c in ax.collections for y in c.get_offsets()[:, 1])


def test_khat_figure_counts_arviz_bins_in_a_legend_that_covers_no_point():
    """The bin percentages were text placed inside the axes over the right-most points, and the
    threshold line of the k-against-x panel was unlabelled (and at 0.7, not at az.loo's own
    sample-size dependent good_k)."""
    from pyro_bbb.diagnostic_plots import khat_figure

    rng = np.random.default_rng(1)
    log_lik = rng.normal(size=(2, 50, 40)) * np.linspace(0.1, 8, 40)  # k from small to large
    loo = _loo(log_lik)
    k = loo.pareto_k.values
    good_k = float(loo.good_k)
    fig = khat_figure(loo, torch.linspace(0, 1, 40))
    renderer = _renderer(fig)
    left, right = fig.axes
    assert not left.texts and not right.texts  # no labels over the data
    legend = _legend_box(right, renderer)
    for ax in fig.axes:
        assert not _overlap(legend, ax.get_window_extent(renderer))
        assert any(line.get_ydata()[0] == pytest.approx(good_k) for line in ax.lines)
    labels = [t.get_text() for t in right.get_legend().get_texts()]
    expected = [(k <= good_k).sum(), ((k > good_k) & (k <= 1)).sum(), (k > 1).sum()]
    counts = [int(label.split(": ")[1].split(" ")[0]) for label in labels]
    assert counts == [c for c in expected if c]
    assert "draws" in left.get_title()


def _tick_labels_overlap(ax, renderer) -> bool:
    boxes = [t.get_window_extent(renderer) for t in ax.get_xticklabels()
             if t.get_visible() and t.get_text()]
    return any(_overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")
def test_posterior_figure_tick_labels_do_not_collide_on_narrow_posteriors():
    """Weights known to ±1e-4 around -0.034 gave five labels like -0.03425 under a 2-inch panel,
    running into each other; the title now also says how many draws the KDEs rest on."""
    import pyro_bbb as bbb
    from pyro_bbb.diagnostic_plots import posterior_figure
    from pyro_bbb.diagnostics import to_inference_data

    model = bbb.BayesianMLP([1, 6, 2], bbb.Categorical(2), prior=bbb.gaussian_prior(1.0))
    generator = torch.Generator().manual_seed(0)
    draws = {name: -0.0341 + 1e-4 * torch.randn(10, *shape, generator=generator)
             for name, shape in model.latent_shapes().items()}
    idata = to_inference_data(model, draws, posterior_predictive=False, log_likelihood=False)
    fig = posterior_figure(idata, model)
    renderer = _renderer(fig)
    shown = [ax for ax in fig.axes if ax.get_visible() and ax.get_xticklabels()]
    assert shown
    assert not any(_tick_labels_overlap(ax, renderer) for ax in shown)
    assert "10 draws" in fig._suptitle.get_text()


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")
def test_ppc_figure_legends_sit_below_the_curves_and_titles_give_the_draws():
    """ArviZ's legends sat over the predictive curves, the y axes had no label and the font
    sizes of the two panels differed."""
    import pyro_bbb as bbb
    from pyro_bbb.diagnostic_plots import ppc_figure
    from pyro_bbb.diagnostics import sample_prior, to_inference_data

    model = bbb.BayesianMLP([1, 6, 1], bbb.Gaussian(noise=0.1), prior=bbb.gaussian_prior(1.0))
    x = torch.linspace(0, 1, 40)[:, None]
    y = torch.sin(3 * x[:, 0])
    idata = to_inference_data(model, sample_prior(model, 30, seed=0), x, y,
                              prior_draws=sample_prior(model, 30, seed=1), seed=0)
    fig = ppc_figure(idata, num_pp_samples=20)
    renderer = _renderer(fig)
    prior_ax, post_ax = fig.axes[:2]
    for ax in (prior_ax, post_ax):
        assert ax.get_ylabel()
        assert "20 draws" in ax.get_title()
        legend = _legend_box(ax, renderer)
        assert legend.y1 <= ax.get_window_extent(renderer).y0  # entirely below the panel
    sizes = {t.get_fontsize() for ax in (prior_ax, post_ax)
             for t in ax.get_xticklabels() + [ax.xaxis.label]}
    assert max(sizes) <= 1.25 * min(sizes)


# ---------------------------------------------------------------------------------- plots


def test_training_curves_show_a_single_epoch_on_whole_epoch_ticks():
    """A smoke run (one epoch) drew a line through one point, i.e. nothing, over ticks at
    epochs 0.96, 0.98, …"""
    fig = plots.training_curves({"epoch": [0], "nll": [1131.0], "complexity": [3.4e6]})
    for ax in fig.axes:
        (line,) = ax.lines
        assert line.get_marker() not in (None, "", "None", " ")
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks)
    fig = plots.training_curves({"epoch": list(range(7)), "nll": list(range(7, 0, -1)),
                                 "complexity": [1.0] * 7})
    assert all(float(t).is_integer() for t in fig.axes[0].get_xticks())


def test_uncertainty_histogram_centres_a_constant_instead_of_squashing_it():
    """With a fixed noise the aleatoric std is one value v; its bins ran over [v, v + 1], one bar
    pressed against the left edge of a 0–1 axis."""
    fig = plots.uncertainty_histogram(_regression_prediction(aleatoric=0.05))
    ax = fig.axes[1]
    lo, hi = ax.get_xlim()
    assert lo < 0.05 < hi and hi - lo < 0.05
    assert abs((lo + hi) / 2 - 0.05) < 0.1 * (hi - lo)


@pytest.mark.parametrize("split", [False, True])
def test_uncertainty_histogram_legend_covers_no_bar_and_explains_the_dashed_means(split):
    """The correct/wrong legend sat upper right over the tallest bars (entropies pile up near
    log C); and the note "(dashed: means)" lived only in the default title, so the CLI's own
    title dropped it."""
    generator = torch.Generator().manual_seed(0)
    n, classes = 400, 10
    probs = torch.softmax(0.3 * torch.randn(n, classes, generator=generator), -1)
    total = -(probs * probs.log()).sum(-1)
    epistemic = 0.01 * torch.rand(n, generator=generator)
    pred = ClassificationPrediction(probs, total, total - epistemic, epistemic)
    correct = torch.rand(n, generator=generator) < 0.6 if split else None
    fig = plots.uncertainty_histogram(pred, correct=correct, title="fashion_mnist: 400 points")
    renderer = _renderer(fig)
    for ax in fig.axes:
        legend = _legend_box(ax, renderer)
        bars = [p.get_window_extent(renderer) for p in ax.patches if p.get_height() > 0]
        assert not any(_overlap(legend, bar) for bar in bars)
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert any(label.startswith("mean") for label in labels)


def test_aleatoric_and_epistemic_have_one_colour_in_every_figure():
    """uncertainty_over_x drew aleatoric blue and epistemic orange; the histograms drew every
    kind blue."""
    from matplotlib.colors import to_rgb

    from pyro_bbb import uncertainty_plots as up

    pred = _regression_prediction(50)
    grid = torch.linspace(0, 1, 50)
    over_x = up.uncertainty_over_x(grid, pred, total=True)
    line_colour = {line.get_label(): to_rgb(line.get_color()) for line in over_x.axes[0].lines}
    histogram = plots.uncertainty_histogram(pred)
    for ax, kind in zip(histogram.axes, plots.UNCERTAINTY_KINDS, strict=True):
        bar_colour = to_rgb(ax.patches[0].get_facecolor())
        assert bar_colour == pytest.approx(line_colour[kind])
        assert to_rgb(plots.UNCERTAINTY_COLORS[kind]) == pytest.approx(line_colour[kind])
    assert line_colour["aleatoric"] != line_colour["epistemic"]


def test_reliability_counts_go_log_when_they_span_decades():
    """Most test points sit in the last confidence bin: on a linear axis the other bins' counts,
    which say how far to trust their accuracy bars, were invisible."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(5000, 10, generator=generator)
    logits[:4800, 0] += 12  # confident on most points
    probs = torch.softmax(logits, -1)
    labels = torch.zeros(5000, dtype=torch.long)
    fig = plots.reliability_diagram(probs, labels, num_bins=10)
    assert fig.axes[1].get_yscale() == "log"
    balanced = plots.reliability_diagram(torch.softmax(torch.randn(400, 5), -1),
                                         torch.zeros(400, dtype=torch.long), num_bins=10)
    assert balanced.axes[1].get_yscale() == "linear"


# ---------------------------------------------------------------------- uncertainty_plots


def test_ood_figure_legend_beside_the_densities():
    """The legend of the densities sat inside the panel on top of some set's bars."""
    from pyro_bbb import uncertainty_plots as up

    generator = torch.Generator().manual_seed(0)
    sets = up.shifted_images(torch.rand(40, 16, generator=generator))
    ood = {name: {k: torch.rand(40, generator=generator) for k in up.OOD_KINDS}
           for name in sets}
    fig = up.ood_figure(sets, ood)
    renderer = _renderer(fig)
    hist = fig.axes[-1]
    assert not _overlap(_legend_box(hist, renderer), hist.get_window_extent(renderer))
    assert "epistemic" in hist.get_title()


def test_seed_bands_label_the_y_axis_and_the_interval():
    from pyro_bbb import uncertainty_plots as up

    grid = torch.linspace(0, 1, 20)
    preds = {"seed 0": _regression_prediction(20, seed=0),
             "seed 1": _regression_prediction(20, seed=1)}
    fig = up.seed_bands(preds, grid, data=(grid[:5], grid[:5]))
    ax = fig.axes[0]
    assert ax.get_ylabel() == "y" and "95%" in ax.get_title()
    assert "training data" in [t.get_text() for t in ax.get_legend().get_texts()]


# ---------------------------------------------------------------------------- prior_plots


def _regressor(sigma: float):
    import pyro_bbb as bbb

    return bbb.BayesianMLP([1, 20, 1], bbb.Gaussian(noise=0.1), prior=bbb.gaussian_prior(sigma))


def test_prior_functions_panels_are_not_flat_lines_when_priors_differ_by_decades():
    """N(0, 0.1²) beside N(0, 1²) on one y-axis: the narrow prior's functions and the data were
    a flat line at 0 (band 0.5 wide on an axis 300 wide)."""
    grid = torch.linspace(-0.2, 1.2, 30)
    models = {f"σ={s}": _regressor(s) for s in (0.1, 1.0, 3.0)}
    fig = prior_plots.prior_predictive_functions(models, grid, 5, band_draws=200)
    for ax in fig.axes:
        lower, upper = (c.get_paths()[0].vertices[:, 1] for c in ax.collections[:1] * 2)
        band = float(upper.max() - lower.min())
        bottom, top = ax.get_ylim()
        assert band > 0.5 * (top - bottom)  # the band fills its panel
    near = {f"σ={s}": _regressor(s) for s in (0.5, 1.0)}
    fig = prior_plots.prior_predictive_functions(near, grid, 5, band_draws=200)
    assert fig.axes[0].get_ylim() == fig.axes[1].get_ylim()  # one scale when comparable


# --------------------------------------------------------------------------- pruning_plots


def test_snr_histogram_trims_a_tiny_far_tail_and_says_so():
    """A handful of weights at log10 SNR ≈ -7 stretched the axis over nine decades while 99.9%
    of the weights sat in the last three."""
    from pyro_bbb.pruning import log_snr_histogram
    from pyro_bbb.pruning_plots import snr_histogram_figure

    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(1.5, 0.4, 100_000), [-7.0, -6.5, -5.0]])
    histogram = log_snr_histogram(torch.tensor(values))
    fig = snr_histogram_figure(histogram, {0.5: 10 ** 1.5})
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    assert lo > -1.5 and hi == pytest.approx(float(histogram.edges[-1]))
    share = float(ax.get_title().split("(")[-1].split("%")[0])
    assert share == pytest.approx(100 * np.mean(values < lo), rel=0.05)  # what is cut, said
    assert share <= 0.1
    assert np.log10(10 ** 1.5) > lo
    plain = snr_histogram_figure(log_snr_histogram(torch.tensor(values[:-3])))
    assert plain.axes[0].get_xlim()[0] == pytest.approx(float(values[:-3].min()))
    assert "outside" not in plain.axes[0].get_title()


# ---------------------------------------------------------------------------- bandit_plots


def test_eat_probability_histograms_do_not_blend_into_an_unlabelled_colour():
    """Two translucent fills, green and red, mixed into brown wherever both had counts: the
    poisonous bars looked like no colour of the legend."""
    from pyro_bbb.bandit_plots import eat_probability_figure

    rng = np.random.default_rng(0)
    fig = eat_probability_figure(rng.uniform(size=500), rng.uniform(size=500) < 0.5)
    ax = fig.axes[0]
    filled = [p for p in ax.patches if p.get_fill()]
    outlined = [p for p in ax.patches if not p.get_fill()]
    assert filled and outlined  # one filled, one outline: nothing to blend
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["edible", "poisonous"]


def test_action_rate_legend_is_off_the_rates():
    """The legend of panel (a) sat upper right, over the per-seed rates that reach 1 early."""
    from types import SimpleNamespace

    from pyro_bbb.bandit_plots import action_rate_figure

    rng = np.random.default_rng(0)

    def run():
        return SimpleNamespace(actions=rng.uniform(size=200) < 0.5,
                               edible=rng.uniform(size=200) < 0.5)

    fig = action_rate_figure({"BBB": [run(), run()], "Greedy": [run(), run()]}, bins=10)
    renderer = _renderer(fig)
    ax = fig.axes[0]
    legend = _legend_box(ax, renderer)
    assert legend.y1 <= ax.get_window_extent(renderer).y0
    assert not any(_overlap(legend, other.get_window_extent(renderer)) for other in fig.axes)
    assert math.isfinite(legend.x0)
