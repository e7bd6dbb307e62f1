"""Prior distributions over network weights.

``ScaleMixtureNormal`` is the prior of Blundell et al. (2015, eq. 7):

    p(w) = π N(w | 0, σ1²) + (1 − π) N(w | 0, σ2²)

Its log density is evaluated in log space, log p = a + log(1 + e^(b − a)) with a, b the weighted
component log densities and b the narrower one, so it stays finite far in the tails, where both
component densities underflow in float32 (e.g. |w| = 40 with σ2 = e⁻⁸).
"""

from __future__ import annotations

import math
from numbers import Number

import torch
import torch.nn.functional as F
from pyro.distributions import LogNormal, Normal, TorchDistribution, constraints
from torch.distributions.utils import broadcast_all

__all__ = [
    "ScaleMixtureNormal",
    "gaussian_prior",
    "scale_mixture_prior",
    "check_prior",
    "distribution_to",
    "prior_to_spec",
    "prior_from_spec",
    "prior_parameters",
]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _check_parameter(name: str, value: torch.Tensor, low: float, high: float | None) -> None:
    """Raise ValueError unless low < value (< high) holds everywhere."""
    value = torch.as_tensor(value).detach()
    bad = ~(value > low) if high is None else ~((value > low) & (value < high))
    if bool((bad | ~torch.isfinite(value)).any()):
        where = f"in ({low}, {high})" if high is not None else f"> {low} and finite"
        raise ValueError(f"ScaleMixtureNormal: {name} must be {where}, got {value.tolist()}")


_MIN_EXPONENT, _MAX_EXPONENT = -80.0, 80.0


class _MixtureLogDensity(torch.autograd.Function):
    """log p(w) = c_a − h_a w² + log(1 + e^d), d = dc − dh w², with its gradient by hand.

    d ≤ dc is clamped below at ``floor`` (−80 unless the components' widths differ by more than
    about e^21, see ``_exponent_floor``; the value changes by < 1e−34): exp of numbers under about
    −87 gives denormals, which take a slow path on many CPUs, and log1p is slow on some CPUs for
    inputs near 1e−13, so log(1 + e^d) is computed as log of a sum (an absolute error below one
    ulp of 1). ∂/∂w = −2w (h_a + dh·σ(d)), with σ(d) = e^d / (1 + e^d) kept from the forward:
    the clamp leaves dh·σ(floor) in the slope, which the floor keeps below e^−37 h_a.
    """

    @staticmethod
    def forward(ctx, value, c_a, h_a, dc, dh, floor):
        square = value * value
        exp_d = torch.addcmul(dc, dh, square, value=-1).clamp_(min=floor).exp_()
        one_plus = exp_d + 1
        ctx.save_for_backward(value, exp_d.div_(one_plus), h_a, dh)  # σ(d)
        return one_plus.log_().add_(torch.addcmul(c_a, h_a, square, value=-1))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        value, sigmoid_d, h_a, dh = ctx.saved_tensors
        grad_value = torch.addcmul(h_a, dh, sigmoid_d).mul_(value).mul_(grad * -2)
        return grad_value, None, None, None, None, None


def _exponent_floor(h_a: torch.Tensor, dh: torch.Tensor) -> float:
    """The clamp of d for ``_MixtureLogDensity``: min(−80, −(log(h_b/h_a) + 37)).

    Clamping d at f leaves dh·σ(f) ≈ h_b e^f in the slope −2w (h_a + dh σ(d)) where its true
    value is ≈ 0; relative to h_a that is (h_b/h_a) e^f. With f = −80 this is negligible only
    while h_b/h_a = (σ_wide/σ_narrow)² is below about e^43: at σ1 = 1, σ2 = e^−40 it doubled the
    slope far from 0. The floor keeps it below e^−37 (float64 rounding) for any ratio, and stays
    −80 (no denormals) for the ratios in use (σ1/σ2 up to e^21).
    """
    log_ratio = float(torch.log1p(dh.detach().double() / h_a.detach().double()).max())
    return min(_MIN_EXPONENT, -(log_ratio + 37.0))


def _half_inverse_variance(sigma: torch.Tensor) -> torch.Tensor:
    """1/(2σ²); for a learnable σ as ½ exp(−2 log σ), whose gradient −2h/σ never forms the
    1/σ⁴ that autograd of 0.5/σ² does (it overflows float32 below σ ≈ e^−22, although log p's
    gradient is finite)."""
    if sigma.requires_grad:
        return torch.exp(sigma.log() * -2) * 0.5
    return 0.5 / sigma**2


