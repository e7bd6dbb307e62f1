"""Pruning by signal-to-noise ratio (Blundell et al. 2015, section 5.1, Table 2, Figure 4).

The mean-field guide holds q(w_i) = N(μ_i, σ_i²) for every weight. A weight whose signal-to-noise
ratio

    SNR_i = |μ_i| / σ_i

is small has a posterior mass straddling zero, so replacing it by exactly zero changes the
predictive distribution little. Pruning a proportion p of the n weights removes the
k = min(round(p · n), n − 1) weights of lowest SNR, ranked over all weight sites together (one
global threshold, as in the paper), and sets their posterior to a point mass at zero:

    μ_i ← 0,   ρ_i ← PRUNED_RHO = −10⁴,   so σ_i = softplus(−10⁴) = log(1 + e^(−10⁴)) = 0

exactly in float16/32/64 (e^(−10⁴) underflows to 0). A draw w_i = μ_i + σ_i · ε_i is then exactly
0 for every ε_i: the pruned guide is an ordinary ``MeanFieldGuide`` with the same parameter names
and shapes, so it samples, predicts, saves and loads through ``pyro_bbb.checkpoint`` like any
other, and which entries are pruned is read back from the parameters (``pruned_masks``: σ = 0 and
μ = 0). The one thing it cannot do is evaluate log q(w) (a Normal of scale 0 has no density; the
ELBO of a pruned guide is NaN): prediction never needs log q, but a pruned guide cannot be trained
further.

Which sites are pruned: *weights*, the real-valued sites of two or more dimensions (the layer
matrices). Biases (real, one dimension) are kept by default, as in the paper, and join the ranking
with ``include_biases=True``. Latent sites of the likelihood (e.g. a learned Gaussian ``noise``,
whose support is constrained) and scalar sites are never pruned: zero is not even a "no effect"
value for them.

Memory (``memory_footprint``): dense storage keeps μ and σ in float32 for every entry,
8 bytes each. The sparse alternative stores each weight matrix of shape (r, c) with m kept
entries CSR-style, μ and σ of the kept entries (8 m bytes), int32 column indices (4 m) and
int32 row pointers (4 (r + 1)), and is used for a site only where it is smaller than dense
(it pays once fewer than about 2/3 of the entries are kept).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping, Sequence
from numbers import Real
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from .guide import GuideSite, MeanFieldGuide
from .inputs import as_int, is_finite_number
from .likelihoods import ClassificationPrediction
from .metrics import accuracy, expected_calibration_error, nll
from .model import BayesianMLP
from .predict import predict

__all__ = [
    "DEFAULT_PROPORTIONS",
    "PRUNED_RHO",
    "MemoryFootprint",
    "SNRHistogram",
    "check_proportion",
    "log10_snr",
    "log_snr_histogram",
    "memory_footprint",
    "num_pruned",
    "prunable_sites",
    "prune",
    "prune_entries",
    "pruned_masks",
    "pruning_curve",
    "signal_to_noise",
    "snr_threshold",
]

PRUNED_RHO = -1.0e4
"""ρ of a pruned entry: softplus(−10⁴) is exactly 0 in every floating dtype."""

DEFAULT_PROPORTIONS = (0.0, 0.5, 0.75, 0.95, 0.98)
"""The proportions removed in Blundell et al.'s Table 2."""

_VALUE_BYTES = 4  # float32 μ and σ
_INDEX_BYTES = 4  # int32 column indices and row pointers


def _key(name: str) -> str:
    return name.replace(".", "__")


def _check_guide(guide: Any, who: str) -> MeanFieldGuide:
    """``guide`` if it is a MeanFieldGuide, else TypeError saying what ``who`` got."""
    if not isinstance(guide, MeanFieldGuide):
        hint = " (arguments swapped?)" if isinstance(guide, BayesianMLP) else ""
        raise TypeError(f"{who} expects a MeanFieldGuide, got {type(guide).__name__}{hint}")
    return guide


