"""Figures render headless to PNG with the expected axes, labels and artists."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import torch

from pyro_bbb import plots, prior_plots
from pyro_bbb.likelihoods import RegressionPrediction
from pyro_bbb.metrics import reliability_curve

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_figures():
    """Close what a test leaves open: past 20 open figures pyplot warns."""
    yield
    plots._pyplot().close("all")


def _band_prediction(x: torch.Tensor) -> RegressionPrediction:
    mean = torch.sin(3 * x)
    std = 0.1 + (x - 0.25).abs()
    return RegressionPrediction(mean, std, torch.full_like(x, 0.1), std, mean - 2 * std,
                                mean + 2 * std, 0.95)


def _saved_png(fig, path) -> bytes:
    plots.save_figure(fig, path)
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5000
    return data


@pytest.mark.parametrize("with_truth", [True, False])
def test_regression_band(tmp_path, with_truth):
    x_train = torch.linspace(0, 0.5, 20)[:, None]
    y_train = torch.sin(3 * x_train[:, 0])
    grid = torch.linspace(-0.2, 1.2, 50)
    truth = (lambda x: torch.sin(3 * x)) if with_truth else None
    fig = plots.regression_band(x_train, y_train, grid, _band_prediction(grid), truth=truth,
                                title="toy")
    (ax,) = fig.axes
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("x", "y", "toy")
    # predictive mean, two training-range edges, and the true curve when given
    assert len(ax.lines) == (4 if with_truth else 3)
    edges = sorted(line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == "--")
    assert edges == pytest.approx([0.0, 0.5])
    mean_line = next(line for line in ax.lines if line.get_label() == "predictive mean")
    assert len(mean_line.get_xdata()) == 50
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "95% predictive interval" in labels and "training data" in labels
    scatter = next(c for c in ax.collections if c.get_label() == "training data")
    assert len(scatter.get_offsets()) == 20
    _saved_png(fig, tmp_path / "band.png")


def test_regression_band_truth_as_values_and_length_check(tmp_path):
    grid = torch.linspace(0, 1, 10)
    fig = plots.regression_band(grid[:5], grid[:5], grid, _band_prediction(grid),
                                truth=torch.sin(3 * grid).numpy())
    assert len(fig.axes[0].lines) == 4
    plots.save_figure(fig, tmp_path / "values.png")
    with pytest.raises(ValueError, match="x_grid has 9 points but the prediction has 10"):
        plots.regression_band(grid[:5], grid[:5], grid[:9], _band_prediction(grid))


def test_reliability_diagram(tmp_path):
    generator = torch.Generator().manual_seed(0)
    probs = torch.softmax(3 * torch.randn(400, 5, generator=generator), -1)
    labels = torch.multinomial(probs, 1, generator=generator)[:, 0]
    fig = plots.reliability_diagram(probs, labels, num_bins=10)
    top, bottom = fig.axes
    assert top.get_ylabel() == "accuracy" and bottom.get_xlabel() == "confidence"
    assert bottom.get_ylabel() == "count" and "ECE" in top.get_title()
    (diagonal,) = top.lines
    assert list(diagonal.get_xdata()) == [0, 1] and list(diagonal.get_ydata()) == [0, 1]
    filled = int((reliability_curve(probs, labels, 10).counts > 0).sum())
    assert len(top.patches) == 2 * filled  # accuracy bars and gap bars for non-empty bins
    assert len(bottom.patches) == 10
    heights = sorted(p.get_height() for p in bottom.patches)
    assert sum(heights) == 400
    _saved_png(fig, tmp_path / "reliability.png")


@pytest.mark.parametrize("epochs, lines", [(5, 1), (300, 2)])
def test_training_curves(tmp_path, epochs, lines):
    history = {
        "epoch": list(range(epochs)),
        "loss": [0.0] * epochs,
        "nll": [1000.0 / (e + 1) for e in range(epochs)],
        "complexity": [50.0 + math.exp(-e / 10) for e in range(epochs)],
        "elbo": [0.0] * epochs,
    }
    fig = plots.training_curves(history)
    left, right = fig.axes
    assert left.get_xlabel() == right.get_xlabel() == "epoch"
    assert left.get_ylabel() == "expected NLL" and right.get_ylabel() == "complexity cost (KL)"
    for ax, key in ((left, "nll"), (right, "complexity")):
        assert len(ax.lines) == lines  # per-epoch values (+ moving average on long runs)
        assert list(ax.lines[0].get_ydata()) == pytest.approx(history[key])
        assert list(ax.lines[0].get_xdata()) == list(range(1, epochs + 1))
    _saved_png(fig, tmp_path / "curves.png")


def test_training_curves_needs_the_history_columns():
    with pytest.raises(ValueError, match=r"history lacks \['complexity'\]"):
        plots.training_curves({"epoch": [0], "nll": [1.0]})


def test_plots_render_headless():
    import matplotlib.pyplot as plt

    fig = plots.training_curves({"epoch": [0, 1], "nll": [2.0, 1.0], "complexity": [3.0, 2.0]})
    assert matplotlib.get_backend().lower() == "agg"
    plt.close(fig)
    assert not plt.get_fignums() or fig.number not in plt.get_fignums()


def test_save_figure_closes_by_default(tmp_path):
    import matplotlib.pyplot as plt

    fig = plots.training_curves({"epoch": [0, 1], "nll": [2.0, 1.0], "complexity": [3.0, 2.0]})
    number = fig.number
    assert number in plt.get_fignums()
    path = plots.save_figure(fig, tmp_path / "f.png")
    assert path.stat().st_size > 0 and number not in plt.get_fignums()


def _classification_prediction(n: int = 40, classes: int = 4, seed: int = 0):
    """A ClassificationPrediction with a known ordering of uncertainties (not from a model)."""
    from pyro_bbb.likelihoods import ClassificationPrediction

    generator = torch.Generator().manual_seed(seed)
    probs = torch.softmax(2 * torch.randn(n, classes, generator=generator), -1)
    epistemic = torch.rand(n, generator=generator)
    aleatoric = torch.rand(n, generator=generator)
    return ClassificationPrediction(probs, aleatoric + epistemic, aleatoric, epistemic)


@pytest.mark.parametrize("split", [False, True])
def test_uncertainty_histogram_classification(tmp_path, split):
    pred = _classification_prediction(60)
    labels = torch.arange(60) % 4
    correct = (pred.predicted == labels) if split else None
    fig = plots.uncertainty_histogram(pred, correct=correct, bins=12)
    axes = fig.axes
    assert len(axes) == 3
    assert [ax.get_title().split(":")[0] for ax in axes] == ["total", "aleatoric", "epistemic"]
    assert "mutual information" in axes[2].get_title()
    assert all(ax.get_xlabel() == "entropy (nats)" for ax in axes)
    assert all(ax.get_ylabel() == ("density" if split else "count") for ax in axes)
    groups = [correct, ~correct] if split else [torch.ones(60, dtype=torch.bool)]
    for ax, values in zip(axes, (pred.total_entropy, pred.aleatoric, pred.epistemic),
                          strict=True):
        assert len(ax.patches) == 12 * len(groups)  # one bar per bin and group
        means = [line.get_xdata()[0] for line in ax.lines]
        assert means == pytest.approx([float(values[g].mean()) for g in groups], rel=1e-6)
        texts = [t.get_text() for t in ax.get_legend().get_texts()]
        if split:
            assert texts == [f"correct (n={int(correct.sum())})",
                             f"wrong (n={int((~correct).sum())})", "mean"]
        else:
            assert texts == [f"mean {float(values.mean()):.3g}"]
            assert sum(p.get_height() for p in ax.patches) == 60
    _saved_png(fig, tmp_path / "hist.png")


def test_uncertainty_histogram_regression(tmp_path):
    grid = torch.linspace(-0.2, 1.2, 50)
    pred = _band_prediction(grid)
    inside = (pred.lower <= torch.sin(3 * grid)) & (torch.sin(3 * grid) <= pred.upper)
    fig = plots.uncertainty_histogram(pred, correct=inside.numpy())
    assert [ax.get_xlabel() for ax in fig.axes] == ["standard deviation"] * 3
    assert fig.axes[1].get_title() == "aleatoric: noise std"
    total_mean = fig.axes[0].lines[0].get_xdata()[0]
    assert total_mean == pytest.approx(float(pred.std[inside].mean()), rel=1e-6)
    _saved_png(fig, tmp_path / "hist_reg.png")


def test_uncertainty_histogram_bad_input():
    pred = _classification_prediction(10)
    with pytest.raises(ValueError, match="correct has 9 entries but the prediction has 10"):
        plots.uncertainty_histogram(pred, correct=[True] * 9)
    with pytest.raises(ValueError, match="correct must hold booleans"):
        plots.uncertainty_histogram(pred, correct=[1] * 10)
    with pytest.raises(ValueError, match="bins must be a positive int"):
        plots.uncertainty_histogram(pred, bins=0)
    with pytest.raises(ValueError, match="ClassificationPrediction or RegressionPrediction"):
        plots.uncertainty_histogram({"probs": pred.probs})


@pytest.mark.parametrize("kind", ["epistemic", "total", "aleatoric"])
def test_most_uncertain_images_shows_the_k_most_uncertain(tmp_path, kind):
    n, k = 40, 9
    pred = _classification_prediction(n)
    images = torch.rand(n, 28 * 28, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(n) % 4
    names = ["zero", "one", "two", "three"]
    fig = plots.most_uncertain_images(images, pred, labels=labels, class_names=names, k=k,
                                      kind=kind)
    values = {"epistemic": pred.epistemic, "total": pred.total_entropy,
              "aleatoric": pred.aleatoric}[kind]
    expected = torch.argsort(values, descending=True)[:k].tolist()
    assert plots.most_uncertain_indices(pred, k, kind).tolist() == expected
    assert len(fig.axes) == k  # a 3 × 3 grid, no empty panels
    assert f"{k} images of highest {kind}" in fig._suptitle.get_text()
    shown = []
    for ax, index in zip(fig.axes, expected, strict=True):
        (image,) = ax.images
        pixels = torch.as_tensor(image.get_array().data)
        assert pixels.shape == (28, 28)
        shown.append(next(i for i in range(n) if torch.allclose(images[i].view(28, 28).double(),
                                                                  pixels.double())))
        title = ax.get_title().split("\n")
        predicted = int(pred.predicted[index])
        assert title == [f"#{index} pred: {names[predicted]}", f"true: {names[int(labels[index])]}",
                         f"{kind}: {float(values[index]):.3g}"]
        wrong = predicted != int(labels[index])
        assert matplotlib.colors.same_color(ax.title.get_color(),
                                            "tab:red" if wrong else "tab:green")
    assert shown == expected
    _saved_png(fig, tmp_path / "uncertain.png")


def test_most_uncertain_images_known_answer_and_partial_grid():
    from pyro_bbb.likelihoods import ClassificationPrediction

    # image i is constant i / 10 and has epistemic uncertainty i: the 5 shown are 9, 8, ..., 5
    n = 10
    images = torch.arange(n, dtype=torch.float32)[:, None, None].expand(n, 8, 8) / 10
    probs = torch.full((n, 3), 1 / 3)
    epistemic = torch.arange(n, dtype=torch.float32)
    pred = ClassificationPrediction(probs, epistemic + 1, torch.ones(n), epistemic)
    fig = plots.most_uncertain_images(images, pred, k=5)
    assert len(fig.axes) == 5  # a 2 × 3 grid with the sixth panel removed
    levels = [float(ax.images[0].get_array().mean()) for ax in fig.axes]
    assert levels == pytest.approx([0.9, 0.8, 0.7, 0.6, 0.5])
    assert [ax.get_title().split("\n")[0] for ax in fig.axes] == [
        f"#{i} pred: 0" for i in (9, 8, 7, 6, 5)]
    assert all(len(ax.get_title().split("\n")) == 2 for ax in fig.axes)  # no labels: no "true"
    assert len(plots.most_uncertain_images(images, pred, k=50).axes) == n  # k > N shows all N


def test_most_uncertain_images_bad_input():
    pred = _classification_prediction(12)
    images = torch.rand(12, 784)
    with pytest.raises(ValueError, match="k must be a positive int, got 0"):
        plots.most_uncertain_images(images, pred, k=0)
    with pytest.raises(ValueError, match="there are 11 images but the prediction has 12"):
        plots.most_uncertain_images(images[:11], pred)
    with pytest.raises(ValueError, match="labels has 13 entries but the prediction has 12"):
        plots.most_uncertain_images(images, pred, labels=torch.zeros(13, dtype=torch.long))
    with pytest.raises(ValueError, match="kind must be one of total, aleatoric, epistemic"):
        plots.most_uncertain_images(images, pred, kind="mutual")
    with pytest.raises(ValueError, match="class_names has 2 names for 4 classes"):
        plots.most_uncertain_images(images, pred, class_names=["a", "b"])
    with pytest.raises(ValueError, match="flattened images must be square"):
        plots.most_uncertain_images(torch.rand(12, 10), pred)
    with pytest.raises(ValueError, match="needs a ClassificationPrediction"):
        plots.most_uncertain_images(images, _band_prediction(torch.linspace(0, 1, 12)))


# --------------------------------------------------------------------------- prior predictive


def _regressor(sigma: float | None = None, sizes=(1, 20, 20, 1)):
    import pyro_bbb as bbb

    prior = bbb.scale_mixture_prior() if sigma is None else bbb.gaussian_prior(sigma)
    return bbb.BayesianMLP(list(sizes), bbb.Gaussian(noise=0.1), prior=prior)


def _classifier(sigma: float, sizes=(3, 8, 4), bernoulli: bool = False):
    import pyro_bbb as bbb

    likelihood = bbb.Bernoulli() if bernoulli else bbb.Categorical(sizes[-1])
    return bbb.BayesianMLP(list(sizes), likelihood, prior=bbb.gaussian_prior(sigma))


def _band_widths(ax):
    """Upper minus lower edge of the band (fill_between) of one panel, per grid point."""
    (band,) = [c for c in ax.collections if c.get_label().startswith("central")]
    vertices = band.get_paths()[0].vertices
    n = (len(vertices) - 3) // 2  # lower edge, upper edge back, and closing points
    lower = vertices[1 : n + 1, 1]
    upper = vertices[n + 2 : 2 * n + 2, 1][::-1]
    return upper - lower


def test_prior_function_draws_known_answer_for_linear_regression():
    # f(x) = w x + b with w, b ~ N(0, σ²) iid: f(x) ~ N(0, σ² (1 + x²))
    sigma, grid = 0.5, torch.linspace(-2, 2, 9)
    f = prior_plots.prior_function_draws(_regressor(sigma, (1, 1)), grid, 20000, seed=0)
    assert f.shape == (20000, 9)
    expected = sigma * torch.sqrt(1 + grid**2)
    assert f.std(0) == pytest.approx(expected.tolist(), rel=0.03)
    assert f.mean(0).abs().max() < 0.05
    # the plotted band is the central 95% of f: ±1.96 σ √(1 + x²)
    fig = prior_plots.prior_predictive_functions({"linear": _regressor(sigma, (1, 1))}, grid, 5,
                                                 band_draws=20000)
    assert _band_widths(fig.axes[0]) == pytest.approx((2 * 1.96 * expected).tolist(), rel=0.04)


def test_tiny_gaussian_prior_gives_nearly_constant_zero_functions():
    f = prior_plots.prior_function_draws(_regressor(1e-4), torch.linspace(-1, 2, 50), 30, seed=1)
    assert f.abs().max() < 1e-3  # f ≈ the last bias, O(σ)
    assert (f.max(1).values - f.min(1).values).max() < 1e-6  # flat in x: O(σ²) and smaller


def test_prior_predictive_functions_panels_lines_and_band_widening(tmp_path):
    grid = torch.linspace(-0.2, 1.2, 40)[:, None]
    models = {f"σ={s}": _regressor(s) for s in (0.3, 1.0, 3.0)}
    models["mixture"] = _regressor()
    x_train = torch.linspace(0, 0.5, 15)
    fig = prior_plots.prior_predictive_functions(models, grid, num_draws=7, band_draws=300,
                                                 data=(x_train, torch.sin(x_train)),
                                                 title="prior")
    axes = fig.axes
    assert len(axes) == 4 and fig._suptitle.get_text() == "prior"
    assert [ax.get_title().split("\n")[0] for ax in axes] == list(models)
    assert all(len(ax.lines) == 7 for ax in axes)
    assert all(len(line.get_xdata()) == 40 for ax in axes for line in ax.lines)
    # σ = 0.3 and 3 are a factor 10 apart and more: each panel gets its own y range
    assert len({ax.get_ylim() for ax in axes}) == 4
    assert axes[0].get_ylabel() == "f(x; w),  w ~ prior"
    scatter = [c for c in axes[0].collections if c.get_label() == "training data"]
    assert len(scatter) == 1 and len(scatter[0].get_offsets()) == 15
    widths = [float(_band_widths(ax).mean()) for ax in axes[:3]]
    assert widths[0] < widths[1] < widths[2]  # the band widens with σ
    assert widths[2] > 10 * widths[0]
    assert f"{widths[1]:.3g}" in axes[1].get_title()
    # the lines are the first draws of the band's draws, for every model from the same seed
    f = prior_plots.prior_function_draws(models["σ=1.0"], grid, 300, seed=0)[:7]
    ys = torch.tensor(np.array([line.get_ydata() for line in axes[1].lines]))
    assert torch.allclose(ys, f)
    _saved_png(fig, tmp_path / "prior_functions.png")


def test_prior_predictive_functions_sorts_the_grid_and_takes_one_model():
    model = _regressor(1.0)
    grid = torch.tensor([0.5, -1.0, 2.0, 0.0])
    fig = prior_plots.prior_predictive_functions(model, grid, num_draws=3, band_draws=50)
    (ax,) = fig.axes
    assert list(ax.lines[0].get_xdata()) == [-1.0, 0.0, 0.5, 2.0]
    assert ax.get_title().startswith("N(0, 1²)")


def test_prior_draws_are_seeded_and_leave_the_global_rng_alone():
    model, grid = _regressor(), torch.linspace(0, 1, 11)
    state = torch.get_rng_state()
    a = prior_plots.prior_function_draws(model, grid, 5, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, prior_plots.prior_function_draws(model, grid, 5, seed=3))
    assert not torch.equal(a, prior_plots.prior_function_draws(model, grid, 5, seed=4))
    figs = [prior_plots.prior_predictive_functions(model, grid, 4, band_draws=20, seed=7)
            for _ in range(2)]
    lines = [[tuple(line.get_ydata()) for line in fig.axes[0].lines] for fig in figs]
    assert lines[0] == lines[1]
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    p = prior_plots.prior_probability_draws(_classifier(1.0), x, 4, seed=2)
    assert torch.equal(p, prior_plots.prior_probability_draws(_classifier(1.0), x, 4, seed=2))


def test_prior_predictive_functions_bad_input():
    model, grid = _regressor(1.0), torch.linspace(0, 1, 5)
    with pytest.raises(ValueError, match="x_grid must be a 1-D grid"):
        prior_plots.prior_predictive_functions(model, torch.zeros(5, 2))
    with pytest.raises(ValueError, match="x_grid must be a 1-D grid"):
        prior_plots.prior_function_draws(model, torch.zeros(1), 3)
    with pytest.raises(ValueError, match="x_grid must be finite"):
        prior_plots.prior_predictive_functions(model, torch.tensor([0.0, float("nan")]))
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="num_draws must be a positive int"):
            prior_plots.prior_predictive_functions(model, grid, num_draws=bad)
    with pytest.raises(ValueError, match="band_draws must be a positive int"):
        prior_plots.prior_predictive_functions(model, grid, band_draws=0)
    with pytest.raises(ValueError, match="level must be in"):
        prior_plots.prior_predictive_functions(model, grid, level=1.0)
    with pytest.raises(ValueError, match="one input and one output"):
        prior_plots.prior_predictive_functions(_regressor(1.0, (2, 5, 1)), grid)
    with pytest.raises(ValueError, match="non-empty mapping"):
        prior_plots.prior_predictive_functions({}, grid)
    with pytest.raises(ValueError, match="is not a BayesianMLP"):
        prior_plots.prior_predictive_functions({"a": "model"}, grid)


def test_prior_variants_compare_the_models_prior_with_gaussians():
    model = _regressor()
    variants = prior_plots.prior_variants(model, sigmas=(0.1, 3))
    assert list(variants) == ["scale mixture (π=0.5, σ1=1, σ2=0.00248)", "N(0, 0.1²)",
                              "N(0, 3²)"]
    assert variants["scale mixture (π=0.5, σ1=1, σ2=0.00248)"] is model
    other = variants["N(0, 3²)"]
    assert other.layer_sizes == model.layer_sizes and other.activation == model.activation
    assert other.likelihood is model.likelihood
    assert float(other.priors[0].scale) == 3.0
    # the model's own Gaussian prior is not repeated
    assert list(prior_plots.prior_variants(_regressor(1.0), sigmas=(1.0, 2.0))) == [
        "N(0, 1²)", "N(0, 2²)"]
    with pytest.raises(ValueError, match="sigma must be a positive"):
        prior_plots.prior_variants(model, sigmas=(0.0,))


def test_prior_probability_draws_known_answers():
    from pyro_bbb.diagnostics import sample_prior

    x = torch.randn(20, 3, generator=torch.Generator().manual_seed(0))
    model = _classifier(2.0)
    p = prior_plots.prior_probability_draws(model, x, 6, seed=5)
    assert p.shape == (6, 20, 4)
    expected = torch.softmax(model.network(x, sample_prior(model, 6, seed=5)), -1)
    assert torch.allclose(p, expected)
    # a tiny prior: every network predicts the uniform distribution
    tiny = prior_plots.prior_probability_draws(_classifier(1e-5), x, 6)
    assert torch.allclose(tiny, torch.full_like(tiny, 0.25), atol=1e-4)
    # Bernoulli: (1 − σ(f), σ(f)) as two columns
    binary = _classifier(1.0, (3, 5, 1), bernoulli=True)
    pb = prior_plots.prior_probability_draws(binary, x, 4, seed=1)
    f = binary.network(x, sample_prior(binary, 4, seed=1))
    assert pb.shape == (4, 20, 2) and torch.allclose(pb[..., 1:], torch.sigmoid(f))
    assert torch.allclose(pb.sum(-1), torch.ones(4, 20))


@pytest.mark.parametrize("statistic", ["max_prob", "entropy"])
def test_prior_class_probabilities(tmp_path, statistic):
    x = torch.randn(30, 3, generator=torch.Generator().manual_seed(0))
    models = {"tiny": _classifier(1e-4), "wide": _classifier(5.0)}
    fig = prior_plots.prior_class_probabilities(models, x, num_draws=20, statistic=statistic,
                                                bins=12)
    tiny, wide = fig.axes
    assert [tiny.get_title(), wide.get_title()] == ["tiny", "wide"]
    assert all(len(ax.patches) == 2 * 12 for ax in fig.axes)  # two histograms over shared bins
    assert tiny.get_xlim() == wide.get_xlim()
    reference = 0.25 if statistic == "max_prob" else math.log(4)
    (dotted,) = wide.lines
    assert dotted.get_xdata()[0] == pytest.approx(reference)
    assert "20 draws × 30 inputs" in fig._suptitle.get_text()

    def means(ax):
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        return [float(label.rsplit(" ", 1)[-1].strip("()")) for label in labels]

    # a tiny prior: uniform predictions, single draws and mean alike
    assert means(tiny) == pytest.approx([reference, reference], abs=0.01)
    single, mean = means(wide)
    if statistic == "max_prob":  # a wide prior: single networks are confident, their mean less
        assert single > 0.8 and mean < single - 0.2
    else:
        assert single < 0.4 and mean > single + 0.3
    _saved_png(fig, tmp_path / f"prior_{statistic}.png")


def test_prior_class_probabilities_bad_input():
    x = torch.zeros(5, 3)
    with pytest.raises(ValueError, match="need a classifier"):
        prior_plots.prior_class_probabilities(_regressor(1.0, (3, 4, 1)), x)
    with pytest.raises(ValueError, match=r"inputs must have shape \(N, 3\)"):
        prior_plots.prior_class_probabilities(_classifier(1.0), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="num_draws must be a positive int"):
        prior_plots.prior_class_probabilities(_classifier(1.0), x, num_draws=0)
    with pytest.raises(ValueError, match="statistic must be one of"):
        prior_plots.prior_class_probabilities(_classifier(1.0), x, statistic="margin")
    with pytest.raises(ValueError, match="bins must be a positive int"):
        prior_plots.prior_class_probabilities(_classifier(1.0), x, bins=0)
    with pytest.raises(ValueError, match="disagree on the number of classes"):
        prior_plots.prior_class_probabilities({"a": _classifier(1.0),
                                               "b": _classifier(1.0, (3, 2))}, x)


# --------------------------------------------------------------------------- bad input


def _figure():
    return plots.training_curves({"epoch": [0, 1], "nll": [2.0, 1.0], "complexity": [3.0, 2.0]})


def test_save_figure_creates_missing_folders_and_returns_the_file(tmp_path):
    path = plots.save_figure(_figure(), tmp_path / "new" / "sub" / "f.png")
    assert path == tmp_path / "new" / "sub" / "f.png"
    assert path.read_bytes().startswith(PNG_MAGIC)


@pytest.mark.parametrize("name, message", [
    ("folder", "is a folder; give a file name such as"),
    ("nosuffix", "has no suffix"),
    ("notes.csv", "cannot save a figure as '.csv'"),
])
def test_save_figure_refuses_paths_it_would_not_write_as_named(tmp_path, name, message):
    (tmp_path / "folder").mkdir()
    (tmp_path / "notes.csv").write_text("precious")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ValueError, match=message):
        plots.save_figure(_figure(), tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written beside it
    assert (tmp_path / "notes.csv").read_text() == "precious"
    assert not any((tmp_path / "folder").iterdir())


@pytest.mark.parametrize("fig, dpi, message", [
    (None, 120, "fig must be a matplotlib Figure, got NoneType"),
    ("figure", 120, "fig must be a matplotlib Figure, got str"),
    (True, 0, "dpi must be a positive number, got 0"),
])
def test_save_figure_checks_its_arguments(tmp_path, fig, dpi, message):
    with pytest.raises(ValueError, match=message):
        plots.save_figure(_figure() if fig is True else fig, tmp_path / "f.png", dpi=dpi)
    assert not (tmp_path / "f.png").exists()


_GRID = torch.linspace(-0.5, 1.5, 30)
_X = torch.linspace(0, 1, 20)[:, None]
_Y = _X[:, 0] ** 2


@pytest.mark.parametrize("x, y, grid, truth, message", [
    (_X, _Y[:5], _GRID, None, "the training data has 20 inputs but 5 targets"),
    (torch.rand(20, 3), _Y, _GRID, None, r"x_train must be 1-D inputs .* got shape \(20, 3\)"),
    (_X[:0], _Y[:0], _GRID, None, "x_train is empty"),
    (torch.full((20, 1), float("nan")), _Y, _GRID, None, "x_train contains NaN"),
    (_X, torch.full((20,), float("inf")), _GRID, None, "training targets contain NaN"),
    (_X, _Y, torch.rand(30, 2), None, r"x_grid must be 1-D inputs .* got shape \(30, 2\)"),
    (_X, _Y, _GRID, torch.zeros(5), "truth has 5 values for the 30 points of x_grid"),
    (_X, _Y, _GRID, lambda x: 0.0, "truth has 1 values for the 30 points of x_grid"),
])
def test_regression_band_checks_training_points_grid_and_truth(x, y, grid, truth, message):
    import matplotlib.pyplot as plt

    open_figures = plt.get_fignums()
    with pytest.raises(ValueError, match=message):
        plots.regression_band(x, y, grid, _band_prediction(_GRID), truth=truth)
    assert plt.get_fignums() == open_figures  # no half-drawn figure left open


def test_training_curves_takes_a_fit_result():
    from pyro_bbb.infer.fit import EpochRecord, FitResult

    history = [EpochRecord(e, 0.0, 10.0 - e, 1.0 + e, 0.0, 0.1) for e in range(3)]
    fig = plots.training_curves(FitResult(torch.nn.Module(), history))
    left, right = fig.axes
    assert list(left.lines[0].get_ydata()) == [10.0, 9.0, 8.0]
    assert list(right.lines[0].get_ydata()) == [1.0, 2.0, 3.0]
    assert list(left.lines[0].get_xdata()) == [1, 2, 3]
    with pytest.raises(ValueError, match="history is empty"):
        plots.training_curves(FitResult(torch.nn.Module()))
    with pytest.raises(ValueError, match="must be a FitResult or FitResult.history_dict"):
        plots.training_curves(history)
    with pytest.raises(ValueError, match="history columns differ in length"):
        plots.training_curves({"epoch": [0, 1, 2], "nll": [1.0, 2.0], "complexity": [1, 2, 3]})


@pytest.mark.parametrize("labels, ncols, message", [
    (torch.arange(12) % 4 + 4, None, r"labels must lie in \[0, 4\) for 4 classes"),
    (torch.arange(12) % 4 - 1, None, r"got values in \[-1, 2\]"),
    (torch.arange(12) % 4 + 0.5, None, "labels must be integer class indices"),
    (None, 0, "ncols must be a positive int, got 0"),
    (None, 2.5, "ncols must be a positive int, got 2.5"),
    (None, -1, "ncols must be a positive int, got -1"),
])
def test_most_uncertain_images_checks_labels_and_ncols(labels, ncols, message):
    with pytest.raises(ValueError, match=message):
        plots.most_uncertain_images(torch.rand(12, 16), _classification_prediction(12), labels,
                                    k=4, ncols=ncols)


def test_most_uncertain_images_accepts_whole_float_labels_and_numpy_ncols():
    labels = (torch.arange(12) % 4).double()
    fig = plots.most_uncertain_images(torch.rand(12, 16), _classification_prediction(12), labels,
                                      k=4, ncols=np.int64(4))
    assert len(fig.axes) == 4 and all("true: " in ax.get_title() for ax in fig.axes)
    assert fig.axes[3].get_subplotspec().colspan.start == 3  # one row of four


def test_prior_plots_bad_input():
    model, grid = _regressor(1.0), torch.linspace(0, 1, 5)
    with pytest.raises(ValueError, match="sigmas must be a sequence of prior scales"):
        prior_plots.prior_variants(model, 0.5)
    x = torch.rand(10, 1)
    with pytest.raises(ValueError, match="the training data has 10 inputs but 3 targets"):
        prior_plots.prior_predictive_functions(model, grid, 2, band_draws=4,
                                               data=(x, x[:3, 0]))
    with pytest.raises(ValueError, match=r"data must be a pair \(x, y\)"):
        prior_plots.prior_predictive_functions(model, grid, 2, band_draws=4, data=(x,))
    with pytest.raises(ValueError, match="inputs must be numeric"):
        prior_plots.prior_probability_draws(_classifier(1.0), "abc")


# --------------------------------------------------------------------------- diagnostic figures


def _summary(n: int):
    import pandas as pd

    from pyro_bbb.diagnostics import FunctionSpaceSummary

    table = pd.DataFrame({"r_hat": np.linspace(1.0, 1.1, n)}, index=[f"f[{i}]" for i in range(n)])
    return FunctionSpaceSummary(table, 1.1, 100.0, 100.0)


def test_function_space_rhat_figure_checks_x_against_the_table():
    from pyro_bbb.diagnostic_plots import function_space_rhat_figure

    x = torch.linspace(0, 1, 20)[:, None]
    fig = function_space_rhat_figure(_summary(20), x, x_train=x[:5])
    assert np.allclose(fig.axes[0].lines[0].get_ydata(), np.linspace(1.0, 1.1, 20))
    with pytest.raises(ValueError, match="covers 20 inputs but x has 7"):
        function_space_rhat_figure(_summary(20), x[:7])
    with pytest.raises(ValueError, match="covers 20 inputs but x has 10"):
        function_space_rhat_figure(_summary(20), x[:10])  # 20 rows are not 2 classes × 10
    with pytest.raises(ValueError, match="x_train is empty"):
        function_space_rhat_figure(_summary(20), x, x_train=x[:0])
    with pytest.raises(ValueError, match="is not a FunctionSpaceSummary"):
        function_space_rhat_figure(_summary(20).table, x)


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
def test_khat_and_posterior_figures_bad_input():
    import arviz as az

    from pyro_bbb.diagnostic_plots import khat_figure, posterior_figure

    rng = np.random.default_rng(0)
    idata = az.from_dict(posterior={"a": rng.normal(size=(2, 50))},
                         log_likelihood={"y": rng.normal(size=(2, 50, 20))})
    loo = az.loo(idata, pointwise=True)
    x = torch.linspace(0, 1, 20)
    assert len(khat_figure(loo, x).axes) == 2
    with pytest.raises(ValueError, match="x has 5 points but the LOO result has 20"):
        khat_figure(loo, x[:5])
    with pytest.raises(ValueError, match="needs a pointwise PSIS-LOO result"):
        khat_figure(idata)
    for name in ("max_outputs", "max_inputs"):
        with pytest.raises(ValueError, match=f"{name} must be a positive int, got 0"):
            posterior_figure(idata, _regressor(1.0), **{name: 0})
    with pytest.raises(ValueError, match="idata has no output-layer dims"):
        posterior_figure(idata, _regressor(1.0))


def test_diagnostic_figures_keeps_a_file_named_as_out_dir(tmp_path):
    from pyro_bbb.diagnostic_plots import diagnostic_figures

    model = _regressor(1.0, (1, 3, 1))
    draws = {k: torch.zeros(4, *s) for k, s in model.latent_shapes().items()}
    (tmp_path / "out").write_text("keep me")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        diagnostic_figures(model, draws, torch.rand(5, 1), torch.rand(5), tmp_path / "out")
    assert (tmp_path / "out").read_text() == "keep me"
