"""One autograd node for all weight sites under one prior: sample, log q, log p, by hand.

The sites' locs and ρs are laid end to end in flat vectors μ, ρ of length n; with σ =
softplus(ρ), noise ε of shape (K, n) and a constant univariate prior p the forward pass returns

    w = μ + σ ε   (cut back into the sites' shapes),
    c = Σ_k Σ_i [−½ ε_ki² − log σ_i − ½ log 2π] − Σ_k Σ_i log p(w_ki)     (log q − log p),

and the backward pass, given ∂L/∂w = g and ∂L/∂c = γ, with d_ki = g_ki − γ (log p)'(w_ki):

    ∂L/∂μ_i = Σ_k d_ki,      ∂L/∂ρ_i = (Σ_k d_ki ε_ki − γ K / σ_i) · sigmoid(ρ_i).

These are the derivatives autograd takes through the unfused expressions (tests/test_engine.py
checks both against Pyro's Trace_ELBO on the same noise). One node for all sites instead of a
chain of small ops per site keeps a step to about twenty passes over the parameters, most of
them in place. The prior enters only through a ``FusedPrior``: Σ log p(w) and (log p)'(w), known
for Normal and the scale mixture with constant scalar parameters (``fused_prior`` gives ``None``
for any other prior, and the engine takes the unfused path for its sites).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from pyro.distributions import Normal

from ..distributions import ScaleMixtureNormal

__all__ = ["FusedPrior", "fused_prior", "sample_sites"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
_MIN_EXPONENT = -80.0


@dataclass(frozen=True)
class FusedPrior:
    """A constant univariate prior as plain numbers; ``self(w) -> (Σ log p(w), (log p)'(w))``.

    ``normal``: (m, s), log p = −(w − m)²/(2s²) − log s − ½ log 2π, slope −(w − m)/s².
    ``mixture``: (c_a, h_a, dc, dh) of ScaleMixtureNormal, log p = c_a − h_a w² + log(1 + e^d)
    with d = dc − dh w² clamped below at −80 (as ScaleMixtureNormal.log_prob does for the
    mixtures ``fused_prior`` accepts); slope
    −2w (h_a + dh sigmoid(d)) = −2w (h_a + h_b e^d) / (1 + e^d), h_b = h_a + dh.
    """

    kind: str
    params: tuple[float, ...]

    @property
    def kernel_kind(self) -> int:
        """The prior's code in the compiled kernel (``fused_kernel``): 0 Normal, 1 mixture."""
        return 0 if self.kind == "normal" else 1

    @functools.cached_property
    def kernel_params(self) -> torch.Tensor:
        """``params`` as the float64 vector the compiled kernel reads."""
        return torch.tensor(self.params, dtype=torch.float64)

    def __call__(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.kind == "normal":
            m, s = self.params
            centred = w - m
            total = centred.square().sum() * (-0.5 / s**2) - w.numel() * (
                math.log(s) + _HALF_LOG_2PI)
            return total, centred.mul_(-1.0 / s**2)
        c_a, h_a, dc, dh = self.params
        exp_d = torch.addcmul(w.new_full((), dc), w, w, value=-dh).clamp_(min=_MIN_EXPONENT).exp_()
        one_plus = exp_d + 1
        # h_a + dh σ(d) = (h_a + h_b e^d) / (1 + e^d), h_b = h_a + dh: two positive terms, no
        # cancellation in float32 when the components' 1/(2σ²) differ by orders of magnitude
        slope = exp_d.mul_(h_a + dh).add_(h_a).div_(one_plus).mul_(-2.0).mul_(w)
        flat = w.reshape(-1)
        total = one_plus.log_().sum() - h_a * torch.dot(flat, flat) + c_a * w.numel()
        return total, slope


def fused_prior(prior) -> FusedPrior | None:
    """The ``FusedPrior`` of a constant scalar Normal or ScaleMixtureNormal, else ``None``."""
    if prior.batch_shape != torch.Size():
        return None
    if type(prior) is Normal and not (prior.loc.requires_grad or prior.scale.requires_grad):
        return FusedPrior("normal", (float(prior.loc), float(prior.scale)))
    if type(prior) is ScaleMixtureNormal and prior._fixed and prior._floor == _MIN_EXPONENT:
        # a wider clamp (components' widths apart by more than about e^21) takes the plain path
        return FusedPrior("mixture", tuple(float(t) for t in prior._terms))
    return None


class _SampleSites(torch.autograd.Function):
    @staticmethod
    def forward(ctx, prior, eps, shapes, *locs_and_rhos):
        m = len(shapes)
        loc, rho = (torch.cat([t.reshape(-1) for t in ts]) if m > 1 else ts[0].reshape(-1)
                    for ts in (locs_and_rhos[:m], locs_and_rhos[m:]))
        scale = F.softplus(rho)
        value = torch.addcmul(loc, scale, eps)
        k, flat = eps.shape[0], eps.view(-1)
        log_prior, slope = prior(value)
        log_q = (torch.dot(flat, flat) * -0.5 - k * scale.log().sum()
                 - k * loc.numel() * _HALF_LOG_2PI)
        ctx.save_for_backward(rho, scale, eps, slope)
        ctx.sizes, ctx.shapes = [math.prod(s) for s in shapes], shapes
        lead = () if k == 1 else (k,)  # one draw: the sites' own shapes
        pieces = value.split(ctx.sizes, dim=1)
        return (log_q - log_prior,
                *(p.reshape(*lead, *s) for p, s in zip(pieces, shapes, strict=True)))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_complexity, *grad_values):
        rho, scale, eps, slope = ctx.saved_tensors
        k = eps.shape[0]
        if len(grad_values) == 1 and grad_values[0] is not None:  # one site: one pass
            d = torch.addcmul(grad_values[0].reshape(k, -1), slope, -grad_complexity)
        else:  # saved tensors stay intact: backward may run twice
            d = slope * -grad_complexity
            for piece, grad in zip(d.split(ctx.sizes, dim=1), grad_values, strict=True):
                if grad is not None:
                    piece.add_(grad.reshape(k, -1))
        sigmoid = torch.sigmoid(rho)
        if k == 1:
            grad_loc, grad_rho = d[0], d[0] * eps[0]
        else:
            grad_loc, grad_rho = d.sum(0), d.mul_(eps).sum(0)
        # (Σ d ε − γK/σ) sigmoid(ρ), with the division done on the sigmoid's buffer
        grad_rho.mul_(sigmoid).sub_(sigmoid.div_(scale).mul_(grad_complexity * k))
        grads = [g.view(s) for flat in (grad_loc, grad_rho)
                 for g, s in zip(flat.split(ctx.sizes), ctx.shapes, strict=True)]
        return (None, None, None, *grads)


def sample_sites(prior: FusedPrior, eps: torch.Tensor, locs: list[torch.Tensor],
                 rhos: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``(log q(w) − log p(w), [w per site])`` for flat noise ``eps`` of shape (K, n)."""
    complexity, *values = _SampleSites.apply(prior, eps, [tuple(t.shape) for t in locs],
                                             *locs, *rhos)
    return complexity, values