@torch.no_grad()
def _check_finite(guide: MeanFieldGuide) -> None:
    """ValueError naming the first site whose μ or ρ holds NaN or ±inf (a diverged fit)."""
    for site in guide.sites:
        for param in (guide.loc[_key(site.name)], guide.rho[_key(site.name)]):
            if not bool(torch.isfinite(param).all()):
                what = "NaN" if bool(param.isnan().any()) else "infinite values"
                raise ValueError(f"guide parameters of {site.name} contain {what} (diverged "
                                 "fit?); pruning needs finite μ and ρ")


def check_proportion(proportion: Any) -> float:
    """``proportion`` as a float in [0, 1); anything else (NaN, < 0, ≥ 1, not a number) raises
    ValueError."""
    is_scalar_tensor = torch.is_tensor(proportion) and proportion.numel() == 1
    if isinstance(proportion, bool) or not (isinstance(proportion, Real) or is_scalar_tensor):
        raise ValueError(f"proportion must be a number in [0, 1), got {proportion!r}")
    value = float(proportion)
    if math.isnan(value):
        raise ValueError("proportion must be a number in [0, 1), got NaN")
    if not 0.0 <= value < 1.0:
        raise ValueError(
            f"proportion must be in [0, 1) (the fraction of weights removed; at least one weight "
            f"is kept), got {value}"
        )
    return value


def num_pruned(num_weights: int, proportion: float) -> int:
    """k = min(round(p · n), n − 1): how many of ``num_weights`` a proportion p removes."""
    proportion = check_proportion(proportion)
    if num_weights <= 0:
        return 0
    return min(int(round(proportion * num_weights)), num_weights - 1)


def _is_weight(site: GuideSite) -> bool:
    return site.is_real and len(site.shape) >= 2


def _is_bias(site: GuideSite) -> bool:
    return site.is_real and len(site.shape) == 1


def prunable_sites(guide: MeanFieldGuide, include_biases: bool = False) -> list[str]:
    """Names of the sites ranked and pruned: real sites of ≥ 2 dims (weight matrices), plus the
    real 1-D sites (biases) when ``include_biases``. Likelihood latents are never included."""
    _check_guide(guide, "prunable_sites")
    names = [s.name for s in guide.sites if _is_weight(s) or (include_biases and _is_bias(s))]
    if not names:
        raise ValueError("the guide has no weight sites to prune (real sites of ≥ 2 dims)")
    return names


@torch.no_grad()
def pruned_masks(guide: MeanFieldGuide) -> dict[str, torch.Tensor]:
    """Boolean mask per site, True where the entry is pruned (μ = 0 and σ = softplus(ρ) = 0).

    Cheap (one softplus per site, no checks beyond the type); the number of pruned entries is
    ``sum(int(m.sum()) for m in pruned_masks(guide).values())``.
    """
    _check_guide(guide, "pruned_masks")
    scales = guide.scales()
    return {name: (loc == 0) & (scales[name] == 0) for name, loc in guide.locs().items()}


@torch.no_grad()
def signal_to_noise(guide: MeanFieldGuide, include_biases: bool = False) -> dict[str, torch.Tensor]:
    """SNR = |μ| / σ per prunable site; an entry already pruned (μ = σ = 0) counts as SNR 0.

    Raises ValueError when any guide parameter is NaN or infinite."""
    names = prunable_sites(_check_guide(guide, "signal_to_noise"), include_biases)
    _check_finite(guide)
    locs, scales = guide.locs(), guide.scales()
    out = {}
    for name in names:
        loc, scale = locs[name], scales[name]
        snr = loc.abs() / scale
        out[name] = torch.where((loc == 0) & (scale == 0), torch.zeros_like(snr), snr)
    return out


def _flat_snr(guide: MeanFieldGuide, include_biases: bool) -> tuple[torch.Tensor, list, list]:
    snr = signal_to_noise(guide, include_biases)
    names = list(snr)
    flat = torch.cat([snr[n].reshape(-1) for n in names])
    return flat, names, [snr[n].shape for n in names]


