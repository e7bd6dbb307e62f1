"""The core formulas checked against independent references: float64 log-sum-exp, closed-form KL,
quadrature, exact Gaussian-mixture moments and quantiles, scipy entropies, plain-loop ECE."""

from __future__ import annotations

import math

import numpy as np
import pyro
import pytest
import torch
from scipy import integrate, optimize, special, stats

import pyro_bbb as bbb
from pyro_bbb import pruning
from pyro_bbb.distributions import ScaleMixtureNormal
from pyro_bbb.infer.elbo import elbo_terms
from pyro_bbb.infer.engine import FastELBO
from pyro_bbb.metrics import expected_calibration_error, nll
from pyro_bbb.predict import log_likelihood, posterior_predictive

# --------------------------------------------------------------------------- scale-mixture prior


def _reference_log_prob(w: np.ndarray, pi: float, s1: float, s2: float) -> np.ndarray:
    """log(π N(w|0,σ1²) + (1−π) N(w|0,σ2²)) by scipy's log-sum-exp in float64."""
    return special.logsumexp([math.log(pi) + stats.norm.logpdf(w, 0.0, s1),
                              math.log1p(-pi) + stats.norm.logpdf(w, 0.0, s2)], axis=0)


def _reference_slope(w: np.ndarray, pi: float, s1: float, s2: float) -> np.ndarray:
    """d/dw log p(w) in float64 by autograd of torch.logsumexp (an independent expression)."""
    w = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    a = math.log(pi) - math.log(s1) - half_log_2pi - w**2 / (2 * s1**2)
    b = math.log1p(-pi) - math.log(s2) - half_log_2pi - w**2 / (2 * s2**2)
    torch.logsumexp(torch.stack([a, b]), 0).sum().backward()
    return w.grad.numpy()


