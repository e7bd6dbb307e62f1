"""The captured training step (CUDA graphs), checked on the CPU through ``EmulatedGraph``.

The emulator fails where a real CUDA graph would go wrong (a host sync inside the step, a Python
number baked into the recording, memory rebound after it) and otherwise replays the step exactly:
so a fit through the captured step must equal the eager fit bit for bit, through ragged
minibatches, KL weights, a learning-rate schedule, divergence recovery and resuming.
On the CUDA path FastELBO uses its torch node, so these tests turn the compiled CPU kernel off.
"""

import importlib
import math

import pyro
import pytest
import torch
from graph_emulator import EmulatedGraph, HostSyncInCapture, ReplayMismatch

from pyro_bbb import (
    BayesianMLP,
    Categorical,
    Gaussian,
    HeteroscedasticGaussian,
    MeanFieldGuide,
    fit,
)
from pyro_bbb.infer.captured import CapturedStep, CudaGraph
from pyro_bbb.infer.optim import default_adam

fit_module = importlib.import_module("pyro_bbb.infer.fit")  # the module, not fit()


@pytest.fixture(autouse=True)
def cuda_path(monkeypatch):
    """The CUDA configuration on the CPU: no compiled kernel, graphs emulated."""
    monkeypatch.setenv("PYRO_BBB_COMPILED_KERNEL", "0")

    def factory(cuda_graph, device, engine, distributed):
        return EmulatedGraph if cuda_graph is not False and engine == "fast" else None

    monkeypatch.setattr(fit_module, "_graph_factory", factory)


def classification(n=300):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 4, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()


def train(model_fn, x, y, cuda_graph, **kwargs):
    """A fit from seeded initial parameters (``state=`` resumes instead, as fit does)."""
    pyro.set_rng_seed(3)
    model = model_fn()
    guide = MeanFieldGuide(model)
    options = dict(epochs=3, batch_size=64, lr=1e-2, progress=False, device="cpu", seed=0)
    result = fit(model, guide, x, y, cuda_graph=cuda_graph, **{**options, **kwargs})
    return result, guide.state_dict()


def capturable_adam(params):
    return default_adam(params, 1e-2, capturable=True)


def assert_same_run(a, b):
    (ra, sa), (rb, sb) = a, b
    assert sa.keys() == sb.keys()
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name
    assert [r.loss for r in ra.history] == [r.loss for r in rb.history]
    assert ra.steps == rb.steps


def classifier():
    return BayesianMLP([4, 8, 3], Categorical(3))


@pytest.mark.parametrize("kl_weighting,schedule,particles", [("uniform", "constant", 1),
                                                             ("blundell", "cosine", 1),
                                                             ("uniform", "cosine", 3)])
def test_captured_fit_equals_the_eager_fit_bit_for_bit(kl_weighting, schedule, particles):
    x, y = classification()
    kwargs = dict(kl_weighting=kl_weighting, lr_schedule=schedule, num_particles=particles)
    captured = train(classifier, x, y, "auto", **kwargs)
    eager = train(classifier, x, y, False, optimizer=capturable_adam, **kwargs)
    assert_same_run(captured, eager)
    # 300 points, batch 64: 4 full minibatches and a ragged one of 44 per epoch; the first 3
    # full steps are the eager warm-up, the ragged ones stay eager
    assert captured[0].cuda_graph == {"captures": 1, "replays": 3 * 4 - 3, "disabled": None}
    assert eager[0].cuda_graph is None
    assert all(math.isfinite(r.loss) for r in captured[0].history)


def test_captured_regression_with_a_learned_or_input_dependent_noise_scale():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(256, 2, generator=g)
    y = x.sum(1) + 0.3 * torch.randn(256, generator=g)

    def model():
        return BayesianMLP([2, 6, 1], Gaussian())  # noise scale: a latent site (softplus bijection)

    def heteroscedastic():
        return BayesianMLP([2, 6, 2], HeteroscedasticGaussian())

    for build in (model, heteroscedastic):
        captured = train(build, x, y, True, batch_size=32)
        assert_same_run(captured, train(build, x, y, False, batch_size=32,
                                        optimizer=capturable_adam))
        assert captured[0].cuda_graph["replays"] == 3 * 8 - 3


def test_capturable_adam_takes_the_default_adams_steps():
    x, y = classification()
    (_, captured), (_, eager) = train(classifier, x, y, "auto"), train(classifier, x, y, False)
    for name in captured:
        torch.testing.assert_close(captured[name], eager[name], rtol=1e-4, atol=1e-5)


