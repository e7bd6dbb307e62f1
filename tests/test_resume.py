"""Checkpointed training and resume: exact continuation, kill -9, Ctrl-C, bad checkpoints.

Exactness claim under test: on the CPU with a fixed seed, a run continued from a checkpoint ends
with bit-identical guide parameters and history (loss, nll, complexity, elbo; the wall-clock
``seconds`` column differs) to an uninterrupted run, whether it stopped at an epoch boundary or
in the middle of an epoch. Subprocesses run with ``--threads 1`` like this suite (conftest).
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyro
import pytest
import torch

from pyro_bbb import BayesianMLP, Gaussian, MeanFieldGuide, fit
from pyro_bbb.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from pyro_bbb.cli import _StopOnSignal, main
from pyro_bbb.config import DATA_ENV, apply_overrides, load_config
from pyro_bbb.experiment import run_experiment
from pyro_bbb.infer.fit import TrainingInterrupted, TrainingState

# 6 epochs of 100 minibatches: ~1 s of training, long enough to kill a run after its first
# checkpoint and before its end.
SPEC = """
name = "resumable"
seed = 7
[data]
kind = "toy_regression"
num_points = 1000
num_test = 40
[network]
hidden_sizes = [16]
[likelihood]
kind = "gaussian"
noise = 0.05
[training]
epochs = 6
batch_size = 10
lr = 0.01
kl_weighting = "blundell"
device = "cpu"
[evaluation]
num_samples = 20
"""
HISTORY_KEYS = ("epoch", "loss", "nll", "complexity", "elbo")  # all but wall-clock seconds


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "resumable.toml"
    path.write_text(SPEC)
    return path


@pytest.fixture(scope="module")
def reference(spec):
    """The uninterrupted run: final guide parameters, history and metrics."""
    pyro.set_rng_seed(0)
    result = run_experiment(load_config(spec))
    state = {k: v.detach().clone() for k, v in result.guide.state_dict().items()}
    history = {k: v for k, v in result.fit.history_dict().items() if k in HISTORY_KEYS}
    return state, history, result.metrics


def assert_same_run(run_dir: Path, reference) -> None:
    """The run folder's final checkpoint, history and metrics equal the reference bit for bit."""
    state, history, metrics = reference
    loaded = load_checkpoint(run_dir / "checkpoint.pt")
    got = loaded.guide.state_dict()
    assert got.keys() == state.keys()
    assert all(torch.equal(got[k], state[k]) for k in state), "parameters differ"
    saved_history = json.loads((run_dir / "history.json").read_text())
    assert {k: saved_history[k] for k in HISTORY_KEYS} == history
    assert json.loads((run_dir / "metrics.json").read_text())["metrics"] == metrics
    assert loaded.training_state.epoch == 6 and loaded.training_state.step == 600


# --------------------------------------------------------------------------- fit level


def _problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 3, generator=g)
    return x, x.sum(1) + 0.1 * torch.randn(50, generator=g)


def _fresh(seed: int = 1):
    pyro.set_rng_seed(seed)
    model = BayesianMLP([3, 8, 1], Gaussian())  # learned noise: a constrained site too
    return model, MeanFieldGuide(model)


def _via_checkpoint(tmp_path: Path, model, guide, state: TrainingState) -> TrainingState:
    path = save_checkpoint(tmp_path / "state.pt", model, guide, training_state=state)
    return load_checkpoint(path).training_state


def _assert_same(guide_a, guide_b, result_a, result_b):
    a, b = guide_a.state_dict(), guide_b.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), "parameters differ"
    rows = [[getattr(r, k) for k in HISTORY_KEYS] for r in result_a.history]
    assert rows == [[getattr(r, k) for k in HISTORY_KEYS] for r in result_b.history]
    assert result_a.steps == result_b.steps


@pytest.mark.parametrize("kl_weighting, engine", [("uniform", "fast"), ("blundell", "fast"),
                                                  ("blundell", "pyro")])
