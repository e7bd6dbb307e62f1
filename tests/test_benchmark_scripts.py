"""Bad input on the benchmark scripts' command lines (benchmarks/*.py).

Each case runs a script's real ``main`` (or ``cli``, the ``__main__`` entry point) and expects
argparse's exit status 2 with an ``error:`` line naming the problem, no traceback, no output
folder made, and every file that was there before left as it was.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from pyro_bbb import BayesianMLP, Categorical, Gaussian, MeanFieldGuide
from pyro_bbb.checkpoint import save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("PYRO_BBB_DATA", ROOT.parent / "shared" / "data"))
MUSHROOM = DATA_DIR / "mushroom" / "agaricus-lepiota.data"
TOY_SPEC = ROOT / "models" / "toy_regression.toml"


TINY_FASHION_SPEC = """
name = "tiny_fashion"
seed = 0
[data]
kind = "fashion_mnist"
limit_train = 256
limit_test = 128
[network]
hidden_sizes = [8]
[likelihood]
kind = "categorical"
num_classes = 10
[training]
epochs = 1
batch_size = 128
device = "cpu"
[evaluation]
num_samples = 5
"""


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}",
                                                  ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def scripts():
    return {name: _load(name) for name in ("table1", "time_to_accuracy", "bandit", "pruning",
                                           "speed")}


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (to prove nothing changed)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def usage_error(module, argv, capsys, *expected: str) -> str:
    """``module.main(argv)`` must stop with exit status 2 and an ``error:`` line holding every
    ``expected`` text, without a traceback; returns that line."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        module.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert "error:" in line
    for text in expected:
        assert text in line, (text, line)
    return line


@pytest.fixture
def tiny_spec(tmp_path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_FASHION_SPEC)
    return path


