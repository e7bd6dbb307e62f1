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
