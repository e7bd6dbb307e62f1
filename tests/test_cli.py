"""The pyro-bbb command: run / evaluate / predict, run folders, and clean error exits."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pyro_bbb import BayesianMLP, Categorical, MeanFieldGuide
from pyro_bbb.checkpoint import load_checkpoint, save_checkpoint
from pyro_bbb.cli import main
from pyro_bbb.config import DATA_ENV, config_to_dict, load_config
from pyro_bbb.experiment import new_run_dir

MODELS = Path(__file__).resolve().parents[1] / "models"

TINY_TOY = """
name = "tiny"
seed = 3
[data]
kind = "toy_regression"
num_points = 40
num_test = 60
[network]
hidden_sizes = [16]
[likelihood]
kind = "gaussian"
noise = 0.05
[training]
epochs = 30
batch_size = 40
lr = 0.01
device = "cpu"
[evaluation]
num_samples = 30
"""


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """One tiny toy run shared by the tests that inspect its outputs."""
    root = tmp_path_factory.mktemp("toy")
    spec = root / "tiny.toml"
    spec.write_text(TINY_TOY)
    out = root / "run"
    assert main(["run", str(spec), "--out", str(out), "--no-progress"]) == 0
    return spec, out


def _errors(capsys, argv) -> str:
    """Run main(argv), assert exit status 2 with a one-line error and no traceback."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    return captured.err


# --------------------------------------------------------------------------- run


def test_run_writes_every_file(toy_run):
    _, out = toy_run
    names = {p.name for p in out.iterdir()}
    assert names == {"checkpoint.pt", "metrics.json", "history.json", "config.toml",
                     "regression_band.png", "training_curves.png"}
    for png in ("regression_band.png", "training_curves.png"):
        assert (out / png).read_bytes().startswith(b"\x89PNG") and (out / png).stat().st_size > 5000


def test_run_metrics_json_has_finite_values(toy_run):
    spec, out = toy_run
    report = json.loads((out / "metrics.json").read_text())
    metrics = report["metrics"]
    for key in ("rmse", "test_log_likelihood", "interval_coverage", "std_inside", "std_outside",
                "std_ratio", "mean_std"):
        assert isinstance(metrics[key], float) and math.isfinite(metrics[key]), key
    assert metrics["std_ratio"] == pytest.approx(metrics["std_outside"] / metrics["std_inside"])
    assert 0 <= metrics["interval_coverage"] <= 1 and metrics["num_test"] == 60
    training = report["training"]
    assert training["epochs"] == 30 and training["steps"] == 30 and training["seconds"] > 0
    assert training["device"] == "cpu" and math.isfinite(training["final_epoch"]["elbo"])
    assert training["cuda_graph"] is None  # the eager step on the CPU
    assert "torch" in report["hardware"] and report["date"][:2] == "20"
    assert report["spec"] == config_to_dict(load_config(spec))


def test_run_history_config_and_checkpoint_agree(toy_run):
    spec, out = toy_run
    history = json.loads((out / "history.json").read_text())
    assert history["epoch"] == list(range(30))
    assert all(math.isfinite(v) for v in history["nll"] + history["complexity"])
    assert load_config(out / "config.toml") == load_config(spec)
    checkpoint = load_checkpoint(out / "checkpoint.pt")
    assert checkpoint.model.layer_sizes == [1, 16, 1]
    assert checkpoint.metadata["spec"] == config_to_dict(load_config(spec))
    state = checkpoint.training_state  # the final checkpoint can resume (or extend) the run
    assert (state.epoch, state.batch, state.step) == (30, 0, 30)
    assert [r.elbo for r in state.history] == history["elbo"]


@pytest.mark.parametrize("value", ["0", "-1", "x"])
def test_run_checkpoint_every_must_be_positive(value, capsys):
    assert main(["run", "--checkpoint-every", value]) == 2
    assert "--checkpoint-every" in capsys.readouterr().err


def test_run_refuses_a_non_empty_out_folder(toy_run, capsys):
    spec, out = toy_run
    before = (out / "metrics.json").read_bytes()
    assert "already exists" in _errors(capsys, ["run", str(spec), "--out", str(out)])
    assert (out / "metrics.json").read_bytes() == before


def test_run_default_spec_smoke_into_default_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--smoke", "--no-progress", "--set", "data.num_points=20"]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("toy_regression-")
    assert (run / "regression_band.png").is_file()
    assert "std_ratio" in capsys.readouterr().out
    config = load_config(run / "config.toml")
    assert config.network.hidden_sizes == (100, 100) and config.training.epochs == 1


