"""ArviZ export and convergence diagnostics for posterior draws from any inference method.

Draws come in the library's one posterior format, a dict ``site name → tensor``, in any of three
layouts (every function here accepts all three):

- one dict with a leading sample dim S (``guide.sample_posterior(S)``, a flattened MCMC run):
  one chain of S draws, or ``chains`` equal chains of S/chains draws taken in order;
- one dict with leading (chain, draw) dims (``MCMC.get_samples(group_by_chain=True)``,
  ``fit_chains(...).draws``);
- a list of dicts with a leading S each, e.g. independent VI fits from different seeds: one chain
  per dict.

Naming, chosen so that it survives netCDF, xarray and ``az.summary`` labels:

============================  ========================  ==============================
Pyro site / quantity          ArviZ variable            dims (after chain, draw)
============================  ========================  ==============================
``layer{i}.weight``           ``layer{i}_weight``       (``layer{i}_out``, ``layer{i}_in``)
``layer{i}.bias``             ``layer{i}_bias``         (``layer{i}_out``,)
``noise`` (learned σ)         ``noise``                 ()
observed / predicted targets  ``y``                     (``obs_id``,)
inputs (constant_data)        ``x``                     (``obs_id``, ``feature``)
regression mean f(x; w)       ``f``                     (``obs_id``,)
class probabilities           ``probs``                 (``obs_id``,) Bernoulli P(y=1);
                                                        (``obs_id``, ``class``) Categorical
============================  ========================  ==============================

Every "." of a site name becomes "_" (``variable_name``); the posterior group's attribute
``pyro_bbb_site_names`` (JSON) maps variable names back to site names, and ``to_draws`` reads an
InferenceData group back into the posterior format.

Why function space. A network's likelihood is invariant under permuting hidden units (and, with
odd activations, flipping their signs), so the posterior has many equivalent modes and two
chains or fits that found different but equivalent modes disagree in every weight: weight-space
R-hat is then large although the predictions agree. R-hat and ESS of the predictions themselves
(``function_space_summary``, or ``function_space=True``) are free of that symmetry. For VI, draws
within one fit are independent, so R-hat across fits from different seeds measures only whether
optimisation reaches the same approximate posterior.

Warnings. Our data raise none in ``az.summary``, ``az.loo``, ``az.compare``,
``az.plot_posterior`` and ``az.plot_ppc`` (tested with warnings as errors). What ArviZ may still
report, and why it is not a fault of the export:

- ``az.loo`` / ``az.compare``: "Estimated shape parameter of Pareto distribution is greater than
  ..." when PSIS importance ratios 1/p(y_n | w) are heavy-tailed (threshold
  min(1 − 1/log10 S, 0.7)). Legitimate: it happens for influential points and few draws, and
  routinely for BNN classifiers fitted by mean-field VI, whose wide q has rare draws that give a
  training point probability ≈ 0; elpd_loo is then unreliable (the ``warning`` column of
  ``az.compare`` says so), and held-out log-likelihood is the better comparison.
- log_likelihood is stored in float64 whatever the draws' dtype: in float32, PSIS overflows once
  log-likelihoods differ by more than about 88 nats and ``az.loo`` returns NaN.
- ``az.summary`` on one chain logs (via ``logging``, not ``warnings``) "Shape validation failed"
  and gives R-hat NaN: R-hat needs 2 chains (``fit_chains`` for VI, or several MCMC
  chains; splitting one VI fit's independent draws with ``chains=`` makes R-hat ≈ 1 trivially).
- Plots with more panels than ``rcParams["plot.max_subplots"]`` warn: pass ``var_names``.
- Deprecation warnings raised inside ArviZ's own code (ArviZ 0.23 calls matplotlib and pandas
  APIs that newer releases deprecate) and ArviZ's once-a-day FutureWarning about its 1.0
  refactor on import; the lazy import here silences that one message, which is about ArviZ's
  API, not the data.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyro
import torch

from .guide import MeanFieldGuide
from .infer import FitResult, fit
from .inputs import as_features, as_int, as_targets
from .likelihoods import Bernoulli, Categorical
from .model import site_names
from .predict import check_draws, default_chunk_size
from .predict import log_likelihood as _log_likelihood

if TYPE_CHECKING:  # pragma: no cover
    import arviz
    import pandas

__all__ = [
    "to_inference_data",
    "sample_prior",
    "function_space_summary",
    "FunctionSpaceSummary",
    "fit_chains",
    "ChainFits",
    "to_draws",
    "variable_name",
    "OBSERVED",
]

OBSERVED = "y"  # ArviZ variable of the targets in observed_data, posterior_predictive, log_lik.
_SITE_ATTR = "pyro_bbb_site_names"
_Draws = Mapping[str, Any] | Sequence[Mapping[str, Any]]


def _arviz():
    """Import ArviZ, or say which extra installs it."""
    try:
        with warnings.catch_warnings():
            # ArviZ ≥ 0.21 warns once a day on import about its upcoming 1.0 API; not our data.
            warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing",
                                    category=FutureWarning)
            import arviz
    except ImportError as err:
        raise ImportError(
            "pyro_bbb.diagnostics needs ArviZ; install it with `pip install pyro_bbb[diagnostics]`"
        ) from err
    return arviz


def variable_name(site: str) -> str:
    """ArviZ variable name of a Pyro site: "." → "_" ("layer0.weight" → "layer0_weight")."""
    return site.replace(".", "_")


# ---------------------------------------------------------------------------------------------
# draws in any layout → one dict with (chain, draw) leading dims


def _tensor(value) -> torch.Tensor:
    return torch.as_tensor(np.asarray(value) if not torch.is_tensor(value) else value).detach()


def _leading_dims(model, draws: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], int]:
    """Tensors on the CPU and the number of leading sample dims (1 or 2), checked against model."""
    shapes = model.latent_shapes()
    missing = [name for name in shapes if name not in draws]
    if missing:
        raise ValueError(f"draws lack the model's site(s) {missing}; got {sorted(draws)}")
    tensors = {name: _tensor(value).cpu() for name, value in draws.items()}
    leading = {name: tensors[name].dim() - len(shape) for name, shape in shapes.items()}
    if len(set(leading.values())) != 1 or next(iter(leading.values())) not in (1, 2):
        got = ", ".join(f"{n}: {tuple(tensors[n].shape)} for site shape {s}"
                        for n, s in shapes.items())
        raise ValueError("every site needs the same leading sample dims, (S,) or (chain, draw), "
                         f"before its own shape; got {got}")
    num_leading = next(iter(leading.values()))
    for name, shape in shapes.items():
        t = tensors[name]
        if tuple(t.shape[num_leading:]) != shape:
            raise ValueError(f"site {name!r} has draws of shape {tuple(t.shape)}; expected "
                             f"(*sample dims, {', '.join(map(str, shape))})")
    lead = {tuple(t.shape[:num_leading]) for t in tensors.values()}
    if len(lead) != 1:
        raise ValueError(f"sites disagree on the number of draws: {sorted(lead)}")
    return tensors, num_leading


def _as_chains(model, draws: _Draws, chains: int | None = None) -> dict[str, torch.Tensor]:
    """Draws in any of the three layouts → dict name → (chain, draw, *shape) on the CPU, checked
    as ``predict.check_draws`` checks them (finite, floating point, one dtype)."""
    chained = _chains(model, draws, chains)
    lead = next(iter(chained.values())).shape[:2]
    sites = model.latent_shapes()  # other entries (e.g. an MCMC deterministic) pass as they are
    flat = check_draws(model, {k: v.reshape(-1, *v.shape[2:]) for k, v in chained.items()
                               if k in sites})
    return {k: flat[k].reshape(*lead, *flat[k].shape[1:]) if k in flat else v
            for k, v in chained.items()}


def _chains(model, draws: _Draws, chains: int | None) -> dict[str, torch.Tensor]:
    """``_as_chains`` before the checks of the values."""
    if chains is not None:
        chains = as_int(chains, "chains")
    if isinstance(draws, Mapping):
        tensors, num_leading = _leading_dims(model, draws)
        if num_leading == 2:
            num_chains = next(iter(tensors.values())).shape[0]
            if chains is not None and chains != num_chains:
                raise ValueError(f"draws have {num_chains} chains but chains={chains}")
            return tensors
        num = next(iter(tensors.values())).shape[0]
        chains = 1 if chains is None else chains
        if not (isinstance(chains, int) and chains >= 1 and num % chains == 0):
            raise ValueError(f"chains must be a positive int dividing the {num} draws, "
                             f"got {chains!r}")
        return {k: v.reshape(chains, num // chains, *v.shape[1:]) for k, v in tensors.items()}
    if isinstance(draws, (str, bytes)) or not isinstance(draws, Sequence) or not draws:
        raise TypeError("draws must be a dict of site → tensor or a non-empty list of such dicts, "
                        f"got {type(draws).__name__}")
    if chains is not None and chains != len(draws):
        raise ValueError(f"got a list of {len(draws)} chains but chains={chains}")
    per_chain = []
    for i, chain in enumerate(draws):
        if not isinstance(chain, Mapping):
            raise TypeError(f"chain {i} is a {type(chain).__name__}, not a dict of site → tensor")
        tensors, num_leading = _leading_dims(model, chain)
        if num_leading != 1:
            raise ValueError(f"chain {i} has (chain, draw) dims; each chain of a list needs one "
                             "leading sample dim")
        per_chain.append(tensors)
    names = set(per_chain[0])
    if any(set(c) != names for c in per_chain):
        raise ValueError("the chains disagree on their sites: "
                         f"{[sorted(c) for c in per_chain]}")
    sizes = [next(iter(c.values())).shape[0] for c in per_chain]
    if len(set(sizes)) != 1:
        raise ValueError(f"ArviZ needs the same number of draws in every chain, got {sizes}; "
                         "draw the same number from each fit")
    return {name: torch.stack([c[name] for c in per_chain]) for name in per_chain[0]}


def _flat(chained: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """(chain, draw, *shape) → (chain·draw, *shape)."""
    return {k: v.reshape(-1, *v.shape[2:]) for k, v in chained.items()}


def _unflat(value: torch.Tensor, chains: int) -> np.ndarray:
    return value.reshape(chains, -1, *value.shape[1:]).numpy()


# ---------------------------------------------------------------------------------------------
# quantities computed from flat draws, in chunks of rows


def _map_rows(model, flat: Mapping[str, torch.Tensor], x: torch.Tensor, fn: Callable):
    """fn(f, rows) per chunk of rows of x, joined along the data dim (dim 1 of (S, N, ...))."""
    num = next(iter(flat.values())).shape[0]
    size = default_chunk_size(num, max(model.layer_sizes))
    parts = []
    with torch.no_grad():
        for start in range(0, x.shape[0], size):
            rows = slice(start, start + size)
            parts.append(fn(model.network(x[rows], flat), rows))
    return torch.cat(parts, dim=1)


def _targets_dtype(likelihood, y: torch.Tensor) -> torch.Tensor:
    """Class labels as int64 (Bernoulli targets are floats inside the model)."""
    return y.long() if isinstance(likelihood, (Bernoulli, Categorical)) else y


def _sample_targets(model, flat, x) -> torch.Tensor:
    """One y per draw and point from the likelihood: (S, N)."""
    likelihood = model.likelihood
    ys = _map_rows(model, flat, x,
                   lambda f, rows: likelihood.distribution(f, flat).sample())
    return _targets_dtype(likelihood, ys)


def _function_values(model, flat, x) -> tuple[str, torch.Tensor, list[str]]:
    """The network's prediction per draw: f (regression), P(y=1) or class probabilities."""
    likelihood = model.likelihood
    if isinstance(likelihood, Categorical):
        # softmax is invariant to shifting all logits, so the logits are not identified: use probs
        probs = _map_rows(model, flat, x, lambda f, _: torch.softmax(f, -1))
        return "probs", probs, ["obs_id", "class"]
    if isinstance(likelihood, Bernoulli):
        probs = _map_rows(model, flat, x, lambda f, _: torch.sigmoid(f[..., 0]))
        return "probs", probs, ["obs_id"]
    return "f", _map_rows(model, flat, x, lambda f, _: f[..., 0]), ["obs_id"]


