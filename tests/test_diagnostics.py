"""ArviZ export: groups and dims, values against the library, netCDF, and ArviZ's own tools.

ArviZ calls run with warnings turned into errors (``strict``), except those not about our data:
deprecation warnings raised inside ArviZ's own code (its use of matplotlib and pandas APIs that
newer releases deprecate), and, where a test says so, the Pareto-k warning of PSIS-LOO, which is
legitimate: it judges how reliable importance sampling is for the given posterior.
"""

import contextlib
import math
import sys
import warnings

import matplotlib
import numpy as np
import pytest
import torch
from pyro import poutine

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from pyro_bbb import (  # noqa: E402
    BayesianMLP,
    Bernoulli,
    Categorical,
    Gaussian,
    MeanFieldGuide,
    gaussian_prior,
    log_likelihood,
    posterior_predictive,
)
from pyro_bbb.diagnostics import (  # noqa: E402
    OBSERVED,
    _arviz,
    fit_chains,
    function_space_summary,
    sample_prior,
    to_draws,
    to_inference_data,
    variable_name,
)

az = _arviz()  # the lazy import, with ArviZ's once-a-day refactor notice silenced
PARETO = "Estimated shape parameter of Pareto distribution"


@contextlib.contextmanager
def strict(allow_pareto: bool = False):
    """Every warning is an error, except those named in the module docstring."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for category in (DeprecationWarning, FutureWarning):  # raised at lines of ArviZ's code
            warnings.filterwarnings("ignore", category=category, module=r"arviz(\.|$)")
        if allow_pareto:
            warnings.filterwarnings("ignore", message=PARETO)
        yield


def regression_data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 2, generator=g)
    y = x @ torch.tensor([1.0, -2.0]) + 0.5 + 0.3 * torch.randn(50, generator=g)
    return x, y


def classification_data():
    g = torch.Generator().manual_seed(1)
    centers = torch.tensor([[0.0, 2.0], [-2.0, -1.0], [2.0, -1.0]])
    labels = torch.arange(3).repeat_interleave(30)
    return centers[labels] + 0.7 * torch.randn(90, 2, generator=g), labels


@pytest.fixture(scope="module")
def regression():
    """Bayesian linear regression [2, 1] with learned noise, fitted from two seeds."""
    x, y = regression_data()
    model = BayesianMLP([2, 1], Gaussian(), prior=gaussian_prior(1.0))
    fits = fit_chains(model, x, y, seeds=(0, 1), num_samples=500, epochs=400, batch_size=50,
                      lr=0.02, num_particles=16)
    return model, x, y, fits


@pytest.fixture(scope="module")
def classifier():
    x, y = classification_data()
    model = BayesianMLP([2, 8, 3], Categorical(3), prior=gaussian_prior(1.0))
    fits = fit_chains(model, x, y, seeds=(0, 1), num_samples=300, epochs=200, batch_size=90,
                      lr=0.05)
    return model, x, y, fits


def untrained_draws(model, num_samples, seed=0):
    torch.manual_seed(seed)
    return MeanFieldGuide(model, init_rho=-3.0).sample_posterior(num_samples)


def test_groups_dims_shapes_and_names(regression):
    model, x, y, fits = regression
    idata = to_inference_data(model, fits.draws, x, y, prior_draws=sample_prior(model, 100),
                              function_space=True, seed=0)
    assert set(idata.groups()) == {"posterior", "posterior_predictive", "log_likelihood",
                                   "observed_data", "constant_data", "prior", "prior_predictive"}
    post = idata.posterior
    assert set(post.data_vars) == {"layer0_weight", "layer0_bias", "noise", "f"}
    assert post["layer0_weight"].dims == ("chain", "draw", "layer0_out", "layer0_in")
    assert post["layer0_weight"].shape == (2, 500, 1, 2)
    assert post["layer0_bias"].dims == ("chain", "draw", "layer0_out")
    assert post["noise"].dims == ("chain", "draw")
    assert post["f"].dims == ("chain", "draw", "obs_id") and post["f"].shape == (2, 500, 50)
    assert idata.prior["layer0_weight"].shape == (1, 100, 1, 2)
    assert idata.prior_predictive["y"].shape == (1, 100, 50)
    assert idata.posterior_predictive["y"].dims == ("chain", "draw", "obs_id")
    assert idata.log_likelihood["y"].shape == (2, 500, 50)
    assert idata.observed_data["y"].dims == ("obs_id",)
    assert idata.constant_data["x"].dims == ("obs_id", "feature")
    np.testing.assert_array_equal(idata.observed_data["y"].values, y.numpy())
    # the posterior values are the draws, and to_draws maps the names back
    np.testing.assert_array_equal(post["layer0_weight"].values, fits.draws["layer0.weight"])
    back = to_draws(idata)
    assert set(back) == {"layer0.weight", "layer0.bias", "noise"}
    for name, value in fits.draws.items():
        torch.testing.assert_close(back[name], value, rtol=0, atol=0)
    assert variable_name("layer3.weight") == "layer3_weight"


def test_classifier_dims_and_integer_targets(classifier):
    model, x, y, fits = classifier
    idata = to_inference_data(model, fits.draws, x, y, function_space=True,
                              coords={"class": ["a", "b", "c"]}, seed=0)
    post = idata.posterior
    assert post["layer0_weight"].dims == ("chain", "draw", "layer0_out", "layer0_in")
    assert post["layer1_weight"].shape == (2, 300, 3, 8)
    assert post["probs"].dims == ("chain", "draw", "obs_id", "class")
    assert list(post["class"].values) == ["a", "b", "c"]
    np.testing.assert_allclose(post["probs"].sum("class").values, 1.0, rtol=1e-5)
    for group in ("posterior_predictive", "observed_data"):
        assert idata[group]["y"].dtype == np.int64
    # Bernoulli: one probability per point, labels as integers
    bern = BayesianMLP([2, 1], Bernoulli())
    bdata = to_inference_data(bern, untrained_draws(bern, 20), x, (y > 0).long(),
                              function_space=True)
    assert bdata.posterior["probs"].dims == ("chain", "draw", "obs_id")
    assert bdata.posterior_predictive["y"].dtype == np.int64
    assert set(np.unique(bdata.posterior_predictive["y"].values)) <= {0, 1}


def test_the_three_draw_layouts_agree_and_bad_draws_fail(regression):
    model, x, y, fits = regression
    chained = fits.draws
    as_list = [{k: v[c] for k, v in chained.items()} for c in range(2)]
    flat = {k: v.reshape(-1, *v.shape[2:]) for k, v in chained.items()}
    ref = to_inference_data(model, chained).posterior
    for draws, chains in ((as_list, None), (flat, 2)):
        other = to_inference_data(model, draws, chains=chains).posterior
        for var in ref.data_vars:
            np.testing.assert_array_equal(other[var].values, ref[var].values)
    assert to_inference_data(model, flat).posterior.sizes["chain"] == 1
    extra = to_inference_data(model, {**flat, "extra": torch.zeros(1000, 3)}).posterior
    assert extra["extra"].dims == ("chain", "draw", "extra_dim_0")  # e.g. an MCMC deterministic
    with pytest.raises(ValueError, match="same number of draws"):
        to_inference_data(model, [as_list[0], {k: v[:10] for k, v in as_list[1].items()}])
    with pytest.raises(ValueError, match="lack the model's site"):
        to_inference_data(model, {"layer0.weight": flat["layer0.weight"]})
    with pytest.raises(ValueError, match="dividing"):
        to_inference_data(model, flat, chains=3)
    with pytest.raises(ValueError, match="expected"):
        to_inference_data(model, {**flat, "layer0.weight": flat["layer0.weight"][..., :1]})
    with pytest.raises(ValueError, match="without x"):
        to_inference_data(model, flat, y=y)


@pytest.mark.parametrize("change,match", [
    (lambda d: {**d, "layer0.weight": d["layer0.weight"].index_fill(0, torch.tensor([2]),
                                                                    float("nan"))},
     r"draws of \['layer0.weight'\] contain NaN or infinite"),
    (lambda d: {k: v.long() for k, v in d.items()}, "floating-point"),
])
def test_bad_draw_values_are_refused_with_or_without_y(classifier, change, match):
    model, x, y, _ = classifier
    draws = change(untrained_draws(model, 8))
    for kwargs in ({}, {"y": y}, {"function_space": True}):
        with pytest.raises(ValueError, match=match):
            to_inference_data(model, draws, x, **kwargs)
    with pytest.raises(ValueError, match=match):
        to_inference_data(model, untrained_draws(model, 8), x, prior_draws=draws)
    with pytest.raises(ValueError, match=match):
        function_space_summary(model, draws, x, chains=2)


def test_to_draws_names_a_missing_group_or_a_foreign_inference_data(classifier):
    model, x, y, _ = classifier
    idata = to_inference_data(model, untrained_draws(model, 4), x, y)
    with pytest.raises(ValueError, match=r"no 'prior' group; its groups: \['posterior'"):
        to_draws(idata, "prior")
    foreign = az.from_dict(posterior={"a": np.zeros((2, 5))})
    with pytest.raises(ValueError, match="not written by pyro_bbb's to_inference_data"):
        to_draws(foreign)


def test_float64_draws_give_the_float32_draws_answer(classifier):
    model, x, y, _ = classifier
    draws = untrained_draws(model, 6)
    single = to_inference_data(model, draws, x, y, seed=0)
    double = to_inference_data(model, {k: v.double() for k, v in draws.items()}, x, y, seed=0)
    np.testing.assert_allclose(double.log_likelihood[OBSERVED].values,
                               single.log_likelihood[OBSERVED].values, rtol=1e-5, atol=1e-5)


def test_log_likelihood_is_the_conditioned_models(regression):
    """Values equal predict.log_likelihood and the obs site of a conditioned Pyro trace."""
    model, x, y, fits = regression
    idata = to_inference_data(model, fits.draws, x, y, posterior_predictive=False)
    assert "posterior_predictive" not in idata.groups()
    flat = {k: v.reshape(-1, *v.shape[2:]) for k, v in fits.draws.items()}
    expected = log_likelihood(model, flat, x, y).reshape(2, 500, 50)
    np.testing.assert_array_equal(idata.log_likelihood["y"].values, expected.numpy())
    for chain, draw in ((0, 0), (1, 123), (1, 499)):
        one = {k: v[chain, draw] for k, v in fits.draws.items()}
        trace = poutine.trace(poutine.condition(model, data=one)).get_trace(x, y)
        obs = trace.nodes["obs"]
        per_point = obs["fn"].log_prob(obs["value"])
        np.testing.assert_allclose(idata.log_likelihood["y"].values[chain, draw],
                                   per_point.numpy(), rtol=1e-5, atol=1e-5)


def test_posterior_predictive_draws_follow_the_likelihood(regression, classifier):
    # regression: y_rep[s, n] ~ N(f(x_n; w_s), noise_s²), so z = (y_rep − f)/noise is N(0, 1)
    # over 2·500·50 = 50 000 values: mean within 4 SE = 4/√50000, variance within 4·√(2/50000)
    model, x, y, fits = regression
    idata = to_inference_data(model, fits.draws, x, y, function_space=True, seed=3)
    y_rep = torch.from_numpy(idata.posterior_predictive["y"].values)
    f = torch.from_numpy(idata.posterior["f"].values)
    noise = fits.draws["noise"][..., None]
    z = (y_rep - f) / noise
    assert abs(z.mean().item()) < 4 / math.sqrt(z.numel())
    assert abs(z.var().item() - 1) < 4 * math.sqrt(2 / z.numel())
    flat = {k: v.reshape(-1, *v.shape[2:]) for k, v in fits.draws.items()}
    mean = posterior_predictive(model, flat, x).mean
    sd = posterior_predictive(model, flat, x).std
    assert ((y_rep.mean((0, 1)) - mean).abs() <= 5 * sd / math.sqrt(1000)).all()
    # classifier: class frequencies of y_rep per point match the mean predicted probabilities
    # within 5 binomial SE (+1/S for probabilities near 0 or 1)
    model, x, y, fits = classifier
    idata = to_inference_data(model, fits.draws, x, y, seed=4)
    y_rep = torch.from_numpy(idata.posterior_predictive["y"].values).reshape(-1, 90)
    num = y_rep.shape[0]
    freq = torch.nn.functional.one_hot(y_rep, 3).float().mean(0)
    flat = {k: v.reshape(-1, *v.shape[2:]) for k, v in fits.draws.items()}
    probs = posterior_predictive(model, flat, x).probs
    assert ((freq - probs).abs() <= 5 * (probs * (1 - probs) / num).sqrt() + 1 / num).all()


def test_predictive_draws_are_seeded_without_touching_the_global_rng(regression):
    model, x, y, fits = regression
    state = torch.get_rng_state()
    a = to_inference_data(model, fits.draws, x, y, seed=7).posterior_predictive["y"].values
    b = to_inference_data(model, fits.draws, x, y, seed=7).posterior_predictive["y"].values
    c = to_inference_data(model, fits.draws, x, y, seed=8).posterior_predictive["y"].values
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert torch.equal(torch.get_rng_state(), state)


def test_netcdf_round_trip_is_exact(classifier, tmp_path):
    model, x, y, fits = classifier
    idata = to_inference_data(model, fits.draws, x, y, function_space=True,
                              prior_draws=sample_prior(model, 50, seed=0),
                              coords={"class": ["a", "b", "c"]}, seed=0)
    path = tmp_path / "idata.nc"
    idata.to_netcdf(str(path))
    loaded = az.from_netcdf(str(path))
    assert set(loaded.groups()) == set(idata.groups())
    for group in idata.groups():
        original, restored = idata[group], loaded[group]
        assert set(restored.data_vars) == set(original.data_vars)
        for var in original.data_vars:
            assert restored[var].dims == original[var].dims
            assert restored[var].dtype == original[var].dtype
            np.testing.assert_array_equal(restored[var].values, original[var].values)
        for dim, values in original.coords.items():
            np.testing.assert_array_equal(restored.coords[dim].values, values.values)
    assert loaded.posterior.attrs["pyro_bbb_site_names"] == \
        idata.posterior.attrs["pyro_bbb_site_names"]
    torch.testing.assert_close(to_draws(loaded)["layer1.weight"], fits.draws["layer1.weight"],
                               rtol=0, atol=0)


def test_summary_runs_with_finite_rhat(regression, classifier):
    for model, x, y, fits in (regression, classifier):
        idata = to_inference_data(model, fits.draws, x, y, function_space=True, seed=0)
        with strict():
            table = az.summary(idata)
        scalars = sum(int(np.prod(v.shape[2:])) for v in idata.posterior.data_vars.values())
        assert len(table) == scalars  # one row per scalar: weights, biases, noise, predictions
        assert np.isfinite(table["r_hat"]).all() and np.isfinite(table["ess_bulk"]).all()


def test_function_space_rhat_tells_same_fit_from_different_fits(regression, classifier):
    for model, x, _, fits in (regression, classifier):
        trained = {k: v[0] for k, v in fits.draws.items()}
        # one fit's draws split into two chains: the chains agree
        guide_draws = {k: v.reshape(2, -1, *v.shape[1:]) for k, v in trained.items()}
        with strict():
            same = function_space_summary(model, guide_draws, x)
        assert same.max_r_hat < 1.03
        assert same.min_ess_bulk > 100
        # a trained and an untrained guide: the chains disagree, R-hat far above 1
        other = untrained_draws(model, trained["layer0.bias"].shape[0])
        with strict():
            different = function_space_summary(model, [trained, other], x)
        # rank-normalised R-hat of two fully separated chains saturates near 1.83
        assert different.max_r_hat > 1.5
    with pytest.raises(ValueError, match="at least 2 chains"):
        function_space_summary(model, trained, x)


def test_function_space_r_hat_is_arviz_r_hat_of_the_predictions_unrounded(regression):
    model, x, _, fits = regression
    with strict():
        summary = function_space_summary(model, fits.draws, x[:6])
    chains, draws = fits.draws["layer0.weight"].shape[:2]
    flat = {k: v.reshape(chains * draws, *v.shape[2:]) for k, v in fits.draws.items()}
    f = model.network(x[:6], flat)[..., 0].detach().double().numpy()  # (chain·draw, point)
    want = [float(az.rhat(f[:, n].reshape(chains, draws))) for n in range(f.shape[1])]
    np.testing.assert_allclose(summary.table["r_hat"].to_numpy(dtype=float), want, rtol=1e-6)
    assert summary.max_r_hat == pytest.approx(max(want), rel=1e-6)  # not rounded to 0.01


def test_fit_chains_from_different_seeds_reach_the_same_function(regression):
    """Linear regression has one posterior mode: fits from two seeds agree in function space."""
    model, x, _, fits = regression
    assert fits.seeds == [0, 1] and len(fits.results) == 2
    assert fits.draws["layer0.weight"].shape == (2, 500, 1, 2)
    assert not torch.equal(fits.draws["noise"][0], fits.draws["noise"][1])
    with strict():
        summary = function_space_summary(model, fits.draws, x)
    assert summary.max_r_hat < 1.1
    assert set(summary.table.columns) >= {"mean", "sd", "ess_bulk", "ess_tail", "r_hat"}


def test_loo_and_compare_prefer_the_trained_model(regression):
    model, x, y, fits = regression
    trained = to_inference_data(model, fits.draws, x, y, seed=0)
    untrained = to_inference_data(model, untrained_draws(model, 1000), x, y, seed=0)
    with strict(allow_pareto=True):  # a few influential points may have k > 0.67: legitimate
        loo_trained = az.loo(trained, pointwise=True)
        loo_untrained = az.loo(untrained, pointwise=True)
        table = az.compare({"trained": trained, "untrained": untrained})
    assert loo_trained.n_data_points == x.shape[0] and loo_trained.n_samples == 1000
    assert (loo_trained.pareto_k.values < 0.7).mean() > 0.9  # the estimate is mostly reliable
    # pointwise values differ (a summed log-likelihood would give one value for every point)
    assert np.unique(loo_trained.loo_i.values).size == x.shape[0]
    assert loo_trained.elpd_loo > loo_untrained.elpd_loo + 10
    assert table.index[0] == "trained" and table.loc["trained", "rank"] == 0
    assert table.loc["untrained", "elpd_diff"] > 0


def test_loo_flags_itself_unreliable_for_a_mean_field_classifier(classifier):
    """A legitimate ArviZ warning, not a formatting fault: on separable data most draws give
    p(y_n | w) ≈ 1 but the wide mean-field q has rare draws with p ≈ e^-20, so the importance
    ratios 1/p(y_n | w) that PSIS-LOO smooths are heavy-tailed (Pareto k > 0.7) and elpd_loo is
    far below the in-sample lppd. ArviZ says so; use held-out log-likelihood for such models."""
    model, x, y, fits = classifier
    idata = to_inference_data(model, fits.draws, x, y, seed=0)
    with strict(), pytest.warns(UserWarning, match=PARETO):
        loo = az.loo(idata, pointwise=True)
    assert loo.warning and (loo.pareto_k.values > 0.7).mean() > 0.5
    lppd = torch.logsumexp(torch.from_numpy(idata.log_likelihood["y"].values).reshape(-1, 90), 0)
    assert lppd.sum().item() - math.log(600) * 90 > loo.elpd_loo


def test_plot_posterior_and_plot_ppc_render(regression, classifier):
    try:
        for model, x, y, fits in (regression, classifier):
            idata = to_inference_data(model, fits.draws, x, y, seed=0,
                                      prior_draws=sample_prior(model, 100, seed=0))
            with strict():
                axes = az.plot_posterior(idata, var_names=["layer0_bias"])
                ppc = az.plot_ppc(idata, num_pp_samples=30, random_seed=0)
                prior_ppc = az.plot_ppc(idata, group="prior", num_pp_samples=30, random_seed=0)
            axes = np.atleast_1d(axes).ravel()
            assert axes.size == model.layer_sizes[1]
            assert all(ax.get_title().startswith("layer0_bias") for ax in axes)
            for ax in (np.atleast_1d(ppc)[0], np.atleast_1d(prior_ppc)[0]):
                assert len(ax.lines) + len(ax.patches) + len(ax.collections) > 0
    finally:
        plt.close("all")


def test_sample_prior_draws_from_the_priors():
    model = BayesianMLP([3, 4, 1], Gaussian(), prior=gaussian_prior(2.0))
    state = torch.get_rng_state()
    draws = sample_prior(model, 4000, seed=0)
    assert torch.equal(torch.get_rng_state(), state)
    assert {k: tuple(v.shape[1:]) for k, v in draws.items()} == {
        **model.site_shapes(), "noise": ()}
    weights = draws["layer0.weight"].flatten()
    assert abs(weights.mean().item()) < 4 * 2.0 / math.sqrt(weights.numel())
    assert abs(weights.std().item() - 2.0) < 0.05
    log_noise = draws["noise"].log()  # LogNormal(0, 1) default noise prior
    assert abs(log_noise.mean().item()) < 4 / math.sqrt(4000)
    assert abs(log_noise.std().item() - 1) < 0.05
    torch.testing.assert_close(sample_prior(model, 4000, seed=0)["noise"], draws["noise"])


def test_missing_arviz_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "arviz", None)
    model = BayesianMLP([2, 1], Gaussian(noise=0.1))
    with pytest.raises(ImportError, match=r"pip install pyro_bbb\[diagnostics\]"):
        to_inference_data(model, untrained_draws(model, 4))


def test_loo_is_finite_when_log_likelihoods_span_hundreds_of_nats():
    # prior draws under a narrow noise: per-point log-likelihoods range over hundreds of nats,
    # where float32 PSIS overflowed and az.loo returned NaN (log_likelihood is stored in float64)
    model = BayesianMLP([1, 1], Gaussian(noise=0.05), prior=gaussian_prior(1.0))
    x = torch.linspace(-1, 1, 30)[:, None]
    y = 0.8 * x[:, 0] + 0.1
    draws = sample_prior(model, 400, seed=0)
    idata = to_inference_data(model, draws, x, y, seed=0)
    values = idata.log_likelihood["y"].values
    assert values.dtype == np.float64 and values.max() - values.min() > 200
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Pareto k: legitimate for prior draws
        loo = az.loo(idata, pointwise=True)
    assert math.isfinite(loo.elpd_loo) and np.isfinite(loo.loo_i.values).all()