def test_new_run_dir_never_reuses_a_folder(tmp_path):
    first, second = new_run_dir("x", tmp_path), new_run_dir("x", tmp_path)
    assert first != second and first.is_dir() and second.is_dir()


def test_fashion_mnist_spec_smoke(tmp_path):
    out = tmp_path / "fm"
    argv = ["run", str(MODELS / "fashion_mnist.toml"), "--smoke", "--out", str(out),
            "--no-progress", "--set", "data.limit_train=256", "--set", "data.limit_test=128",
            "--device", "cpu"]
    assert main(argv) == 0
    report = json.loads((out / "metrics.json").read_text())
    for key in ("accuracy", "nll", "ece", "brier"):
        assert math.isfinite(report["metrics"][key]), key
    assert report["metrics"]["num_test"] == 128
    assert (out / "reliability.png").is_file() and not (out / "regression_band.png").exists()
    assert load_checkpoint(out / "checkpoint.pt").model.layer_sizes == [784, 400, 400, 10]


# --------------------------------------------------------------------------- evaluate / predict


def test_evaluate_reproduces_the_run_metrics(toy_run, tmp_path, capsys):
    _, out = toy_run
    target = tmp_path / "eval.json"
    assert main(["evaluate", str(out / "checkpoint.pt"), "--output", str(target)]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((out / "metrics.json").read_text())["metrics"]
    assert printed == json.loads(target.read_text())
    assert printed["metrics"] == pytest.approx(saved, rel=1e-5)


def test_evaluate_with_a_spec_of_another_architecture(toy_run, capsys):
    spec, out = toy_run
    err = _errors(capsys, ["evaluate", str(out / "checkpoint.pt"), "--spec", str(spec),
                           "--set", "network.hidden_sizes=[9]"])
    assert "1-16-1 relu" in err and "1-9-1 relu" in err


@pytest.mark.parametrize("suffix", [".csv", ".npy"])
def test_predict_regression(toy_run, tmp_path, suffix):
    _, out = toy_run
    x = np.linspace(-0.2, 1.2, 8)
    source = tmp_path / f"x{suffix}"
    if suffix == ".csv":
        source.write_text("x\n" + "\n".join(f"{v}" for v in x) + "\n")
    else:
        np.save(source, x[:, None])
    target = tmp_path / "pred.csv"
    argv = ["predict", str(out / "checkpoint.pt"), "--input", str(source), "--output",
            str(target), "--num-samples", "20"]
    assert main(argv) == 0
    header, *rows = target.read_text().splitlines()
    assert header == "mean,std,lower,upper,aleatoric_std,epistemic_std"
    table = np.array([[float(v) for v in row.split(",")] for row in rows])
    assert table.shape == (8, 6) and np.isfinite(table).all()
    mean, std, lower, upper = table[:, :4].T
    assert (lower <= mean).all() and (mean <= upper).all() and (std > 0).all()


def _predicted_rows(capsys, argv) -> tuple[int, str]:
    """Run ``predict`` (to stdout); the number of prediction rows and stderr."""
    assert main(argv) == 0
    captured = capsys.readouterr()
    header, *rows = captured.out.splitlines()
    assert header.startswith("mean,std")
    return len(rows), captured.err


def test_predict_header_option(toy_run, tmp_path, capsys):
    import pandas as pd

    checkpoint = str(toy_run[1] / "checkpoint.pt")
    source = tmp_path / "x.csv"
    pd.DataFrame(np.linspace(0, 1, 5)[:, None]).to_csv(source, index=False)  # header line "0"
    argv = ["predict", checkpoint, "--input", str(source)]
    assert _predicted_rows(capsys, argv + ["--header", "yes"]) == (5, "")
    assert _predicted_rows(capsys, argv + ["--header", "no"]) == (6, "")
    assert "--header yes or --header no" in _errors(capsys, argv)  # auto: ambiguous
    source.write_text("x\n0.1\n0.2\n")
    rows, err = _predicted_rows(capsys, argv)
    assert rows == 2 and err.startswith("note:") and "'x'" in err and "header" in err
    assert "not a numeric CSV" in _errors(capsys, argv + ["--header", "no"])
    source.write_text("0.1\n0.2\n0.3\n")
    assert _predicted_rows(capsys, argv) == (3, "")
    assert _predicted_rows(capsys, argv + ["--header", "yes"]) == (2, "")


def test_predict_reads_a_bom_and_a_leading_na(toy_run, tmp_path, capsys):
    checkpoint = str(toy_run[1] / "checkpoint.pt")
    source = tmp_path / "x.csv"
    argv = ["predict", checkpoint, "--input", str(source)]
    source.write_bytes("\ufeff0.1\n0.2\n0.3\n".encode())  # Excel "CSV UTF-8"
    assert _predicted_rows(capsys, argv) == (3, "")
    source.write_bytes("\ufeffx\r\n0.1\r\n0.2\r\n".encode())
    rows, err = _predicted_rows(capsys, argv)
    assert rows == 2 and "'x'" in err
    source.write_text("NA\n0.1\n0.2\n")  # a skipped NA row is no longer silent
    rows, err = _predicted_rows(capsys, argv)
    assert rows == 2 and "line 1 ('NA')" in err


def test_output_never_replaces_an_input(toy_run, tmp_path, capsys):
    _, out = toy_run
    checkpoint = out / "checkpoint.pt"
    before = checkpoint.read_bytes()
    err = _errors(capsys, ["evaluate", str(checkpoint), "--output", str(out / ".." / out.name
                                                                       / "checkpoint.pt")])
    assert "is the checkpoint" in err
    source = tmp_path / "x.csv"
    source.write_text("0.1\n0.2\n")
    err = _errors(capsys, ["predict", str(checkpoint), "--input", str(source), "--output",
                           str(source)])
    assert "is the input" in err
    assert checkpoint.read_bytes() == before and source.read_text() == "0.1\n0.2\n"


@pytest.fixture
def classifier_checkpoint(tmp_path) -> Path:
    model = BayesianMLP([3, 5, 4], Categorical(4))
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "clf.pt", model, MeanFieldGuide(model))


