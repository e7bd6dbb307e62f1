"""Figures render headless to PNG with the expected axes, labels and artists."""

from __future__ import annotations

import math

import matplotlib
import pytest
import torch

from pyro_bbb import plots
from pyro_bbb.likelihoods import RegressionPrediction
from pyro_bbb.metrics import reliability_curve

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


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
        if split:
            texts = [t.get_text() for t in ax.get_legend().get_texts()]
            assert texts == [f"correct (n={int(correct.sum())})",
                             f"wrong (n={int((~correct).sum())})"]
        else:
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
