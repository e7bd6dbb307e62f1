"""Data-parallel training under torchrun: 2 CPU processes with gloo on loopback.

What is compared (tolerances measured on the CPU, float32):
(a) after training, every rank holds the same guide parameters, bit for bit (all ranks apply
    the same all-reduced gradient with the same deterministic Adam);
(b) with ``rank_noise=False`` (every rank draws rank 0's ε, so the W per-rank estimates share
    one weight sample) 2 ranks × batch B train exactly what one process with batch 2B trains:
    the averaged gradient equals the global batch's up to float summation order; after
    30 Adam steps the parameters agree to 1e-5 (measured: 4.8e-7). With per-rank noise
    (the default) they differ from it, as W independent draws should;
(c) ``pyro-bbb run`` under torchrun writes one run folder, complete, from rank 0 alone;
(d) SIGTERM to torchrun (what ``kill PID`` or a scheduler's stop does; Ctrl-C is the same with
    SIGINT) reaches every worker: torchrun forwards it to each worker (they run in their own
    sessions, so the launcher is the one process to signal), the workers stop at the same step,
    rank 0 saves the checkpoint and they exit with 128 + signal (143). torchrun itself then
    exits with status 1 and prints its own SignalException traceback (our 143 is not passed
    through); ``run --resume`` under torchrun completes the run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyro
import pytest
import torch

from pyro_bbb import BayesianMLP, Gaussian, MeanFieldGuide, fit
from pyro_bbb.checkpoint import load_checkpoint

WORLD, BATCH, NUM_DATA, EPOCHS = 2, 8, 48, 10  # 3 global minibatches of 16 per epoch

WORKER = """
import sys, torch, pyro
sys.path.insert(0, {here!r})
from test_distributed import train
from pyro_bbb.infer.distributed import get_info
out = sys.argv[1]
for rank_noise in (False, True):
    params = train(BATCH, distributed=True, rank_noise=rank_noise)
    info = get_info()
    torch.save(params, f"{{out}}/rank{{info.rank}}-noise{{int(rank_noise)}}.pt")
"""

SPEC = """
name = "ddp"
seed = 3
[data]
kind = "toy_regression"
num_points = 64
num_test = 16
[network]
hidden_sizes = [8]
[likelihood]
kind = "gaussian"
noise = 0.1
[training]
epochs = 3
batch_size = 8
lr = 0.01
device = "cpu"
checkpoint_every = 1
[evaluation]
num_samples = 10
"""


def _data():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(NUM_DATA, 2, generator=gen)
    return x, x.sum(1, keepdim=True).sin() + 0.1 * torch.randn(NUM_DATA, 1, generator=gen)


def train(batch_size: int, **kwargs) -> dict[str, torch.Tensor]:
    """The tiny fit both the ranks and the single-process reference run."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    model = BayesianMLP([2, 8, 1], Gaussian(0.1))
    guide = MeanFieldGuide(model)
    x, y = _data()
    fit(model, guide, x, y, epochs=EPOCHS, batch_size=batch_size, lr=0.02, seed=1,
        device="cpu", progress=False, engine="fast", **kwargs)
    return {k: v.detach().clone() for k, v in guide.state_dict().items()}


def _torchrun_command(args: list[str]) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={WORLD}", *args], env


def _torchrun(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd, env = _torchrun_command(args)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)  # a timeout kills the launcher; it takes its workers
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_two_ranks_agree_and_match_one_process_with_the_global_batch(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(here=str(Path(__file__).parent)).replace(
        "BATCH", str(BATCH)))
    _torchrun([str(script), str(tmp_path)], tmp_path)
    ranks = {(r, n): torch.load(tmp_path / f"rank{r}-noise{n}.pt", weights_only=True)
             for r in range(WORLD) for n in (0, 1)}
    for noise in (0, 1):  # (a) identical parameters on every rank
        for name, value in ranks[0, noise].items():
            assert torch.equal(value, ranks[1, noise][name]), name
    single = train(WORLD * BATCH, distributed=False)  # (b) one process, global batch W·B
    for name, value in single.items():
        torch.testing.assert_close(ranks[0, 0][name], value, rtol=0, atol=1e-5)
    moved = max((ranks[0, 1][k] - single[k]).abs().max().item() for k in single)
    assert moved > 1e-4  # per-rank noise: a different (W-sample) estimator


