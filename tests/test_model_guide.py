"""BayesianMLP + MeanFieldGuide: sites, particles, minibatch scaling, the paper's update rule."""

import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.infer import Trace_ELBO

from pyro_bbb import (
    BayesianMLP,
    Bernoulli,
    Categorical,
    Gaussian,
    MeanFieldGuide,
    elbo_terms,
    fit,
    gaussian_prior,
    scale_mixture_prior,
)

ARCHITECTURES = [
    ([3, 1], Gaussian(noise=0.5)),
    ([3, 1], Bernoulli()),
    ([4, 7, 3], Categorical(3)),
    ([2, 5, 6, 1], Gaussian()),
    ([5, 8, 8, 8, 2], Categorical(2)),
]


def fixed(guide, draws):
    """The guide with its samples replaced by ``draws`` (still latent, log q evaluated at them)."""
    trace = poutine.trace(guide).get_trace()
    for name, value in draws.items():
        trace.nodes[name]["value"] = value
    return poutine.replay(guide, trace=trace)


def data_for(model: BayesianMLP, n: int = 6):
    x = torch.randn(n, model.input_size)
    y = model.likelihood.check_targets(torch.randint(0, 2, (n,)).float())
    return x, y


@pytest.mark.parametrize("sizes,likelihood", ARCHITECTURES)
def test_guide_sites_match_model_sites(sizes, likelihood):
    model = BayesianMLP(sizes, likelihood)
    guide = MeanFieldGuide(model)
    x, y = data_for(model)
    model_trace = poutine.trace(model).get_trace(x, y)
    latent = {
        name: site["value"].shape
        for name, site in model_trace.nodes.items()
        if site["type"] == "sample" and not site["is_observed"] and name != "data"
    }
    guide_trace = poutine.trace(guide).get_trace(x, y)
    sampled = {n: s["value"].shape for n, s in guide_trace.nodes.items() if s["type"] == "sample"}
    assert sampled == latent
    assert list(latent) == guide.site_names
    expected = 2 * (len(sizes) - 1) + (1 if isinstance(likelihood, Gaussian) and
                                        likelihood.noise is None else 0)
    assert len(latent) == expected


def test_guide_initialisation_like_a_standard_layer():
    model = BayesianMLP([100, 50, 2], Categorical(2))
    guide = MeanFieldGuide(model, init_rho=-4.0)
    loc = guide.locs()["layer0.weight"]
    assert loc.abs().max() <= 0.1 and loc.std() > 0.04  # U(±1/√100) has std 0.0577
    assert torch.all(guide.locs()["layer0.bias"] == 0)
    scales = guide.scales()["layer1.weight"]
    torch.testing.assert_close(scales, torch.full_like(scales, F.softplus(torch.tensor(-4.0))))


@pytest.mark.parametrize("num_particles", [2, 5])
def test_vectorised_loss_is_mean_of_single_particle_losses(num_particles):
    model = BayesianMLP([4, 7, 3], Categorical(3))
    guide = MeanFieldGuide(model, init_rho=-2.0)
    x, y = torch.randn(9, 4), torch.randint(0, 3, (9,))
    pyro.set_rng_seed(3)
    guide_trace = poutine.trace(pyro.plate("p", num_particles, dim=-2)(guide)).get_trace(x, y)
    pyro.set_rng_seed(3)
    vectorised = elbo_terms(model, guide, x, y, num_data=30, num_particles=num_particles).loss
    singles = []
    for k in range(num_particles):
        draws = {n: s["value"][k, 0] for n, s in guide_trace.nodes.items() if s["type"] == "sample"}
        singles.append(elbo_terms(model, fixed(guide, draws), x, y, num_data=30).loss)
    torch.testing.assert_close(vectorised, torch.stack(singles).mean(), rtol=1e-5, atol=1e-4)
    # and it is exactly Pyro's own vectorised Trace_ELBO on the same draws
    pyro.set_rng_seed(3)
    pyro_loss = Trace_ELBO(
        num_particles=num_particles, vectorize_particles=True, max_plate_nesting=1
    ).differentiable_loss(model, guide, x, y, num_data=30)
    torch.testing.assert_close(vectorised, pyro_loss)


def test_learned_noise_with_particles_keeps_loss_scale():
    model = BayesianMLP([2, 5, 1], Gaussian())
    guide = MeanFieldGuide(model)
    x, y = torch.randn(8, 2), torch.randn(8)
    pyro.set_rng_seed(0)
    terms = elbo_terms(model, guide, x, y, num_particles=4)
    pyro.set_rng_seed(0)
    reference = Trace_ELBO(num_particles=4, vectorize_particles=True, max_plate_nesting=1)
    torch.testing.assert_close(terms.loss, reference.differentiable_loss(model, guide, x, y))
    # the observation's log-prob keeps one entry per particle and point, never (K, K, N)
    trace = poutine.trace(pyro.plate("p", 4, dim=-2)(model)).get_trace(x, y)
    assert trace.nodes["obs"]["fn"].batch_shape == (4, 8)


