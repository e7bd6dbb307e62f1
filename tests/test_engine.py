"""FastELBO computes Trace_ELBO's estimator: same values and gradients for the same draws."""

import pyro
import pytest
import torch

from pyro_bbb import (
    BayesianMLP,
    Bernoulli,
    Categorical,
    Gaussian,
    HeteroscedasticGaussian,
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
    ([3, 5, 2], HeteroscedasticGaussian(), scale_mixture_prior(), 2),  # σ(x): 2 outputs
    ([3, 4, 4, 1], Bernoulli(), [gaussian_prior(1.0), scale_mixture_prior(),
                                 gaussian_prior(0.3)], 1),
    ([3, 5, 1], Gaussian(noise=0.3), scale_mixture_prior(0.5, 1.0, 2.0**-58), 1),  # σ1/σ2 ≈ e^40
    ([3, 5, 1], Gaussian(noise=0.3), scale_mixture_prior(1e-36, 1.0, 2.0**-12), 1),  # tiny π
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


@pytest.mark.parametrize("num_data,epochs,particles", [
    (64, 3, 2),
    (70, 2, 1),  # a ragged last minibatch: 70 = 4 × 16 + 6
])
def test_fit_engines_train_identically(num_data, epochs, particles):
    x, y = torch.randn(num_data, 3), torch.randn(num_data)
    states = []
    for engine in ("fast", "pyro"):
        model = BayesianMLP([3, 8, 1], Gaussian(), prior=scale_mixture_prior())
        pyro.set_rng_seed(0)
        guide = MeanFieldGuide(model)
        fit(model, guide, x, y, epochs=epochs, batch_size=16, lr=1e-2,
            num_particles=particles, engine=engine, progress=False, seed=1)
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


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("particles", [1, 2])
def test_fused_groups_equal_the_plain_expressions_on_large_sites(monkeypatch, particles,
                                                                 compiled):
    """Sites large enough for their own fused node and for parallel noise, plus small sites that
    share one node, under two different priors: same terms and gradients as the plain
    expressions (Normal(μ, σ).log_prob, prior.log_prob, autograd) on the noise the step drew,
    with the compiled kernel (which draws the noise itself) and with the eager path."""
    from pyro_bbb.infer import engine, fused_kernel

    model = BayesianMLP([300, 256, 3], Categorical(3),
                        prior=[scale_mixture_prior(), gaussian_prior(0.5)])
    guide = MeanFieldGuide(model, init_rho=-3.0)
    x, y = torch.randn(16, 300), torch.randint(0, 3, (16,))
    draws = []
    if compiled:  # record the noise the kernel drew
        assert fused_kernel.load() is not None
        sample = fused_kernel.sample_sites
        monkeypatch.setattr(fused_kernel, "sample_sites",
                            lambda *args: draws.append(sample(*args)) or draws[-1])
    else:
        monkeypatch.setenv("PYRO_BBB_COMPILED_KERNEL", "0")
        draw = engine.standard_normal
        monkeypatch.setattr(engine, "standard_normal",
                            lambda shape, like: draws.append(draw(shape, like)) or draws[-1])
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the parallel noise path
    try:
        elbo = FastELBO(model, guide, particles)
        fast, fast_grads = terms_and_grads(lambda: elbo(x, y, 100), guide, 3)
    finally:
        torch.set_num_threads(threads)
    priors, groups, others = elbo._plan(torch.device("cpu"), compiled)
    assert not others
    assert [len(sites) for _, sites in groups] == ([2, 2] if compiled else [1, 1, 2])
    assert len(draws) == len(groups)
    if compiled:
        draws = [eps for *_, eps in draws]

    params, log_q, log_p = {}, 0.0, 0.0
    for (_, sites), eps in zip(groups, draws, strict=True):
        offset = 0
        for site in sites:
            n = site.shape.numel()
            if compiled:  # flat, site after site, each (K, n_s)
                noise = eps[offset:offset + particles * n]
                offset += particles * n
            else:  # (K, n) per group
                noise = eps[:, offset:offset + n]
                offset += n
            noise = noise.reshape(particles, *site.shape)
            loc, scale = guide.locs()[site.name], guide.scales()[site.name]
            value = loc + scale * noise
            log_q = log_q + torch.distributions.Normal(loc, scale).log_prob(value).sum()
            log_p = log_p + priors[site.name].log_prob(value).sum()
            params[site.name] = value
    log_lik = model.likelihood.log_prob(model.network(x, params), y, params).sum()
    data, complexity = -100 / 16 * log_lik / particles, (log_q - log_p) / particles
    grads = torch.autograd.grad(data + 0.7 * complexity, list(guide.parameters()))
    torch.testing.assert_close(fast.data, data, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(fast.complexity, complexity, rtol=1e-5, atol=0.5)
    for got, want in zip(fast_grads, grads, strict=True):  # float32 rounding of sums
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * want.abs().max().item())


@pytest.mark.parametrize("prior", [scale_mixture_prior(), scale_mixture_prior(0.25, 2.0, 1e-3),
                                   gaussian_prior(0.3)])
def test_fused_prior_gives_the_log_density_and_its_slope(prior):
    from pyro_bbb.infer.fused_site import fused_prior

    # tiny, typical and large weights (the mixture's narrow component clamps at large |w|)
    w = torch.cat([torch.linspace(-0.01, 0.01, 51), torch.randn(200), torch.tensor([-30., 30.])])
    w.requires_grad_(True)
    log_prob = prior.log_prob(w)
    (slope_want,) = torch.autograd.grad(log_prob.sum(), w)
    total, slope = fused_prior(prior)(w.detach())
    torch.testing.assert_close(total, log_prob.sum(), rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(slope, slope_want, rtol=1e-4, atol=1e-4)


def test_priors_without_a_fused_form_take_the_plain_path():
    from pyro_bbb.infer.fused_site import fused_prior

    assert fused_prior(torch.distributions.Laplace(0.0, 1.0)) is None
    assert fused_prior(gaussian_prior(1.0).expand([3])) is None
    learned = torch.tensor(1.0, requires_grad=True)
    assert fused_prior(pyro.distributions.Normal(0.0, learned)) is None


def test_one_draw_network_uses_two_dimensional_weights_like_a_particle_dimension():
    model = BayesianMLP([5, 7, 3], Categorical(3))
    params = {name: torch.randn(shape) for name, shape in model.site_shapes().items()}
    x = torch.randn(4, 5)
    batched = model.network(x, {n: v.unsqueeze(0) for n, v in params.items()})
    torch.testing.assert_close(model.network(x, params), batched[0])


def test_fast_elbo_matches_pyro_when_the_batch_size_changes_between_calls():
    """The fast engine keeps no per-shape state: batch sizes that change between calls give
    the Pyro path's terms each time."""
    x, y = torch.randn(70, 3), torch.randn(70)
    model = BayesianMLP([3, 8, 1], Gaussian(), prior=scale_mixture_prior())
    guide = MeanFieldGuide(model)
    fast = FastELBO(model, guide)
    for batch in (9, 4, 9):
        xb, yb = x[:batch], y[:batch]
        quick, _ = terms_and_grads(lambda xb=xb, yb=yb: fast(xb, yb, 70), guide, batch)
        slow, _ = terms_and_grads(
            lambda xb=xb, yb=yb: elbo_terms(model, guide, xb, yb, num_data=70), guide, batch)
        torch.testing.assert_close(quick.data, slow.data, rtol=1e-5, atol=1e-4)
