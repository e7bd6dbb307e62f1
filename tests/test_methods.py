"""Inference methods against the exact posterior of conjugate Bayesian linear regression.

Model: y = w·x + b + ε, ε ~ N(0, 0.5²), w, b ~ N(0, 1) independently. With features φ = (x, 1)
the posterior is Gaussian with precision A = I + ΦᵀΦ/σ² and mean A⁻¹Φᵀy/σ². Tolerances, in
units of the exact posterior sd: NUTS mean within 0.3 sd and sd within 15%; AutoNormal and our
guide mean within 0.3 sd (the mean field is exact here up to the small posterior correlations,
so their sd are checked within 25%); MAP (AutoDelta) and the plain network within 0.15 sd of the
exact mode (= the mean for a Gaussian; the plain network's ML fit differs from the MAP by the
prior's pull, ~0.02 sd at N = 100 — it is checked against the least-squares solution).
"""

import pytest
import torch

from pyro_bbb import BayesianMLP, Gaussian, NonFiniteLossError, gaussian_prior
from pyro_bbb.infer.methods import (
    METHODS,
    MethodResult,
    dropout_draws,
    run_method,
)
from pyro_bbb.predict import posterior_predictive

NOISE = 0.5


@pytest.fixture(scope="module")
def conjugate():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100, 2, generator=g)
    y = x @ torch.tensor([1.0, -0.5]) + 0.3 + NOISE * torch.randn(100, generator=g)
    phi = torch.cat([x, torch.ones(100, 1)], 1)
    cov = torch.linalg.inv(torch.eye(3) + phi.T @ phi / NOISE**2)
    mean = cov @ phi.T @ y / NOISE**2
    least_squares = torch.linalg.lstsq(phi, y[:, None]).solution[:, 0]
    model = BayesianMLP([2, 1], Gaussian(noise=NOISE), prior=gaussian_prior(1.0))
    return model, x, y, mean, cov.diag().sqrt(), least_squares


def _flat(draws):
    w, b = draws["layer0.weight"], draws["layer0.bias"]
    return torch.cat([w.reshape(w.shape[0], -1), b], 1)


CASES = {
    "nuts": (dict(num_samples=300, warmup=200, num_chains=2), 0.3, 0.15),
    "normal": (dict(steps=2000, lr=0.02, num_samples=1000), 0.3, 0.25),
    "bbb": (dict(epochs=1000, batch_size=100, lr=0.01, num_samples=1000), 0.3, 0.25),
    # σ1 = σ2 = 1: the scale mixture is N(0, 1) itself, so the exact posterior is the same
    "bbb_mixture": (dict(epochs=1000, batch_size=100, lr=0.01, num_samples=1000, pi=0.3,
                         sigma1=1.0, sigma2=1.0), 0.3, 0.25),
    "delta": (dict(steps=500, lr=0.05, num_samples=5), 0.15, None),
}


@pytest.mark.parametrize("name", list(CASES))
def test_recovers_exact_posterior(conjugate, name):
    model, x, y, mean, sd, _ = conjugate
    options, mean_tol, sd_tol = CASES[name]
    result = run_method(name, model, x, y, seed=0, **options)
    assert isinstance(result, MethodResult) and result.name == name
    assert result.train_seconds > 0
    draws = _flat(result.draws)
    assert draws.shape[0] == result.num_samples
    z = (draws.mean(0) - mean) / sd
    assert z.abs().max() < mean_tol, f"{name}: posterior mean off by {z} sd"
    if sd_tol is not None:
        ratio = draws.std(0) / sd
        assert (ratio - 1).abs().max() < sd_tol, f"{name}: sd ratio {ratio}"
    else:  # a point estimate: no spread
        assert draws.std(0).max() == 0
    if name == "nuts":
        assert result.extras["num_chains"] == 2 and result.extras["divergences"] == 0


