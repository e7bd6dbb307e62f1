"""FastELBO computes Trace_ELBO's estimator: same values and gradients for the same draws."""

import pyro
import pytest
import torch

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
from pyro_bbb.infer import FastELBO, supports_fast_elbo

CASES = [
    ([4, 6, 3], Categorical(3), scale_mixture_prior(), 1),
    ([4, 6, 3], Categorical(3), scale_mixture_prior(0.25, 0.5, 1e-3), 3),
    ([3, 5, 1], Gaussian(), gaussian_prior(0.7), 4),  # learned noise: a constrained site
    ([3, 1], Gaussian(noise=0.3), scale_mixture_prior(), 2),
    ([3, 4, 4, 1], Bernoulli(), [gaussian_prior(1.0), scale_mixture_prior(),
                                 gaussian_prior(0.3)], 1),
]


def terms_and_grads(fn, guide, seed):
    pyro.set_rng_seed(seed)
    terms = fn()
    grads = torch.autograd.grad(terms.data + 0.7 * terms.complexity, list(guide.parameters()))
    return terms, grads


@pytest.mark.parametrize("sizes,likelihood,prior,particles", CASES)
def test_fast_elbo_equals_pyro_elbo_on_the_same_draws(sizes, likelihood, prior, particles):
    model = BayesianMLP(sizes, likelihood, prior=prior)
    guide = MeanFieldGuide(model, init_rho=-2.0)
    x = torch.randn(9, sizes[0])
    y = likelihood.check_targets(torch.randint(0, 2, (9,)).float())
    fast = FastELBO(model, guide, particles)
    slow, slow_grads = terms_and_grads(
        lambda: elbo_terms(model, guide, x, y, num_data=50, num_particles=particles), guide, 5)
    quick, quick_grads = terms_and_grads(lambda: fast(x, y, 50), guide, 5)
    torch.testing.assert_close(quick.data, slow.data, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(quick.complexity, slow.complexity, rtol=1e-5, atol=1e-3)
    for got, want in zip(quick_grads, slow_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_fit_engines_train_identically():
    x, y = torch.randn(64, 3), torch.randn(64)
    states = []
    for engine in ("fast", "pyro"):
        model = BayesianMLP([3, 8, 1], Gaussian(), prior=scale_mixture_prior())
        pyro.set_rng_seed(0)
        guide = MeanFieldGuide(model)
        fit(model, guide, x, y, epochs=3, batch_size=16, lr=1e-2, num_particles=2,
            engine=engine, progress=False, seed=1)
        states.append(guide.state_dict())
    for name, value in states[0].items():
        torch.testing.assert_close(value, states[1][name], rtol=1e-4, atol=1e-5)


def test_fast_engine_needs_a_matching_guide():
    model = BayesianMLP([3, 1], Gaussian())
    other = MeanFieldGuide(BayesianMLP([3, 2, 1], Gaussian()))
    assert supports_fast_elbo(model, MeanFieldGuide(model))
    assert not supports_fast_elbo(model, other)
    with pytest.raises(ValueError, match="FastELBO needs a BayesianMLP"):
        FastELBO(model, other)
    with pytest.raises(ValueError, match="engine must be"):
        fit(model, MeanFieldGuide(model), torch.randn(4, 3), torch.randn(4), engine="jit",
            progress=False)
