"""MeanFieldGuide: the variational posterior q(w|θ) of Bayes by Backprop.

Every latent site gets an independent Gaussian in unconstrained space,

    q(w) = Π_i N(w_i | μ_i, σ_i²),   σ_i = softplus(ρ_i) = log(1 + exp(ρ_i)),

sampled by reparameterisation w = μ + softplus(ρ) ⊙ ε, ε ~ N(0, I). Sites with a constrained
support (a learned noise scale) are mapped through ``biject_to(support)``, as in Pyro's autoguides.
The guide finds the model's sites by tracing it once; it never imports the model's code.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.distributions.transforms import biject_to
from pyro.poutine.util import prune_subsample_sites
from torch import nn
from torch.distributions import constraints

from .inputs import as_int

__all__ = ["MeanFieldGuide", "GuideSite"]


@dataclass(frozen=True)
class GuideSite:
    """What the guide knows about one latent site of the model."""

    name: str
    batch_shape: torch.Size
    event_shape: torch.Size
    support: constraints.Constraint

    @property
    def shape(self) -> torch.Size:
        return self.batch_shape + self.event_shape

    @property
    def is_real(self) -> bool:
        support = self.support
        while isinstance(support, constraints.independent):
            support = support.base_constraint
        return type(support) is type(constraints.real)  # survives deepcopy and pickling


def _key(name: str) -> str:
    return name.replace(".", "__")


def _default_loc(site: GuideSite, prior: torch.distributions.Distribution) -> torch.Tensor:
    """Like a standard layer: U(±1/√fan_in) for matrices, 0 for vectors, prior median else."""
    shape = site.shape
    if site.is_real and len(shape) >= 2:
        bound = 1.0 / math.sqrt(math.prod(shape[1:]))
        return torch.empty(shape).uniform_(-bound, bound)
    if site.is_real:
        return torch.zeros(shape)
    draws = prior.sample((101,)).median(0).values
    return biject_to(site.support).inv(draws).detach()


class MeanFieldGuide(nn.Module):
    """Mean-field Gaussian guide with parameters μ ("loc") and ρ ("rho") per latent site.

    Args:
        model: a Pyro model; traced once with ``example_args`` (default: ``model.example_args()``).
        init_rho: initial ρ of every site; the default −5 gives σ = softplus(−5) ≈ 6.7e−3.
        init_loc_fn: optional ``fn(site, prior) -> Tensor`` giving the initial loc of each site
            in unconstrained space.
    """

    def __init__(
        self,
        model: Callable,
        *example_args,
        init_rho: float = -5.0,
        init_loc_fn: Callable | None = None,
        **example_kwargs,
    ):
        super().__init__()
        if not example_args and hasattr(model, "example_args"):
            example_args = model.example_args()
        if not math.isfinite(init_rho):
            raise ValueError(f"init_rho must be finite, got {init_rho}")
        self.init_rho = float(init_rho)
        self.sites: list[GuideSite] = []
        self.loc = nn.ParameterDict()
        self.rho = nn.ParameterDict()
        init_loc_fn = init_loc_fn or _default_loc
        with torch.no_grad(), poutine.block():
            trace = poutine.trace(model).get_trace(*example_args, **example_kwargs)
        for name, node in prune_subsample_sites(trace).nodes.items():
            if node["type"] != "sample" or node["is_observed"]:
                continue
            if node["cond_indep_stack"]:
                raise NotImplementedError(
                    f"site {name!r} is a local latent variable inside a plate; the mean-field "
                    "guide handles global latent sites only"
                )
            fn = node["fn"]
            site = GuideSite(name, fn.batch_shape, fn.event_shape, fn.support)
            if fn.support.is_discrete:
                raise NotImplementedError(f"site {name!r} is discrete; the guide is continuous")
            loc = torch.as_tensor(init_loc_fn(site, fn), dtype=torch.get_default_dtype())
            if loc.shape != site.shape:
                raise ValueError(f"init_loc_fn gave shape {tuple(loc.shape)} for site {name!r} "
                                 f"of shape {tuple(site.shape)}")
            self.sites.append(site)
            self.loc[_key(name)] = nn.Parameter(loc.clone())
            self.rho[_key(name)] = nn.Parameter(torch.full(site.shape, float(init_rho)))
        if not self.sites:
            raise ValueError("the model has no latent sample sites for the guide to fit")

    @property
    def site_names(self) -> list[str]:
        return [site.name for site in self.sites]

    def site_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of every site the guide covers (in the model's order)."""
        return {site.name: tuple(site.shape) for site in self.sites}

    def locs(self) -> dict[str, torch.Tensor]:
        """μ per site (unconstrained space)."""
        return {s.name: self.loc[_key(s.name)] for s in self.sites}

    def rhos(self) -> dict[str, torch.Tensor]:
        """ρ per site (σ = softplus(ρ))."""
        return {s.name: self.rho[_key(s.name)] for s in self.sites}

    def scales(self) -> dict[str, torch.Tensor]:
        """σ = softplus(ρ) per site (unconstrained space)."""
        return {s.name: F.softplus(self.rho[_key(s.name)]) for s in self.sites}

    def _q(self, site: GuideSite, loc: torch.Tensor, scale: torch.Tensor):
        q = dist.Normal(loc, scale, validate_args=False)
        if not site.is_real:
            q = dist.TransformedDistribution(q, [biject_to(site.support)], validate_args=False)
        return q.to_event(len(site.event_shape))

    def forward(self, *args, **kwargs) -> dict[str, torch.Tensor]:
        """Sample every latent site from q; arguments are the model's and are ignored."""
        locs, scales = self.locs(), self.scales()
        return {s.name: pyro.sample(s.name, self._q(s, locs[s.name], scales[s.name]))
                for s in self.sites}

    def _constrain(self, site: GuideSite, value: torch.Tensor) -> torch.Tensor:
        return value if site.is_real else biject_to(site.support)(value)

    @torch.no_grad()
    def sample_posterior(
        self, num_samples: int, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """``num_samples`` draws of every site from q: dict name → (num_samples, *site shape)."""
        num_samples = as_int(num_samples, "num_samples")
        locs, scales = self.locs(), self.scales()
        draws = {}
        for s in self.sites:
            loc = locs[s.name]
            eps = torch.randn((num_samples, *loc.shape), generator=generator, device=loc.device,
                              dtype=loc.dtype)
            draws[s.name] = self._constrain(s, loc + scales[s.name] * eps)
        return draws

    @torch.no_grad()
    def median(self) -> dict[str, torch.Tensor]:
        """The posterior median of every site (μ mapped to the site's support)."""
        return {s.name: self._constrain(s, self.loc[_key(s.name)]).clone() for s in self.sites}

    def signal_to_noise(self) -> dict[str, torch.Tensor]:
        """|μ| / σ per site, the quantity Blundell et al. prune by."""
        with torch.no_grad():
            scales = self.scales()
            return {n: loc.abs() / scales[n] for n, loc in self.locs().items()}