def test_cli_run_under_torchrun_writes_one_run_folder(tmp_path):
    spec = tmp_path / "ddp.toml"
    spec.write_text(SPEC)
    _torchrun(["-m", "pyro_bbb.cli", "run", str(spec), "--no-progress"], tmp_path)
    folders = list((tmp_path / "runs").iterdir())
    assert len(folders) == 1, folders
    run = folders[0]
    assert {"checkpoint.pt", "metrics.json", "history.json", "config.toml"} <= {
        p.name for p in run.iterdir()}
    assert not [p for p in run.iterdir() if p.name.startswith(".") or "tmp" in p.name]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["training"]["steps"] == 3 * 4  # 64 points / (2 ranks × 8) per epoch


def _children(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (torchrun's workers), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # exited meanwhile
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _kill_tree(process: subprocess.Popen, workers: list[int]) -> None:
    """SIGKILL a launcher and its workers: they run in their own sessions, so killing torchrun
    alone would leave them training."""
    for pid in [*workers, *_children(process.pid), process.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    process.communicate(timeout=30)


def test_sigterm_to_torchrun_checkpoints_every_rank_stops_and_resume_completes(tmp_path):
    spec = tmp_path / "ddp.toml"
    spec.write_text(SPEC.replace("epochs = 3", "epochs = 100000"))  # stops only on the signal
    out = tmp_path / "run"
    cmd, env = _torchrun_command(["-m", "pyro_bbb.cli", "run", str(spec), "--out", str(out),
                                  "--checkpoint-every", "1", "--no-progress", "--threads", "1"])
    process = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 90
        while not (out / "checkpoint.pt").exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no checkpoint within 90 s"
            time.sleep(0.05)
        workers = _children(process.pid)
        assert len(workers) == WORLD, workers
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)  # a hang fails here, not forever
    finally:
        if process.returncode is None:
            _kill_tree(process, workers)
    # torchrun's own status and traceback for a signal; the workers exited 143 (not passed on)
    assert process.returncode == 1, stdout[-3000:] + stderr[-3000:]
    assert "SignalException: Process" in stderr and "got signal: 15" in stderr, stderr[-3000:]
    # the workers stopped by themselves (within torchrun's 30 s grace, before any SIGKILL),
    # every frame of every traceback is torchrun's, and rank 0 alone reported
    assert "forcefully exiting" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    frames = [line for line in stderr.splitlines() if line.lstrip().startswith('File "')]
    assert not [f for f in frames if "pyro_bbb" in f], stderr
    assert stderr.count("stopping at the next training step") == 1, stderr
    reports = re.findall(r"interrupted by SIGTERM: saved a checkpoint after step (\d+)", stderr)
    assert len(reports) == 1, stderr
    assert f"Resume with:\n  pyro-bbb run {spec} --resume {out}" in stderr
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]  # no orphan left
    state = load_checkpoint(out / "checkpoint.pt").training_state
    assert state is not None and state.step == int(reports[0]) and state.epoch >= 1
    assert state.settings["world_size"] == WORLD
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "config.toml"]

    epochs = state.epoch + 2  # a short continuation, whichever step the signal hit
    _torchrun(["-m", "pyro_bbb.cli", "run", "--resume", str(out), "--set",
               f"training.epochs={epochs}", "--no-progress", "--threads", "1"], tmp_path)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["training"]["steps"] == epochs * 4  # 64 points / (2 ranks × 8) per epoch
    final = load_checkpoint(out / "checkpoint.pt").training_state
    assert (final.epoch, final.batch, final.step) == (epochs, 0, epochs * 4)


def test_a_state_from_another_world_size_is_refused():
    pyro.set_rng_seed(0)
    model = BayesianMLP([2, 8, 1], Gaussian(0.1))
    guide = MeanFieldGuide(model)
    x, y = _data()
    state = fit(model, guide, x, y, epochs=1, batch_size=16, progress=False, device="cpu",
                distributed=False).state
    state.settings["world_size"] = 2
    with pytest.raises(ValueError, match="world_size=2, this fit runs on 1 processes"):
        fit(model, guide, x, y, epochs=2, batch_size=16, progress=False, device="cpu",
            state=state)
