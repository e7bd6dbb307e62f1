"""Tests of pyro_bbb.pruning (signal-to-noise pruning) and pyro_bbb.pruning_plots."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import pyro_bbb as bbb
from pyro_bbb import pruning
from pyro_bbb.checkpoint import load_checkpoint, save_checkpoint
from pyro_bbb.metrics import accuracy


def _random_guide(sizes=(6, 12, 3), seed: int = 0, likelihood=None) -> tuple:
    """A small model and a guide with spread-out μ and σ, so SNRs span several decades."""
    torch.manual_seed(seed)
    model = bbb.BayesianMLP(list(sizes), likelihood or bbb.Categorical(sizes[-1]))
    guide = bbb.MeanFieldGuide(model)
    with torch.no_grad():
        for key in guide.loc:
            guide.loc[key].normal_()
            guide.rho[key].uniform_(-6.0, 0.0)
    return model, guide


def _weight_snr(guide) -> torch.Tensor:
    return torch.cat([v.reshape(-1) for v in pruning.signal_to_noise(guide).values()])


# --------------------------------------------------------------------------- threshold


@pytest.mark.parametrize("proportion", [0.0, 0.1, 0.33, 0.5, 0.75, 0.95, 0.98])
def test_threshold_gives_requested_proportion(proportion):
    _, guide = _random_guide()
    snr = _weight_snr(guide)
    n = snr.numel()
    threshold = pruning.snr_threshold(guide, proportion)
    below = int((snr < threshold).sum())
    assert abs(below - proportion * n) <= 1
    # prune removes exactly the weights below the threshold (no ties among continuous SNRs)
    masks = pruning.pruned_masks(pruning.prune(guide, proportion))
    removed = torch.cat([masks[name].reshape(-1) for name in pruning.prunable_sites(guide)])
    assert torch.equal(removed, snr < threshold)
    assert int(removed.sum()) == pruning.num_pruned(n, proportion)


@settings(max_examples=40, deadline=None)
@given(proportion=st.floats(0.0, 1.0, exclude_max=True), seed=st.integers(0, 3))
def test_threshold_property(proportion, seed):
    _, guide = _random_guide(seed=seed)
    snr = _weight_snr(guide)
    threshold = pruning.snr_threshold(guide, proportion)
    assert abs(int((snr < threshold).sum()) - proportion * snr.numel()) <= 1
    assert int((snr >= threshold).sum()) >= 1  # at least one weight always survives


# --------------------------------------------------------------------------- pruned guide


def test_pruned_entries_sample_exactly_zero_and_kept_entries_are_unchanged():
    _, guide = _random_guide()
    before = {k: v.clone() for k, v in guide.state_dict().items()}
    pruned = pruning.prune(guide, 0.6)
    for key, value in guide.state_dict().items():  # the original is not modified
        assert torch.equal(value, before[key])
    masks = pruning.pruned_masks(pruned)
    assert sum(int(m.sum()) for m in masks.values()) == pruning.num_pruned(6 * 12 + 12 * 3, 0.6)
    draws = pruned.sample_posterior(300, generator=torch.Generator().manual_seed(1))
    draws_orig = guide.sample_posterior(300, generator=torch.Generator().manual_seed(1))
    locs, scales = pruned.locs(), pruned.scales()
    for name, mask in masks.items():
        assert bool((draws[name][:, mask] == 0).all())
        assert bool((scales[name][mask] == 0).all()) and bool((locs[name][mask] == 0).all())
        # kept entries: same μ and σ, hence the same draws for the same ε
        assert torch.equal(locs[name][~mask], guide.locs()[name][~mask])
        assert torch.equal(scales[name][~mask], guide.scales()[name][~mask])
        assert torch.equal(draws[name][:, ~mask], draws_orig[name][:, ~mask])
        if name.endswith("bias"):
            assert not mask.any()  # biases kept by default
    # the Pyro sampling path (guide.forward) gives exact zeros too
    sampled = pruned()
    for name, mask in masks.items():
        assert bool((sampled[name][mask] == 0).all())


def test_include_biases_prunes_biases_but_never_likelihood_latents():
    _, guide = _random_guide(sizes=(4, 10, 1), likelihood=bbb.Gaussian())
    assert "noise" in guide.site_names
    assert pruning.prunable_sites(guide) == ["layer0.weight", "layer1.weight"]
    assert "noise" not in pruning.prunable_sites(guide, include_biases=True)
    pruned = pruning.prune(guide, 0.9, include_biases=True)
    masks = pruning.pruned_masks(pruned)
    assert masks["layer0.bias"].any()
    assert not masks["noise"].any()
    assert torch.equal(pruned.loc["noise"], guide.loc["noise"])
    assert torch.equal(pruned.rho["noise"], guide.rho["noise"])


def test_pruning_a_pruned_guide_to_more_equals_pruning_the_original():
    _, guide = _random_guide()
    twice = pruning.prune(pruning.prune(guide, 0.5), 0.8)
    once = pruning.prune(guide, 0.8)
    for key, value in once.state_dict().items():
        assert torch.equal(twice.state_dict()[key], value)


def test_proportion_zero_changes_nothing():
    model, guide = _random_guide()
    pruned = pruning.prune(guide, 0.0)
    for key, value in guide.state_dict().items():
        assert torch.equal(pruned.state_dict()[key], value)
    x = torch.randn(50, 6)
    a = bbb.predict(model, guide, x, num_samples=20, generator=torch.Generator().manual_seed(3))
    b = bbb.predict(model, pruned, x, num_samples=20, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.probs, b.probs)


def test_pruned_guide_saves_loads_and_predicts_identically(tmp_path):
    model, guide = _random_guide()
    pruned = pruning.prune(guide, 0.75)
    path = save_checkpoint(tmp_path / "pruned.pt", model, pruned, {"pruned_proportion": 0.75})
    restored = load_checkpoint(path)
    assert restored.metadata == {"pruned_proportion": 0.75}
    for key, value in pruned.state_dict().items():
        assert torch.equal(restored.guide.state_dict()[key], value)
    masks, restored_masks = pruning.pruned_masks(pruned), pruning.pruned_masks(restored.guide)
    for name, mask in masks.items():
        assert torch.equal(restored_masks[name], mask)
    x = torch.randn(40, 6)
    a = bbb.predict(model, pruned, x, num_samples=25, generator=torch.Generator().manual_seed(5))
    b = bbb.predict(restored.model, restored.guide, x, num_samples=25,
                    generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.probs, b.probs)
    assert bool(torch.isfinite(b.probs).all())
    assert pruning.memory_footprint(restored.guide) == pruning.memory_footprint(pruned)


# --------------------------------------------------------------------------- a trained classifier


def _blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two Gaussian blobs in the first two of ten dims; the other eight are pure noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 10, generator=g)
    x[:, :2] += (2.0 * y[:, None] - 1.0) * 1.2
    return x, y


@pytest.fixture(scope="module")
def trained_classifier():
    torch.manual_seed(0)
    x, y = _blobs(1000, seed=0)
    model = bbb.BayesianMLP([10, 16, 2], bbb.Categorical(2))
    guide = bbb.MeanFieldGuide(model, init_rho=-4.0)
    bbb.fit(model, guide, x, y, epochs=100, batch_size=100, lr=1e-2, progress=False, seed=0,
            device="cpu")
    return model, guide


def _accuracy(model, guide, x, y) -> float:
    pred = bbb.predict(model, guide, x, num_samples=50, generator=torch.Generator().manual_seed(0))
    return accuracy(pred.probs, y)


def test_pruning_low_snr_barely_hurts_while_pruning_high_snr_does(trained_classifier):
    model, guide = trained_classifier
    x, y = _blobs(2000, seed=1)
    full = _accuracy(model, guide, x, y)
    assert full > 0.9
    low = _accuracy(model, pruning.prune(guide, 0.5), x, y)
    # the same number of weights, but those of HIGHEST signal-to-noise
    snr = pruning.signal_to_noise(guide)
    flat = torch.cat([v.reshape(-1) for v in snr.values()])
    k = pruning.num_pruned(flat.numel(), 0.5)
    remove = torch.zeros(flat.numel(), dtype=torch.bool)
    remove[flat.argsort(descending=True)[:k]] = True
    sizes = [v.numel() for v in snr.values()]
    masks = {name: part.reshape(snr[name].shape)
             for name, part in zip(snr, remove.split(sizes), strict=True)}
    high = _accuracy(model, pruning.prune_entries(guide, masks), x, y)
    # seeds 0-5 of this setup (fit's fused Adam) gave drops of at most 0.4 points (low SNR) and
    # 12.6-44.7 points (high SNR)
    assert full - low <= 0.015
    assert full - high >= 0.10


def test_pruning_curve_rows(trained_classifier):
    model, guide = trained_classifier
    x, y = _blobs(500, seed=2)
    rows = pruning.pruning_curve(model, guide, x, y, (0.0, 0.5, 0.95), num_samples=20, seed=4)
    assert [r["proportion"] for r in rows] == [0.0, 0.5, 0.95]
    plain = bbb.predict(model, guide, x, num_samples=20, generator=torch.Generator().manual_seed(4))
    assert rows[0]["accuracy"] == accuracy(plain.probs, y)
    for row in rows:
        assert row["error"] == pytest.approx(1 - row["accuracy"])
        assert math.isfinite(row["nll"]) and 0 <= row["ece"] <= 1
        assert row["num_weights"] == 10 * 16 + 16 * 2
    assert rows[1]["nonzero_weights"] == 192 - 96
    assert rows[2]["nonzero_weights"] == 192 - round(0.95 * 192)
    assert rows[2]["sparse_bytes"] < rows[2]["dense_bytes"]
    assert rows[0]["threshold"] <= rows[1]["threshold"] <= rows[2]["threshold"]


# --------------------------------------------------------------------------- bad input, memory


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan"), float("inf"), "0.5", None, True])
def test_bad_proportions_raise_value_error(bad):
    model, guide = _random_guide()
    with pytest.raises(ValueError, match="proportion"):
        pruning.prune(guide, bad)
    with pytest.raises(ValueError, match="proportion"):
        pruning.snr_threshold(guide, bad)
    with pytest.raises(ValueError, match="proportion"):
        pruning.pruning_curve(model, guide, torch.randn(5, 6), torch.zeros(5, dtype=torch.long),
                              (0.0, bad), num_samples=2)


def test_memory_footprint_dense_and_sparse():
    _, guide = _random_guide(sizes=(20, 30, 5))
    entries = 20 * 30 + 30 + 30 * 5 + 5
    weights = 20 * 30 + 30 * 5
    dense = pruning.memory_footprint(guide)
    assert dense == pruning.MemoryFootprint(8 * entries, 8 * entries, weights, weights, entries)
    pruned = pruning.prune(guide, 0.95)
    memory = pruning.memory_footprint(pruned)
    assert memory.dense_bytes == 8 * entries  # dense storage does not shrink
    masks = pruning.pruned_masks(pruned)
    kept = {n: int((~m).sum()) for n, m in masks.items()}
    assert memory.nonzero_weights == weights - pruning.num_pruned(weights, 0.95)
    assert memory.nonzero_weights == kept["layer0.weight"] + kept["layer1.weight"]
    csr = sum(12 * kept[n] + 4 * (rows + 1)
              for n, rows in (("layer0.weight", 30), ("layer1.weight", 5)))
    assert memory.sparse_bytes == csr + 8 * (30 + 5)  # biases kept dense (CSR does not pay)
    assert memory.sparse_bytes < memory.dense_bytes / 5


def test_log_snr_histogram_is_a_density():
    _, guide = _random_guide()
    pruned = pruning.prune(guide, 0.25)
    values = pruning.log10_snr(pruned)
    assert values.numel() == 108 - pruning.num_pruned(108, 0.25)  # pruned weights left out
    assert torch.allclose(values.sort().values,
                          _weight_snr(guide).double().log10().sort().values[-values.numel():])
    hist = pruning.log_snr_histogram(pruned, bins=20)
    widths = hist.edges[1:] - hist.edges[:-1]
    assert float((hist.density * widths).sum()) == pytest.approx(1.0)
    assert float(hist.cdf[-1]) == 1.0 and bool((hist.cdf.diff() >= 0).all())
    assert float(hist.cdf[0]) == pytest.approx(1 / values.numel())  # only the minimum
    assert hist.num_weights == values.numel()
    # a narrower range: the CDF still counts every value, the density only those inside
    lo, hi = float(values.quantile(0.25)), float(values.max())
    narrow = pruning.log_snr_histogram(values, bins=10, value_range=(lo, hi))
    inside = float(((values >= lo) & (values <= hi)).double().mean())
    widths = narrow.edges[1:] - narrow.edges[:-1]
    assert float((narrow.density * widths).sum()) == pytest.approx(inside)
    assert float(narrow.cdf[0]) == pytest.approx(float((values <= lo).double().mean()))


def test_figures(tmp_path):
    from pyro_bbb import pruning_plots

    _, guide = _random_guide()
    thresholds = {p: pruning.snr_threshold(guide, p) for p in (0.5, 0.95)}
    fig = pruning_plots.snr_histogram_figure(pruning.log_snr_histogram(guide, bins=30),
                                             thresholds)
    assert len(fig.axes) == 2
    assert len(fig.axes[0].get_legend().get_texts()) == 2
    path = pruning_plots.save_figure(fig, tmp_path / "snr.png")
    assert path.stat().st_size > 1000
    rows = [{"proportion": p, "error": e, "dense_bytes": 800, "sparse_bytes": s}
            for p, e, s in ((0.0, 0.1, 800), (0.5, 0.1, 600), (0.95, 0.12, 100))]
    fig = pruning_plots.pruning_curve_figure(rows)
    line = fig.axes[0].get_lines()[-1]
    assert list(line.get_xdata()) == pytest.approx([1.0, 0.5, 0.05])
    assert list(line.get_ydata()) == pytest.approx([10.0, 10.0, 12.0])
    assert pruning_plots.save_figure(fig, tmp_path / "curve.png").stat().st_size > 1000


# --------------------------------------------------------------------------- bad guides and inputs


def _diverged(param: str, value: float):
    """A guide whose first weight matrix holds one non-finite μ or ρ entry."""
    model, guide = _random_guide()
    with torch.no_grad():
        getattr(guide, param)["layer0__weight"][0, 0] = value
    return model, guide


@pytest.mark.parametrize(
    "param, value, what",
    [("loc", math.nan, "NaN"), ("rho", math.nan, "NaN"), ("loc", math.inf, "infinite values"),
     ("rho", -math.inf, "infinite values")],
)
def test_non_finite_guide_is_refused_everywhere(param, value, what):
    model, guide = _diverged(param, value)
    match = rf"guide parameters of layer0.weight contain {what} \(diverged fit\?\)"
    calls = [
        lambda: pruning.prune(guide, 0.5),
        lambda: pruning.snr_threshold(guide, 0.5),
        lambda: pruning.log_snr_histogram(guide),
        lambda: pruning.log10_snr(guide),
        lambda: pruning.pruning_curve(model, guide, torch.randn(4, 6),
                                      torch.zeros(4, dtype=torch.long), [0.5], num_samples=2),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=match):
            call()


def test_wrong_kind_of_guide_is_named():
    model, guide = _random_guide()
    with pytest.raises(TypeError, match=r"prune expects a MeanFieldGuide, got BayesianMLP "
                       r"\(arguments swapped\?\)"):
        pruning.prune(model, 0.5)
    with pytest.raises(TypeError, match="memory_footprint expects a MeanFieldGuide, got NoneType"):
        pruning.memory_footprint(None)
    with pytest.raises(TypeError, match="pruned_masks expects a MeanFieldGuide, got dict"):
        pruning.pruned_masks(guide.locs())
    with pytest.raises(TypeError, match="pruning_curve expects a MeanFieldGuide, got BayesianMLP"):
        pruning.pruning_curve(guide, model, torch.randn(4, 6), torch.zeros(4, dtype=torch.long))


def test_log_snr_histogram_accepts_numpy_and_lists():
    values = [-1.0, 0.0, 0.5, 2.0]
    expected = pruning.log_snr_histogram(torch.tensor(values), bins=3)
    for data in (np.array(values), values, tuple(values)):
        hist = pruning.log_snr_histogram(data, bins=np.int64(3))
        assert torch.equal(hist.density, expected.density) and hist.num_weights == 4
    assert expected.cdf.tolist() == [0.25, 0.5, 0.75, 1.0]  # edges -1, 0, 1, 2


@pytest.mark.parametrize(
    "values, kwargs, error, match",
    [
        ({"a": 1.0}, {}, TypeError, "expects a MeanFieldGuide or log10 SNR values"),
        (["x", "y"], {}, ValueError, "the values given are not numbers"),
        ([0.1, math.nan], {}, ValueError, "log10 SNR values contain NaN or infinite"),
        ([], {}, ValueError, "no log10 SNR values"),
        ([0.1, 0.2], {"bins": 2.0}, ValueError, "bins must be a positive int, got 2.0"),
        ([0.1, 0.2], {"bins": 0}, ValueError, "bins must be a positive int, got 0"),
        ([0.1, 0.2], {"value_range": (2, -2)}, ValueError, r"finite low < high, got \(2, -2\)"),
        ([0.1, 0.2], {"value_range": (math.nan, 1)}, ValueError, "finite low < high, got"),
        ([0.1, 0.2], {"value_range": 1.0}, ValueError, "value_range must be"),
    ],
)
def test_log_snr_histogram_bad_input(values, kwargs, error, match):
    with pytest.raises(error, match=match):
        pruning.log_snr_histogram(values, **kwargs)


@pytest.mark.parametrize("proportions", [0.5, "0.5", None])
def test_pruning_curve_proportions_must_be_a_list(proportions):
    model, guide = _random_guide()
    with pytest.raises(ValueError, match=r"proportions must be a list of numbers, e\.g\. \[0\.5\]"):
        pruning.pruning_curve(model, guide, torch.randn(4, 6), torch.zeros(4, dtype=torch.long),
                              proportions, num_samples=2)


def test_prune_entries_accepts_numpy_and_list_masks_but_not_floats():
    _, guide = _random_guide()
    mask = np.zeros((12, 6), dtype=bool)
    mask[0, :2] = True
    for data in (mask, mask.tolist()):
        masks = pruning.pruned_masks(pruning.prune_entries(guide, {"layer0.weight": data}))
        assert masks["layer0.weight"].nonzero().tolist() == [[0, 0], [0, 1]]
    with pytest.raises(ValueError, match="mask for 'layer0.weight' must be boolean"):
        pruning.prune_entries(guide, {"layer0.weight": torch.ones(12, 6)})
    with pytest.raises(TypeError, match="masks must be a dict"):
        pruning.prune_entries(guide, [mask])


# --------------------------------------------------------------------------- bad figure input


def _curve_rows():
    return [{"proportion": p, "error": e, "dense_bytes": 800, "sparse_bytes": s}
            for p, e, s in ((0.0, 0.1, 800), (0.5, 0.1, 600), (0.95, 0.12, 100))]


def test_pruning_curve_figure_accepts_a_dataframe():
    from pyro_bbb import pruning_plots

    fig = pruning_plots.pruning_curve_figure(pd.DataFrame(_curve_rows()))
    assert list(fig.axes[0].get_lines()[-1].get_ydata()) == pytest.approx([10.0, 10.0, 12.0])


@pytest.mark.parametrize(
    "rows, kwargs, error, match",
    [
        ([{"proportion": 0.0, "error": 0.1}], {}, ValueError,
         r"row 0 lacks \['dense_bytes', 'sparse_bytes'\]"),
        ([dict(_curve_rows()[0], error=math.nan)], {}, ValueError,
         "row 0 has non-finite or non-numeric error=nan"),
        ([dict(_curve_rows()[0], dense_bytes="800")], {}, ValueError, "dense_bytes='800'"),
        ([dict(_curve_rows()[0], proportion=1.0)], {}, ValueError, r"proportion must be in \[0"),
        ([], {}, ValueError, "no rows to plot"),
        (_curve_rows()[0], {}, TypeError, "rows must be a list of dicts"),
        ([(0.0, 0.1)], {}, TypeError, "row 0 is a tuple, not a dict"),
        (_curve_rows(), {"target_drop": math.nan}, ValueError, "target_drop must be a finite"),
    ],
)
def test_pruning_curve_figure_bad_rows(rows, kwargs, error, match):
    from pyro_bbb import pruning_plots

    with pytest.raises(error, match=match):
        pruning_plots.pruning_curve_figure(rows, **kwargs)


def test_snr_histogram_figure_bad_input():
    from pyro_bbb import pruning_plots

    _, guide = _random_guide()
    hist = pruning.log_snr_histogram(guide, bins=10)
    with pytest.raises(TypeError, match="expects an SNRHistogram .* got MeanFieldGuide"):
        pruning_plots.snr_histogram_figure(guide)
    with pytest.raises(TypeError, match="thresholds must be a dict"):
        pruning_plots.snr_histogram_figure(hist, [0.5, 1.0])
    for bad in (math.nan, math.inf, -1.0):
        with pytest.raises(ValueError, match=r"thresholds\[0.5\] is .*; expected a finite SNR"):
            pruning_plots.snr_histogram_figure(hist, {0.5: bad})
    fig = pruning_plots.snr_histogram_figure(hist, {0.0: 0.0})  # SNR 0: no line to draw
    assert fig.axes[0].get_legend() is None and len(fig.axes[0].get_lines()) == 0