@pytest.mark.parametrize("pi", [1e-6, 0.3, 1 - 1e-6])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mixture_log_prob_matches_logsumexp_near_the_edges_of_pi_and_far_in_the_tails(pi, dtype):
    s1, s2 = 1.0, math.exp(-8)
    w = np.concatenate([np.linspace(-1e4, 1e4, 21), np.linspace(-40, 40, 161),
                        np.linspace(-20 * s2, 20 * s2, 161)])
    pi_used = float(torch.tensor(pi, dtype=dtype))  # 1 − 1e−6 rounds in float32
    prior = ScaleMixtureNormal(torch.tensor(pi, dtype=dtype), torch.tensor(s1, dtype=dtype),
                               torch.tensor(s2, dtype=dtype))
    got = prior.log_prob(torch.tensor(w, dtype=dtype)).double().numpy()
    want = _reference_log_prob(w, pi_used, s1, s2)
    rtol = 2e-6 if dtype == torch.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("log_sigma2", [-8.0, -30.0, -40.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mixture_slope_is_right_for_a_very_narrow_spike(log_sigma2, dtype):
    # A clamp of d = b − a at −80 left dh·sigmoid(−80) ≈ h_b e^−80 in the hand-written slope: at
    # σ2 = e^−40 (h_b/h_a = e^80) that doubled d log p/dw everywhere outside the spike.
    s1, s2 = 1.0, math.exp(log_sigma2)
    w = np.concatenate([np.linspace(-3, 3, 61), s2 * np.linspace(-25, 25, 201)])
    w = w[w != 0]
    prior = ScaleMixtureNormal(torch.tensor(0.5, dtype=dtype), torch.tensor(s1, dtype=dtype),
                               torch.tensor(s2, dtype=dtype))
    value = torch.tensor(w, dtype=dtype, requires_grad=True)
    prior.log_prob(value).sum().backward()
    want = _reference_slope(w, 0.5, s1, float(torch.tensor(s2, dtype=dtype)))
    rtol = 1e-4 if dtype == torch.float32 else 1e-9
    np.testing.assert_allclose(value.grad.double().numpy(), want, rtol=rtol, atol=0)


def test_mixture_with_learnable_parameters_has_exact_slopes_at_the_spike_edge():
    # the autograd path (parameters that require grad) clamped d too: there the slope lost the
    # narrow component's term just outside the spike, where it is still of order h_a
    s2 = math.exp(-40)
    pi, sigma1, sigma2 = (torch.tensor(v, requires_grad=True) for v in (0.5, 1.0, s2))
    w = s2 * np.linspace(14.5, 16.5, 41)  # d = b − a runs from −65 to −96 here
    value = torch.tensor(w, dtype=torch.float32, requires_grad=True)
    ScaleMixtureNormal(pi, sigma1, sigma2).log_prob(value).sum().backward()
    want = _reference_slope(w, 0.5, 1.0, float(sigma2.detach()))
    np.testing.assert_allclose(value.grad.double().numpy(), want, rtol=1e-4, atol=0)


@pytest.mark.parametrize("log_sigma2", [-6.0, -28.0, -40.0])
def test_learnable_mixture_widths_have_finite_float32_gradients(log_sigma2):
    # 0.5/σ² differentiated through σ² formed 1/σ⁴ (inf in float32 below σ ≈ e^−22, and inf·0 =
    # NaN) although ∂ log p/∂σ2 itself is finite (≈ −1/σ2 at w = 0): the float32 gradients
    # must be the float64 ones
    w = np.array([0.0, 1.0, 3.0, 1e3, 1e6]) * math.exp(log_sigma2)
    w = np.concatenate([w, [1e-3, 0.5, 2.0]])
    grads = {}
    for dtype in (torch.float32, torch.float64):
        params = [torch.tensor(v, dtype=dtype, requires_grad=True)
                  for v in (0.3, 1.0, math.exp(log_sigma2))]
        ScaleMixtureNormal(*params).log_prob(torch.tensor(w, dtype=dtype)).sum().backward()
        grads[dtype] = np.array([float(p.grad) for p in params])
    assert np.isfinite(grads[torch.float32]).all()
    np.testing.assert_allclose(grads[torch.float32], grads[torch.float64], rtol=1e-4)


def test_mixture_with_tiny_pi_does_not_overflow():
    # log((1−π)/π) + log(σ1/σ2) = 91 > 88: e^(b − a) overflowed float32 and log p(0) was +inf
    pi, s1, s2 = 1e-36, 1.0, math.exp(-8)
    w = np.array([0.0, 1e-4, 1e-2, 1.0, 50.0])
    value = torch.tensor(w, dtype=torch.float32, requires_grad=True)
    log_p = ScaleMixtureNormal(pi, s1, s2).log_prob(value)
    log_p.sum().backward()
    np.testing.assert_allclose(log_p.double().detach().numpy(),
                               _reference_log_prob(w, float(torch.tensor(pi)), s1, s2), rtol=1e-6)
    assert torch.isfinite(value.grad).all()


# --------------------------------------------------------------------------- ELBO


def _spread_guide(model, seed: int = 0) -> bbb.MeanFieldGuide:
    torch.manual_seed(seed)
    guide = bbb.MeanFieldGuide(model, init_rho=-1.0)
    with torch.no_grad():
        for key in guide.loc:
            guide.loc[key].normal_(0.0, 0.3)
            guide.rho[key].uniform_(-3.0, 0.0)
    return guide


def _per_draw_complexity(model, guide, prior, num_draws: int) -> torch.Tensor:
    """log q(w) − log p(w) of independent draws, written out directly (for a standard error)."""
    draws = guide.sample_posterior(num_draws)
    locs, scales = guide.locs(), guide.scales()
    total = torch.zeros(num_draws, dtype=torch.float64)
    for name, value in draws.items():
        value = value.double()
        if name == "noise":  # q and p are log-normal: compare log σ under N(μ, s²) and N(0, 1)
            u = value.log()
            q = torch.distributions.Normal(locs[name].double(), scales[name].double())
            total += (q.log_prob(u) - torch.distributions.Normal(0.0, 1.0).log_prob(u)).detach()
            continue
        q = torch.distributions.Normal(locs[name].double(), scales[name].double())
        dims = tuple(range(1, value.dim()))
        total += (q.log_prob(value) - prior.log_prob(value)).sum(dims).detach()
    return total


@pytest.mark.parametrize("engine", ["pyro", "fast"])
def test_complexity_term_is_unbiased_for_the_closed_form_kl(engine):
    # Gaussian prior N(0, 0.7²) on the weights and a learned noise σ with LogNormal(0, 1) prior
    # and log-normal q: KL[q‖p] = Σ log(σp/s) + (s² + μ²)/(2σp²) − ½ in closed form.
    model = bbb.BayesianMLP([3, 4, 1], bbb.Gaussian(), prior=bbb.gaussian_prior(0.7))
    guide = _spread_guide(model)
    kl = 0.0
    for name, loc in guide.locs().items():
        sd_p = 1.0 if name == "noise" else 0.7
        m, s = loc.detach().double(), guide.scales()[name].detach().double()
        kl += float((math.log(sd_p) - s.log() + (s**2 + m**2) / (2 * sd_p**2) - 0.5).sum())
    x, y = torch.randn(10, 3), torch.randn(10)
    pyro.set_rng_seed(1)
    num = 20000
    if engine == "fast":
        terms = FastELBO(model, guide, num_particles=num)(x, y, 100)
    else:
        terms = elbo_terms(model, guide, x, y, num_data=100, num_particles=num)
    se = float(_per_draw_complexity(model, guide, torch.distributions.Normal(0.0, 0.7),
                                    num).std() / math.sqrt(num))
    assert abs(terms.complexity.item() - kl) < 5 * se, (terms.complexity.item(), kl, se)


def test_scale_mixture_complexity_matches_quadrature():
    prior = bbb.scale_mixture_prior(0.5, 1.0, math.exp(-3))
    model = bbb.BayesianMLP([2, 3, 1], bbb.Gaussian(noise=0.5), prior=prior)
    guide = _spread_guide(model, seed=1)

    def log_p(w):
        return _reference_log_prob(w, 0.5, 1.0, math.exp(-3))

    kl = 0.0
    for name, loc in guide.locs().items():
        scale = guide.scales()[name]
        for m, s in zip(loc.detach().double().reshape(-1).tolist(),
                        scale.detach().double().reshape(-1).tolist(), strict=True):
            cross, _ = integrate.quad(lambda w, m=m, s=s: stats.norm.pdf(w, m, s) * log_p(w),
                                      m - 12 * s, m + 12 * s, points=[0.0], limit=200)
            kl += -0.5 * math.log(2 * math.pi * math.e * s * s) - cross
    num = 20000
    se = float(_per_draw_complexity(model, guide, prior, num).std() / math.sqrt(num))
    x, y = torch.randn(5, 2), torch.randn(5)
    for seed, terms in enumerate((lambda: FastELBO(model, guide, num_particles=num)(x, y),
                                  lambda: elbo_terms(model, guide, x, y, num_particles=num))):
        pyro.set_rng_seed(seed)
        value = terms().complexity.item()
        assert abs(value - kl) < 5 * se, (value, kl, se)


# --------------------------------------------------------------------------- prediction


@pytest.mark.parametrize("likelihood", [bbb.Gaussian(), bbb.HeteroscedasticGaussian(),
                                        bbb.Gaussian(noise=0.3)])
def test_regression_summary_is_the_exact_mixture_of_the_draws(likelihood):
    torch.manual_seed(0)
    model = bbb.BayesianMLP([2, 5, likelihood.output_size], likelihood)
    guide = bbb.MeanFieldGuide(model, init_rho=-1.0)
    draws = {k: v.double() for k, v in guide.sample_posterior(40).items()}
    x = torch.randn(4, 2).double()  # prediction rounds inputs to the default dtype first
    pred = posterior_predictive(model, draws, x, level=0.9)
    # independent: the S outputs of the draws, in numpy float64
    f = model.network(x, draws).numpy()
    loc = f[..., 0]
    if isinstance(likelihood, bbb.HeteroscedasticGaussian):
        scale = np.logaddexp(0.0, f[..., 1]) + 1e-3
    elif likelihood.noise is None:
        scale = np.broadcast_to(draws["noise"].numpy()[:, None], loc.shape)
    else:
        scale = np.full(loc.shape, 0.3)
    mean = loc.mean(0)
    variance = (scale**2 + loc**2).mean(0) - mean**2  # the variance of the S-component mixture
    np.testing.assert_allclose(pred.mean.numpy(), mean, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(pred.std.numpy() ** 2, variance, rtol=1e-6)
    np.testing.assert_allclose(pred.aleatoric_std.numpy() ** 2, (scale**2).mean(0), rtol=1e-6)
    np.testing.assert_allclose(pred.epistemic_std.numpy() ** 2, loc.var(0, ddof=0), rtol=1e-6)
    for n in range(4):
        def cdf(t, n=n):
            return stats.norm.cdf(t, loc[:, n], scale[:, n]).mean()

        lo = optimize.brentq(lambda t, n=n: cdf(t) - 0.05, -100, 100, xtol=1e-12)
        hi = optimize.brentq(lambda t, n=n: cdf(t) - 0.95, -100, 100, xtol=1e-12)
        assert pred.lower[n].item() == pytest.approx(lo, abs=1e-6)
        assert pred.upper[n].item() == pytest.approx(hi, abs=1e-6)


@pytest.mark.parametrize("likelihood", [bbb.Categorical(3), bbb.Bernoulli()])
def test_entropy_split_matches_scipy_and_mutual_information_is_the_mean_kl(likelihood):
    torch.manual_seed(0)
    model = bbb.BayesianMLP([2, 5, likelihood.output_size], likelihood)
    guide = bbb.MeanFieldGuide(model, init_rho=0.0)
    draws = {k: v.double() for k, v in guide.sample_posterior(30).items()}
    x = (3 * torch.randn(6, 2)).double()  # prediction rounds inputs to the default dtype first
    pred = posterior_predictive(model, draws, x)
    f = model.network(x, draws).numpy()
    if f.shape[-1] == 1:
        p = np.concatenate([special.expit(-f), special.expit(f)], -1)
    else:
        p = special.softmax(f, -1)
    mean = p.mean(0)
    total = stats.entropy(mean, axis=-1)
    aleatoric = stats.entropy(p, axis=-1).mean(0)
    # I(y; w) = E_w KL[p(y|x,w) ‖ p(y|x)], an expression that never forms total − aleatoric
    mutual_information = stats.entropy(p, np.broadcast_to(mean, p.shape), axis=-1).mean(0)
    np.testing.assert_allclose(pred.probs.numpy(), mean, rtol=1e-10)
    np.testing.assert_allclose(pred.total_entropy.numpy(), total, rtol=1e-9)
    np.testing.assert_allclose(pred.aleatoric.numpy(), aleatoric, rtol=1e-9)
    np.testing.assert_allclose(pred.epistemic.numpy(), mutual_information, rtol=1e-7, atol=1e-12)
    assert mutual_information.min() > 1e-3  # the check is not vacuous


def test_classification_nll_is_the_log_mean_exp_of_the_per_draw_likelihoods():
    torch.manual_seed(0)
    model = bbb.BayesianMLP([3, 6, 4], bbb.Categorical(4))
    guide = bbb.MeanFieldGuide(model, init_rho=0.5)
    draws = guide.sample_posterior(25)
    x, y = torch.randn(40, 3), torch.randint(0, 4, (40,))
    log_p = log_likelihood(model, draws, x, y).double()
    want = -(torch.logsumexp(log_p, 0) - math.log(25)).mean().item()
    mean_of_logs = -log_p.mean().item()
    got = nll(posterior_predictive(model, draws, x).probs, y)
    assert got == pytest.approx(want, rel=1e-5)
    assert mean_of_logs > want + 0.05  # by Jensen: the other estimator would differ visibly


# --------------------------------------------------------------------------- metrics and pruning


def test_ece_matches_a_plain_loop_in_float64():
    rng = np.random.default_rng(0)
    for _ in range(30):
        n, c, bins = int(rng.integers(1, 300)), int(rng.integers(2, 6)), int(rng.integers(1, 25))
        p = special.softmax(rng.normal(size=(n, c)) * rng.uniform(0.1, 5), -1)
        y = rng.integers(0, c, n)
        confidence, correct = p.max(1), p.argmax(1) == y
        want = 0.0
        for b in range(bins):  # right-closed equal-width bins ((b)/B, (b+1)/B]
            inside = (confidence > b / bins) & (confidence <= (b + 1) / bins)
            if inside.any():
                want += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
        got = expected_calibration_error(torch.tensor(p), torch.tensor(y), bins)
        assert got == pytest.approx(want, rel=1e-12, abs=1e-14)


def test_snr_is_abs_mu_over_softplus_rho_and_prune_removes_round_pn_lowest():
    torch.manual_seed(0)
    model = bbb.BayesianMLP([5, 7, 3], bbb.Categorical(3))
    guide = bbb.MeanFieldGuide(model)
    with torch.no_grad():
        for key in guide.rho:
            guide.rho[key].uniform_(-30.0, 20.0)
    names = pruning.prunable_sites(guide)
    mu = np.concatenate([guide.loc[n.replace(".", "__")].detach().double().numpy().ravel()
                         for n in names])
    rho = np.concatenate([guide.rho[n.replace(".", "__")].detach().double().numpy().ravel()
                          for n in names])
    snr = np.abs(mu) / np.logaddexp(0.0, rho)
    got = torch.cat([v.reshape(-1) for v in pruning.signal_to_noise(guide).values()]).double()
    np.testing.assert_allclose(got.numpy(), snr, rtol=1e-5)
    for proportion in (0.1, 0.5, 0.9):
        k = int(round(proportion * snr.size))
        masks = pruning.pruned_masks(pruning.prune(guide, proportion))
        removed = np.concatenate([masks[n].numpy().ravel() for n in names])
        assert removed.sum() == k
        assert set(np.flatnonzero(removed)) == set(np.argsort(snr, kind="stable")[:k])