def test_a_new_python_number_hyperparameter_is_captured_again():
    """An optimizer whose lr is a float: the cosine schedule changes it each epoch, and each
    change needs a new recording (the old one has the old lr baked in)."""
    def adam(params):
        return torch.optim.Adam(params, lr=1e-2, fused=True, capturable=True)

    x, y = classification()
    captured = train(classifier, x, y, "auto", optimizer=adam, lr_schedule="cosine")
    assert_same_run(captured, train(classifier, x, y, False, optimizer=adam,
                                    lr_schedule="cosine"))
    assert captured[0].cuda_graph["captures"] == 3  # one per epoch


def test_divergence_recovery_records_the_step_again_for_the_new_optimizer():
    made = []

    def adam(params):
        made.append(capturable_adam(params))
        return made[-1]

    def poison(record):  # after epoch 0: v < 0 gives sqrt(v) = NaN, the next update is NaN
        if record.epoch == 0:
            for state in made[0].state.values():
                state["exp_avg_sq"].fill_(-1.0)

    x, y = classification()
    runs = []
    for cuda_graph in ("auto", False):
        made.clear()
        with pytest.warns(RuntimeWarning, match="non-finite.*learning rate x0.1"):
            runs.append(train(classifier, x, y, cuda_graph, optimizer=adam, callback=poison,
                              on_divergence="lower_lr", check_every=2))
    assert_same_run(*runs)
    assert runs[0][0].lr_reductions == runs[1][0].lr_reductions != []
    assert runs[0][0].cuda_graph["captures"] == 2


def test_a_non_capturable_optimizer_keeps_the_eager_step():
    x, y = classification()

    def plain(params):
        return torch.optim.Adam(params, lr=1e-2)

    result, state = train(classifier, x, y, "auto", optimizer=plain)
    assert result.cuda_graph == {"captures": 0, "replays": 0,
                                 "disabled": "the optimizer was not built with capturable=True"}
    assert_same_run((result, state), train(classifier, x, y, False, optimizer=plain))
    with pytest.raises(ValueError, match="capturable=True"):
        train(classifier, x, y, True, optimizer=plain)


def test_a_failed_capture_warns_and_continues_eagerly(monkeypatch):
    def fail(self, body):
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(EmulatedGraph, "capture", fail)
    x, y = classification()
    with pytest.warns(RuntimeWarning, match="capture failed.*not permitted.*eager step"):
        result, state = train(classifier, x, y, "auto")
    assert result.cuda_graph["captures"] == 0 and "not permitted" in result.cuda_graph["disabled"]
    assert_same_run((result, state), train(classifier, x, y, False, optimizer=capturable_adam))


def test_resuming_a_captured_run_continues_it_exactly():
    x, y = classification()
    whole = train(classifier, x, y, "auto", epochs=4)
    first, _ = train(classifier, x, y, "auto", epochs=2)
    resumed = train(classifier, x, y, "auto", epochs=4, state=first.state)
    assert_same_run(whole, resumed)
    assert resumed[0].cuda_graph["captures"] == 1


def test_an_eager_runs_state_resumes_in_the_captured_step():
    """A state saved by the eager default Adam (lr a float, not capturable) resumes through the
    capturable one: the saved moments carry over (the steps agree to float tolerance)."""
    x, y = classification()
    whole = train(classifier, x, y, False, epochs=4)[1]
    first, _ = train(classifier, x, y, False, epochs=2)
    assert not torch.is_tensor(first.state.optimizer_state["param_groups"][0]["lr"])
    resumed, params = train(classifier, x, y, "auto", epochs=4, state=first.state)
    assert resumed.cuda_graph["replays"] > 0
    for name, value in params.items():
        torch.testing.assert_close(value, whole[name], rtol=1e-4, atol=1e-5)


def test_a_captured_runs_state_resumes_in_the_eager_step():
    x, y = classification()
    whole = train(classifier, x, y, False, epochs=4)[1]
    first, _ = train(classifier, x, y, "auto", epochs=2)
    assert torch.is_tensor(first.state.optimizer_state["param_groups"][0]["lr"])
    resumed, params = train(classifier, x, y, False, epochs=4, state=first.state)
    group = resumed.state.optimizer_state["param_groups"][0]
    assert group["lr"] == 1e-2 and group["capturable"] is False
    for name, value in params.items():
        torch.testing.assert_close(value, whole[name], rtol=1e-4, atol=1e-5)