@torch.no_grad()
def _seeded(seed: int | None, fn: Callable):
    """fn() under torch's CPU RNG seeded with ``seed`` (global RNG untouched), or as is."""
    if seed is None:
        return fn()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return fn()


# ---------------------------------------------------------------------------------------------
# public API


def sample_prior(model, num_samples: int, *, seed: int | None = None) -> dict[str, torch.Tensor]:
    """``num_samples`` draws of every latent site from the model's priors (CPU).

    Weights and biases from their (expanded) priors, the likelihood's latent sites (a learned
    noise scale) from theirs: dict site name → (num_samples, *site shape), the posterior format.
    With ``seed`` the draws are reproducible and torch's global RNG is left as it was.
    """
    num_samples = as_int(num_samples, "num_samples")
    cpu = torch.device("cpu")
    priors = dict(model.site_priors(cpu))
    priors.update(model.likelihood.latent_priors(cpu))
    return _seeded(seed, lambda: {name: p.sample((num_samples,)) for name, p in priors.items()})


def to_inference_data(
    model,
    draws: _Draws,
    x=None,
    y=None,
    *,
    chains: int | None = None,
    posterior_predictive: bool = True,
    log_likelihood: bool = True,
    prior_draws: _Draws | None = None,
    function_space: bool = False,
    coords: Mapping[str, Sequence] | None = None,
    seed: int | None = None,
) -> arviz.InferenceData:
    """Posterior draws of a ``BayesianMLP`` (any inference method) as an ``arviz.InferenceData``.

    Args:
        model: the BayesianMLP the draws belong to.
        draws: posterior draws in one of the three layouts of the module docstring.
        x, y: data. With ``x``: ``constant_data`` and ``posterior_predictive`` (one
            y_rep ~ p(y | x, w_s) per draw); with ``y`` too: ``observed_data`` and
            ``log_likelihood`` (log p(y_n | x_n, w_s) per draw and point, from
            ``pyro_bbb.predict.log_likelihood``, i.e. the likelihood of the conditioned model, not
            a Predictive trace, which masks the observation site).
        chains: split a single (S, ...) dict into this many chains of S/chains draws, in order.
        posterior_predictive, log_likelihood: turn those groups off.
        prior_draws: prior draws (e.g. ``sample_prior(model, S)``), any layout: adds ``prior``,
            and ``prior_predictive`` when ``x`` is given.
        function_space: add the network's prediction at ``x`` to the posterior (and prior) group
            as a deterministic variable (``f`` for regression, ``probs`` for classification), so
            that ``az.summary`` reports its R-hat and ESS.
        coords: coordinate values for any dim, e.g. ``{"class": ["cat", "dog"]}``.
        seed: seeds the predictive draws (torch's global RNG is left as it was).

    Returns:
        InferenceData with groups posterior, and as the arguments allow posterior_predictive,
        log_likelihood, observed_data, constant_data, prior, prior_predictive. Variable names and
        dims are listed in the module docstring.
    """
    az = _arviz()
    chained = _as_chains(model, draws, chains)
    num_chains = next(iter(chained.values())).shape[0]
    if y is not None and x is None:
        raise ValueError("y was given without x; the likelihood needs the inputs x")
    if x is not None:
        x = as_features(x, model.input_size).cpu()
    if y is not None:
        y = as_targets(y, model.likelihood, x.shape[0]).cpu()

    _check_names(chained)
    dims = _dims(model, chained)
    groups: dict[str, Any] = {}
    groups["posterior"] = {variable_name(k): v.numpy() for k, v in chained.items()}
    flat = _flat(chained)
    if x is not None:
        groups["constant_data"] = {"x": x.numpy()}
        x = x.to(next(iter(flat.values())).dtype)  # float64 draws evaluate in float64
        dims["x"] = ["obs_id", "feature"]
        dims[OBSERVED] = ["obs_id"]
        if function_space:
            name, values, value_dims = _function_values(model, flat, x)
            groups["posterior"][name] = _unflat(values, num_chains)
            dims[name] = value_dims
        if posterior_predictive:
            groups["posterior_predictive"] = {
                OBSERVED: _unflat(_seeded(seed, lambda: _sample_targets(model, flat, x)),
                                  num_chains)
            }
    if y is not None:
        groups["observed_data"] = {OBSERVED: _targets_dtype(model.likelihood, y).numpy()}
        if log_likelihood:
            # float64: PSIS in az.loo exponentiates differences of log-likelihoods, which
            # overflow float32 beyond about 88 nats and turn elpd_loo into NaN
            values = _log_likelihood(model, flat, x, y).double()
            groups["log_likelihood"] = {OBSERVED: _unflat(values, num_chains)}
    if prior_draws is not None:
        prior = _as_chains(model, prior_draws)
        _check_names(prior)
        prior_chains = next(iter(prior.values())).shape[0]
        dims.update(_dims(model, prior))
        groups["prior"] = {variable_name(k): v.numpy() for k, v in prior.items()}
        if x is not None:
            prior_flat = _flat(prior)
            if function_space:
                name, values, _ = _function_values(model, prior_flat, x)
                groups["prior"][name] = _unflat(values, prior_chains)
            prior_seed = None if seed is None else seed + 1
            ys = _seeded(prior_seed, lambda: _sample_targets(model, prior_flat, x))
            groups["prior_predictive"] = {OBSERVED: _unflat(ys, prior_chains)}

    import pyro_bbb

    attrs = {"inference_library": "pyro_bbb",
             "inference_library_version": pyro_bbb.__version__,
             "model": repr(model)}
    group_attrs = {f"{group}_attrs": dict(attrs) for group in groups}
    group_attrs["posterior_attrs"][_SITE_ATTR] = json.dumps(
        {variable_name(k): k for k in chained})
    return az.from_dict(**groups, coords=dict(coords or {}), dims=dims, attrs=attrs,
                        **group_attrs)


