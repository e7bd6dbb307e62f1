"""FastELBO: Trace_ELBO's estimator for a BayesianMLP and its MeanFieldGuide, without tracing.

The Pyro path (``elbo_terms``) builds two traces per step and re-derives log q(w) from w. This
engine computes the same Monte Carlo estimate directly, for K particles at once:

    ε ~ N(0, I) per site (same order and shapes as the guide draws them),  σ = softplus(ρ)
    u = μ + σ ε,  w = T(u)  (T = identity for weights, biject_to(support) for e.g. the noise)
    log q(w) = Σ (−½ ε² − log σ − ½ log 2π) − log |det ∂T/∂u|   (from ε: no (w − μ)/σ)
    log p(w) = Σ prior.log_prob(w)      (the unexpanded univariate prior, broadcast over w)
    data     = −(N/B) Σ_n log p(y_n | x_n, w)

Every quantity is the one Pyro computes: for the same random draws the values and the gradients
match ``elbo_terms`` to float tolerance (tests/test_engine.py). No host synchronisation happens
inside a step.
"""

from __future__ import annotations

import math

import torch
from pyro.distributions.transforms import biject_to

from .elbo import ELBOTerms

__all__ = ["FastELBO", "supports_fast_elbo"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def supports_fast_elbo(model, guide) -> bool:
    """True when ``model`` is a BayesianMLP-like model and ``guide`` a matching MeanFieldGuide."""
    from ..guide import MeanFieldGuide

    needed = ("site_shapes", "univariate_priors", "network", "likelihood")
    if not isinstance(guide, MeanFieldGuide) or not all(hasattr(model, a) for a in needed):
        return False
    expected = {**model.site_shapes(), **{n: () for n in model.likelihood.latent_priors()}}
    return {s.name: tuple(s.shape) for s in guide.sites} == expected


class FastELBO:
    """Callable ``(x, y, num_data) -> ELBOTerms`` averaged over ``num_particles`` draws."""

    def __init__(self, model, guide, num_particles: int = 1):
        if not supports_fast_elbo(model, guide):
            raise ValueError("FastELBO needs a BayesianMLP and a MeanFieldGuide built from it")
        self.model, self.guide, self.num_particles = model, guide, num_particles

    def __call__(self, x: torch.Tensor, y: torch.Tensor, num_data: int | None = None
                 ) -> ELBOTerms:
        k, guide = self.num_particles, self.guide
        priors = {**self.model.univariate_priors(x.device),
                  **self.model.likelihood.latent_priors(x.device)}
        locs, scales = guide.locs(), guide.scales()
        params, log_q, log_p = {}, 0.0, 0.0
        for site in guide.sites:
            loc, scale = locs[site.name], scales[site.name]
            eps = torch.empty((k, *loc.shape), dtype=loc.dtype, device=loc.device).normal_()
            value = loc + scale * eps
            log_q = log_q - 0.5 * eps.square().sum() - k * (
                scale.log().sum() + loc.numel() * _HALF_LOG_2PI)
            if not site.is_real:
                transform = biject_to(site.support)
                unconstrained, value = value, transform(value)
                log_q = log_q - transform.log_abs_det_jacobian(unconstrained, value).sum()
            log_p = log_p + priors[site.name].log_prob(value).sum()
            params[site.name] = value
        log_lik = self.model.likelihood.log_prob(self.model.network(x, params), y, params).sum()
        scale = 1.0 if num_data is None else num_data / x.shape[0]
        return ELBOTerms(-scale * log_lik / k, (log_q - log_p) / k)
