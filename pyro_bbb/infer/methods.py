"""Other inference methods on the same BayesianMLP, each returning draws in the one format.

Every runner takes ``(model, x, y, *, seed, ...)`` and returns a :class:`MethodResult` whose
``draws`` is a dict ``site name → tensor (S, *site shape)``: the format that
``predict.posterior_predictive``, ``predict.log_likelihood``, metrics and ArviZ export take.

==============  ==================================================================  ============
name            method                                                              draws S
==============  ==================================================================  ============
nuts            NUTS (pyro.infer.MCMC), chains run one after another                chains·draws
normal          Pyro AutoNormal (mean field, a cross-check of our guide)            num_samples
lowrank         Pyro AutoLowRankMultivariateNormal                                  num_samples
delta / map     Pyro AutoDelta: MAP, the mode of p(w | D) ∝ p(D | w) p(w)           num_samples
bbb             Bayes by Backprop: our MeanFieldGuide + fit, the model's own prior  num_samples
bbb_mixture     the same, the model rebuilt with the scale-mixture prior            num_samples
deterministic   plain network, maximum likelihood (MSE / cross-entropy)             num_samples
dropout         MC dropout (Gal & Ghahramani 2016)                                  num_samples
ensemble        deep ensemble (Lakshminarayanan et al. 2017), one draw per member   num_members
==============  ==================================================================  ============

MCMC draws are flattened chain-major: row ``c·D + d`` is draw d of chain c, and
``extras["num_chains"]`` says C, so ``diagnostics.function_space_summary(model, draws, x,
chains=C)`` recovers the (chain, draw) layout. Point estimates (delta, deterministic) repeat one
point S times: their epistemic spread is zero.

The non-Bayesian networks (deterministic, dropout, ensemble) are plain tensors named like the
model's sites, evaluated by ``model.network``; they are trained to maximise the likelihood
−(1/N) Σ log p(y_n | f(x_n; w)) (for a fixed-noise Gaussian this is the MSE up to a constant;
a learned-noise Gaussian also fits σ by maximum likelihood), plus ``weight_decay``·‖w‖².
An MC-dropout draw folds one dropout mask into the weights: with mask m_j ~ Bernoulli(1 − p) on
the inputs of layer l ≥ 1, h Wᵀ with h ← h ⊙ m / (1 − p) equals h (W diag(m) / (1 − p))ᵀ, so a
draw is W with the dropped input columns zeroed and the rest rescaled (the weight-space view of
Gal & Ghahramani). One mask is shared by all inputs of a draw.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyro
import torch
from pyro import poutine
from pyro.infer import MCMC, NUTS, SVI, Trace_ELBO
from pyro.infer.autoguide import AutoDelta, AutoLowRankMultivariateNormal, AutoNormal
from torch.distributions import biject_to
from tqdm import tqdm

from ..distributions import scale_mixture_prior
from ..guide import MeanFieldGuide
from ..inputs import as_features, as_int, as_targets
from ..model import ACTIVATIONS, BayesianMLP, site_names
from .fit import NonFiniteLossError, fit

__all__ = [
    "MethodResult",
    "METHODS",
    "method_names",
    "run_method",
    "run_nuts",
    "run_autoguide",
    "run_bbb",
    "run_bbb_mixture",
    "with_prior",
    "run_deterministic",
    "run_mc_dropout",
    "run_ensemble",
]


@dataclass
class MethodResult:
    """Posterior draws (dict site → (S, *shape)), training wall time and method extras.

    ``extras`` holds what only some methods have: ``num_chains`` and ``divergences`` (NUTS), the
    fitted guide or final loss (VI), per-member losses (ensemble).
    """

    name: str
    draws: dict[str, torch.Tensor]
    train_seconds: float
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def num_samples(self) -> int:
        return next(iter(self.draws.values())).shape[0]


#: number settings: name → (test on a finite real, what the message says it must be)
_NUMBERS = {
    "lr": (lambda v: v > 0, "a positive number"),
    "lr_decay": (lambda v: v > 0, "a positive number"),
    "init_scale": (lambda v: v > 0, "a positive number"),
    "weight_decay": (lambda v: v >= 0, "a finite number >= 0"),
    "target_accept_prob": (lambda v: 0 < v < 1, "a number in (0, 1)"),
    "p": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "init_rho": (lambda v: True, "a finite number"),
}
#: int settings that may be 0 (every other int setting must be >= 1)
_ZERO_OK = ("warmup", "seed")


def _check_settings(**settings) -> None:
    """ValueError naming the first bad setting: those in ``_NUMBERS`` by their rule, the rest
    ints >= 1 (>= 0 for ``_ZERO_OK``); ``batch_size=None`` (full batch) passes."""
    for name, value in settings.items():
        if name in _NUMBERS:
            test, what = _NUMBERS[name]
            real = isinstance(value, numbers.Real) and not isinstance(value, bool)
            if not (real and math.isfinite(value) and test(value)):
                raise ValueError(f"{name} must be {what}, got {value!r}")
        elif not (name == "batch_size" and value is None):
            as_int(value, name, 0 if name in _ZERO_OK else 1)


def _data(model, x, y) -> tuple[torch.Tensor, torch.Tensor]:
    x = as_features(x, model.input_size)
    return x, as_targets(y, model.likelihood, x.shape[0])


def _latent_shapes(model) -> dict[str, tuple[int, ...]]:
    """Shapes of every latent site: weights and biases, then likelihood latents (e.g. noise)."""
    shapes = dict(model.site_shapes())
    for name, prior in model.likelihood.latent_priors().items():
        shapes[name] = tuple(prior.batch_shape + prior.event_shape)
    return shapes


def _repeat(point: Mapping[str, torch.Tensor], num_samples: int) -> dict[str, torch.Tensor]:
    return {k: v.detach().unsqueeze(0).repeat(num_samples, *([1] * v.dim()))
            for k, v in point.items()}


# --------------------------------------------------------------------------- NUTS


def _potential(model, x: torch.Tensor, y: torch.Tensor) -> tuple[Callable, dict[str, Any]]:
    """U(θ) = −log p(y | x, w) − log p(w) in pure torch, with likelihood latents (e.g. a learned
    noise) in unconstrained space u (value = T(u), adding log|det ∂T/∂u|): the same density as
    the Pyro model, without tracing it at every leapfrog step. Returns U and the transforms."""
    priors = model.site_priors(x.device)
    latents = model.likelihood.latent_priors(x.device)
    transforms = {name: biject_to(prior.support) for name, prior in latents.items()}

    def potential(params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        values = dict(params)
        log_joint = sum(prior.log_prob(params[name]).sum() for name, prior in priors.items())
        for name, prior in latents.items():
            u = params[name]
            value = transforms[name](u)
            values[name] = value
            log_joint = (log_joint + prior.log_prob(value).sum()
                         + transforms[name].log_abs_det_jacobian(u, value).sum())
        f = model.network(x, values)
        return -(log_joint + model.likelihood.log_prob(f, y, values).sum())

    return potential, transforms


def run_nuts(
    model,
    x,
    y,
    *,
    num_samples: int = 200,
    warmup: int = 200,
    num_chains: int = 2,
    seed: int = 0,
    target_accept_prob: float = 0.8,
    max_tree_depth: int = 10,
    progress: bool = False,
) -> MethodResult:
    """NUTS (Hoffman & Gelman 2014) on the full-data posterior p(w | D), ``num_chains`` chains.

    The potential −log p(D, w) is the model's density written in torch (``_potential``; a test
    checks it against the Pyro trace), ~10× faster than re-tracing the Pyro model per leapfrog
    step. Chains run one after another in this process (no multiprocessing), chain c seeded with
    ``seed + c`` and started from nn.Linear-style random weights (latents at their prior median).
    Draws are flattened chain-major (see the module docstring); ``extras["divergences"]`` is the
    total number of divergent transitions after warmup, ``extras["divergences_per_chain"]`` the
    per-chain counts, ``extras["num_chains"]`` the number of chains. ``progress`` shows Pyro's
    MCMC bar, which Pyro itself hides when the ``CI`` environment variable is set.
    """
    _check_settings(num_samples=num_samples, warmup=warmup, num_chains=num_chains, seed=seed,
                    target_accept_prob=target_accept_prob, max_tree_depth=max_tree_depth)
    x, y = _data(model, x, y)
    potential, transforms = _potential(model, x, y)
    chains, divergences = [], []
    start = time.perf_counter()
    for chain in range(num_chains):
        pyro.set_rng_seed(seed + chain)
        init = _init_point(model, torch.Generator().manual_seed(seed + chain))
        kernel = NUTS(potential_fn=potential, target_accept_prob=target_accept_prob,
                      max_tree_depth=max_tree_depth)
        mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=warmup, num_chains=1,
                    initial_params=init, disable_progbar=not progress)
        mcmc.run()
        samples = {k: v.detach() for k, v in mcmc.get_samples().items()}
        for name, transform in transforms.items():
            samples[name] = transform(samples[name])
        chains.append(samples)
        diag = mcmc.diagnostics().get("divergences", {})
        divergences.append(sum(len(v) for v in diag.values()))
    seconds = time.perf_counter() - start
    draws = {name: torch.cat([c[name] for c in chains]) for name in chains[0]}
    return MethodResult("nuts", draws, seconds, {
        "num_chains": num_chains,
        "divergences": int(sum(divergences)),
        "divergences_per_chain": divergences,
    })


# --------------------------------------------------------------------------- Pyro autoguides


def _layer_init(site_name: str, shape: tuple[int, ...], fan_in: dict[str, int],
                generator: torch.Generator) -> torch.Tensor | None:
    """PyTorch's nn.Linear default: U(−1/√fan_in, 1/√fan_in) for weights and biases."""
    if site_name not in fan_in:
        return None
    bound = 1.0 / math.sqrt(fan_in[site_name])
    return (torch.rand(shape, generator=generator) * 2 - 1) * bound