def test_predict_classification_to_stdout(classifier_checkpoint, tmp_path, capsys):
    source = tmp_path / "x.csv"
    source.write_text("1,2,3\n0,0,0\n-1,0.5,2\n")
    assert main(["predict", str(classifier_checkpoint), "--input", str(source)]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split(",") == ["predicted", "prob_0", "prob_1", "prob_2", "prob_3",
                                 "total_entropy", "aleatoric", "epistemic"]
    table = np.array([[float(v) for v in row.split(",")] for row in rows])
    assert table.shape == (3, 8)
    assert np.allclose(table[:, 1:5].sum(1), 1, atol=1e-4)
    assert (table[:, 0] == table[:, 1:5].argmax(1)).all()
    assert np.allclose(table[:, 5], table[:, 6] + table[:, 7], atol=1e-4)


# --------------------------------------------------------------------------- errors


def test_error_missing_spec(capsys, tmp_path):
    assert "spec file not found" in _errors(capsys, ["run", str(tmp_path / "nope.toml")])


def test_error_unknown_key_in_spec(capsys, tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text(TINY_TOY.replace("epochs = 30", "epoch = 30"))
    err = _errors(capsys, ["run", str(spec), "--out", str(tmp_path / "o")])
    assert "unknown key 'epoch' in [training]; did you mean 'epochs'?" in err
    assert not (tmp_path / "o").exists()


def test_error_bad_override(capsys, toy_run):
    spec, _ = toy_run
    assert "training.lr must be a positive number" in _errors(
        capsys, ["run", str(spec), "--set", "training.lr=-1"])


def test_error_corrupt_checkpoint(capsys, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"definitely not a checkpoint")
    assert "bad.pt is not a readable pyro_bbb checkpoint" in _errors(capsys, ["evaluate", str(bad)])


def test_error_checkpoint_without_spec(capsys, classifier_checkpoint):
    assert "has no saved spec; pass --spec" in _errors(
        capsys, ["evaluate", str(classifier_checkpoint)])


def test_error_predict_wrong_feature_count(capsys, classifier_checkpoint, tmp_path):
    source = tmp_path / "x.csv"
    source.write_text("1,2\n3,4\n")
    err = _errors(capsys, ["predict", str(classifier_checkpoint), "--input", str(source)])
    assert "has 2 features but the model expects 3" in err


def test_error_predict_missing_or_bad_input(capsys, classifier_checkpoint, tmp_path):
    assert "input file not found" in _errors(
        capsys, ["predict", str(classifier_checkpoint), "--input", str(tmp_path / "no.csv")])
    text = tmp_path / "x.txt"
    text.write_text("1,2,3\n")
    assert "must be a .csv or .npy" in _errors(
        capsys, ["predict", str(classifier_checkpoint), "--input", str(text)])
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c\n1,x,3\n")
    assert "not a numeric CSV" in _errors(
        capsys, ["predict", str(classifier_checkpoint), "--input", str(bad)])


def test_invalid_saved_spec_names_the_checkpoint(toy_run, tmp_path, capsys):
    run = tmp_path / "old"
    shutil.copytree(toy_run[1], run)
    payload = torch.load(run / "checkpoint.pt", weights_only=False)
    payload["metadata"]["spec"]["training"]["old_key"] = 1  # as if from another version
    torch.save(payload, run / "checkpoint.pt")
    before = (run / "checkpoint.pt").read_bytes()
    for argv in (["evaluate", str(run / "checkpoint.pt")], ["figures", str(run)],
                 ["run", "--resume", str(run), "--no-progress"]):
        err = _errors(capsys, argv)
        assert err.startswith(f"error: {run / 'checkpoint.pt'}: its saved spec is not valid "
                              "here: unknown key 'old_key' in [training]"), err
    assert (run / "checkpoint.pt").read_bytes() == before


def test_failed_run_leaves_no_config_only_folder(toy_run, tmp_path, monkeypatch, capsys):
    spec, _ = toy_run

    def fail(*args, **kwargs):
        assert (out / "config.toml").is_file()  # the run had written its folder
        raise ValueError("training failed")

    monkeypatch.setattr("pyro_bbb.experiment.fit", fail)
    out = tmp_path / "new"
    assert "training failed" in _errors(capsys, ["run", str(spec), "--out", str(out),
                                                 "--no-progress"])
    assert not out.exists()
    out = tmp_path / "empty"
    out.mkdir()  # the user's empty folder stays, emptied again
    _errors(capsys, ["run", str(spec), "--out", str(out), "--no-progress"])
    assert out.is_dir() and not any(out.iterdir())


def test_out_folder_of_an_unstarted_run_suggests_resume(toy_run, tmp_path, capsys):
    spec, run = toy_run
    out = tmp_path / "started"
    out.mkdir()
    shutil.copy(run / "config.toml", out / "config.toml")
    err = _errors(capsys, ["run", str(spec), "--out", str(out), "--no-progress"])
    assert "before its first checkpoint" in err and f"pyro-bbb run --resume {out}" in err
    assert [p.name for p in out.iterdir()] == ["config.toml"]
    assert f"pyro-bbb run --resume {run}" in _errors(capsys, ["run", str(spec), "--out",
                                                              str(run)])


def test_argparse_usage_errors_return_2(capsys):
    assert main(["predict"]) == 2
    assert "usage:" in capsys.readouterr().err
    assert main(["predict", "x.pt", "--input", "x.csv", "--threads", "0"]) == 2
    assert "must be a positive integer" in capsys.readouterr().err


def test_threads_option_sets_torch_threads(classifier_checkpoint, tmp_path, capsys):
    source = tmp_path / "x.npy"
    np.save(source, np.zeros((2, 3)))
    threads = torch.get_num_threads()
    try:
        argv = ["predict", str(classifier_checkpoint), "--input", str(source), "--threads", "1"]
        assert main(argv) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_console_process_exits_2_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pyro_bbb.cli", "run", str(tmp_path / "missing.toml")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: spec file not found")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("argv, message", [
    (["predict", "RUN", "--input", "x.npy", "--seed", "-1"],
     "--seed: must be an integer >= 0, got -1"),
    (["predict", "RUN", "--input", "x.npy", "--num-samples", "0"],
     "--num-samples: must be a positive integer, got 0"),
    (["uci", "--data-dir", "D", "--splits", "-1"], "--splits: must be an integer >= 0, got -1"),
    (["uci", "--data-dir", "D", "--seed", "4294967296"],
     "--seed: must be an integer in [0, 2**32), got 4294967296"),
    (["diagnose", "RUN", "--seeds", "0", "x"], "--seeds: must be an integer >= 0, got 'x'"),
    (["predict", "RUN", "--input", "x.npy", "--level", "95"],
     "--level: must be a number in (0, 1), got 95"),
])
def test_counts_and_seeds_are_checked_when_the_command_line_is_read(cli_error, argv, message):
    assert message in cli_error(argv)