def test_six_epochs_equal_three_saved_loaded_and_resumed_to_six(tmp_path, kl_weighting, engine):
    kwargs = dict(batch_size=16, lr=0.01, num_particles=2, kl_weighting=kl_weighting, seed=5,
                  device="cpu", progress=False, engine=engine)
    model, guide = _fresh()
    full = fit(model, guide, *_problem(), epochs=6, **kwargs)

    model2, guide2 = _fresh()
    first = fit(model2, guide2, *_problem(), epochs=3, **kwargs)
    state = _via_checkpoint(tmp_path, model2, guide2, first.state)
    assert (state.epoch, state.batch, state.step) == (3, 0, 12)
    pyro.set_rng_seed(99)  # the global RNGs are restored from the state, not reseeded
    torch.randn(10)
    model3, guide3 = _fresh(seed=2)  # other initial values: overwritten by the state
    resumed = fit(model3, guide3, *_problem(), epochs=6, state=state, **kwargs)
    _assert_same(guide, guide3, full, resumed)


def test_stop_mid_epoch_and_resume_is_exact(tmp_path):
    kwargs = dict(batch_size=16, lr=0.01, kl_weighting="blundell", seed=5, device="cpu",
                  progress=False)
    model, guide = _fresh()
    full = fit(model, guide, *_problem(), epochs=4, **kwargs)
    polls = iter(range(1000))
    saved = []
    model2, guide2 = _fresh()
    with pytest.raises(TrainingInterrupted) as info:
        fit(model2, guide2, *_problem(), epochs=4, stop=lambda: next(polls) == 5,
            on_checkpoint=saved.append, **kwargs)
    state = info.value.state
    assert info.value.checkpointed and saved == [state]
    assert (state.epoch, state.batch, state.step) == (1, 2, 6)  # 4 minibatches per epoch
    model3, guide3 = _fresh()
    resumed = fit(model3, guide3, *_problem(), epochs=4,
                  state=_via_checkpoint(tmp_path, model2, guide2, state), **kwargs)
    _assert_same(guide, guide3, full, resumed)


def test_checkpoint_schedule_and_final_state():
    seen = []
    model, guide = _fresh()
    result = fit(model, guide, *_problem(), epochs=5, batch_size=25, checkpoint_every=2,
                 on_checkpoint=lambda s: seen.append((s.epoch, s.step)), progress=False,
                 device="cpu")
    assert seen == [(2, 4), (4, 8), (5, 10)]  # every 2 epochs, and at the end
    assert result.state.epoch == 5 and len(result.state.history) == 5
    again = fit(model, guide, *_problem(), epochs=5, batch_size=25, state=result.state,
                progress=False, device="cpu")  # nothing left to train
    assert again.steps == 10 and again.state is result.state


@pytest.mark.parametrize("change, match", [
    ({"batch_size": 10}, "batch_size=25, this fit has batch_size=10"),
    ({"kl_weighting": "blundell"}, "kl_weighting"),
    ({"num_particles": 3}, "num_particles"),
    ({"epochs": 2}, "beyond epochs=2"),
])
def test_resume_with_other_settings_is_refused(change, match):
    model, guide = _fresh()
    kwargs = dict(epochs=3, batch_size=25, progress=False, device="cpu")
    state = fit(model, guide, *_problem(), **kwargs).state
    with pytest.raises(ValueError, match=match):
        fit(model, guide, *_problem(), state=state, **{**kwargs, **change})


def test_training_state_round_trips_through_weights_only_load():
    model, guide = _fresh()
    state = fit(model, guide, *_problem(), epochs=2, batch_size=25, progress=False,
                device="cpu").state
    buffer = io.BytesIO()
    torch.save(state.to_dict(), buffer)
    buffer.seek(0)
    again = TrainingState.from_dict(torch.load(buffer, weights_only=True))
    assert again.history == state.history and again.settings == state.settings
    assert torch.equal(again.rng["torch"], state.rng["torch"])
    assert torch.equal(again.rng["numpy"]["keys"], state.rng["numpy"]["keys"])


