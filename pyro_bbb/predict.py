"""Posterior predictive from weight draws, computed in chunks of inputs so memory stays bounded.

Draws come in the library's one posterior format: a dict ``site name → tensor`` with a leading
sample dimension S (any inference method produces it). For inputs x the network is evaluated for
all S draws at once, chunk by chunk: peak memory is O(S · chunk_size · widest layer), not O(S · N).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields

import numpy as np
import torch

from .inputs import as_features, as_targets
from .likelihoods import Bernoulli, Categorical
from .metrics import accuracy

__all__ = ["predict", "posterior_predictive", "log_likelihood", "predictive_accuracy",
           "default_chunk_size", "check_draws"]

_CHUNK_ELEMENTS = 2**24  # floats of activations per chunk (64 MiB in float32)


def default_chunk_size(num_samples: int, widest_layer: int) -> int:
    """Rows per chunk so that S × rows × width stays near 2^24 activations."""
    return max(1, _CHUNK_ELEMENTS // max(1, num_samples * widest_layer))


def check_draws(model, samples: Mapping) -> dict[str, torch.Tensor]:
    """``samples`` as tensors of S ≥ 1 finite draws, shape (S, *site shape), of exactly the
    latent sites of ``model``, on one device and of one floating dtype; else ValueError."""
    if not isinstance(samples, Mapping):
        raise TypeError(f"posterior draws must be a dict site name → tensor, got {samples!r}")
    draws = {name: torch.as_tensor(np.asarray(v) if not torch.is_tensor(v) else v)
             for name, v in samples.items()}
    for name, shape in model.latent_shapes().items():
        value = draws.get(name)
        if value is not None and value.dim() == len(shape) + 2 and value.shape[2:] == shape:
            raise ValueError(f"draws of {name!r} have shape {tuple(value.shape)}, a (chain, draw) "
                             "layout: flatten it to (S, ...) first, e.g. "
                             "diagnostics.to_draws(idata, flatten=True)")
        if value is not None and value.shape == shape:
            raise ValueError(f"draws of {name!r} have shape {tuple(value.shape)}, no sample "
                             "dimension: a single draw w needs a leading one, w[None]")
    model.check_sites({n: v.shape[1:] for n, v in draws.items()}, "the posterior draws")
    sizes = {v.shape[0] for v in draws.values()}
    if len(sizes) != 1:
        raise ValueError(f"posterior draws disagree on the number of samples: {sorted(sizes)}")
    if sizes == {0}:
        raise ValueError("the posterior draws are empty (S = 0)")
    if len({v.device for v in draws.values()}) != 1:
        raise ValueError("posterior draws lie on different devices")
    if not all(v.is_floating_point() for v in draws.values()):
        raise ValueError("posterior draws must be floating-point tensors")
    # min and max propagate NaN: a finiteness check with no draw-sized temporary
    bad = [name for name, v in draws.items()
           if not bool(torch.isfinite(torch.stack(torch.aminmax(v))).all())]
    if bad:
        raise ValueError(f"posterior draws of {bad} contain NaN or infinite values")
    dtype = next(iter(draws.values())).dtype
    return {name: v.to(dtype) for name, v in draws.items()}


def _chunks(model, samples, x: torch.Tensor, chunk_size: int | None, fn: Callable):
    """Yield (fn(network outputs of the chunk, rows), rows) for consecutive chunks of rows."""
    first = next(iter(samples.values()))
    if chunk_size is None:
        chunk_size = default_chunk_size(first.shape[0], max(model.layer_sizes))
    elif not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
    with torch.no_grad():
        for start in range(0, x.shape[0], chunk_size):
            rows = slice(start, start + chunk_size)
            yield fn(model.network(x[rows].to(first.device, first.dtype), samples), rows), rows


def _into(out: torch.Tensor | None, part: torch.Tensor, rows: slice, total: int, dim: int
          ) -> torch.Tensor:
    """Write a chunk's rows into the full-size output, allocated once from the first chunk (one
    allocation instead of a list of chunks joined at the end: freed chunks no longer fragment
    the heap, so peak memory does not grow with N)."""
    if out is None:
        shape = list(part.shape)
        shape[dim] = total
        out = part.new_empty(shape)
    out.narrow(dim, rows.start, part.shape[dim]).copy_(part)
    return out


def posterior_predictive(
    model,
    samples: Mapping[str, torch.Tensor],
    x,
    *,
    chunk_size: int | None = None,
    level: float = 0.95,
):
    """Predictive summary of ``model.likelihood`` over the S draws in ``samples``.

    Classification gives ``ClassificationPrediction`` (mean probabilities and the entropy split
    total = aleatoric + epistemic); regression gives ``RegressionPrediction`` (mean, std split
    into aleatoric and epistemic parts, central ``level`` interval).
    """
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    x = as_features(x, model.input_size)
    samples = check_draws(model, samples)
    first, joined = None, {}
    for part, rows in _chunks(model, samples, x, chunk_size,
                              lambda f, rows: model.likelihood.summarize(f, samples, level)):
        first = first or part
        for f in fields(part):
            value = getattr(part, f.name)
            joined[f.name] = (_into(joined.get(f.name), value, rows, x.shape[0], 0)
                              if torch.is_tensor(value) else value)
    return type(first)(**joined)


def log_likelihood(
    model, samples: Mapping[str, torch.Tensor], x, y, *, chunk_size: int | None = None
) -> torch.Tensor:
    """log p(y_n | x_n, w_s) for every draw s and point n: shape (S, N)."""
    x = as_features(x, model.input_size)
    y = as_targets(y, model.likelihood, x.shape[0])
    samples = check_draws(model, samples)
    device = next(iter(samples.values())).device
    out = None
    for part, rows in _chunks(model, samples, x, chunk_size,
                              lambda f, rows: model.likelihood.log_prob(f, y[rows].to(device),
                                                                        samples)):
        out = _into(out, part, rows, x.shape[0], -1)
    return out


def predict(
    model,
    guide,
    x,
    *,
    num_samples: int = 100,
    chunk_size: int | None = None,
    level: float = 0.95,
    generator: torch.Generator | None = None,
):
    """Draw ``num_samples`` weights from the guide and summarise the posterior predictive."""
    if hasattr(guide, "site_shapes"):
        model.check_sites(guide.site_shapes(), "the guide")
    samples = guide.sample_posterior(num_samples, generator=generator)
    return posterior_predictive(model, samples, x, chunk_size=chunk_size, level=level)


def predictive_accuracy(
    model, guide, x, y, *, num_samples: int = 10, seed: int | None = None
) -> float:
    """Accuracy of a ``num_samples``-draw posterior predictive: the fraction of points n with
    argmax_c p̄(y=c | x_n) = y_n, where p̄ = (1/S) Σ_s p(y | x_n, w_s) and w_s ~ q(w).

    Made for tracking test accuracy in a ``fit`` callback: torch's global RNG (CPU, and the
    guide's CUDA device) is forked, so training goes on with the random stream it would have had
    without the check. ``seed`` draws from a fresh generator; None draws from the forked global
    stream. Needs a classifier (Categorical or Bernoulli likelihood); ``y`` holds integer
    class labels.
    """
    if not isinstance(model.likelihood, (Categorical, Bernoulli)):
        raise ValueError("predictive_accuracy needs a classifier, got a "
                         f"{type(model.likelihood).__name__} likelihood")
    device = next(guide.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), \
            torch.no_grad():
        generator = None if seed is None else torch.Generator(device).manual_seed(seed)
        probs = predict(model, guide, x, num_samples=num_samples, generator=generator).probs
    return accuracy(probs.cpu(), y.cpu() if torch.is_tensor(y) else y)