def snr_threshold(guide: MeanFieldGuide, proportion: float, include_biases: bool = False) -> float:
    """The SNR value t below which the proportion p of the weights falls.

    With the n prunable SNRs sorted, v_(1) ≤ … ≤ v_(n), and k = min(round(p · n), n − 1), t is
    v_(k+1), the smallest SNR that survives pruning: exactly k weights have SNR < t when there are
    no ties at t (``prune`` breaks ties by rank, so it always removes exactly k). p = 0 gives the
    smallest SNR (nothing below it).
    """
    proportion = check_proportion(proportion)
    flat, _, _ = _flat_snr(_check_guide(guide, "snr_threshold"), include_biases)
    k = num_pruned(flat.numel(), proportion)
    return float(torch.kthvalue(flat.double().cpu(), k + 1).values)


@torch.no_grad()
def prune_entries(guide: MeanFieldGuide, masks: Mapping[str, torch.Tensor]) -> MeanFieldGuide:
    """A copy of ``guide`` with the entries where ``masks[site]`` is True set to a point mass at
    zero (μ = 0, ρ = PRUNED_RHO, so σ = 0 and every draw is exactly 0); others are untouched.

    Sites missing from ``masks`` are left as they are. ``guide`` itself is not modified.
    """
    known = {s.name: s for s in _check_guide(guide, "prune_entries").sites}
    if not isinstance(masks, Mapping):
        raise TypeError(f"masks must be a dict of site name → boolean mask, got "
                        f"{type(masks).__name__}")
    masks = {name: torch.as_tensor(mask) for name, mask in masks.items()}  # numpy, lists too
    for name, mask in masks.items():
        if mask.dtype != torch.bool:
            raise ValueError(f"mask for {name!r} must be boolean (True = prune), got {mask.dtype}")
        if name not in known:
            raise KeyError(f"unknown site {name!r}; the guide has {sorted(known)}")
        if tuple(mask.shape) != tuple(known[name].shape):
            raise ValueError(f"mask for {name!r} has shape {tuple(mask.shape)}, the site "
                             f"{tuple(known[name].shape)}")
        if not known[name].is_real:
            raise ValueError(f"site {name!r} has a constrained support; it cannot be pruned")
    pruned = copy.deepcopy(guide)
    for name, mask in masks.items():
        loc, rho = pruned.loc[_key(name)], pruned.rho[_key(name)]
        mask = mask.to(device=loc.device, dtype=torch.bool)
        loc.masked_fill_(mask, 0.0)
        rho.masked_fill_(mask, PRUNED_RHO)
        if mask.any() and bool((F.softplus(rho[mask]) != 0).any()):  # pragma: no cover
            raise RuntimeError(f"softplus({PRUNED_RHO}) is not 0 in {rho.dtype}")
    return pruned


def prune(
    guide: MeanFieldGuide, proportion: float, include_biases: bool = False
) -> MeanFieldGuide:
    """A copy of ``guide`` with the proportion p of weights of lowest SNR = |μ|/σ removed.

    The k = min(round(p · n), n − 1) weights of lowest SNR over all prunable sites together (see
    ``prunable_sites``; ties broken by position) become point masses at zero (μ = 0, σ = 0).
    Already-pruned entries have SNR 0 and are removed first, so pruning a pruned guide to a larger
    proportion is the same as pruning the original. p = 0 returns an identical copy.
    """
    proportion = check_proportion(proportion)
    flat, names, shapes = _flat_snr(_check_guide(guide, "prune"), include_biases)
    k = num_pruned(flat.numel(), proportion)
    remove = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    if k:
        order = torch.sort(flat, stable=True).indices
        remove[order[:k]] = True
    sizes = [math.prod(shape) for shape in shapes]
    masks = {name: part.reshape(shape) for name, part, shape
             in zip(names, remove.split(sizes), shapes, strict=True)}
    return prune_entries(guide, masks)


class MemoryFootprint(NamedTuple):
    """Bytes to store a (pruned) guide; see the module docstring for the formats."""

    dense_bytes: int  # μ and σ in float32 for every entry of every site
    sparse_bytes: int  # CSR (μ, σ, int32 column index, int32 row pointers) where it pays
    nonzero_weights: int  # kept entries of the weight matrices
    num_weights: int  # all entries of the weight matrices
    num_parameters: int  # all entries of all sites (weights, biases, likelihood latents)