def test_cuda_graph_option_is_checked(monkeypatch):
    monkeypatch.undo()  # the real _graph_factory
    x, y = classification(32)
    model = classifier()
    for value, match in ((True, "cuda_graph=True cannot apply: it needs a CUDA device"),
                         ("yes", "cuda_graph must be True, False or 'auto'")):
        with pytest.raises(ValueError, match=match):
            fit(model, MeanFieldGuide(model), x, y, epochs=1, progress=False, device="cpu",
                cuda_graph=value)
    result = fit(model, MeanFieldGuide(model), x, y, epochs=1, progress=False, device="cpu")
    assert result.cuda_graph is None  # "auto" on the CPU: the eager step


def test_capture_applies_on_cuda_with_the_fast_engine_in_one_process(monkeypatch):
    monkeypatch.undo()
    decide, cuda = fit_module._graph_factory, torch.device("cuda")
    assert decide("auto", cuda, "fast", False) is CudaGraph
    assert decide(True, cuda, "fast", False) is CudaGraph
    assert decide("auto", cuda, "pyro", False) is None
    assert decide("auto", cuda, "fast", True) is None
    assert decide(False, cuda, "fast", False) is None
    with pytest.raises(ValueError, match="needs engine='fast'"):
        decide(True, cuda, "pyro", False)
    with pytest.raises(ValueError, match="distributed training is not captured"):
        decide(True, cuda, "fast", True)


# The emulator itself: it must catch what breaks a real CUDA graph.


class _Holder:
    def __init__(self):
        self.scale = 2.0
        self.buffer = torch.ones(3)
        self.optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)


def test_emulator_refuses_a_host_sync():
    holder = _Holder()
    with pytest.raises(HostSyncInCapture, match="_local_scalar_dense"):
        EmulatedGraph(holder).capture(lambda: holder.buffer * float(holder.buffer.sum()))


def test_emulator_catches_a_baked_python_number_and_a_rebound_buffer():
    holder = _Holder()
    graph = EmulatedGraph(holder)
    out = graph.capture(lambda: holder.buffer * holder.scale)
    holder.buffer.fill_(3.0)  # in place: what a real replay sees
    graph.replay()
    assert torch.equal(out, torch.full((3,), 6.0))
    holder.scale = 5.0
    with pytest.raises(ReplayMismatch, match="5.0"):
        graph.replay()
    holder.scale, holder.buffer = 2.0, torch.ones(3)
    with pytest.raises(ReplayMismatch, match="existing"):
        graph.replay()


def test_emulated_capture_changes_nothing():
    """A real capture records kernels without running them: parameters, optimizer state and the
    RNG are as before it."""
    x, y = classification(64)
    model = classifier()
    guide = MeanFieldGuide(model)
    from pyro_bbb.infer.engine import FastELBO

    opt = capturable_adam(list(guide.parameters()))
    step = CapturedStep(FastELBO(model, guide), opt, x, y, 64, 64, warmup=1,
                        graph_factory=EmulatedGraph)
    idx = torch.arange(64)
    step(idx, 1.0)  # warm-up: eager
    before = {k: v.clone() for k, v in guide.state_dict().items()}
    moments = [s["exp_avg"].clone() for s in opt.state.values()]
    rng = torch.get_rng_state()
    graph = EmulatedGraph(step)
    graph.capture(lambda: step._body(step.index, step.kl_weight))
    assert all(torch.equal(v, before[k]) for k, v in guide.state_dict().items())
    assert all(torch.equal(s["exp_avg"], m) for s, m in zip(opt.state.values(), moments,
                                                              strict=True))
    assert torch.equal(torch.get_rng_state(), rng)


def test_captured_fit_of_a_model_whose_noise_is_drawn_in_one_go():
    """≥ 65,536 weights: FastELBO draws all noise in one tensor (``standard_normal``)."""
    x, y = classification(160)

    def wide():
        return BayesianMLP([4, 300, 220, 3], Categorical(3))

    captured = train(wide, x, y, "auto", epochs=2, batch_size=32)
    assert_same_run(captured, train(wide, x, y, False, epochs=2, batch_size=32,
                                    optimizer=capturable_adam))
    assert captured[0].cuda_graph["replays"] == 2 * 5 - 3