def test_plain_networks_fit_least_squares(conjugate):
    model, x, y, _, sd, least_squares = conjugate
    det = run_method("deterministic", model, x, y, epochs=300, batch_size=100, lr=0.05)
    ens = run_method("ensemble", model, x, y, epochs=300, batch_size=100, lr=0.05,
                     num_members=3)
    assert ((_flat(det.draws)[0] - least_squares) / sd).abs().max() < 0.15
    assert _flat(ens.draws).shape[0] == 3
    assert ((_flat(ens.draws) - least_squares) / sd).abs().max() < 0.15
    pred = posterior_predictive(model, det.draws, x)
    assert pred.epistemic_std.max() == 0


def test_mc_dropout_draws_fold_masks_into_weights():
    model = BayesianMLP([1, 8, 1], Gaussian(noise=0.1))
    g = torch.Generator().manual_seed(1)
    point = {k: torch.randn(s, generator=g) for k, s in model.site_shapes().items()}
    draws = dropout_draws(model, point, 0.5, 50, torch.Generator().manual_seed(0))
    w = draws["layer1.weight"]  # (50, 1, 8): each input column kept ×2 or zeroed
    ratio = w / point["layer1.weight"]
    assert torch.all((ratio == 0) | torch.isclose(ratio, torch.tensor(2.0)))
    assert 0.3 < (ratio == 0).float().mean() < 0.7
    assert torch.equal(draws["layer0.weight"], point["layer0.weight"].expand(50, 8, 1))
    # the masked network is the dropout network: h ⊙ m/(1−p) through W equals h through W·m/(1−p)
    x = torch.linspace(-1, 1, 5)[:, None]
    h = torch.relu(x @ point["layer0.weight"].T + point["layer0.bias"])
    mask = (ratio[:, 0, :] != 0).float()  # (50, 8)
    expected = (h * mask[:, None, :] * 2) @ point["layer1.weight"].T + point["layer1.bias"]
    torch.testing.assert_close(model.network(x, draws), expected)


def test_mc_dropout_and_ensemble_spread_on_toy():
    from pyro_bbb.data import toy_regression

    data = toy_regression(40, seed=0)
    model = BayesianMLP([1, 16, 1], Gaussian(noise=0.05))
    far = torch.tensor([[2.0]])
    for name, opts in [("dropout", dict(p=0.2, num_samples=100)), ("ensemble", {})]:
        result = run_method(name, model, data.x, data.y, epochs=200, batch_size=40, lr=0.02,
                            **opts)
        pred = posterior_predictive(model, result.draws, far)
        assert pred.epistemic_std.item() > 0, name
        assert all(torch.isfinite(v).all() for v in result.draws.values())


def test_registry_and_errors(conjugate):
    model, x, y, *_ = conjugate
    assert {"nuts", "normal", "lowrank", "delta", "bbb", "bbb_mixture", "deterministic",
            "dropout", "ensemble"} <= set(METHODS)
    with pytest.raises(ValueError, match="unknown method"):
        run_method("laplace", model, x, y)
    with pytest.raises(ValueError, match="hidden layer"):
        run_method("dropout", model, x, y)
    lowrank = run_method("lowrank", model, x, y, steps=300, lr=0.05, num_samples=10)
    assert lowrank.draws["layer0.weight"].shape == (10, 1, 2)
    assert run_method("map", model, x, y, steps=5).name == "map"


