"""Posterior predictive: chunking, the uncertainty split, intervals, per-point log-likelihoods."""

import dataclasses
import math
import sys

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from pyro_bbb import (
    BayesianMLP,
    Bernoulli,
    Categorical,
    Gaussian,
    MeanFieldGuide,
    log_likelihood,
    posterior_predictive,
    predict,
)
from pyro_bbb.likelihoods import mixture_quantile
from pyro_bbb.predict import default_chunk_size, predictive_accuracy

# the module, not the function pyro_bbb.predict that shadows it as a package attribute
predict_module = sys.modules[default_chunk_size.__module__]


def classifier(init_rho=-1.0):
    model = BayesianMLP([4, 8, 3], Categorical(3))
    return model, MeanFieldGuide(model, init_rho=init_rho)


def test_chunked_equals_unchunked():
    model, guide = classifier()
    draws = guide.sample_posterior(20)
    x = torch.randn(53, 4)
    whole = posterior_predictive(model, draws, x, chunk_size=10_000)
    chunked = posterior_predictive(model, draws, x, chunk_size=7)
    for name in ("probs", "total_entropy", "aleatoric", "epistemic"):
        torch.testing.assert_close(getattr(chunked, name), getattr(whole, name))
    torch.testing.assert_close(log_likelihood(model, draws, x, torch.zeros(53, dtype=torch.long),
                                              chunk_size=5),
                               log_likelihood(model, draws, x, torch.zeros(53, dtype=torch.long)))


def test_entropy_split_adds_up_and_vanishes_without_weight_uncertainty():
    model, guide = classifier()
    x = torch.randn(30, 4)
    pred = predict(model, guide, x, num_samples=50)
    torch.testing.assert_close(pred.total_entropy, pred.aleatoric + pred.epistemic)
    assert torch.all(pred.epistemic >= 0) and torch.all(pred.total_entropy <= math.log(3) + 1e-6)
    torch.testing.assert_close(pred.probs.sum(-1), torch.ones(30))
    # identical draws: all uncertainty is aleatoric
    same = {n: v.expand(10, *v.shape) for n, v in guide.median().items()}
    point = posterior_predictive(model, same, x)
    torch.testing.assert_close(point.epistemic, torch.zeros(30), atol=1e-6, rtol=0)
    assert point.predicted.shape == (30,)


