"""The captured training step on a real CUDA graph: the same losses and parameters as the eager
step on the same noise, the learning rate read from its tensor, no host sync in a replay, and
fit's fallbacks (ragged minibatch) on the device."""

import math

import pyro
import pytest
import torch

from pyro_bbb import BayesianMLP, Categorical, MeanFieldGuide, fit, scale_mixture_prior
from pyro_bbb.infer.captured import CapturedStep
from pyro_bbb.infer.engine import FastELBO
from pyro_bbb.infer.optim import default_adam

DEVICE = torch.device("cuda")
NUM_DATA = 256


@pytest.fixture(autouse=True)
def no_validation():
    """As in fit: Pyro's and torch's argument checks read values back (host syncs)."""
    with pyro.validation_enabled(False):
        yield


def setup(sizes, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(NUM_DATA, sizes[0], generator=g).to(DEVICE)
    y = torch.randint(0, sizes[-1], (NUM_DATA,), generator=g).to(DEVICE)
    pyro.set_rng_seed(seed)
    model = BayesianMLP(sizes, Categorical(sizes[-1]),
                        prior=scale_mixture_prior(0.5, 1.0, math.exp(-6)))
    return x, y, model, MeanFieldGuide(model).to(DEVICE)


def fix_noise(monkeypatch):
    """FastELBO draws its noise once and then returns the same tensors (which a graph reads)."""
    original, drawn = FastELBO._noise, []

    def noise(self, *args):
        if not drawn:
            drawn.append(original(self, *args))
        return drawn[0]

    monkeypatch.setattr(FastELBO, "_noise", noise)


def eager_step(elbo, optimizer, x, y, idx, kl_weight):
    """fit's eager step."""
    optimizer.zero_grad(set_to_none=True)
    terms = elbo(x[idx], y[idx], NUM_DATA)
    loss = terms.data + kl_weight * terms.complexity
    loss.backward()
    optimizer.step()
    return torch.stack([loss, terms.data, terms.complexity]).detach()


@pytest.mark.parametrize("sizes", [[20, 16, 3], [784, 400, 400, 10]])
def test_replayed_steps_equal_eager_steps_on_the_same_noise(monkeypatch, sizes):
    fix_noise(monkeypatch)
    x, y, model, guide = setup(sizes)
    start = {k: v.clone() for k, v in guide.state_dict().items()}
    batches = torch.randperm(NUM_DATA, device=DEVICE).view(4, 64).repeat(2, 1)
    weights = [1.0, 0.5, 2.0, 0.25, 1.5, 1.0, 0.75, 3.0]

    optimizer = default_adam(list(guide.parameters()), 1e-2, capturable=True)
    elbo = FastELBO(model, guide)
    eager = [eager_step(elbo, optimizer, x, y, idx, c) for idx, c in zip(batches, weights,
                                                                          strict=True)]
    eager_params = {k: v.clone() for k, v in guide.state_dict().items()}

    guide.load_state_dict(start)
    optimizer = default_adam(list(guide.parameters()), 1e-2, capturable=True)
    step = CapturedStep(FastELBO(model, guide), optimizer, x, y, 64, NUM_DATA, warmup=2)
    captured = [step(idx, c) for idx, c in zip(batches, weights, strict=True)]
    assert (step.captures, step.replays, step.disabled) == (1, 6, None)
    for got, want in zip(captured, eager, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)
    for name, value in guide.state_dict().items():
        torch.testing.assert_close(value, eager_params[name], rtol=1e-5, atol=1e-6)


def test_a_replay_reads_the_learning_rate_tensor_and_never_syncs():
    x, y, model, guide = setup([20, 16, 3])
    optimizer = default_adam(list(guide.parameters()), 1e-2, capturable=True)
    step = CapturedStep(FastELBO(model, guide), optimizer, x, y, 64, NUM_DATA, warmup=1)
    idx = torch.arange(64, device=DEVICE)
    step(idx, 1.0)
    step(idx, 1.0)
    assert step.replays == 1
    optimizer.param_groups[0]["lr"].fill_(0.0)
    before = {k: v.clone() for k, v in guide.state_dict().items()}
    torch.cuda.set_sync_debug_mode("error")  # any host sync raises
    try:
        out = step(idx, 1.0)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert torch.isfinite(out).all()
    assert all(torch.equal(v, before[k]) for k, v in guide.state_dict().items())
    optimizer.param_groups[0]["lr"].fill_(1e-2)
    step(idx, 1.0)
    assert step.replays == 3 and step.captures == 1
    assert not all(torch.equal(v, before[k]) for k, v in guide.state_dict().items())


def test_fit_replays_full_minibatches_and_follows_the_eager_fit():
    """1000 points in minibatches of 128: 7 replayable steps and a ragged one of 104 per epoch.
    A capture leaves the CUDA generator as it was and a replay draws what the eager step would
    draw from the same generator state (torch's graph-safe Philox offsets), so with one seed the
    two runs see the same noise and agree to float tolerance."""
    runs, params = [], []
    for cuda_graph in (True, False):
        x, y, model, guide = setup([20, 32, 3])
        x, y = x.repeat(4, 1)[:1000], y.repeat(4)[:1000]
        runs.append(fit(model, guide, x, y, epochs=4, batch_size=128, lr=1e-2, seed=0,
                        device=DEVICE, progress=False, cuda_graph=cuda_graph,
                        optimizer=lambda p: default_adam(p, 1e-2, capturable=True)))
        params.append(guide.state_dict())
    captured, eager = runs
    assert captured.cuda_graph == {"captures": 1, "replays": 4 * 7 - 3, "disabled": None}
    assert eager.cuda_graph is None
    for a, b in zip(captured.history, eager.history, strict=True):
        assert math.isfinite(a.loss)
        assert a.elbo == pytest.approx(b.elbo, rel=1e-4)
    for name, value in params[0].items():
        torch.testing.assert_close(value, params[1][name], rtol=1e-3, atol=1e-4)


def test_fit_on_cuda_uses_the_graph_by_default():
    x, y, model, guide = setup([20, 16, 3])
    result = fit(model, guide, x, y, epochs=2, batch_size=64, device=DEVICE, progress=False)
    assert result.cuda_graph["captures"] == 1 and result.cuda_graph["replays"] == 2 * 4 - 3
    assert torch.is_tensor(result.state.optimizer_state["param_groups"][0]["lr"])
