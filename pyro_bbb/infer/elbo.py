"""The ELBO of Trace_ELBO, split into its two terms.

For guide draws w ~ q(w|θ) (``num_particles`` of them, vectorised in one plate):

    data        = E_q[−log p(D|w)]            (the expected negative log-likelihood)
    complexity  = E_q[log q(w|θ) − log p(w)]  (the Monte Carlo KL term)
    −ELBO       = data + complexity

Every guide site is reparameterised, so ``data + complexity`` is the same differentiable loss
(same value and gradients for the same random draws) as ``pyro.infer.Trace_ELBO``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import pyro
import torch
from pyro import poutine
from pyro.distributions.util import scale_and_mask
from pyro.poutine.util import prune_subsample_sites

from ..inputs import as_int

__all__ = ["ELBOTerms", "elbo_terms"]


class ELBOTerms(NamedTuple):
    data: torch.Tensor
    complexity: torch.Tensor

    @property
    def loss(self) -> torch.Tensor:
        """−ELBO = data + complexity."""
        return self.data + self.complexity


def _log_prob_sum(site: dict) -> torch.Tensor:
    log_p = site["fn"].log_prob(site["value"])
    return scale_and_mask(log_p, site["scale"], site["mask"]).sum()


def elbo_terms(
    model: Callable,
    guide: Callable,
    *args,
    num_particles: int = 1,
    max_plate_nesting: int = 1,
    **kwargs,
) -> ELBOTerms:
    """Monte Carlo estimate of (data, complexity), averaged over ``num_particles`` draws.

    Particles are drawn in one go inside ``pyro.plate("num_particles_vectorized", K)`` at dim
    −(max_plate_nesting + 1), exactly as Trace_ELBO(vectorize_particles=True) does.
    """
    num_particles = as_int(num_particles, "num_particles")
    if num_particles > 1:
        plate = pyro.plate("num_particles_vectorized", num_particles, dim=-(max_plate_nesting + 1))
        model, guide = plate(model), plate(guide)
    guide_trace = prune_subsample_sites(poutine.trace(guide).get_trace(*args, **kwargs))
    model_trace = prune_subsample_sites(
        poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
    )
    data = complexity = 0.0
    for site in model_trace.nodes.values():
        if site["type"] == "sample":
            if site["is_observed"]:
                data = data - _log_prob_sum(site)
            else:
                complexity = complexity - _log_prob_sum(site)
    for site in guide_trace.nodes.values():
        if site["type"] == "sample" and not site["is_observed"]:
            complexity = complexity + _log_prob_sum(site)
    return ELBOTerms(torch.as_tensor(data) / num_particles,
                     torch.as_tensor(complexity) / num_particles)