def _check_names(chained: Mapping[str, torch.Tensor]) -> None:
    names = [variable_name(k) for k in chained]
    clashes = {n for n in names if names.count(n) > 1} | (set(names) & {OBSERVED, "f", "probs"})
    if clashes:
        raise ValueError(f"site names clash after '.' → '_' or with reserved names: {clashes}")


def _dims(model, chained: Mapping[str, torch.Tensor]) -> dict[str, list[str]]:
    """Named dims per layer; other sites get ``<variable>_dim_<k>``."""
    dims: dict[str, list[str]] = {}
    for layer in range(model.num_layers):
        weight, bias = site_names(layer)
        dims[variable_name(weight)] = [f"layer{layer}_out", f"layer{layer}_in"]
        dims[variable_name(bias)] = [f"layer{layer}_out"]
    for name, value in chained.items():
        var = variable_name(name)
        if var not in dims:
            dims[var] = [f"{var}_dim_{k}" for k in range(value.dim() - 2)]
    return dims


def to_draws(idata: arviz.InferenceData, group: str = "posterior",
             *, flatten: bool = False) -> dict[str, torch.Tensor]:
    """The Pyro sites of an InferenceData group back in the posterior format.

    Uses the group's ``pyro_bbb_site_names`` attribute (variable → site); returns tensors of
    shape (chain, draw, *site shape), or (chain·draw, *site shape) with ``flatten``. Derived
    variables (``f``, ``probs``) are left out.
    """
    if group not in idata.groups():
        raise ValueError(f"the InferenceData has no {group!r} group; its groups: "
                         f"{list(idata.groups())}")
    dataset = idata[group]
    attrs = idata.posterior.attrs if "posterior" in idata.groups() else {}
    if _SITE_ATTR not in attrs:
        raise ValueError("this InferenceData was not written by pyro_bbb's to_inference_data "
                         f"(its posterior has no {_SITE_ATTR!r} attribute)")
    mapping = json.loads(attrs[_SITE_ATTR])
    draws = {site: torch.as_tensor(np.asarray(dataset[var].values))
             for var, site in mapping.items() if var in dataset}
    return _flat(draws) if flatten else draws


