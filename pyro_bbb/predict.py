"""Posterior predictive from weight draws, computed in chunks of inputs so memory stays bounded.

Draws come in the library's one posterior format: a dict ``site name → tensor`` with a leading
sample dimension S (any inference method produces it). For inputs x the network is evaluated for
all S draws at once, chunk by chunk: peak memory is O(S · chunk_size · widest layer), not O(S · N).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields

import torch

from .inputs import as_features, as_targets
from .likelihoods import Bernoulli, Categorical
from .metrics import accuracy

__all__ = ["predict", "posterior_predictive", "log_likelihood", "predictive_accuracy",
           "default_chunk_size"]

_CHUNK_ELEMENTS = 2**24  # floats of activations per chunk (64 MiB in float32)


def default_chunk_size(num_samples: int, widest_layer: int) -> int:
    """Rows per chunk so that S × rows × width stays near 2^24 activations."""
    return max(1, _CHUNK_ELEMENTS // max(1, num_samples * widest_layer))


def _num_samples(samples: Mapping[str, torch.Tensor]) -> int:
    sizes = {v.shape[0] for v in samples.values()}
    if len(sizes) != 1:
        raise ValueError(f"posterior draws disagree on the number of samples: {sorted(sizes)}")
    return sizes.pop()


def _chunks(model, samples, x: torch.Tensor, chunk_size: int | None, fn: Callable):
    """Yield (fn(network outputs of the chunk, rows), rows) for consecutive chunks of rows."""
    num_samples = _num_samples(samples)
    device = next(iter(samples.values())).device
    if chunk_size is None:
        chunk_size = default_chunk_size(num_samples, max(model.layer_sizes))
    elif not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
    if x.shape[0] == 0:
        raise ValueError("no inputs to predict for (x has 0 rows)")
    with torch.no_grad():
        for start in range(0, x.shape[0], chunk_size):
            rows = slice(start, start + chunk_size)
            yield fn(model.network(x[rows].to(device), samples), rows), rows


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
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    x = as_features(x, model.input_size)
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