def test_bbb_mixture_rebuilds_the_model_with_the_scale_mixture_prior(conjugate):
    """Only the prior changes. With σ1 = σ2 = 0.05 the mixture is N(0, 0.05²): the fit must match
    that exact posterior (mean within 0.3 of its sd) and not the model's N(0, 1) one."""
    from pyro_bbb.distributions import ScaleMixtureNormal

    model, x, y, mean, _, _ = conjugate
    result = run_method("bbb_mixture", model, x, y, epochs=1000, batch_size=100, lr=0.01,
                        num_samples=1000, sigma1=0.05, sigma2=0.05)
    rebuilt = result.extras["model"]
    assert result.name == "bbb_mixture"
    assert [type(p) for p in rebuilt.priors] == [ScaleMixtureNormal]
    assert float(rebuilt.priors[0].sigma1) == pytest.approx(0.05)
    assert float(rebuilt.priors[0].pi) == 0.5  # the library default
    assert isinstance(model.priors[0], torch.distributions.Normal)  # the model is untouched
    assert rebuilt.layer_sizes == model.layer_sizes and rebuilt.likelihood is model.likelihood
    phi = torch.cat([x, torch.ones(x.shape[0], 1)], 1)
    cov = torch.linalg.inv(torch.eye(3) / 0.05**2 + phi.T @ phi / NOISE**2)
    narrow_mean, narrow_sd = cov @ phi.T @ y / NOISE**2, cov.diag().sqrt()
    fitted = _flat(result.draws).mean(0)
    assert ((fitted - narrow_mean) / narrow_sd).abs().max() < 0.3
    assert ((mean - narrow_mean) / narrow_sd).abs().max() > 3  # the two priors are told apart


def test_nuts_potential_matches_the_pyro_model():
    """The torch potential NUTS uses equals −log p(D, w) from the Pyro trace (learned noise:
    in unconstrained space, plus the log-Jacobian of exp)."""
    import pyro.poutine as poutine

    from pyro_bbb.infer.methods import _potential

    model = BayesianMLP([2, 3, 1], Gaussian())  # learned noise, scale-mixture prior
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(7, 2, generator=g), torch.randn(7, generator=g)
    trace = poutine.trace(model).get_trace(x, y)
    params = {n: s["value"] for n, s in trace.nodes.items()
              if s["type"] == "sample" and not s["is_observed"]}
    params["noise"] = params["noise"].log()
    potential, _ = _potential(model, x, y)
    expected = -(trace.log_prob_sum() + params["noise"])  # log|d exp(u)/du| = u
    torch.testing.assert_close(potential(params), expected)


BAD_SETTINGS = [
    ("deterministic", dict(epochs=0), "epochs must be a positive int, got 0"),
    ("deterministic", dict(epochs=-5), "epochs must be a positive int, got -5"),
    ("deterministic", dict(epochs=2.0), "epochs must be a positive int"),
    ("deterministic", dict(weight_decay=float("nan")), "weight_decay must be a finite number >= 0"),
    ("deterministic", dict(batch_size=0), "batch_size must be a positive int, got 0"),
    ("deterministic", dict(lr=True), "lr must be a positive number, got True"),
    ("deterministic", dict(seed=-1), "seed must be an int >= 0"),
    ("delta", dict(steps=3, lr=-1), "lr must be a positive number, got -1"),
    ("delta", dict(steps=0), "steps must be a positive int, got 0"),
    ("normal", dict(steps=3, batch_size=0), "batch_size must be a positive int, got 0"),
    ("normal", dict(steps=3, num_samples=0), "num_samples must be a positive int, got 0"),
    ("normal", dict(steps=3, lr=float("inf")), "lr must be a positive number, got inf"),
    ("normal", dict(steps=3, lr_decay=0), "lr_decay must be a positive number"),
    ("lowrank", dict(steps=3, init_scale=-0.1), "init_scale must be a positive number"),
    ("nuts", dict(num_samples=0), "num_samples must be a positive int, got 0"),
    ("nuts", dict(warmup=-1), "warmup must be an int >= 0, got -1"),
    ("nuts", dict(num_chains=0), "num_chains must be a positive int, got 0"),
    ("nuts", dict(target_accept_prob=1.5), "target_accept_prob must be a number in \\(0, 1\\)"),
    ("bbb", dict(epochs=2, num_samples=0), "num_samples must be a positive int, got 0"),
    ("bbb", dict(init_rho=float("nan")), "init_rho must be a finite number"),
    ("bbb_mixture", dict(num_particles=0), "num_particles must be a positive int"),
    ("ensemble", dict(num_members=0), "num_members must be a positive int, got 0"),
    ("ensemble", dict(weight_decay=-1.0), "weight_decay must be a finite number >= 0"),
]