@pytest.fixture
def a_file(tmp_path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("the user's notes\n")
    return path


@pytest.fixture
def foreign_folder(tmp_path) -> Path:
    """A non-empty folder another tool wrote."""
    folder = tmp_path / "other_tool"
    folder.mkdir()
    (folder / "results.csv").write_text("a,b\n1,2\n")
    return folder


# --- table1.py ---------------------------------------------------------------------------------

TABLE1_BASE = ["--smoke", "--widths", "8", "--methods", "sgd", "--no-progress"]


@pytest.mark.parametrize("option, value", [
    ("--widths", "0"), ("--widths", "-5"), ("--epochs", "0"), ("--num-samples", "0"),
    ("--dropout", "1.5"), ("--gaussian-sigma", "-1"), ("--lr", "nan"), ("--lr", "-1"),
    ("--threads", "0"), ("--seed", "-1"),
])
def test_table1_bad_numbers_stop_before_anything_is_made(scripts, tmp_path, capsys, option,
                                                         value):
    out = tmp_path / "out"
    usage_error(scripts["table1"], [*TABLE1_BASE, "--out", str(out), option, value], capsys,
                option)
    assert not out.exists()


def test_table1_repeated_widths_are_refused(scripts, tmp_path, capsys):
    out = tmp_path / "out"
    usage_error(scripts["table1"], [*TABLE1_BASE, "--widths", "8", "8", "--out", str(out)],
                capsys, "--widths", "more than once")
    assert not out.exists()


@pytest.mark.parametrize("case", ["missing spec", "toy spec", "missing data", "data is a file"])
def test_table1_bad_spec_or_data_is_named_before_out_is_made(scripts, tmp_path, capsys, a_file,
                                                             case):
    out = tmp_path / "out"
    option, value, expected = {
        "missing spec": ("--spec", tmp_path / "nope.toml", "nope.toml"),
        "toy spec": ("--spec", TOY_SPEC, "Fashion-MNIST spec"),
        "missing data": ("--data-root", tmp_path / "nowhere", "nowhere"),
        "data is a file": ("--data-root", a_file, "notes.txt"),
    }[case]
    usage_error(scripts["table1"], [*TABLE1_BASE, "--out", str(out), option, str(value)],
                capsys, expected)
    assert not out.exists()
    assert a_file.read_text() == "the user's notes\n"


def test_table1_out_never_replaces_files_it_did_not_write(scripts, tmp_path, capsys, a_file,
                                                           foreign_folder, monkeypatch):
    usage_error(scripts["table1"], [*TABLE1_BASE, "--out", str(a_file)], capsys, "is a file")
    assert a_file.read_text() == "the user's notes\n"
    results = tmp_path / "results"  # e.g. benchmarks/results: a table1.json, no cells/
    results.mkdir()
    (results / "table1.json").write_text('{"cells": "the published grid"}\n')
    before = snapshot(results)
    usage_error(scripts["table1"], [*TABLE1_BASE, "--out", str(results)], capsys,
                "already holds table1.json", "no cells/")
    assert snapshot(results) == before
    # a folder of unrelated files is fine: nothing table1.py writes is there yet
    table1 = scripts["table1"]
    monkeypatch.setattr(table1, "load_data", lambda config: None)
    parser = table1.build_parser()
    table1.check_args(parser, parser.parse_args([*TABLE1_BASE, "--out", str(foreign_folder)]))


@pytest.mark.parametrize("method, cached, expected", [
    ("sgd", {"epochs": 20, "dropout": 0.0}, "training.epochs: cached 20, now 1"),
    ("bbb_mixture", {"epochs": 1, "lr_schedule": "cosine", "init_rho": -8.0,
                     "prior": {"kind": "scale_mixture", "pi": 0.5, "sigma1": 1.0,
                               "sigma2": 0.00033546262790251185}},  # e^-8, not the spec's e^-6
     "prior.sigma2: cached 0.00033546262790251185, now 0.0024787521766663585"),
])
def test_table1_refuses_a_cached_cell_from_other_settings(scripts, tmp_path, capsys, method,
                                                          cached, expected):
    """A cell cached by another run (here in the format written before cells recorded their
    settings) must not be reported as the result of this one."""
    out = tmp_path / "out"
    (out / "cells").mkdir(parents=True)
    cell = {"accuracy": 0.9, "nll": 0.3, "ece": 0.01, "train_seconds": 100.0, "method": method,
            "width": 8, **cached}
    (out / "cells" / f"{method}_8.json").write_text(json.dumps(cell))
    before = snapshot(out)
    usage_error(scripts["table1"], [*TABLE1_BASE, "--methods", method, "--out", str(out)], capsys,
                f"{method}_8.json", expected)
    assert snapshot(out) == before


def test_table1_records_cell_settings_and_reuses_only_matching_cells(scripts, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [*TABLE1_BASE, "--out", str(out)]
    assert scripts["table1"].main(argv) == 0
    cell = json.loads((out / "cells" / "sgd_8.json").read_text())
    assert cell["settings"]["training"] == {"epochs": 1, "batch_size": 128, "lr": 0.001}
    cells = snapshot(out / "cells")
    usage_error(scripts["table1"], [*argv, "--lr", "0.01"], capsys,
                "training.lr: cached 0.001, now 0.01")
    assert scripts["table1"].main(argv) == 0  # same settings: reused, nothing recomputed
    assert snapshot(out / "cells") == cells


def test_table1_unreadable_cached_cell_is_named(scripts, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "cells").mkdir(parents=True)
    (out / "cells" / "sgd_8.json").write_text('{"accuracy": 0.9')  # a cut-off write
    usage_error(scripts["table1"], [*TABLE1_BASE, "--out", str(out)], capsys,
                "sgd_8.json", "unreadable", "delete it")


def test_table1_smoke_runs_default_to_their_own_folder(scripts, monkeypatch):
    """Smoke cells must not land among the real grid's cached cells in runs/table1."""
    table1 = scripts["table1"]
    monkeypatch.setattr(table1, "load_data", lambda config: None)
    parser = table1.build_parser()
    for argv, folder in ((["--smoke"], "table1_smoke"), ([], "table1")):
        args = parser.parse_args([*argv, "--widths", "8", "--methods", "sgd"])
        table1.check_args(parser, args)
        assert args.out == ROOT / "runs" / folder


def test_table1_ctrl_c_is_one_line_and_leaves_no_partial_cell(scripts, tmp_path, capsys,
                                                              monkeypatch):
    table1 = scripts["table1"]

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(table1, "run_point_method", interrupted)
    out = tmp_path / "out"
    assert table1.cli([*TABLE1_BASE, "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err
    assert list((out / "cells").iterdir()) == []


@pytest.mark.parametrize("name", ["table1", "time_to_accuracy"])
def test_a_diverged_training_is_one_line(scripts, tmp_path, tiny_spec, capsys, name):
    """A learning rate that makes the loss non-finite ends in the training's own message (what
    to change), exit status 1, without a traceback."""
    if name == "table1":
        argv = [*TABLE1_BASE, "--lr", "1e12", "--out", str(tmp_path / "out")]
    else:
        spec = tmp_path / "diverging.toml"
        spec.write_text(tiny_spec.read_text().replace("epochs = 1\n", "epochs = 1\nlr = 1e30\n"))
        argv = ["--spec", str(spec), "--max-epochs", "1"]
    capsys.readouterr()
    assert scripts[name].cli(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and ("diverged" in last or "non-finite" in last), last


# --- time_to_accuracy.py -----------------------------------------------------------------------


@pytest.mark.parametrize("option, value", [
    ("--max-epochs", "0"), ("--max-epochs", "-2"), ("--threads", "0"), ("--target", "1.5"),
    ("--target", "0"), ("--target", "nan"),
])
def test_time_to_accuracy_bad_numbers(scripts, tiny_spec, capsys, option, value):
    usage_error(scripts["time_to_accuracy"],
                ["--spec", str(tiny_spec), "--max-epochs", "1", option, value], capsys, option)


def test_time_to_accuracy_never_replaces_an_existing_out_file(scripts, tiny_spec, a_file,
                                                              tmp_path, capsys):
    script = scripts["time_to_accuracy"]
    base = ["--spec", str(tiny_spec), "--max-epochs", "1"]
    usage_error(script, [*base, "--out", str(a_file)], capsys, "already exists")
    assert a_file.read_text() == "the user's notes\n"
    usage_error(script, [*base, "--out", str(tmp_path)], capsys, "is a folder")
    usage_error(script, [*base, "--out", str(a_file / "x.json")], capsys, "not a folder")
    assert a_file.read_text() == "the user's notes\n"
    out = tmp_path / "new" / "t.json"  # a new file (and folder) is written
    assert script.main([*base, "--out", str(out)]) == 0
    assert json.loads(out.read_text())["epochs"] == 1


@pytest.mark.parametrize("case", ["missing spec", "regression spec", "missing data",
                                  "device typo", "quote in device"])
def test_time_to_accuracy_bad_spec_data_or_device(scripts, tiny_spec, tmp_path, capsys, case):
    argv, expected = {
        "missing spec": (["--spec", str(tmp_path / "nope.toml")], "nope.toml"),
        "regression spec": (["--spec", str(TOY_SPEC)], "classification spec"),
        "missing data": (["--spec", str(tiny_spec), "--data-root", str(tmp_path / "nowhere")],
                         "nowhere"),
        "device typo": (["--spec", str(tiny_spec), "--device", "tpu"], "'tpu'"),
        "quote in device": (["--spec", str(tiny_spec), "--device", 'cpu"'], "training.device"),
    }[case]
    usage_error(scripts["time_to_accuracy"], [*argv, "--max-epochs", "1"], capsys, expected)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_time_to_accuracy_cuda_without_a_gpu_is_refused_before_loading(scripts, tiny_spec,
                                                                       capsys):
    usage_error(scripts["time_to_accuracy"],
                ["--spec", str(tiny_spec), "--max-epochs", "1", "--device", "cuda"], capsys,
                "no CUDA device")


def test_time_to_accuracy_ctrl_c_reports_the_epochs_done(scripts, tiny_spec, tmp_path, capsys,
                                                         monkeypatch, interrupt_at_call):
    module = scripts["time_to_accuracy"]
    # Ctrl-C at the end of the second epoch
    monkeypatch.setattr(module, "predictive_accuracy",
                        interrupt_at_call(module.predictive_accuracy, 2))
    out = tmp_path / "curve.json"
    argv = ["--spec", str(tiny_spec), "--max-epochs", "3", "--target", "1", "--out", str(out)]
    assert module.cli(argv) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and "interrupted (Ctrl-C in epoch 2" in err
    saved = json.loads(out.read_text())
    assert [c["epoch"] for c in saved["curve"]] == [1] and saved["reached"] is False
    assert saved["interrupted"].startswith("Ctrl-C in epoch 2")


# --- bandit.py ---------------------------------------------------------------------------------

BANDIT_BASE = ["--steps", "20", "--seeds", "0", "--agents", "Greedy", "--points", "10",
               "--no-progress"]


@pytest.mark.parametrize("option, values", [
    ("--steps", ["0"]), ("--steps", ["-5"]), ("--seeds", ["-1"]), ("--seeds", ["0", "0"]),
    ("--points", ["0"]), ("--points", ["-4"]), ("--bins", ["0"]), ("--update-every", ["0"]),
    ("--updates-per-step", ["-1"]), ("--buffer-size", ["0"]), ("--noise", ["inf"]),
    ("--noise", ["nan"]),
])
def test_bandit_bad_numbers_stop_before_the_run(scripts, tmp_path, capsys, option, values):
    out = tmp_path / "out"
    usage_error(scripts["bandit"], ["--data", str(MUSHROOM), *BANDIT_BASE, "--out", str(out),
                                    option, *values], capsys, option)
    assert not out.exists()


@pytest.mark.parametrize("case", ["missing file", "a folder", "not mushroom data",
                                  "unknown agent", "out is a file"])
def test_bandit_bad_paths_and_agents(scripts, tmp_path, capsys, a_file, case):
    out = tmp_path / "out"
    argv, expected = {
        "missing file": (["--data", str(tmp_path / "nope.data")], "nope.data"),
        "a folder": (["--data", str(MUSHROOM.parent)], "not found"),
        "not mushroom data": (["--data", str(a_file)], "notes.txt line 1"),
        "unknown agent": (["--data", str(MUSHROOM), "--agents", "greedy"], "unknown agents"),
        "out is a file": (["--data", str(MUSHROOM), "--out", str(a_file)], "is a file"),
    }[case]
    usage_error(scripts["bandit"], [*BANDIT_BASE, "--out", str(out), *argv], capsys, expected)
    assert not out.exists()
    assert a_file.read_text() == "the user's notes\n"


def test_bandit_never_overwrites_an_earlier_run(scripts, tmp_path, capsys, foreign_folder):
    out = tmp_path / "earlier"
    out.mkdir()
    (out / "bandit.json").write_text('{"steps": 50000}\n')  # a 15-minute run's results
    before = snapshot(out)
    usage_error(scripts["bandit"], ["--data", str(MUSHROOM), *BANDIT_BASE, "--out", str(out)],
                capsys, "already holds bandit.json")
    assert snapshot(out) == before
    # a folder of other files is fine: nothing in it is touched
    others = snapshot(foreign_folder)
    scripts["bandit"].main(["--data", str(MUSHROOM), *BANDIT_BASE, "--out", str(foreign_folder)])
    after = snapshot(foreign_folder)
    assert {k: after[k] for k in others} == others and "bandit.json" in after


@pytest.mark.parametrize("case", ["missing", "not json", "not a bandit.json"])
def test_bandit_replot_of_a_bad_file_is_named(scripts, tmp_path, capsys, a_file, case):
    source = {"missing": tmp_path / "nope.json", "not json": a_file,
              "not a bandit.json": tmp_path / "other.json"}[case]
    (tmp_path / "other.json").write_text('{"steps": 3}')
    out = tmp_path / "out"
    usage_error(scripts["bandit"], ["--out", str(out), "--replot", str(source)], capsys,
                "--replot", source.name)
    assert not out.exists()


def test_bandit_ctrl_c_is_one_line(scripts, tmp_path, capsys, monkeypatch):
    bandit = scripts["bandit"]

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(bandit, "play", interrupted)
    assert bandit.cli(["--data", str(MUSHROOM), *BANDIT_BASE, "--out",
                       str(tmp_path / "out")]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err


def test_bandit_ctrl_c_writes_the_agents_that_finished_every_seed(scripts, tmp_path, capsys,
                                                                   monkeypatch, interrupt_at_call):
    bandit = scripts["bandit"]
    # Ctrl-C in the second agent's first seed
    monkeypatch.setattr(bandit, "run_bandit", interrupt_at_call(bandit.run_bandit, 3))
    out = tmp_path / "out"
    argv = ["--data", str(MUSHROOM), "--steps", "20", "--seeds", "0", "1", "--agents", "Greedy",
            "Oracle", "--points", "10", "--no-progress", "--out", str(out)]
    assert bandit.cli(argv) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Ctrl-C during Oracle, seed 0" in err
    saved = json.loads((out / "bandit.json").read_text())
    assert list(saved["final_regret"]) == ["Greedy"] and len(saved["final_regret"]["Greedy"]) == 2
    assert list(saved["curves"]["cumulative_regret"]) == ["Greedy"]
    assert saved["interrupted"].startswith("Ctrl-C during Oracle, seed 0: only Greedy finished")
    assert (out / "bandit_regret.png").is_file() and (out / "bandit_action_rates.png").is_file()


# --- pruning.py --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Untrained checkpoints: a Fashion-MNIST-shaped classifier, a 1-input regression model and a
    784-input regression model."""
    folder = tmp_path_factory.mktemp("checkpoints")
    paths = {}
    for name, sizes, likelihood in (("classifier", [784, 4, 10], Categorical(10)),
                                    ("toy", [1, 4, 1], Gaussian(noise=0.1)),
                                    ("regression784", [784, 4, 1], Gaussian(noise=0.1))):
        model = BayesianMLP(sizes, likelihood)
        paths[name] = folder / f"{name}.pt"
        save_checkpoint(paths[name], model, MeanFieldGuide(model))
    return paths


@pytest.mark.parametrize("option, value", [
    ("--num-samples", "0"), ("--num-samples", "-1"), ("--seed", "-1"), ("--threads", "0"),
])
def test_pruning_bad_numbers(scripts, checkpoints, tmp_path, capsys, option, value):
    out = tmp_path / "out"
    usage_error(scripts["pruning"], ["--smoke", "--checkpoint", str(checkpoints["classifier"]),
                                     "--out", str(out), option, value], capsys, option)
    assert not out.exists()


@pytest.mark.parametrize("case", [
    "missing checkpoint", "checkpoint is a folder", "not a checkpoint", "1-input model",
    "regression model", "missing data", "missing spec", "toy spec", "spec and checkpoint",
    "out is a file",
])
def test_pruning_bad_inputs_stop_before_out_is_made(scripts, checkpoints, tmp_path, capsys,
                                                    a_file, case):
    out = tmp_path / "out"
    classifier = ["--checkpoint", str(checkpoints["classifier"])]
    argv, expected = {
        "missing checkpoint": (["--checkpoint", str(tmp_path / "nope.pt")], "nope.pt"),
        "checkpoint is a folder": (["--checkpoint", str(tmp_path)], "not a file"),
        "not a checkpoint": (["--checkpoint", str(a_file)], "not a readable pyro_bbb checkpoint"),
        "1-input model": (["--checkpoint", str(checkpoints["toy"])], "takes 1 features"),
        "regression model": (["--checkpoint", str(checkpoints["regression784"])],
                             "not a 10-class classifier"),
        "missing data": ([*classifier, "--data-root", str(tmp_path / "nowhere")], "nowhere"),
        "missing spec": (["--spec", str(tmp_path / "nope.toml")], "nope.toml"),
        "toy spec": (["--spec", str(TOY_SPEC)], "Fashion-MNIST spec"),
        "spec and checkpoint": ([*classifier, "--spec", str(TOY_SPEC)], "--spec"),
        "out is a file": ([*classifier, "--out", str(a_file)], "is a file"),
    }[case]
    usage_error(scripts["pruning"], ["--smoke", "--out", str(out), *argv], capsys, expected)
    assert not out.exists()
    assert a_file.read_text() == "the user's notes\n"


def test_pruning_never_overwrites_earlier_results(scripts, checkpoints, tmp_path, capsys):
    out = tmp_path / "earlier"
    out.mkdir()
    (out / "pruning.json").write_text('{"rows": "an earlier 5-minute evaluation"}\n')
    before = snapshot(out)
    usage_error(scripts["pruning"], ["--smoke", "--checkpoint", str(checkpoints["classifier"]),
                                     "--out", str(out)], capsys, "already holds pruning.json")
    assert snapshot(out) == before


def test_pruning_ctrl_c_writes_the_proportions_done(scripts, checkpoints, tmp_path, capsys,
                                                    monkeypatch, interrupt_at_call):
    module = scripts["pruning"]
    # Ctrl-C during the second proportion
    monkeypatch.setattr(module.pruning, "pruning_curve",
                        interrupt_at_call(module.pruning.pruning_curve, 2))
    out = tmp_path / "out"
    argv = ["--smoke", "--checkpoint", str(checkpoints["classifier"]), "--proportions", "0",
            "0.5", "0.9", "--no-progress", "--out", str(out)]
    assert module.cli(argv) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Ctrl-C after 1 of 3 proportions" in err
    saved = json.loads((out / "pruning.json").read_text())
    assert [row["proportion"] for row in saved["rows"]] == [0.0]
    assert f"--checkpoint {checkpoints['classifier']}" in saved["interrupted"]


def test_pruning_reports_progress_per_proportion_with_the_same_rows(scripts, checkpoints,
                                                                    tmp_path, capsys):
    from pyro_bbb import pruning
    from pyro_bbb.checkpoint import load_checkpoint
    from pyro_bbb.data import load_fashion_mnist

    out = tmp_path / "out"
    assert scripts["pruning"].main(["--smoke", "--checkpoint", str(checkpoints["classifier"]),
                                    "--proportions", "0", "0.5", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "0 removed: test accuracy" in err and "0.5 removed: test accuracy" in err
    rows = json.loads((out / "pruning.json").read_text())["rows"]
    checkpoint = load_checkpoint(checkpoints["classifier"])
    test = load_fashion_mnist(None, split="test")
    expected = pruning.pruning_curve(checkpoint.model, checkpoint.guide, test.images[:500],
                                     test.labels[:500], [0.0, 0.5], num_samples=10, seed=0)
    assert rows == json.loads(json.dumps(expected))


# --- speed.py ----------------------------------------------------------------------------------

SPEED_BASE = ["--sizes", "8", "--batches", "4", "--repeats", "1", "--steps", "1",
              "--memory-n", "10", "--memory-chunks", "8"]


@pytest.mark.parametrize("option, value", [
    ("--repeats", "0"), ("--repeats", "-1"), ("--steps", "0"), ("--steps", "-1"),
    ("--sizes", "0"), ("--batches", "0"), ("--batches", "-2"), ("--memory-n", "0"),
    ("--device", "tpu"),
])
def test_speed_bad_numbers_and_device(scripts, capsys, option, value):
    usage_error(scripts["speed"], [*SPEED_BASE, option, value], capsys, option)


def test_speed_failed_memory_child_is_one_line(scripts, capsys, monkeypatch):
    speed = scripts["speed"]

    def failing_child(args, **kwargs):
        return subprocess.CompletedProcess(args, 1, "", "Traceback (most recent call last):\n"
                                           "  ...\nMemoryError: out of memory\n")

    monkeypatch.setattr(speed.subprocess, "run", failing_child)
    assert speed.cli(["--only", "memory", "--memory-n", "10", "--memory-chunks", "8"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "N = 10, chunk size 8 failed (exit status 1): MemoryError: out of memory" in err


def test_speed_memory_rows_per_chunk_never_exceed_the_inputs(scripts, monkeypatch):
    """With fewer inputs than a chunk, the one chunk holds all N rows, not the chunk size."""
    speed = scripts["speed"]
    monkeypatch.setattr(speed, "MEMORY_NET", [784, 8, 10])
    monkeypatch.setattr(speed, "_reset_peak_rss", lambda: False)
    assert speed.predictive_memory_child(50, None)["chunk_rows"] == 50
    assert speed.predictive_memory_child(50, 32)["chunk_rows"] == 32


# --- every script ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["table1", "time_to_accuracy", "bandit", "pruning"])
def test_an_out_that_cannot_be_created_is_refused_before_the_run(scripts, checkpoints, tiny_spec,
                                                                 capsys, name):
    out = "/proc/no_such_folder/out"  # /proc takes no new folders, not even from root
    argv = {
        "table1": [*TABLE1_BASE, "--out", out],
        "time_to_accuracy": ["--spec", str(tiny_spec), "--max-epochs", "1", "--out",
                             out + ".json"],
        "bandit": ["--data", str(MUSHROOM), *BANDIT_BASE, "--out", out],
        "pruning": ["--smoke", "--checkpoint", str(checkpoints["classifier"]), "--out", out],
    }[name]
    usage_error(scripts[name], argv, capsys, "/proc/no_such_folder", "cannot create")
