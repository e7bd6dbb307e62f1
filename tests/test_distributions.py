"""ScaleMixtureNormal: float64 reference, tails, goodness of fit, gradients, validation."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Normal

from pyro_bbb.distributions import (
    ScaleMixtureNormal,
    gaussian_prior,
    prior_from_spec,
    prior_to_spec,
    scale_mixture_prior,
)

# The paper's grid corners: π ∈ {1/4, 1/2, 3/4}, −log σ1 ∈ {0, 1, 2}, −log σ2 ∈ {6, 7, 8}.
PARAMS = [
    (0.25, 1.0, math.exp(-6)),
    (0.5, math.exp(-1), math.exp(-7)),
    (0.75, math.exp(-2), math.exp(-8)),
]


def reference_log_prob(w: torch.Tensor, pi: float, s1: float, s2: float) -> torch.Tensor:
    """Direct float64 evaluation log(π N1 + (1−π) N2), valid where neither density underflows."""
    w = w.double()
    density = pi * Normal(0.0, s1).log_prob(w).exp() + (1 - pi) * Normal(0.0, s2).log_prob(w).exp()
    return density.log()


@pytest.mark.parametrize("pi,s1,s2", PARAMS)
def test_log_prob_matches_float64_reference(pi, s1, s2):
    w = torch.cat([torch.linspace(-3 * s1, 3 * s1, 101), torch.linspace(-5 * s2, 5 * s2, 101)])
    got = ScaleMixtureNormal(pi, s1, s2).log_prob(w).double()
    want = reference_log_prob(w, pi, s1, s2)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6 * want.abs().max().item())


@pytest.mark.parametrize("w", [40.0, -40.0, 1e3])
def test_log_prob_finite_far_in_the_tails(w):
    prior = ScaleMixtureNormal(0.5, 1.0, math.exp(-8))
    value = prior.log_prob(torch.tensor(w))
    # far out only the wide component matters: log π + log N(w | 0, σ1²), in float64
    want = math.log(0.5) - 0.5 * w**2 - 0.5 * math.log(2 * math.pi)
    assert torch.isfinite(value)
    assert value.item() == pytest.approx(want, rel=1e-6)


def test_component_order_does_not_matter():
    w = torch.cat([torch.linspace(-50, 50, 201), torch.linspace(-0.01, 0.01, 101)])
    forward = ScaleMixtureNormal(0.3, 1.0, math.exp(-7)).log_prob(w)
    swapped = ScaleMixtureNormal(0.7, math.exp(-7), 1.0).log_prob(w)
    assert torch.isfinite(swapped).all()
    torch.testing.assert_close(swapped, forward)


def test_naive_exp_then_log_would_underflow():
    # the failure mode the log-space form avoids: in float32 both densities are exactly zero
    w = torch.tensor(40.0)
    naive = 0.5 * Normal(0.0, 1.0).log_prob(w).exp() + 0.5 * Normal(0.0, math.exp(-8)).log_prob(
        w
    ).exp()
    assert naive.log().item() == -math.inf
    assert torch.isfinite(ScaleMixtureNormal(0.5, 1.0, math.exp(-8)).log_prob(w))


@pytest.mark.parametrize("pi,s1,s2", PARAMS)
def test_samples_pass_kolmogorov_smirnov(pi, s1, s2):
    # KS at α = 0.001: sup|F_n − F| < 1.95/√n fails for a correct sampler with probability 0.001
    n = 20_000
    torch.manual_seed(1)
    prior = ScaleMixtureNormal(pi, s1, s2)
    x = prior.sample((n,)).sort().values.double()
    cdf = (pi * Normal(0.0, s1).cdf(x) + (1 - pi) * Normal(0.0, s2).cdf(x)).double()
    ecdf_hi = torch.arange(1, n + 1, dtype=torch.float64) / n
    ks = torch.maximum(ecdf_hi - cdf, cdf - (ecdf_hi - 1 / n)).max().item()
    assert ks < 1.95 / math.sqrt(n)
    assert x.var().item() == pytest.approx(prior.variance.item(), rel=0.05)


def test_gradients_pass_finite_differences():
    pi = torch.tensor([0.3, 0.6], dtype=torch.float64, requires_grad=True)
    s1 = torch.tensor([1.0, 0.5], dtype=torch.float64, requires_grad=True)
    s2 = torch.tensor([0.01, 0.002], dtype=torch.float64, requires_grad=True)
    w = torch.tensor([0.003, -0.8], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda w, pi, s1, s2: ScaleMixtureNormal(pi, s1, s2).log_prob(w),
        (w, pi, s1, s2),
        eps=1e-7,
        atol=1e-6,
        rtol=1e-5,
    )


@pytest.mark.parametrize("pi,s1,s2", PARAMS + [(0.6, math.exp(-7), 1.5)])
def test_constant_parameter_gradient_passes_finite_differences(pi, s1, s2):
    # constant parameters take the hand-written gradient; it must be the exact derivative
    prior = ScaleMixtureNormal(torch.tensor(pi, dtype=torch.float64),
                               torch.tensor(s1, dtype=torch.float64),
                               torch.tensor(s2, dtype=torch.float64))
    assert prior._fixed
    w = torch.cat([torch.linspace(-3, 3, 13), torch.linspace(-0.02, 0.02, 11),
                   torch.tensor([0.0, 1e-4, 40.0])]).double().requires_grad_()
    assert torch.autograd.gradcheck(prior.log_prob, (w,), eps=1e-8, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pi,s1,s2", PARAMS)
def test_hand_written_gradient_equals_autograd_of_the_formula(pi, s1, s2):
    torch.manual_seed(0)
    w = torch.cat([torch.randn(500) * s1, torch.randn(500) * s2 * 10,
                   torch.randn(600) * 0.05]).reshape(4, 400)
    fast, slow = ScaleMixtureNormal(pi, s1, s2), ScaleMixtureNormal(pi, s1, s2)
    slow._fixed = False  # the autograd path: the same formula built from torch ops
    values = []
    for prior in (fast, slow):
        x = w.clone().requires_grad_()
        value = prior.log_prob(x)
        (grad,) = torch.autograd.grad((value * torch.linspace(-1, 2, 400)).sum(), x)
        values.append((value, grad))
    torch.testing.assert_close(values[0][0], values[1][0], rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(values[0][1], values[1][1], rtol=1e-5, atol=1e-4)


def test_learnable_parameters_keep_autograd_for_the_parameters():
    sigma1 = torch.tensor(1.0, requires_grad=True)
    prior = ScaleMixtureNormal(0.5, sigma1, math.exp(-6))
    assert not prior._fixed
    prior.log_prob(torch.tensor([0.1, 2.0])).sum().backward()
    assert sigma1.grad is not None and torch.isfinite(sigma1.grad)


@given(st.floats(-50, 50), st.floats(0.01, 0.99), st.floats(0.1, 3.0), st.floats(1e-4, 0.1))
@settings(max_examples=200, deadline=None)
def test_log_prob_bounded_by_components(w, pi, s1, s2):
    # log(π a + (1−π) b) lies between the weighted components' max and the larger density
    value = ScaleMixtureNormal(pi, s1, s2).log_prob(torch.tensor(w, dtype=torch.float64))
    log1 = Normal(0.0, s1).log_prob(torch.tensor(w, dtype=torch.float64))
    log2 = Normal(0.0, s2).log_prob(torch.tensor(w, dtype=torch.float64))
    lower = torch.maximum(math.log(pi) + log1, math.log(1 - pi) + log2)
    tol = 1e-6 * (1 + value.abs())  # the parameters are float32
    assert lower - tol <= value <= torch.maximum(log1, log2) + tol


def test_contract_shape_expand_support():
    prior = ScaleMixtureNormal(0.5, 1.0, 0.01)
    assert prior.batch_shape == torch.Size() and prior.event_shape == torch.Size()
    assert not prior.has_rsample
    expanded = prior.expand((3, 2))
    assert expanded.batch_shape == (3, 2)
    assert expanded.sample((5,)).shape == (5, 3, 2)
    assert expanded.log_prob(torch.zeros(3, 2)).shape == (3, 2)
    assert prior.support.check(torch.tensor(1e9))
    batched = ScaleMixtureNormal(torch.tensor([0.2, 0.8]), 1.0, 0.01)
    assert batched.batch_shape == (2,)


@pytest.mark.parametrize(
    "args,match",
    [
        ((0.0, 1.0, 0.1), "pi must be in"),
        ((1.0, 1.0, 0.1), "pi must be in"),
        ((1.5, 1.0, 0.1), "pi must be in"),
        ((0.5, 0.0, 0.1), "sigma1 must be"),
        ((0.5, 1.0, -0.1), "sigma2 must be"),
        ((0.5, float("nan"), 0.1), "sigma1 must be"),
        ((0.5, float("inf"), 0.1), r"sigma1 must be > 0.0 and finite, got inf"),
        ((0.5, 1.0, float("inf")), r"sigma2 must be > 0.0 and finite"),
        ((0.5, 1.0, 1e-30), r"sigma2 = 1e-30 is too small for torch.float32 .*σ ≥ 4e-20"),
        ((0.5, 1e-25, 1.0), r"sigma1 = 1e-25 is too small"),
    ],
)
def test_bad_parameters_raise_value_error(args, match):
    with pytest.raises(ValueError, match=match):
        ScaleMixtureNormal(*args)


def test_gaussian_prior_and_specs_round_trip():
    with pytest.raises(ValueError, match="sigma must be a positive"):
        gaussian_prior(0.0)
    for prior in (scale_mixture_prior(0.25, 0.5, 1e-3), gaussian_prior(0.3)):
        rebuilt = prior_from_spec(prior_to_spec(prior))
        w = torch.linspace(-2, 2, 11)
        torch.testing.assert_close(rebuilt.log_prob(w), prior.log_prob(w))
    with pytest.raises(ValueError, match="unknown prior kind 'laplace'"):
        prior_from_spec({"kind": "laplace", "scale": 1.0})
    with pytest.raises(ValueError, match="takes exactly the keys"):
        prior_from_spec({"kind": "gaussian", "sigma": 1.0, "sigmaa": 2.0})
