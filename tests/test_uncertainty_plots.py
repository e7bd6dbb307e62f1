"""Uncertainty figures render headless to PNG with the expected axes; the OOD helpers compute the
right shifts, uncertainties and AUROC."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch

from pyro_bbb import BayesianMLP, Categorical, Gaussian, MeanFieldGuide, gaussian_prior, plots
from pyro_bbb import uncertainty_plots as up
from pyro_bbb.likelihoods import RegressionPrediction

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_figures():
    """Close what a test leaves open: past 20 open figures pyplot warns."""
    yield
    plots._pyplot().close("all")


def _saved_png(fig, path) -> None:
    plots.save_figure(fig, path)
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5000


def _prediction(x: torch.Tensor) -> RegressionPrediction:
    epistemic = 0.01 + (x - 0.25).abs()
    aleatoric = torch.full_like(x, 0.05)
    std = (aleatoric**2 + epistemic**2).sqrt()
    mean = torch.sin(3 * x)
    return RegressionPrediction(mean, std, aleatoric, epistemic, mean - 2 * std, mean + 2 * std,
                                0.95)


@pytest.mark.parametrize("total", [False, True])
def test_uncertainty_over_x(tmp_path, total):
    grid = torch.linspace(1.2, -0.2, 60)  # unsorted input: the lines are drawn sorted by x
    fig = up.uncertainty_over_x(grid[:, None], _prediction(grid), x_train=torch.rand(20, 1) / 2,
                                total=total, title="toy")
    assert matplotlib.get_backend().lower() == "agg"
    (ax,) = fig.axes
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("x", "std", "toy")
    assert ax.get_yscale() == "log"
    names = [line.get_label() for line in ax.lines]
    assert names == (["aleatoric", "epistemic", "total"] if total else ["aleatoric", "epistemic"])
    epistemic = ax.lines[1]
    assert np.all(np.diff(epistemic.get_xdata()) > 0)
    # the epistemic std is smallest at x = 0.25 and the plotted values are the prediction's
    assert epistemic.get_xdata()[np.argmin(epistemic.get_ydata())] == pytest.approx(0.25, abs=0.02)
    assert np.allclose(ax.lines[0].get_ydata(), 0.05)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "training range" in legend
    _saved_png(fig, tmp_path / "over_x.png")


def test_uncertainty_over_x_bad_input():
    grid = torch.linspace(0, 1, 10)
    with pytest.raises(ValueError, match="x_grid has 5 points but the prediction has 10"):
        up.uncertainty_over_x(grid[:5], _prediction(grid))
    with pytest.raises(ValueError, match="needs a RegressionPrediction"):
        up.uncertainty_over_x(grid, object())


def _two_chains(model, num_samples: int = 8) -> dict[str, torch.Tensor]:
    """Draws of shape (2, S, ...): two differently initialised guides stand in for two fits."""
    chains = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        guide = MeanFieldGuide(model, init_rho=-3.0)
        with torch.no_grad():
            for p in guide.parameters():  # move the locations apart so the chains disagree
                p.add_(torch.randn_like(p) * 0.5)
            chains.append(guide.sample_posterior(
                num_samples, generator=torch.Generator().manual_seed(seed)))
    return {k: torch.stack([c[k] for c in chains]) for k in chains[0]}


def test_chain_predictions_and_seed_bands(tmp_path):
    from pyro_bbb.diagnostics import function_space_summary
    from pyro_bbb.predict import posterior_predictive

    model = BayesianMLP([1, 8, 1], Gaussian(noise=0.05), prior=gaussian_prior(1.0))
    draws = _two_chains(model)
    grid = torch.linspace(-0.2, 1.2, 30)[:, None]
    preds = up.chain_predictions(model, draws, grid, labels=["seed 0", "seed 1"])
    assert list(preds) == ["seed 0", "seed 1"]
    one = posterior_predictive(model, {k: v[1] for k, v in draws.items()}, grid)
    assert torch.allclose(preds["seed 1"].mean, one.mean)
    assert not torch.allclose(preds["seed 0"].mean, preds["seed 1"].mean)
    assert list(up.chain_predictions(model, draws, grid)) == ["chain 0", "chain 1"]

    x = torch.rand(20, 1) / 2
    data = (x, torch.sin(3 * x[:, 0]))
    summary = function_space_summary(model, draws, grid)
    fig = up.seed_bands(preds, grid, data=data, r_hat=summary, title="two fits")
    bands, r_hat = fig.axes
    assert fig._suptitle.get_text() == "two fits"
    assert bands.get_title() == "one band per seed: mean and central 95% interval"
    assert (bands.get_xlabel(), bands.get_ylabel()) == ("x", "y")
    assert [line.get_label() for line in bands.lines] == ["seed 0", "seed 1"]
    assert len(bands.collections) == 3  # two bands and the training points
    assert r_hat.get_ylabel() == "R-hat of f(x)"
    assert len(r_hat.lines) == 2  # R-hat over x and the 1.01 line
    assert np.allclose(sorted(r_hat.lines[0].get_ydata()),
                       sorted(summary.table["r_hat"].to_numpy(dtype=float)))
    _saved_png(fig, tmp_path / "bands.png")
    alone = up.seed_bands(preds, grid)
    assert len(alone.axes) == 1 and len(alone.axes[0].collections) == 2


def test_seed_bands_bad_input():
    model = BayesianMLP([1, 4, 1], Gaussian(noise=0.1))
    draws = _two_chains(model, 4)
    grid = torch.linspace(0, 1, 10)[:, None]
    preds = up.chain_predictions(model, draws, grid)
    with pytest.raises(ValueError, match="x_grid has 5 points"):
        up.seed_bands(preds, grid[:5])
    with pytest.raises(ValueError, match="non-empty mapping"):
        up.seed_bands({}, grid)
    with pytest.raises(ValueError, match="3 labels for 2 chains"):
        up.chain_predictions(model, draws, grid, labels=["a", "b", "c"])


def test_shifted_images():
    x = torch.rand(5, 16)
    sets = up.shifted_images(x, seed=3)
    assert list(sets) == ["test (clean)", "rotated 90°", "inverted", "uniform noise"]
    assert all(v.shape == (5, 16) for v in sets.values())
    assert torch.equal(sets["test (clean)"], x)
    assert torch.equal(sets["inverted"], 1 - x)
    image = x[2].view(4, 4)
    assert torch.equal(sets["rotated 90°"][2].view(4, 4), torch.rot90(image, 1, dims=(0, 1)))
    assert torch.equal(sets["uniform noise"], up.shifted_images(x, seed=3)["uniform noise"])
    assert not torch.equal(sets["uniform noise"], up.shifted_images(x, seed=4)["uniform noise"])
    with pytest.raises(ValueError, match="flattened squares"):
        up.shifted_images(torch.rand(5, 15))


def test_detection_auroc_matches_all_pairs():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 6, (40,), generator=g).float()  # ties on purpose
    reference = torch.randint(0, 4, (30,), generator=g).float()
    pairs = ((scores[:, None] > reference[None, :]).double().mean()
             + 0.5 * (scores[:, None] == reference[None, :]).double().mean())
    assert up.detection_auroc(scores, reference) == pytest.approx(float(pairs))
    assert up.detection_auroc(reference, reference) == pytest.approx(0.5)
    assert up.detection_auroc(torch.ones(3), torch.zeros(4)) == 1.0
    assert up.detection_auroc(torch.zeros(3), torch.ones(4)) == 0.0
    with pytest.raises(ValueError, match="non-empty"):
        up.detection_auroc([], [1.0])


def test_ood_uncertainties_summary_and_figure(tmp_path):
    model = BayesianMLP([16, 8, 3], Categorical(3), prior=gaussian_prior(1.0))
    guide = MeanFieldGuide(model, init_rho=-1.0)
    x = torch.rand(25, 16, generator=torch.Generator().manual_seed(0))
    sets = up.shifted_images(x)
    ood = up.ood_uncertainties(model, guide, sets, num_samples=6, seed=2)
    assert list(ood) == list(sets)
    for u in ood.values():
        assert set(u) == set(up.OOD_KINDS) and all(v.shape == (25,) for v in u.values())
        assert torch.allclose(u["total_entropy"], u["aleatoric"] + u["epistemic"], atol=1e-5)
    again = up.ood_uncertainties(model, guide, sets, num_samples=6, seed=2)
    assert torch.equal(again["inverted"]["epistemic"], ood["inverted"]["epistemic"])

    rows = up.ood_summary(ood)
    assert [r["name"] for r in rows] == list(sets)
    assert rows[0]["auroc"] == pytest.approx(0.5)  # the reference against itself
    assert rows[2]["auroc"] == pytest.approx(up.detection_auroc(ood["inverted"]["epistemic"],
                                                                ood["test (clean)"]["epistemic"]))
    assert rows[1]["aleatoric"] == pytest.approx(float(ood["rotated 90°"]["aleatoric"].mean()))
    table = up.format_ood_summary(rows).splitlines()
    assert len(table) == 5 and table[0].endswith("AUROC (epistemic)")
    assert table[4].strip().startswith("uniform noise")

    fig = up.ood_figure(sets, ood, title="shift")
    *images, hist = fig.axes
    assert [ax.get_title() for ax in images] == ["rotated 90°", "inverted", "uniform noise"]
    assert all(len(ax.images) == 1 and ax.images[0].get_array().shape == (4, 4) for ax in images)
    assert hist.get_xlabel() == "epistemic (nats)" and hist.get_yscale() == "log"
    assert [t.get_text() for t in hist.get_legend().get_texts()] == list(sets)
    assert len(hist.patches) == 4  # one step histogram per set
    _saved_png(fig, tmp_path / "ood.png")
    with pytest.raises(ValueError, match="kind must be one of"):
        up.ood_figure(sets, ood, kind="variance")
    with pytest.raises(ValueError, match="name different sets"):
        up.ood_figure(sets, {k: ood[k] for k in list(ood)[:2]})
    with pytest.raises(ValueError, match="reference 'missing'"):
        up.ood_summary(ood, reference="missing")


def test_ood_uncertainties_need_a_classifier():
    model = BayesianMLP([4, 3, 1], Gaussian(noise=0.1))
    with pytest.raises(ValueError, match="need a classifier"):
        up.ood_uncertainties(model, MeanFieldGuide(model), {"a": torch.rand(3, 4)}, num_samples=2)


@pytest.mark.parametrize("grid, x_train, message", [
    (torch.linspace(0, 1, 10), torch.rand(0, 1), "x_train is empty"),
    (torch.linspace(0, 1, 10), torch.rand(10, 3), r"x_train must be 1-D inputs"),
    (torch.rand(5, 2), None, r"x_grid must be 1-D inputs .* got shape \(5, 2\)"),
])
def test_uncertainty_over_x_checks_grid_and_training_inputs(grid, x_train, message):
    with pytest.raises(ValueError, match=message):
        up.uncertainty_over_x(grid, _prediction(torch.linspace(0, 1, 10)), x_train=x_train)


def test_seed_bands_checks_the_training_data():
    model = BayesianMLP([1, 4, 1], Gaussian(noise=0.1))
    grid = torch.linspace(0, 1, 10)[:, None]
    preds = up.chain_predictions(model, _two_chains(model, 4), grid)
    x = torch.rand(8, 1)
    with pytest.raises(ValueError, match="the training data has 8 inputs but 3 targets"):
        up.seed_bands(preds, grid, data=(x, x[:3, 0]))
    with pytest.raises(ValueError, match=r"data must be a pair \(x, y\)"):
        up.seed_bands(preds, grid, data=(x,))
    with pytest.raises(ValueError, match="data x must be 1-D inputs"):
        up.seed_bands(preds, grid, data=(torch.rand(8, 2), x[:, 0]))


def test_chain_predictions_takes_a_list_of_fits_and_names_a_missing_chain_dim():
    model = BayesianMLP([1, 4, 1], Gaussian(noise=0.1))
    draws = _two_chains(model, 4)
    grid = torch.linspace(0, 1, 10)[:, None]
    stacked = up.chain_predictions(model, draws, grid)
    listed = up.chain_predictions(model, [{k: v[c] for k, v in draws.items()} for c in (0, 1)],
                                  grid)
    assert list(listed) == ["chain 0", "chain 1"]
    assert torch.equal(listed["chain 1"].mean, stacked["chain 1"].mean)
    flat = {k: v.reshape(-1, *v.shape[2:]) for k, v in draws.items()}
    with pytest.raises(ValueError, match="one sample dim .* but no chain dim"):
        up.chain_predictions(model, flat, grid)
    with pytest.raises(ValueError, match="chain 1 of the list has \\(chain, draw\\) dims"):
        up.chain_predictions(model, [flat, draws], grid)
    with pytest.raises(ValueError, match="draws_by_chain must be a dict .* got Tensor"):
        up.chain_predictions(model, torch.zeros(3), grid)


@pytest.mark.parametrize("images, message", [
    ((np.random.default_rng(0).random((3, 16)) * 255).astype(np.uint8),
     r"images must be floats scaled to \[0, 1\]; got uint8 \(divide by 255\)"),
    (torch.rand(3, 16) * 255, r"got values in \[.*\] \(divide by 255\)"),
    (torch.rand(3, 16) - 0.5, r"images must be floats scaled to \[0, 1\]; got values in"),
    (torch.full((3, 16), float("nan")), r"got values in \[nan, nan\]"),
    (torch.rand(0, 16), "images is empty"),
])
def test_shifted_images_needs_floats_in_the_unit_interval(images, message):
    with pytest.raises(ValueError, match=message):
        up.shifted_images(images)


def test_ood_summary_and_figure_name_a_bad_kind_or_no_sets():
    ood = {"clean": {k: torch.rand(4) for k in up.OOD_KINDS}}
    with pytest.raises(ValueError, match="kind must be one of total_entropy, aleatoric"):
        up.ood_summary(ood, kind="total")
    with pytest.raises(ValueError, match="needs at least one input set"):
        up.ood_figure({}, {})