def _fan_in(model) -> dict[str, int]:
    out = {}
    for i, d_in in enumerate(model.layer_sizes[:-1]):
        weight, bias = site_names(i)
        out[weight] = out[bias] = d_in
    return out


def _autoguide_init(model, seed: int) -> Callable:
    """init_loc_fn for autoguides: nn.Linear-style weights (an all-zero net has zero gradients
    for every hidden weight), the prior median for other sites."""
    generator = torch.Generator().manual_seed(seed)
    fan_in = _fan_in(model)

    def init(site):
        value = _layer_init(site["name"], tuple(site["fn"].shape()), fan_in, generator)
        if value is None:
            return pyro.infer.autoguide.initialization.init_to_median(site)
        return value

    return init


_AUTOGUIDES = {"normal": AutoNormal, "lowrank": AutoLowRankMultivariateNormal,
               "delta": AutoDelta}


def run_autoguide(
    model,
    x,
    y,
    *,
    kind: str = "normal",
    steps: int = 2000,
    lr: float = 0.01,
    lr_decay: float = 0.1,
    batch_size: int | None = None,
    num_particles: int = 1,
    num_samples: int = 200,
    init_scale: float = 0.01,
    seed: int = 0,
    progress: bool = False,
) -> MethodResult:
    """SVI with a Pyro autoguide: ``kind`` "normal" (AutoNormal), "lowrank"
    (AutoLowRankMultivariateNormal) or "delta" (AutoDelta, i.e. MAP: maximise
    log p(D | w) + log p(w)).

    Minimises Trace_ELBO with ClippedAdam whose learning rate decays geometrically from ``lr`` to
    ``lr · lr_decay`` over ``steps`` steps (the decay removes most of the SGD jitter at the end).
    ``batch_size=None`` is full batch. Autoguides keep their parameters in Pyro's global param
    store: it is cleared first, and the guide is returned in ``extras["guide"]``. ``progress``
    shows a bar over the steps.
    """
    if kind not in _AUTOGUIDES:
        raise ValueError(f"kind must be one of {sorted(_AUTOGUIDES)}, got {kind!r}")
    _check_settings(steps=steps, lr=lr, lr_decay=lr_decay, batch_size=batch_size,
                    num_particles=num_particles, num_samples=num_samples,
                    init_scale=init_scale, seed=seed)
    x, y = _data(model, x, y)
    n = x.shape[0]
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    init = _autoguide_init(model, seed)
    if kind == "delta":
        guide = AutoDelta(model, init_loc_fn=init)
    else:
        guide = _AUTOGUIDES[kind](model, init_loc_fn=init, init_scale=init_scale)
    optim = pyro.optim.ClippedAdam({"lr": lr, "lrd": lr_decay ** (1.0 / steps)})
    svi = SVI(model, guide, optim, Trace_ELBO(num_particles=num_particles))
    batch = n if batch_size is None else min(batch_size, n)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    start = time.perf_counter()
    for step in _bar(range(1, steps + 1), kind, progress):
        rows = torch.randperm(n, generator=generator)[:batch] if batch < n else None
        try:
            loss = (svi.step(x, y) if rows is None
                    else svi.step(x[rows], y[rows], num_data=n))
        except ValueError as err:  # after step 1: a parameter left its support
            if step == 1:
                raise
            raise _diverged("a guide parameter became invalid (e.g. a scale underflowed to 0)",
                            step, (step - 1) * batch // n + 1, lr) from err
        if not math.isfinite(loss):
            raise _diverged(f"the loss was {loss}", step, (step - 1) * batch // n + 1, lr)
        losses.append(loss)
    draws = _autoguide_draws(guide, x, y, 1 if kind == "delta" else num_samples)
    if kind == "delta":
        draws = _repeat({k: v[0] for k, v in draws.items()}, num_samples)
    seconds = time.perf_counter() - start
    name = {"normal": "normal", "lowrank": "lowrank", "delta": "delta"}[kind]
    return MethodResult(name, draws, seconds, {"guide": guide, "final_loss": losses[-1]})


@torch.no_grad()
def _autoguide_draws(guide, x, y, num_samples: int) -> dict[str, torch.Tensor]:
    samples = []
    with poutine.block():
        for _ in range(num_samples):
            samples.append({k: v.detach() for k, v in guide(x, y).items()})
    return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}


# --------------------------------------------------------------------------- Bayes by Backprop


def run_bbb(
    model,
    x,
    y,
    *,
    epochs: int = 1000,
    batch_size: int = 128,
    lr: float = 0.01,
    num_particles: int = 1,
    init_rho: float = -5.0,
    kl_weighting: str = "uniform",
    num_samples: int = 200,
    seed: int = 0,
    progress: bool = False,
) -> MethodResult:
    """Bayes by Backprop: our MeanFieldGuide fitted by ``infer.fit`` (Trace_ELBO, Adam).

    The model's prior (Gaussian or scale mixture) is whatever ``model`` was built with.
    ``extras`` holds the guide and the final epoch's loss.
    """
    _check_settings(epochs=epochs, batch_size=batch_size, lr=lr, num_particles=num_particles,
                    init_rho=init_rho, num_samples=num_samples, seed=seed)
    x, y = _data(model, x, y)
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    guide = MeanFieldGuide(model, init_rho=init_rho)
    start = time.perf_counter()
    result = fit(model, guide, x, y, epochs=epochs, batch_size=batch_size, lr=lr,
                 num_particles=num_particles, kl_weighting=kl_weighting, seed=seed,
                 device="cpu", progress=progress)
    draws = guide.sample_posterior(num_samples,
                                   generator=torch.Generator().manual_seed(seed))
    seconds = time.perf_counter() - start
    loss = result.history[-1].loss if result.history else math.nan
    return MethodResult("bbb", draws, seconds, {"guide": guide, "final_loss": loss})


def with_prior(model, prior) -> BayesianMLP:
    """The same BayesianMLP (layer sizes, likelihood, activation) with ``prior`` on every layer.

    The likelihood object is shared, so a learned-noise site keeps its own prior.
    """
    return BayesianMLP(model.layer_sizes, model.likelihood, prior, model.activation)


def run_bbb_mixture(
    model,
    x,
    y,
    *,
    pi: float = 0.5,
    sigma1: float = 1.0,
    sigma2: float = math.exp(-6),
    **options,
) -> MethodResult:
    """Bayes by Backprop with Blundell et al.'s scale-mixture prior on every weight and bias,

        p(w) = π N(w | 0, σ1²) + (1 − π) N(w | 0, σ2²)   (defaults π = ½, σ1 = 1, σ2 = e⁻⁶),

    whatever prior ``model`` has: ``run_bbb`` on ``with_prior(model, ScaleMixtureNormal(π, σ1,
    σ2))``. The prior does not enter the network or the likelihood, so the draws predict with
    ``model`` itself. ``options`` are those of ``run_bbb``; ``extras["model"]`` is the rebuilt
    model (the one whose ELBO was maximised).
    """
    mixture = with_prior(model, scale_mixture_prior(pi, sigma1, sigma2))
    result = run_bbb(mixture, x, y, **options)
    result.name = "bbb_mixture"
    result.extras["model"] = mixture
    return result


# --------------------------------------------------------------------------- plain networks


def _init_point(model, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Unconstrained parameters: nn.Linear-style weights; likelihood latents at prior median."""
    fan_in = _fan_in(model)
    point = {name: _layer_init(name, shape, fan_in, generator)
             for name, shape in model.site_shapes().items()}
    for name, prior in model.likelihood.latent_priors().items():
        transform = biject_to(prior.support)
        median = prior.icdf(torch.tensor(0.5)) if hasattr(prior, "icdf") else prior.mean
        try:
            value = transform.inv(torch.as_tensor(median))
        except NotImplementedError:  # pragma: no cover - priors without icdf
            value = transform.inv(prior.mean)
        point[name] = value.reshape(tuple(prior.batch_shape + prior.event_shape)).clone()
    return point


def _constrain(model, point: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    latents = model.likelihood.latent_priors()
    return {k: biject_to(latents[k].support)(v) if k in latents else v for k, v in point.items()}


def _dropout_forward(model, x: torch.Tensor, params, p: float) -> torch.Tensor:
    """model.network with dropout (rate p, training mode) on the inputs of layers 1..L−1."""
    act = ACTIVATIONS[model.activation]
    h = x
    for i in range(model.num_layers):
        weight, bias = site_names(i)
        if i > 0 and p > 0:
            h = torch.nn.functional.dropout(h, p, training=True)
        h = h @ params[weight].transpose(-1, -2) + params[bias]
        if i < model.num_layers - 1:
            h = act(h)
    return h


def _bar(steps: range, desc: str, progress: bool, unit: str = "step"):
    """``steps`` under a tqdm bar when ``progress`` (on stderr, removed when done)."""
    return tqdm(steps, desc=desc, unit=unit, disable=not progress, leave=False, mininterval=0.5)


def _diverged(what: str, step: int, epoch: int, lr: float) -> NonFiniteLossError:
    return NonFiniteLossError(f"training diverged at step {step} (epoch {epoch}): {what}; try a "
                              f"lower lr than {lr}", step, epoch)


def _train_point(
    model, x, y, *, epochs: int, batch_size: int, lr: float, weight_decay: float,
    dropout: float, seed: int, progress: bool = False, desc: str = "train",
) -> tuple[dict[str, torch.Tensor], float]:
    """Maximum likelihood (+ L2) for a plain network with the model's shapes; returns the
    constrained parameters and the final epoch's mean loss. NonFiniteLossError names the step
    where the loss (or, at the end, a parameter) became NaN/inf."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout masks
    point = {k: v.requires_grad_() for k, v in _init_point(model, generator).items()}
    weights = list(model.site_shapes())
    optim = torch.optim.Adam(point.values(), lr=lr)
    n = x.shape[0]
    batch = min(batch_size, n)
    loss_value, step = math.nan, 0
    for epoch in _bar(range(1, epochs + 1), desc, progress, unit="epoch"):
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for begin in range(0, n, batch):
            rows = order[begin:begin + batch]
            params = _constrain(model, point)
            f = _dropout_forward(model, x[rows], params, dropout)
            loss = -model.likelihood.log_prob(f, y[rows], params).mean()
            if weight_decay:
                loss = loss + weight_decay * sum(point[w].pow(2).sum() for w in weights)
            step += 1
            value = float(loss.detach())  # CPU-oriented: a check every step is cheap
            if not math.isfinite(value):
                raise _diverged(f"the loss was {value}", step, epoch, lr)
            optim.zero_grad()
            loss.backward()
            optim.step()
            total += value * rows.shape[0]
        loss_value = total / n
    if not all(bool(torch.isfinite(v).all()) for v in point.values()):
        raise _diverged("the parameters became NaN/inf", step, epochs, lr)
    with torch.no_grad():
        return {k: v.detach().clone() for k, v in _constrain(model, point).items()}, loss_value


def run_deterministic(
    model,
    x,
    y,
    *,
    epochs: int = 1000,
    batch_size: int = 128,
    lr: float = 0.01,
    weight_decay: float = 0.0,
    num_samples: int = 200,
    seed: int = 0,
    progress: bool = False,
) -> MethodResult:
    """A plain network of the model's shape trained by maximum likelihood (MSE / CE, Adam).

    Its draws are the one point repeated ``num_samples`` times: epistemic spread 0.
    """
    _check_settings(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                    num_samples=num_samples, seed=seed)
    x, y = _data(model, x, y)
    start = time.perf_counter()
    point, loss = _train_point(model, x, y, epochs=epochs, batch_size=batch_size, lr=lr,
                               weight_decay=weight_decay, dropout=0.0, seed=seed,
                               progress=progress, desc="deterministic")
    seconds = time.perf_counter() - start
    return MethodResult("deterministic", _repeat(point, num_samples), seconds,
                        {"final_loss": loss})


def dropout_draws(model, point: Mapping[str, torch.Tensor], p: float, num_samples: int,
                  generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """MC-dropout draws in weight space: W_l · diag(m)/(1−p), m_j ~ Bernoulli(1−p), l ≥ 1."""
    draws = _repeat(point, num_samples)
    if p <= 0:
        return draws
    for i in range(1, model.num_layers):
        weight, _ = site_names(i)
        d_in = draws[weight].shape[-1]
        keep = (torch.rand(num_samples, 1, d_in, generator=generator) >= p).to(draws[weight])
        draws[weight] = draws[weight] * keep / (1 - p)
    return draws


def run_mc_dropout(
    model,
    x,
    y,
    *,
    p: float = 0.1,
    epochs: int = 1000,
    batch_size: int = 128,
    lr: float = 0.01,
    weight_decay: float = 1e-4,
    num_samples: int = 200,
    seed: int = 0,
    progress: bool = False,
) -> MethodResult:
    """MC dropout (Gal & Ghahramani 2016): train with dropout rate ``p`` on the inputs of every
    hidden→ layer and L2 ``weight_decay``; each draw is the trained weights with one dropout mask
    folded in (see ``dropout_draws``). Needs at least one hidden layer."""
    if model.num_layers < 2:
        raise ValueError("MC dropout needs a network with at least one hidden layer")
    _check_settings(p=p, epochs=epochs, batch_size=batch_size, lr=lr,
                    weight_decay=weight_decay, num_samples=num_samples, seed=seed)
    x, y = _data(model, x, y)
    start = time.perf_counter()
    point, loss = _train_point(model, x, y, epochs=epochs, batch_size=batch_size, lr=lr,
                               weight_decay=weight_decay, dropout=p, seed=seed,
                               progress=progress, desc="dropout")
    draws = dropout_draws(model, point, p, num_samples, torch.Generator().manual_seed(seed))
    seconds = time.perf_counter() - start
    return MethodResult("dropout", draws, seconds, {"final_loss": loss, "p": p})


def run_ensemble(
    model,
    x,
    y,
    *,
    num_members: int = 5,
    epochs: int = 1000,
    batch_size: int = 128,
    lr: float = 0.01,
    weight_decay: float = 0.0,
    seed: int = 0,
    progress: bool = False,
) -> MethodResult:
    """Deep ensemble: ``num_members`` plain networks from seeds seed, seed+1, …; each member is
    one draw, so predictions average the members (an equal-weight mixture)."""
    _check_settings(num_members=num_members, epochs=epochs, batch_size=batch_size, lr=lr,
                    weight_decay=weight_decay, seed=seed)
    x, y = _data(model, x, y)
    start = time.perf_counter()
    members, losses = [], []
    for m in range(num_members):
        point, loss = _train_point(model, x, y, epochs=epochs, batch_size=batch_size, lr=lr,
                                   weight_decay=weight_decay, dropout=0.0, seed=seed + m,
                                   progress=progress,
                                   desc=f"ensemble member {m + 1}/{num_members}")
        members.append(point)
        losses.append(loss)
    draws = {k: torch.stack([p[k] for p in members]) for k in members[0]}
    seconds = time.perf_counter() - start
    return MethodResult("ensemble", draws, seconds, {"member_losses": losses})


# --------------------------------------------------------------------------- registry


def _autoguide_runner(kind: str) -> Callable[..., MethodResult]:
    def runner(model, x, y, **options) -> MethodResult:
        return run_autoguide(model, x, y, kind=kind, **options)

    runner.__name__ = f"run_{kind}"
    runner.__doc__ = f"run_autoguide with kind={kind!r}."
    return runner


#: name → runner(model, x, y, **options) -> MethodResult
METHODS: dict[str, Callable[..., MethodResult]] = {
    "nuts": run_nuts,
    "normal": _autoguide_runner("normal"),
    "lowrank": _autoguide_runner("lowrank"),
    "delta": _autoguide_runner("delta"),
    "bbb": run_bbb,
    "bbb_mixture": run_bbb_mixture,
    "deterministic": run_deterministic,
    "dropout": run_mc_dropout,
    "ensemble": run_ensemble,
}
_ALIASES = {"map": "delta", "autonormal": "normal", "mc_dropout": "dropout"}


def method_names() -> list[str]:
    """The registered method names (aliases: map → delta, autonormal → normal)."""
    return list(METHODS)


def run_method(name: str, model, x, y, **options) -> MethodResult:
    """Run the method registered as ``name`` (or an alias) with keyword ``options``."""
    key = _ALIASES.get(name, name)
    if key not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose from {method_names()}")
    result = METHODS[key](model, x, y, **options)
    result.name = name
    return result