# --------------------------------------------------------------------------- processes


def _launch(spec: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pyro_bbb.cli", "run", str(spec), "--out", str(out),
         "--checkpoint-every", "1", "--no-progress", "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"process ended early: {process.communicate()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("no checkpoint appeared")
        time.sleep(0.002)


def test_killed_run_resumes_to_the_uninterrupted_parameters(tmp_path, spec, reference, capsys):
    out = tmp_path / "run"
    process = _launch(spec, out)
    _wait_for(out / "checkpoint.pt", process)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    state = load_checkpoint(out / "checkpoint.pt").training_state
    assert 1 <= state.epoch < 6, "killed too late to test anything"
    assert not (out / "metrics.json").exists()
    assert (out / ".lock").exists()  # left by the killed process: stale, taken over below
    assert main(["run", "--resume", str(out), "--no-progress"]) == 0
    assert f"resumed at epoch {state.epoch}" in capsys.readouterr().out
    assert_same_run(out, reference)
    assert not (out / ".lock").exists()


def test_resuming_a_run_that_is_still_training_is_refused(tmp_path, spec, capsys):
    out = tmp_path / "run"
    process = _launch(spec, out)
    try:
        _wait_for(out / "checkpoint.pt", process)
        before = (out / "checkpoint.pt").stat().st_mtime_ns
        assert main(["run", "--resume", str(out), "--no-progress"]) == 2
        message = capsys.readouterr().err
        assert f"run folder {out} is in use by process {process.pid}" in message
        assert "delete" in message and "Traceback" not in message
        assert (out / "checkpoint.pt").stat().st_mtime_ns >= before  # untouched by us
    finally:
        process.kill()
        process.communicate(timeout=60)


def test_sigint_saves_a_checkpoint_and_prints_the_resume_command(
    tmp_path, spec, reference, capsys
):
    out = tmp_path / "run"
    process = _launch(spec, out)
    _wait_for(out / "checkpoint.pt", process)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "interrupted by SIGINT: saved a checkpoint after step" in stderr
    assert f"Resume with:\n  pyro-bbb run {spec} --resume {out}" in stderr
    state = load_checkpoint(out / "checkpoint.pt").training_state
    assert state is not None and state.step < 600
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "config.toml"]
    assert main(["run", str(spec), "--resume", str(out), "--no-progress"]) == 0
    assert_same_run(out, reference)  # mid-epoch or not, the continuation is exact


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_first_signal_requests_a_stop_and_a_second_ctrl_c_aborts(signum):
    previous = signal.getsignal(signum)
    with _StopOnSignal() as stop:
        assert not stop()
        signal.raise_signal(signum)
        assert stop() and stop.signal == signum
        signal.raise_signal(signal.SIGTERM)  # a repeated SIGTERM (scheduler, torchrun): ignored
        assert stop() and stop.signal == signum
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signum) is previous


# --------------------------------------------------------------------------- in-process runs


@pytest.fixture
def short_spec(tmp_path) -> Path:
    """SPEC with 3 epochs of 10 minibatches: a finished run in well under a second."""
    path = tmp_path / "short.toml"
    path.write_text(SPEC.replace("num_points = 1000", "num_points = 100")
                    .replace("epochs = 6", "epochs = 3"))
    return path


def test_failed_save_keeps_the_previous_checkpoint_and_resume_completes(
    tmp_path, short_spec, monkeypatch
):
    pyro.set_rng_seed(0)
    uninterrupted = run_experiment(load_config(short_spec)).guide.state_dict()
    out = tmp_path / "run"
    calls = []
    real_save = torch.save

    def save_that_fails_the_third_time(obj, handle, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            handle.write(b"half a checkpoint")
            raise OSError("disk full")
        return real_save(obj, handle, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_that_fails_the_third_time)
    config = apply_overrides(load_config(short_spec), ["training.checkpoint_every=1"])
    with pytest.raises(OSError, match="disk full"):
        run_experiment(config, out)
    monkeypatch.undo()
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "config.toml"]
    assert load_checkpoint(out / "checkpoint.pt").training_state.epoch == 2
    assert main(["run", "--resume", str(out), "--no-progress"]) == 0
    final = load_checkpoint(out / "checkpoint.pt")
    assert final.training_state.epoch == 3
    got = final.guide.state_dict()
    assert all(torch.equal(got[k], uninterrupted[k]) for k in got)