def test_minibatch_loss_is_unbiased_for_the_full_data_loss():
    # With the weights fixed, the mean of the losses of the M disjoint minibatches equals the
    # full-data loss exactly: the plate scales each minibatch likelihood by N/B.
    model = BayesianMLP([3, 6, 1], Gaussian(noise=0.3), prior=scale_mixture_prior())
    guide = MeanFieldGuide(model, init_rho=-3.0)
    x, y = torch.randn(24, 3), torch.randn(24)
    draws = {n: v[0] for n, v in guide.sample_posterior(1).items()}
    full = elbo_terms(model, fixed(guide, draws), x, y)
    batches = [elbo_terms(model, fixed(guide, draws), x[i : i + 6], y[i : i + 6], num_data=24)
               for i in range(0, 24, 6)]
    torch.testing.assert_close(torch.stack([b.loss for b in batches]).mean(), full.loss)
    torch.testing.assert_close(batches[0].complexity, full.complexity)


def test_gradients_follow_the_paper_update_rule():
    """Blundell et al. §3.2, steps 5-6, for f(w, θ) = log q(w|θ) − log p(w)p(D|w):

    Δμ = ∂f/∂w + ∂f/∂μ,   Δρ = ∂f/∂w · ε/(1 + exp(−ρ)) + ∂f/∂ρ.
    """
    prior = scale_mixture_prior(0.5, 1.0, 0.05)
    model = BayesianMLP([3, 4, 2], Categorical(2), prior=prior)
    guide = MeanFieldGuide(model, init_rho=-1.0)
    x, y = torch.randn(5, 3), torch.randint(0, 2, (5,))
    trace = poutine.trace(guide).get_trace(x, y)
    draws = {n: s["value"].detach() for n, s in trace.nodes.items() if s["type"] == "sample"}
    # autograd through the reparameterised sample w = μ + softplus(ρ) ε
    locs, rhos = guide.locs(), {n: guide.rho[n.replace(".", "__")] for n in guide.site_names}
    eps = {n: (draws[n] - locs[n].detach()) / F.softplus(rhos[n].detach()) for n in draws}
    w_rep = {n: locs[n] + F.softplus(rhos[n]) * eps[n] for n in draws}
    by_autograd = torch.autograd.grad(_f(model, w_rep, locs, rhos, x, y),
                                      [*locs.values(), *rhos.values()])
    # by hand: partial derivatives of f with w held fixed, then the chain rule of the paper
    w = {n: v.clone().requires_grad_(True) for n, v in draws.items()}
    mu = {n: v.detach().clone().requires_grad_(True) for n, v in locs.items()}
    rho = {n: v.detach().clone().requires_grad_(True) for n, v in rhos.items()}
    f = _f(model, w, mu, rho, x, y)
    names = list(draws)
    grads = torch.autograd.grad(f, [w[n] for n in names] + [mu[n] for n in names]
                                + [rho[n] for n in names])
    df_dw, df_dmu, df_drho = grads[: len(names)], grads[len(names): 2 * len(names)], grads[
        2 * len(names):]
    for i, n in enumerate(names):
        delta_mu = df_dw[i] + df_dmu[i]
        delta_rho = df_dw[i] * eps[n] / (1 + torch.exp(-rho[n].detach())) + df_drho[i]
        torch.testing.assert_close(by_autograd[i], delta_mu, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(by_autograd[len(names) + i], delta_rho, rtol=1e-4, atol=1e-5)


def _f(model, w, mu, rho, x, y):
    """log q(w|μ,ρ) − log p(w) − log p(D|w), written out directly."""
    log_q = sum(torch.distributions.Normal(mu[n], F.softplus(rho[n])).log_prob(w[n]).sum()
                for n in w)
    priors = model.site_priors(torch.device("cpu"))
    log_prior = sum(priors[n].log_prob(w[n]) for n in w)
    log_lik = model.likelihood.log_prob(model.network(x, w), y, w).sum()
    return log_q - log_prior - log_lik


def test_elbo_terms_split_matches_definition():
    model = BayesianMLP([2, 3, 1], Gaussian(noise=0.2), prior=gaussian_prior(1.0))
    guide = MeanFieldGuide(model, init_rho=-2.0)
    x, y = torch.randn(4, 2), torch.randn(4)
    draws = {n: v[0] for n, v in guide.sample_posterior(1).items()}
    terms = elbo_terms(model, fixed(guide, draws), x, y)
    locs, scales = guide.locs(), guide.scales()
    log_q = sum(torch.distributions.Normal(locs[n], scales[n]).log_prob(draws[n]).sum()
                for n in draws)
    log_p = sum(torch.distributions.Normal(0.0, 1.0).log_prob(v).sum() for v in draws.values())
    nll = -torch.distributions.Normal(model.network(x, draws).squeeze(-1), 0.2).log_prob(y).sum()
    torch.testing.assert_close(terms.data, nll)
    torch.testing.assert_close(terms.complexity, log_q - log_p)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"layer_sizes": [3]}, ValueError, "at least two sizes"),
        ({"layer_sizes": [3, 0, 1]}, ValueError, r"layer_sizes\[1\] must be a positive int"),
        ({"layer_sizes": [3, 2]}, ValueError, "needs 1"),
        ({"activation": "swish"}, ValueError, "unknown activation 'swish'"),
        ({"prior": [gaussian_prior(1.0)] * 3}, ValueError, "3 priors for 2 layers"),
        ({"prior": "gaussian"}, TypeError, "must be a torch/Pyro Distribution"),
        ({"prior": torch.distributions.Exponential(1.0)}, ValueError, "support over the reals"),
        ({"likelihood": "gaussian"}, TypeError, "must be a pyro_bbb Likelihood"),
    ],
)
def test_model_rejects_bad_configuration(kwargs, error, match):
    settings = {"layer_sizes": [3, 4, 1], "likelihood": Gaussian(), **kwargs}
    with pytest.raises(error, match=match):
        BayesianMLP(**settings)