def test_regression_summary_known_answers():
    model = BayesianMLP([1, 1], Gaussian(noise=0.5))
    # two draws of the line y = w x + b: (w, b) = (1, 0) and (3, 0)
    draws = {"layer0.weight": torch.tensor([[[1.0]], [[3.0]]]),
             "layer0.bias": torch.zeros(2, 1)}
    x = torch.tensor([[0.0], [1.0]])
    pred = posterior_predictive(model, draws, x, level=0.9)
    torch.testing.assert_close(pred.mean, torch.tensor([0.0, 2.0]))
    torch.testing.assert_close(pred.epistemic_std, torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(pred.aleatoric_std, torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(pred.std, torch.tensor([0.5, math.sqrt(1.25)]))
    # at x = 0 both components coincide: the interval is the Gaussian one
    z = torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(0.95))
    assert pred.upper[0].item() == pytest.approx(0.5 * z.item(), rel=1e-4)
    assert pred.lower[0].item() == pytest.approx(-0.5 * z.item(), rel=1e-4)


def test_mixture_quantile_inverts_the_mixture_cdf():
    locs = torch.tensor([[-1.0, 0.0], [2.0, 0.0], [0.5, 0.0]])
    scales = torch.tensor([[0.3, 1.0], [0.7, 1.0], [1.0, 1.0]])
    for q in (0.025, 0.5, 0.9):
        value = mixture_quantile(locs, scales, q)
        cdf = torch.distributions.Normal(locs, scales).cdf(value).mean(0)
        torch.testing.assert_close(cdf, torch.full((2,), q), atol=1e-5, rtol=0)


def test_learned_noise_enters_the_aleatoric_part():
    model = BayesianMLP([2, 1], Gaussian())
    guide = MeanFieldGuide(model)
    draws = guide.sample_posterior(100)
    pred = posterior_predictive(model, draws, torch.randn(5, 2))
    expected = draws["noise"].pow(2).mean().sqrt()
    torch.testing.assert_close(pred.aleatoric_std, expected.expand(5))


def test_log_likelihood_per_point():
    model = BayesianMLP([3, 1], Bernoulli())
    guide = MeanFieldGuide(model)
    draws = guide.sample_posterior(6)
    x, y = torch.randn(11, 3), torch.randint(0, 2, (11,))
    ll = log_likelihood(model, draws, x, y)
    assert ll.shape == (6, 11)
    logits = model.network(x, draws).squeeze(-1)
    expected = torch.distributions.Bernoulli(logits=logits).log_prob(y.float())
    torch.testing.assert_close(ll, expected)


def test_chunk_size_bounds_activation_memory():
    assert default_chunk_size(100, 1200) == 2**24 // (100 * 1200)
    assert default_chunk_size(10**9, 10**9) == 1
    model, guide = classifier()
    draws = guide.sample_posterior(4)
    seen = []
    original = model.network
    model.network = lambda x, params: seen.append(x.shape[0]) or original(x, params)
    posterior_predictive(model, draws, torch.randn(25, 4), chunk_size=10)
    assert seen == [10, 10, 5]


def test_predict_rejects_bad_input():
    model, guide = classifier()
    with pytest.raises(ValueError, match="X has 5 features but the model expects 4"):
        predict(model, guide, torch.randn(3, 5))
    with pytest.raises(ValueError, match="X contains NaN"):
        predict(model, guide, torch.tensor([[0.0, float("inf"), 0.0, 0.0]]))
    for level in (1.5, "0.9", None):
        with pytest.raises(ValueError, match="level must be in"):
            predict(model, guide, torch.randn(3, 4), level=level)
    with pytest.raises(ValueError, match="disagree on the number of samples"):
        draws = guide.sample_posterior(4)
        draws["layer0.bias"] = draws["layer0.bias"][:2]
        posterior_predictive(model, draws, torch.randn(3, 4))


def _with(draws, name, value):
    return {**draws, name: value}


@pytest.mark.parametrize("change,match", [
    (lambda d: {k: v.reshape(2, 3, *v.shape[1:]) for k, v in d.items()},
     r"layer0.weight' have shape \(2, 3, 8, 4\), a \(chain, draw\) layout: flatten"),
    (lambda d: {k: v[0] for k, v in d.items()}, r"no sample dimension: .*w\[None\]"),
    (lambda d: {k: v for k, v in d.items() if k != "layer1.bias"},
     r"posterior draws does not match.*missing sites \['layer1.bias'\]"),
    (lambda d: _with(d, "layer0.weight", d["layer0.weight"].transpose(1, 2)),
     r"layer0.weight has shape \(4, 8\), the model's is \(8, 4\)"),
    (lambda d: {k: v[:0] for k, v in d.items()}, r"empty \(S = 0\)"),
    (lambda d: _with(d, "layer1.weight", d["layer1.weight"].index_fill(0, torch.tensor([4]),
                                                                       float("nan"))),
     r"draws of \['layer1.weight'\] contain NaN or infinite"),
    (lambda d: _with(d, "layer1.bias", d["layer1.bias"].long()), "floating-point"),
])
def test_posterior_draws_are_checked_against_the_model(change, match):
    model, guide = classifier()
    draws = change(guide.sample_posterior(6))
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    with pytest.raises(ValueError, match=match):
        posterior_predictive(model, draws, x)
    with pytest.raises(ValueError, match=match):
        log_likelihood(model, draws, x, y)


def test_numpy_and_float64_draws_predict_like_the_tensors_they_hold():
    model, guide = classifier()
    draws, x = guide.sample_posterior(6), torch.randn(5, 4)
    want = posterior_predictive(model, draws, x).probs
    as_numpy = posterior_predictive(model, {k: v.numpy() for k, v in draws.items()}, x).probs
    as_double = posterior_predictive(model, {k: v.double() for k, v in draws.items()}, x).probs
    torch.testing.assert_close(as_numpy, want)
    assert as_double.dtype == torch.float64
    torch.testing.assert_close(as_double.float(), want)


class _AllocationSpy(TorchDispatchMode):
    """Records (aten op, output shape) of every tensor an op allocates (views allocate nothing).

    A dispatch mode sees the aten ops that composite ops such as matmul decompose into, so a
    materialised broadcast or an (S, N, width) activation anywhere in the call cannot hide.
    """

    def __init__(self):
        super().__init__()
        self.allocated: list[tuple[str, tuple[int, ...]]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not func.is_view:
            flat = out if isinstance(out, (tuple, list)) else (out,)
            self.allocated += [(str(func), tuple(t.shape)) for t in flat if torch.is_tensor(t)]
        return out


def _spied(model, call):
    """Run call() counting the rows of every network forward and recording every allocation."""
    rows, spy, original = [], _AllocationSpy(), model.network
    model.network = lambda x, params: rows.append(x.shape[0]) or original(x, params)
    try:
        with spy:
            result = call()
    finally:
        model.network = original
    return result, rows, spy.allocated


def _largest(allocated, exempt=lambda op, shape: False) -> int:
    return max(math.prod(shape) for op, shape in allocated if not exempt(op, shape))


# S draws over N inputs, N ≫ chunk, S > input width so that any per-(draw, point) tensor (S·N
# elements) is larger than anything allowed below, and S·N ≫ S·chunk·widest.
S, N, CHUNK, HIDDEN = 32, 403, 10, 16


@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_peak_memory_is_bounded_by_the_chunk_not_by_s_times_n(kind):
    if kind == "classification":
        model = BayesianMLP([4, HIDDEN, HIDDEN, 3], Categorical(3))
        y = torch.randint(0, 3, (N,))
    else:  # learned noise: the extra latent goes through the same chunks
        model = BayesianMLP([4, HIDDEN, HIDDEN, 1], Gaussian())
        y = torch.randn(N)
    guide = MeanFieldGuide(model, init_rho=-1.0)
    draws = guide.sample_posterior(S)
    x = torch.randn(N, 4)
    widest = max(model.layer_sizes)
    per_chunk = S * CHUNK * widest  # the documented bound on any intermediate
    # O(N) tensors with no sample dim are allowed: input validation (N × d_0) and the summary
    # (N × d_L); neither grows with S.
    per_point = N * max(model.layer_sizes[0], model.layer_sizes[-1])
    bound = max(per_chunk, per_point)
    assert bound < S * N  # so a single (S, N) tensor would already break the bound

    whole, whole_rows, whole_alloc = _spied(
        model, lambda: posterior_predictive(model, draws, x, chunk_size=N))
    chunked, rows, alloc = _spied(
        model, lambda: posterior_predictive(model, draws, x, chunk_size=CHUNK))
    assert whole_rows == [N]
    assert rows == [CHUNK] * (N // CHUNK) + [N % CHUNK] and max(rows) <= CHUNK
    # the spy sees the activations: unchunked, the hidden activations are S × N × HIDDEN
    assert _largest(whole_alloc) >= S * N * HIDDEN
    assert _largest(alloc) <= bound, sorted(alloc, key=lambda a: -math.prod(a[1]))[:3]
    for name in (f.name for f in dataclasses.fields(whole)):
        a, b = getattr(chunked, name), getattr(whole, name)
        if torch.is_tensor(a):
            assert a.shape[0] == N
            torch.testing.assert_close(a, b)
        else:
            assert a == b

    whole_ll, whole_rows, whole_alloc = _spied(
        model, lambda: log_likelihood(model, draws, x, y, chunk_size=N + 5))
    ll, rows, alloc = _spied(model, lambda: log_likelihood(model, draws, x, y, chunk_size=CHUNK))
    assert whole_rows == [N] and max(rows) <= CHUNK and sum(rows) == N
    assert _largest(whole_alloc) >= S * N * HIDDEN
    # the (S, N) result itself, allocated once, is the only allocation allowed to scale with S × N
    result = lambda op, shape: shape == (S, N)  # noqa: E731
    assert sum(result(*a) for a in alloc) == 1
    assert _largest(alloc, exempt=result) <= bound
    assert ll.shape == (S, N)
    torch.testing.assert_close(ll, whole_ll)


def test_default_chunk_size_keeps_activations_under_the_budget(monkeypatch):
    budget = predict_module._CHUNK_ELEMENTS
    assert budget == 2**24  # the documented 64 MiB of float32 activations per chunk
    for samples in (1, 10, 100, 1000):
        for widest in (1, 10, 400, 784, 1200, 4096):
            chunk = default_chunk_size(samples, widest)
            assert chunk >= 1
            if samples * widest <= budget:  # the largest chunk within the budget
                assert samples * chunk * widest <= budget < samples * (chunk + 1) * widest
    # the default is what posterior_predictive uses when chunk_size is not given: with a small
    # budget, every forward sees at most budget // (S · widest) rows and nothing larger than the
    # budget is allocated per chunk, input width included in "widest"
    monkeypatch.setattr(predict_module, "_CHUNK_ELEMENTS", 4096)
    model = BayesianMLP([4, HIDDEN, HIDDEN, 3], Categorical(3))
    draws = MeanFieldGuide(model).sample_posterior(S)
    x = torch.randn(N, 4)
    chunk = 4096 // (S * HIDDEN)
    pred, rows, alloc = _spied(model, lambda: posterior_predictive(model, draws, x))
    assert rows == [chunk] * (N // chunk) + ([N % chunk] if N % chunk else [])
    assert _largest(alloc) <= max(4096, N * 4)
    torch.testing.assert_close(pred.probs,
                               posterior_predictive(model, draws, x, chunk_size=N).probs)


def test_predictive_accuracy_known_answers_and_the_global_rng_untouched():
    model = BayesianMLP([2, 2], Categorical(2))
    guide = MeanFieldGuide(model, init_rho=-30.0)  # σ ≈ 1e-13: every draw is the mean
    with torch.no_grad():
        guide.loc["layer0__weight"].copy_(10 * torch.eye(2))  # logits 10 x: argmax of x
        guide.loc["layer0__bias"].zero_()
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, -1.0], [-1.0, 3.0]])
    y = x.argmax(-1)
    state = torch.get_rng_state()
    assert predictive_accuracy(model, guide, x, y) == 1.0
    assert predictive_accuracy(model, guide, x, 1 - y, num_samples=3, seed=0) == 0.0
    assert predictive_accuracy(model, guide, x, torch.tensor([0, 1, 1, 0])) == 0.5
    assert torch.equal(torch.get_rng_state(), state)
    # a wide guide: seeded draws repeat, and unseeded ones come from the (forked) global stream
    noisy_model, noisy = classifier(init_rho=1.0)
    xs, ys = torch.randn(40, 4), torch.randint(0, 3, (40,))
    assert (predictive_accuracy(noisy_model, noisy, xs, ys, seed=3)
            == predictive_accuracy(noisy_model, noisy, xs, ys, seed=3))
    torch.manual_seed(5)
    first = predictive_accuracy(noisy_model, noisy, xs, ys)
    torch.manual_seed(5)
    assert predictive_accuracy(noisy_model, noisy, xs, ys) == first


def test_predictive_accuracy_needs_a_classifier():
    model = BayesianMLP([1, 1], Gaussian(noise=0.1))
    with pytest.raises(ValueError, match="needs a classifier, got a Gaussian likelihood"):
        predictive_accuracy(model, MeanFieldGuide(model), torch.zeros(3, 1), torch.zeros(3))