def test_resume_removes_stale_temporaries_and_a_finished_run_is_re_evaluated(
    tmp_path, short_spec, capsys
):
    out = tmp_path / "run"
    assert main(["run", str(short_spec), "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    stale = out / ".checkpoint.pt.abc123.tmp"
    stale.write_bytes(b"a save killed mid-write")
    capsys.readouterr()
    assert main(["run", "--resume", str(out), "--no-progress"]) == 0
    assert "had finished training (3 epochs, 30 steps); evaluated it again" in (
        capsys.readouterr().out)
    assert not stale.exists()
    assert json.loads((out / "metrics.json").read_text())["metrics"] == metrics


def test_resume_can_extend_training(tmp_path, short_spec):
    out = tmp_path / "run"
    assert main(["run", str(short_spec), "--out", str(out), "--no-progress"]) == 0
    assert main(["run", "--resume", str(out), "--set", "training.epochs=5",
                 "--no-progress"]) == 0
    state = load_checkpoint(out / "checkpoint.pt").training_state
    assert (state.epoch, state.step) == (5, 50)
    assert json.loads((out / "history.json").read_text())["epoch"] == [0, 1, 2, 3, 4]
    assert load_config(out / "config.toml").training.epochs == 5


def test_resume_of_a_folder_without_checkpoint_starts_over(tmp_path, short_spec, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.toml").write_text(short_spec.read_text())  # killed before its first checkpoint
    assert main(["run", "--resume", str(out), "--no-progress"]) == 0
    assert "has no checkpoint yet: starting resumable from the beginning" in (
        capsys.readouterr().out)
    assert load_checkpoint(out / "checkpoint.pt").training_state.epoch == 3


@pytest.mark.parametrize("damage, message", [
    (lambda data: data[: len(data) // 2], "is not a readable pyro_bbb checkpoint"),
    (lambda data: data[:100] + bytes(200) + data[300:], "checkpoint"),
    (lambda data: b"", "is not a readable pyro_bbb checkpoint"),
])
def test_resume_from_a_corrupt_checkpoint_is_a_clear_error(
    tmp_path, short_spec, capsys, damage, message
):
    out = tmp_path / "run"
    assert main(["run", str(short_spec), "--out", str(out), "--no-progress"]) == 0
    path = out / "checkpoint.pt"
    broken = damage(path.read_bytes())
    path.write_bytes(broken)
    capsys.readouterr()
    assert main(["run", "--resume", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "checkpoint.pt" in err and message in err
    assert "Traceback" not in err
    assert path.read_bytes() == broken  # left for inspection, not overwritten


def test_resume_with_a_malformed_training_state_is_a_clear_error(tmp_path, short_spec, capsys):
    out = tmp_path / "run"
    assert main(["run", str(short_spec), "--out", str(out), "--no-progress"]) == 0
    payload = torch.load(out / "checkpoint.pt", weights_only=True)
    payload["training_state"]["rng"]["torch"] = torch.zeros(3)
    torch.save(payload, out / "checkpoint.pt")
    capsys.readouterr()
    assert main(["run", "--resume", str(out), "--no-progress"]) == 2
    assert "invalid training state: rng.torch must be a 1-D uint8 tensor" in (
        capsys.readouterr().err)


@pytest.mark.parametrize("args, message", [
    (["--set", "network.hidden_sizes=[8]"],
     "the spec differs from the run's in network.hidden_sizes (run: [16], given: [8])"),
    (["--set", "training.batch_size=20", "--set", "seed=1"], "seed (run: 7, given: 1); "
     "training.batch_size (run: 10, given: 20)"),
])
def test_resume_with_another_spec_is_refused(tmp_path, short_spec, capsys, args, message):
    out = tmp_path / "run"
    assert main(["run", str(short_spec), "--out", str(out), "--no-progress"]) == 0
    before = (out / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    assert main(["run", str(short_spec), "--resume", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "may change when resuming" in err
    assert (out / "checkpoint.pt").read_bytes() == before


def test_resume_errors_for_missing_folder_or_conflicting_out(tmp_path, capsys):
    assert main(["run", "--resume", str(tmp_path / "nothing")]) == 2
    assert "run folder not found" in capsys.readouterr().err
    assert main(["run", "--resume", str(tmp_path), "--out", str(tmp_path / "b")]) == 2
    assert "name different folders" in capsys.readouterr().err
    assert main(["run", "--resume", str(tmp_path)]) == 2
    assert "is not a run folder" in capsys.readouterr().err


def test_checkpoint_file_loads_with_plain_weights_only_torch_load(tmp_path, short_spec):
    out = tmp_path / "run"
    assert main(["run", str(short_spec), "--out", str(out), "--no-progress"]) == 0
    payload = torch.load(out / "checkpoint.pt", weights_only=True)
    saved = payload["training_state"]
    assert (saved["epoch"], saved["step"], saved["batch"]) == (3, 30, 0)
    assert saved["rng"]["torch"].dtype == torch.uint8
    assert [row["epoch"] for row in saved["history"]] == [0, 1, 2]
    assert "guide_state" not in saved  # stored once, as the checkpoint's guide_state
    with pytest.raises(CheckpointError, match="holds a value of type object"):
        save_checkpoint(tmp_path / "x.pt", *_fresh_pair(),
                        training_state=_with_object(load_checkpoint(out / "checkpoint.pt")))
    assert not (tmp_path / "x.pt").exists()


def _fresh_pair():
    model = BayesianMLP([1, 16, 1], Gaussian(noise=0.05))
    return model, MeanFieldGuide(model)


def _with_object(checkpoint) -> TrainingState:
    state = checkpoint.training_state
    state.settings["oops"] = object()
    return state



def test_a_device_missing_here_fails_before_a_run_folder_is_made(tmp_path, short_spec):
    config = apply_overrides(load_config(short_spec), ["training.device=cuda:64"])
    with pytest.raises(ValueError, match="'cuda:64' was asked for"):
        run_experiment(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_after_training_a_signal_aborts_at_once(signum):
    with _StopOnSignal() as stop:
        stop.trained()
        with pytest.raises(KeyboardInterrupt) as err:
            signal.raise_signal(signum)
    assert err.value.signum == signum
    with _StopOnSignal() as stop:  # a signal after the last poll, before training was over
        signal.raise_signal(signum)
        with pytest.raises(KeyboardInterrupt):
            stop.trained()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_evaluation_stops_the_run_and_keeps_the_trained_checkpoint(
    tmp_path, short_spec, capsys, monkeypatch, signum
):
    import pyro_bbb.experiment as experiment

    def evaluate_until_signalled(*args, **kwargs):
        signal.raise_signal(signum)
        raise AssertionError("the signal did not stop the evaluation")

    monkeypatch.setattr(experiment, "evaluate", evaluate_until_signalled)
    out = tmp_path / "run"
    assert main(["run", str(short_spec), "--out", str(out), "--no-progress"]) == 128 + signum
    message = capsys.readouterr().err
    assert f"{signal.Signals(signum).name} after training: evaluation aborted" in message
    assert f"--resume {out}" in message and "Traceback" not in message
    assert load_checkpoint(out / "checkpoint.pt").training_state.epoch == 3
    monkeypatch.undo()
    assert main(["run", "--resume", str(out), "--no-progress"]) == 0
    assert "the run had finished training" in capsys.readouterr().out
