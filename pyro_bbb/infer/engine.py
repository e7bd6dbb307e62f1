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
inside a step on a GPU.

How: on the CPU the real sites under a constant Normal or scale-mixture prior go through one
compiled kernel per prior (``fused_kernel``: noise, sampling, log q and log p in one pass, the
derivatives in one more), elsewhere (or with ``compiled=False``, or without a C compiler) through
one autograd node per group with a hand-written backward (``fused_site``: about twenty torch
passes over the parameters instead of a graph of small ops per site); a single draw gives the
network 2-D weights (``F.linear``, the deterministic layer's kernel); on the eager path large
noise tensors are drawn by two generators in parallel (``noise``), and on the CPU freed memory is
kept in the process, so the step's large temporaries do not page-fault
(``noise.retain_freed_memory``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pyro.distributions.transforms import biject_to

from ..inputs import as_int
from . import fused_kernel
from .elbo import ELBOTerms
from .fused_site import FusedPrior, fused_prior, sample_sites
from .noise import PARALLEL_MIN_NUMEL, retain_freed_memory, standard_normal

__all__ = ["FastELBO", "supports_fast_elbo"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
_OWN_GROUP_NUMEL = 1 << 16


def supports_fast_elbo(model, guide) -> bool:
    """True when ``model`` is a BayesianMLP-like model and ``guide`` a matching MeanFieldGuide."""
    from ..guide import MeanFieldGuide

    needed = ("latent_shapes", "univariate_priors", "network", "likelihood")
    if not isinstance(guide, MeanFieldGuide) or not all(hasattr(model, a) for a in needed):
        return False
    return guide.site_shapes() == model.latent_shapes()


class FastELBO:
    """Callable ``(x, y, num_data) -> ELBOTerms`` averaged over ``num_particles`` draws.

    Real-valued sites whose prior is a constant Normal or scale mixture are grouped by prior
    and sampled by one fused node per group: the compiled CPU kernel (``fused_kernel``) where it
    applies and ``compiled`` is true, else the torch node (``fused_site``); other sites (a
    learned noise scale, any other prior) take the unfused expressions above.
    """

    def __init__(self, model, guide, num_particles: int = 1, compiled: bool = True):
        if not supports_fast_elbo(model, guide):
            raise ValueError("FastELBO needs a BayesianMLP and a MeanFieldGuide built from it")
        self.model, self.guide = model, guide
        self.num_particles = as_int(num_particles, "num_particles")
        self.compiled = compiled
        self._plans: dict[tuple[torch.device, bool], tuple] = {}
        if all(p.device.type == "cpu" for p in guide.parameters()):
            retain_freed_memory()

    def _plan(self, device: torch.device, compiled: bool
              ) -> tuple[dict, list[tuple[FusedPrior, list]], list]:
        """Priors on ``device``, the fused groups ``(prior, sites)`` and the other sites.

        The compiled kernel takes all sites under one prior in one node. On the eager path a
        large site is its own group (copying it into a group would cost more than the fixed
        overhead of a node saves); the small sites under one prior share a node."""
        if (device, compiled) not in self._plans:
            priors = {**self.model.univariate_priors(device),
                      **self.model.likelihood.latent_priors(device)}
            groups: dict[tuple, tuple[FusedPrior, list]] = {}
            others = []
            for site in self.guide.sites:
                fused = fused_prior(priors[site.name]) if site.is_real else None
                if fused is None:
                    others.append(site)
                    continue
                own = not compiled and math.prod(site.shape) >= _OWN_GROUP_NUMEL
                groups.setdefault((fused, site.name if own else None), (fused, []))[1].append(site)
            self._plans[device, compiled] = (priors, list(groups.values()), others)
        return self._plans[device, compiled]

    def _kernel(self, locs: dict, rhos: dict):
        """The compiled kernel where it applies: on, float32 contiguous CPU sites."""
        if not self.compiled:
            return None
        like = next(iter(locs.values()))
        lib = fused_kernel.kernel_for(like)
        if lib is None or not all(t.is_contiguous() for d in (locs, rhos) for t in d.values()):
            return None
        return lib

    def __call__(self, x: torch.Tensor, y: torch.Tensor, num_data: int | None = None
                 ) -> ELBOTerms:
        k, guide = self.num_particles, self.guide
        locs, rhos = guide.locs(), guide.rhos()
        lib = self._kernel(locs, rhos)
        priors, groups, others = self._plan(x.device, lib is not None)
        params, log_q, log_p = {}, 0.0, 0.0
        noise = self._noise(groups, others, locs, lib is not None)
        for (prior, sites), eps in zip(groups, noise, strict=False):
            site_locs, site_rhos = [locs[s.name] for s in sites], [rhos[s.name] for s in sites]
            if lib is not None:
                complexity, values, _ = fused_kernel.sample_sites(lib, prior, eps, k,
                                                                  site_locs, site_rhos)
            else:
                complexity, values = sample_sites(prior, eps, site_locs, site_rhos)
            log_q = log_q + complexity
            params.update(zip((s.name for s in sites), values, strict=True))
        for site, eps in zip(others, noise[len(groups):], strict=True):
            loc, scale = locs[site.name], F.softplus(rhos[site.name])
            value = loc + scale * eps
            log_q = log_q - 0.5 * eps.square().sum() - k * (
                scale.log().sum() + loc.numel() * _HALF_LOG_2PI)
            if not site.is_real:
                transform = biject_to(site.support)
                unconstrained, value = value, transform(value)
                log_q = log_q - transform.log_abs_det_jacobian(unconstrained, value).sum()
            log_p = log_p + priors[site.name].log_prob(value).sum()
            params[site.name] = value if k > 1 else value[0]
        log_lik = self.model.likelihood.log_prob(self.model.network(x, params), y, params).sum()
        scale = 1.0 if num_data is None else num_data / x.shape[0]
        return ELBOTerms(-scale * log_lik / k, (log_q - log_p) / k)

    def _noise(self, groups, others, locs, compiled: bool) -> list:
        """ε per fused group then per other site (K, *shape).

        Small models draw site by site in the guide's order, the draws Pyro makes: a group's ε
        is (K, n) on the eager path and, for the compiled kernel, flat, site after site, each
        site's (K, n_s) block row-major. A large model's groups are drawn in one go: by the
        compiled kernel itself (``None``) or by ``standard_normal`` (parallel on a multi-core
        CPU)."""
        k = self.num_particles
        like = next(iter(locs.values()))
        sizes = [sum(locs[s.name].numel() for s in sites) for _, sites in groups]
        if k * sum(sizes) >= PARALLEL_MIN_NUMEL:
            own = [None] * len(sizes) if compiled else [standard_normal((k, n), like)
                                                        for n in sizes]
            return own + [standard_normal((k, *locs[s.name].shape), like) for s in others]
        draws = {s.name: torch.empty((k, *locs[s.name].shape), dtype=like.dtype,
                                     device=like.device).normal_() for s in self.guide.sites}
        layout = (lambda d: d.reshape(-1)) if compiled else (lambda d: d.reshape(k, -1))
        return ([torch.cat([layout(draws[s.name]) for s in sites], dim=-1)
                 for _, sites in groups] + [draws[s.name] for s in others])