@dataclass
class FunctionSpaceSummary:
    """R-hat and ESS of the network's predictions at chosen inputs.

    ``table`` is ``az.summary`` of the prediction (``f[n]`` for regression, ``probs[n, c]`` for
    classification): mean, sd, HDI, MCSE, ess_bulk, ess_tail, r_hat per input (and class).
    ``max_r_hat`` near 1 (say < 1.01–1.05) means the chains agree on the predictive function.
    """

    table: pandas.DataFrame
    max_r_hat: float
    min_ess_bulk: float
    min_ess_tail: float


def function_space_summary(
    model, draws_by_chain: _Draws, x, *, chains: int | None = None, **summary_kwargs
) -> FunctionSpaceSummary:
    """R-hat and ESS of predictions (not weights) at inputs ``x`` across chains.

    For each draw w_s the prediction at x_n is the regression mean f(x_n; w_s), P(y=1 | x_n, w_s)
    for Bernoulli, or softmax(f(x_n; w_s)) for Categorical (the logits themselves are only
    identified up to a shift). These are invariant to permuting hidden units, so unlike
    weight-space R-hat they say whether chains (MCMC chains, or VI fits from different seeds)
    agree. Needs at least 2 chains of at least 4 draws; ``summary_kwargs`` go to ``az.summary``
    (unrounded unless they set ``round_to``: ArviZ's default of 2 decimals would put R-hat on
    a staircase of 0.01 steps).

    Reading it: ArviZ's rank-normalised R-hat is bounded however far apart the chains are
    (≈ 1.83 for two chains that do not overlap at all, ≈ 2.8 for four), so with few chains any
    value above ~1.05 already means the chains disagree; ``min_ess_bulk`` far below the total
    number of draws says the same.
    """
    az = _arviz()
    chained = _as_chains(model, draws_by_chain, chains)
    num_chains, num_draws = next(iter(chained.values())).shape[:2]
    if num_chains < 2 or num_draws < 4:
        raise ValueError(f"R-hat needs at least 2 chains of at least 4 draws, got {num_chains} "
                         f"chain(s) of {num_draws}; pass a list of fits or chains=...")
    x = as_features(x, model.input_size).cpu()
    name, values, value_dims = _function_values(model, _flat(chained), x)
    idata = az.from_dict(posterior={name: _unflat(values, num_chains)}, dims={name: value_dims})
    table = az.summary(idata, **{"round_to": "none", **summary_kwargs})
    return FunctionSpaceSummary(
        table,
        max_r_hat=_extreme(table, "r_hat", max),
        min_ess_bulk=_extreme(table, "ess_bulk", min),
        min_ess_tail=_extreme(table, "ess_tail", min),
    )