def _csr_bytes(shape: torch.Size, kept: int) -> int:
    rows = shape[0] if len(shape) >= 2 else 1
    return 2 * _VALUE_BYTES * kept + _INDEX_BYTES * kept + _INDEX_BYTES * (rows + 1)


@torch.no_grad()
def memory_footprint(guide: MeanFieldGuide) -> MemoryFootprint:
    """Dense and sparse storage of ``guide``'s μ and σ.

    dense = Σ_sites 8 · n_site bytes. sparse = Σ_sites min(dense_site, csr_site), where for a
    real site of shape (r, …) with m kept (not pruned) entries csr_site = 8 m + 4 m + 4 (r + 1)
    (a 1-D site counts as one row); constrained sites are stored dense.
    """
    masks = pruned_masks(_check_guide(guide, "memory_footprint"))
    dense = sparse = nonzero = num_weights = total = 0
    for site in guide.sites:
        n = site.shape.numel()
        kept = int(n - masks[site.name].sum())
        site_dense = 2 * _VALUE_BYTES * n
        dense += site_dense
        total += n
        sparseable = site.is_real and len(site.shape) >= 1
        sparse += min(site_dense, _csr_bytes(site.shape, kept)) if sparseable else site_dense
        if _is_weight(site):
            num_weights += n
            nonzero += kept
    return MemoryFootprint(dense, sparse, nonzero, num_weights, total)


@torch.no_grad()
def log10_snr(guide: MeanFieldGuide, include_biases: bool = False) -> torch.Tensor:
    """log10(|μ|/σ) of every prunable, not pruned entry, flattened (on the CPU, float64).

    Entries with μ = 0 exactly (log10 0 = −∞) are left out, as are pruned ones.
    """
    flat, _, _ = _flat_snr(_check_guide(guide, "log10_snr"), include_biases)
    flat = flat.double().cpu()
    return flat[flat > 0].log10()


class SNRHistogram(NamedTuple):
    """Density of log10 SNR (paper Figure 4): ∫ density d(log10 SNR) = 1 over ``edges``."""

    edges: torch.Tensor  # (B + 1,) bin edges in log10 SNR
    density: torch.Tensor  # (B,) count / (n · bin width)
    cdf: torch.Tensor  # (B + 1,) fraction of all n weights with log10 SNR ≤ each edge
    num_weights: int  # n, the number of values (inside and outside the range)


def log_snr_histogram(
    guide_or_values: MeanFieldGuide | torch.Tensor,
    bins: int = 100,
    include_biases: bool = False,
    value_range: tuple[float, float] | None = None,
) -> SNRHistogram:
    """Histogram of log10 SNR over the weights of a guide, or of given log10 SNR values (a
    tensor, numpy array or list of finite numbers).

    density_b = c_b / (n · Δ_b) for the c_b of n values in bin b of width Δ_b; the range defaults
    to [min, max] of the values. With a narrower ``value_range`` the values outside it are left
    out of the bins (the density then integrates to the fraction inside) but not out of n or the
    CDF, which is exact at every edge.
    """
    if isinstance(guide_or_values, MeanFieldGuide):
        values = log10_snr(guide_or_values, include_biases)
        values = values[torch.isfinite(values)]  # σ underflowing to 0 gives log10 SNR = inf
    else:
        values = _log_snr_values(guide_or_values)
    values = values.double().reshape(-1).cpu()
    if values.numel() == 0:
        raise ValueError("no log10 SNR values to histogram (every weight pruned?)")
    bins = as_int(bins, "bins")
    if value_range is None:
        lo, hi = float(values.min()), float(values.max())
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
    else:
        lo, hi = _value_range(value_range)
    edges = torch.linspace(lo, hi, bins + 1, dtype=torch.float64)
    inside = values[(values >= lo) & (values <= hi)]
    counts = torch.histc(inside, bins=bins, min=lo, max=hi)
    n = values.numel()
    density = counts / (n * (edges[1:] - edges[:-1]))
    cdf = torch.searchsorted(values.sort().values, edges, right=True).double() / n
    return SNRHistogram(edges, density, cdf, n)