@pytest.mark.parametrize("name, options, message", BAD_SETTINGS,
                         ids=[f"{n}-{next(iter(o))}" for n, o, _ in BAD_SETTINGS])
def test_bad_settings_are_refused_up_front(conjugate, monkeypatch, name, options, message):
    """A bad setting is a ValueError naming it, raised before any training starts."""
    import pyro_bbb.infer.methods as methods

    def no_training(*args, **kwargs):
        raise AssertionError("training started before the settings were checked")

    for trainer in ("_train_point", "fit", "SVI", "MCMC"):
        monkeypatch.setattr(methods, trainer, no_training)
    model, x, y, *_ = conjugate
    with pytest.raises(ValueError, match=message):
        run_method(name, model, x, y, **options)


@pytest.mark.parametrize("p", [1.0, -0.1, float("nan"), "0.1"])
def test_mc_dropout_refuses_a_bad_rate(p):
    model = BayesianMLP([2, 4, 1], Gaussian(noise=NOISE))
    with pytest.raises(ValueError, match=r"p must be a number in \[0, 1\), got"):
        run_method("dropout", model, torch.zeros(5, 2), torch.zeros(5), p=p)


def test_numpy_ints_are_accepted_as_counts(conjugate):
    np = pytest.importorskip("numpy")
    model, x, y, *_ = conjugate
    result = run_method("deterministic", model, x, y, epochs=np.int64(2),
                        batch_size=np.int32(50), num_samples=np.int64(3))
    assert result.num_samples == 3


@pytest.mark.parametrize("name", ["deterministic", "ensemble", "dropout"])
def test_point_training_that_diverges_names_the_step(name):
    """A huge lr sends the loss to inf within a few steps: NonFiniteLossError names the step
    instead of returning NaN weights."""
    model = BayesianMLP([2, 4, 1], Gaussian(noise=NOISE))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(20, 2, generator=g), torch.randn(20, generator=g)
    with pytest.raises(NonFiniteLossError, match=r"diverged at step \d+ \(epoch \d+\).*lower lr"
                       ) as info:
        run_method(name, model, x, y, epochs=50, batch_size=10, lr=1e30)
    assert 1 < info.value.step <= 100 and info.value.epoch == (info.value.step + 1) // 2


def test_autoguide_that_diverges_names_the_step(conjugate):
    model, x, y, *_ = conjugate
    with pytest.raises(NonFiniteLossError, match=r"diverged at step \d+") as info:
        run_method("normal", model, x, y, steps=50, lr=1e6)
    assert info.value.step > 1


PROGRESS = {"nuts": dict(num_samples=10, warmup=5, num_chains=1), "normal": dict(steps=3),
            "lowrank": dict(steps=3), "delta": dict(steps=3), "bbb": dict(epochs=2),
            "bbb_mixture": dict(epochs=2), "deterministic": dict(epochs=2),
            "dropout": dict(epochs=2), "ensemble": dict(epochs=2, num_members=2)}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_progress_shows_a_bar_and_is_off_by_default(conjugate, capsys, monkeypatch, name):
    _, x, y, *_ = conjugate
    monkeypatch.delenv("CI", raising=False)  # Pyro hides its MCMC bar when CI is set
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # ... or under pytest-xdist
    model = BayesianMLP([2, 3, 1], Gaussian(noise=NOISE))  # dropout needs a hidden layer
    options = {**PROGRESS[name], "seed": 1}
    if name != "ensemble":  # an ensemble's draws are its members
        options.setdefault("num_samples", 3)
    quiet = run_method(name, model, x, y, **options)
    assert "%|" not in capsys.readouterr().err
    shown = run_method(name, model, x, y, progress=True, **options)
    assert "%|" in capsys.readouterr().err  # tqdm's bar
    for site, value in quiet.draws.items():  # the bar changes nothing
        torch.testing.assert_close(shown.draws[site], value)