class ScaleMixtureNormal(TorchDistribution):
    r"""Zero-mean two-component Gaussian scale mixture π·N(0,σ1²) + (1−π)·N(0,σ2²).

    ``log_prob(w) = log(π N(w|0,σ1²) + (1−π) N(w|0,σ2²))``, computed in log space.
    Parameters broadcast; ``pi`` must lie in (0, 1) and both scales must be positive, which is
    always checked at construction (a ValueError names the bad parameter).
    """

    arg_constraints = {
        "pi": constraints.interval(0.0, 1.0),
        "sigma1": constraints.positive,
        "sigma2": constraints.positive,
    }
    support = constraints.real
    has_rsample = False

    def __init__(self, pi, sigma1, sigma2, validate_args=None):
        for name, value in (("pi", pi), ("sigma1", sigma1), ("sigma2", sigma2)):
            _check_parameter(name, torch.as_tensor(value), 0.0, 1.0 if name == "pi" else None)
        self.pi, self.sigma1, self.sigma2 = broadcast_all(pi, sigma1, sigma2)
        # log(π N1) = a(w) = c_a − h_a w², log((1−π) N2) = b(w) = c_b − h_b w², ordered so that
        # h_b ≥ h_a (b is the narrower component); then log p = a + softplus(b − a) and
        # b − a ≤ c_b − c_a, so nothing overflows. Kept at the parameters' own shape: an
        # expanded prior broadcasts them instead of recomputing them per element.
        log_w1 = self.pi.log() - self.sigma1.log() - _HALF_LOG_2PI
        log_w2 = torch.log1p(-self.pi) - self.sigma2.log() - _HALF_LOG_2PI
        half1, half2 = _half_inverse_variance(self.sigma1), _half_inverse_variance(self.sigma2)
        for name, sigma, half in (("sigma1", self.sigma1, half1), ("sigma2", self.sigma2, half2)):
            if not bool(torch.isfinite(half.detach()).all()):
                smallest = math.sqrt(0.5 / torch.finfo(half.dtype).max)
                raise ValueError(
                    f"ScaleMixtureNormal: {name} = {sigma.min().item():.3g} is too small for "
                    f"{half.dtype} (1/(2σ²) overflows); use σ ≥ {smallest:.1g} or float64 "
                    "parameters")
        first_wider = half1 <= half2
        c_a = torch.where(first_wider, log_w1, log_w2)
        h_a = torch.where(first_wider, half1, half2)
        self._terms = (c_a, h_a, torch.where(first_wider, log_w2, log_w1) - c_a,
                       torch.where(first_wider, half2, half1) - h_a)
        # the hand-written gradient applies when the parameters are constants and e^(b−a)
        # cannot overflow (σ1/σ2 below about e^80)
        self._fixed = not any(t.requires_grad for t in self._terms) and bool(
            (self._terms[2] < _MAX_EXPONENT).all())
        self._floor = _exponent_floor(self._terms[1], self._terms[3]) if self._fixed else None
        scalar = all(isinstance(v, Number) for v in (pi, sigma1, sigma2))
        batch_shape = torch.Size() if scalar else self.pi.shape
        super().__init__(batch_shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(ScaleMixtureNormal, _instance)
        batch_shape = torch.Size(batch_shape)
        new.pi = self.pi.expand(batch_shape)
        new.sigma1 = self.sigma1.expand(batch_shape)
        new.sigma2 = self.sigma2.expand(batch_shape)
        new._terms, new._fixed, new._floor = self._terms, self._fixed, self._floor
        super(ScaleMixtureNormal, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def mean(self) -> torch.Tensor:
        return torch.zeros_like(self.pi)

    @property
    def variance(self) -> torch.Tensor:
        return self.pi * self.sigma1**2 + (1 - self.pi) * self.sigma2**2

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        c_a, h_a, dc, dh = self._terms
        if self._fixed and torch.broadcast_shapes(value.shape, c_a.shape) == value.shape:
            log_prob = _MixtureLogDensity.apply(value, c_a, h_a, dc, dh, self._floor)
        else:  # learnable or extreme parameters: softplus is exact and cannot overflow
            square = value * value
            log_prob = c_a - h_a * square + F.softplus(dc - dh * square)
        shape = torch.broadcast_shapes(log_prob.shape, self.batch_shape)
        return log_prob if log_prob.shape == shape else log_prob.expand(shape)

    def sample(self, sample_shape=()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            first = torch.rand(shape, dtype=self.pi.dtype, device=self.pi.device) < self.pi
            scale = torch.where(first, self.sigma1.expand(shape), self.sigma2.expand(shape))
            return torch.randn(shape, dtype=self.pi.dtype, device=self.pi.device) * scale

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        return self.pi * Normal(0.0, self.sigma1).cdf(value) + (1 - self.pi) * Normal(
            0.0, self.sigma2
        ).cdf(value)


def scale_mixture_prior(
    pi: float = 0.5, sigma1: float = 1.0, sigma2: float = math.exp(-6)
) -> ScaleMixtureNormal:
    """The scale-mixture prior with Blundell et al.'s parameters (defaults: π=½, σ1=1, σ2=e⁻⁶)."""
    return ScaleMixtureNormal(float(pi), float(sigma1), float(sigma2))


def gaussian_prior(sigma: float = 1.0) -> Normal:
    """The Gaussian prior N(0, σ²); σ must be positive."""
    if not sigma > 0 or not math.isfinite(sigma):
        raise ValueError(f"gaussian_prior: sigma must be a positive finite number, got {sigma}")
    return Normal(0.0, float(sigma))


def check_prior(prior: object, where: str = "prior", supports=(constraints.real,)
                ) -> torch.distributions.Distribution:
    """Check that ``prior`` is a univariate distribution with one of ``supports`` (default:
    the reals) and return it."""
    if not isinstance(prior, torch.distributions.Distribution):
        raise TypeError(f"{where} must be a torch/Pyro Distribution, got {type(prior).__name__}")
    if prior.event_shape != torch.Size() or prior.batch_shape != torch.Size():
        raise ValueError(
            f"{where} must be univariate with batch_shape () and event_shape (); got batch_shape "
            f"{tuple(prior.batch_shape)}, event_shape {tuple(prior.event_shape)}"
        )
    if not any(prior.support is support for support in supports):
        names = {id(constraints.real): "the reals", id(constraints.positive): "x > 0",
                 id(constraints.nonnegative): "x >= 0"}
        wanted = " or ".join(names.get(id(support), str(support)) for support in supports)
        raise ValueError(f"{where} must have support over {wanted}, got {prior.support} "
                         f"({type(prior).__name__})")
    return prior


def distribution_to(
    d: torch.distributions.Distribution, device: torch.device, validate_args: bool | None = None
):
    """The same distribution rebuilt from its arg_constraints with parameters on ``device``."""
    params = {k: torch.as_tensor(getattr(d, k)).to(device) for k in d.arg_constraints}
    return type(d)(**params, validate_args=validate_args)


def _spec_values(prior) -> tuple[str, dict] | None:
    if type(prior) is ScaleMixtureNormal:
        return "scale_mixture", {"pi": prior.pi, "sigma1": prior.sigma1, "sigma2": prior.sigma2}
    if type(prior) is Normal and bool((prior.loc == 0).all()):
        return "gaussian", {"sigma": prior.scale}
    if type(prior) is LogNormal:
        return "lognormal", {"loc": prior.loc, "scale": prior.scale}
    return None


_SPEC_BUILDERS = {
    "scale_mixture": (ScaleMixtureNormal, ("pi", "sigma1", "sigma2")),
    "gaussian": (gaussian_prior, ("sigma",)),
    "lognormal": (LogNormal, ("loc", "scale")),
}


def prior_parameters() -> dict[str, tuple[str, ...]]:
    """Each built-in prior kind and the names of its parameters."""
    return {kind: names for kind, (_, names) in _SPEC_BUILDERS.items()}


def prior_to_spec(prior: torch.distributions.Distribution) -> dict:
    """A plain dict describing a built-in scalar prior (for checkpoints and configs)."""
    found = _spec_values(prior)
    if found is None or any(torch.as_tensor(v).numel() != 1 for v in found[1].values()):
        raise ValueError(
            f"cannot describe prior {prior!r} as a spec: only scalar {sorted(_SPEC_BUILDERS)} "
            "priors can be saved in checkpoints and configs"
        )
    kind, values = found
    return {"kind": kind, **{k: float(v) for k, v in values.items()}}


def prior_from_spec(spec: dict) -> torch.distributions.Distribution:
    """Rebuild a prior from ``prior_to_spec``'s dict; unknown kinds or keys raise ValueError."""
    kind = spec.get("kind")
    if kind not in _SPEC_BUILDERS:
        raise ValueError(f"unknown prior kind {kind!r}; expected one of {sorted(_SPEC_BUILDERS)}")
    build, names = _SPEC_BUILDERS[kind]
    if set(spec) != {"kind", *names}:
        raise ValueError(f"prior {kind!r} takes exactly the keys {list(names)}, got {sorted(spec)}")
    values = [float(spec[n]) for n in names]
    if build is LogNormal and not values[1] > 0:
        raise ValueError(f"lognormal prior: scale must be positive, got {values[1]}")
    return build(*values)