def test_model_spec_round_trip():
    model = BayesianMLP([3, 4, 2], Categorical(2), prior=[gaussian_prior(0.5),
                                                          scale_mixture_prior()], activation="tanh")
    rebuilt = BayesianMLP.from_spec(model.spec())
    assert rebuilt.spec() == model.spec()
    draws = MeanFieldGuide(model).sample_posterior(3)
    x = torch.randn(5, 3)
    torch.testing.assert_close(rebuilt.network(x, draws), model.network(x, draws))
    with pytest.raises(ValueError, match="exactly the keys"):
        BayesianMLP.from_spec({**model.spec(), "dropout": 0.1})


def test_sample_posterior_and_snr_shapes():
    model = BayesianMLP([3, 4, 1], Gaussian())
    guide = MeanFieldGuide(model)
    draws = guide.sample_posterior(7)
    assert {n: tuple(v.shape) for n, v in draws.items()} == {
        "layer0.weight": (7, 4, 3), "layer0.bias": (7, 4), "layer1.weight": (7, 1, 4),
        "layer1.bias": (7, 1), "noise": (7,)}
    assert bool((draws["noise"] > 0).all())
    snr = guide.signal_to_noise()
    expected = guide.locs()["layer0.weight"].abs() / guide.scales()["layer0.weight"]
    torch.testing.assert_close(snr["layer0.weight"], expected)
    with pytest.raises(ValueError, match="num_samples must be a positive int"):
        guide.sample_posterior(0)


@pytest.mark.parametrize("likelihood,labels", [(Categorical(3), [0, 2, 1]),
                                               (Bernoulli(), [1, 0, 1])])
def test_a_column_of_labels_is_read_as_the_labels(likelihood, labels):
    flat = likelihood.check_targets(torch.tensor(labels))
    torch.testing.assert_close(likelihood.check_targets(torch.tensor(labels)[:, None]), flat)
    with pytest.raises(ValueError, match=r"class labels must have shape \(N,\) or \(N, 1\), got "
                                         r"\(3, 2\)"):
        likelihood.check_targets(torch.tensor(labels)[:, None].repeat(1, 2))


@pytest.mark.parametrize("noise_prior,error,match", [
    (dist.Normal(0.0, 1.0), ValueError, r"noise_prior must have support over x > 0 or x >= 0, "
                                        r"got Real\(\) \(Normal\)"),
    ("lognormal", TypeError, "noise_prior must be a torch/Pyro Distribution, got str"),
    (dist.LogNormal(torch.zeros(2), 1.0), ValueError, r"batch_shape \(2,\)"),
])
def test_a_noise_prior_must_be_a_scalar_prior_on_positive_numbers(noise_prior, error, match):
    with pytest.raises(error, match=match):
        Gaussian(noise_prior=noise_prior)


def test_a_half_normal_noise_prior_trains_a_positive_noise():
    x = torch.randn(40, 2)
    y = x[:, 0] + 0.3 * torch.randn(40)
    model = BayesianMLP([2, 1], Gaussian(noise_prior=dist.HalfNormal(1.0)))
    guide = MeanFieldGuide(model)
    fit(model, guide, x, y, epochs=20, batch_size=40, lr=0.05, progress=False, device="cpu")
    noise = guide.sample_posterior(50)["noise"]
    assert bool((noise > 0).all()) and 0.1 < float(noise.median()) < 1.0