def _log_snr_values(values: Any) -> torch.Tensor:
    """Given log10 SNR values as a float64 tensor, or an error saying what is accepted."""
    accepted = "a MeanFieldGuide or log10 SNR values (a tensor, numpy array or list of numbers)"
    if not (torch.is_tensor(values) or isinstance(values, (np.ndarray, list, tuple))):
        raise TypeError(f"log_snr_histogram expects {accepted}, got {type(values).__name__}")
    if torch.is_tensor(values):
        values = values.detach().cpu()
    try:
        tensor = torch.as_tensor(np.asarray(values, dtype=np.float64))
    except (TypeError, ValueError):
        raise ValueError(f"log_snr_histogram expects {accepted}; the values given are not "
                         "numbers") from None
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError("the log10 SNR values contain NaN or infinite entries")
    return tensor


def _value_range(value_range: Any) -> tuple[float, float]:
    """``value_range`` as finite (low, high) with low < high, or ValueError."""
    pair = tuple(value_range) if isinstance(value_range, (tuple, list)) else ()
    ok = len(pair) == 2 and all(is_finite_number(v) for v in pair)
    if not (ok and pair[0] < pair[1]):
        raise ValueError(f"value_range must be (low, high) with finite low < high, got "
                         f"{value_range!r}")
    return float(pair[0]), float(pair[1])


def pruning_curve(
    model,
    guide: MeanFieldGuide,
    x,
    y,
    proportions: Sequence[float] = DEFAULT_PROPORTIONS,
    *,
    num_samples: int = 100,
    include_biases: bool = False,
    seed: int = 0,
    num_bins: int = 15,
    chunk_size: int | None = None,
) -> list[dict[str, float | int]]:
    """Test metrics of a classifier after pruning each proportion of its weights by SNR.

    For each p: ``prune(guide, p)``, then ``num_samples`` posterior draws from a generator seeded
    with ``seed`` (the same ε for every p, so differences come from pruning alone) give the
    predictive probabilities. One dict per p with proportion, threshold (``snr_threshold``),
    accuracy, error = 1 − accuracy, nll, ece (``num_bins`` bins), nonzero_weights, num_weights,
    dense_bytes and sparse_bytes (``memory_footprint``).
    """
    _check_guide(guide, "pruning_curve")
    if isinstance(proportions, (str, bytes)) or not isinstance(proportions, Iterable):
        raise ValueError(f"proportions must be a list of numbers, e.g. [0.5], got {proportions!r}")
    checked = [check_proportion(p) for p in proportions]
    seed = as_int(seed, "seed", minimum=0)
    if not checked:
        raise ValueError("proportions is empty")
    labels = torch.as_tensor(y)
    device = next(guide.parameters()).device
    rows = []
    for proportion in checked:
        pruned = prune(guide, proportion, include_biases)
        generator = torch.Generator(device=device).manual_seed(seed)
        pred = predict(model, pruned, x, num_samples=num_samples, chunk_size=chunk_size,
                       generator=generator)
        if not isinstance(pred, ClassificationPrediction):
            raise ValueError(f"pruning_curve needs a classifier; the model predicts "
                             f"{type(pred).__name__}")
        probs = pred.probs.cpu()
        acc = accuracy(probs, labels)
        memory = memory_footprint(pruned)
        rows.append({
            "proportion": proportion,
            "threshold": snr_threshold(guide, proportion, include_biases),
            "accuracy": acc,
            "error": 1.0 - acc,
            "nll": nll(probs, labels),
            "ece": expected_calibration_error(probs, labels, num_bins),
            "nonzero_weights": memory.nonzero_weights,
            "num_weights": memory.num_weights,
            "dense_bytes": memory.dense_bytes,
            "sparse_bytes": memory.sparse_bytes,
        })
    return rows