def _extreme(table, column: str, fn) -> float:
    return float(fn(table[column])) if column in table else math.nan


@dataclass
class ChainFits:
    """Independent VI fits as chains: ``draws`` maps site → (chain, draw, *site shape)."""

    draws: dict[str, torch.Tensor]
    results: list[FitResult]
    seeds: list[int]


def fit_chains(
    model,
    x,
    y,
    seeds: Sequence[int] = (0, 1, 2, 3),
    *,
    num_samples: int = 500,
    guide_factory: Callable[[Any], torch.nn.Module] = MeanFieldGuide,
    **fit_kwargs,
) -> ChainFits:
    """Fit one guide per seed with ``pyro_bbb.fit`` and return their draws as chains.

    Seed s initialises the guide (``pyro.set_rng_seed(s)`` before ``guide_factory(model)``),
    drives training (``fit(..., seed=s)``) and the ``num_samples`` posterior draws. The model
    only holds priors and the likelihood, so all fits share it. Hand ``draws`` to
    ``function_space_summary`` or ``to_inference_data``: R-hat near 1 across seeds says the
    optimisation reaches the same posterior approximation whatever its initialisation.
    ``fit_kwargs`` go to ``fit`` (``progress`` defaults to False here).
    """
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and non-empty, got {seeds}")
    fit_kwargs.setdefault("progress", False)
    results, per_chain = [], []
    for seed in seeds:
        pyro.set_rng_seed(seed)
        guide = guide_factory(model)
        results.append(fit(model, guide, x, y, seed=seed, **fit_kwargs))
        generator = torch.Generator(device=next(guide.parameters()).device).manual_seed(seed)
        draws = guide.sample_posterior(num_samples, generator=generator)
        per_chain.append({k: v.detach().cpu() for k, v in draws.items()})
    draws = {name: torch.stack([c[name] for c in per_chain]) for name in per_chain[0]}
    return ChainFits(draws, results, seeds)
