"""pyro-bbb figures: every figure that applies to a run folder, and clean errors on bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyro_bbb.cli import main
from pyro_bbb.config import DATA_ENV

MODELS = Path(__file__).resolve().parents[1] / "models"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CLASSIFICATION = ["reliability.png", "uncertainty.png", "most_uncertain.png", "ood.png",
                  "snr_histogram.png", "training_curves.png"]
REGRESSION = ["regression_band.png", "uncertainty_over_x.png", "uncertainty.png",
              "training_curves.png"]


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)


@pytest.fixture(scope="module")
def fashion_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fashion") / "run"
    argv = ["run", str(MODELS / "fashion_mnist.toml"), "--smoke", "--out", str(out),
            "--no-progress", "--set", "data.limit_train=256", "--set", "data.limit_test=64"]
    assert main(argv) == 0
    return out


def _written(capsys) -> list[Path]:
    lines = capsys.readouterr().out.strip().splitlines()
    return [Path(line) for line in lines if line.endswith(".png")]


def _check_pngs(folder: Path, names: list[str], written: list[Path]) -> None:
    assert sorted(p.name for p in written) == sorted(names)
    assert all(p.parent == folder for p in written)
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)
    for name in names:
        data = (folder / name).read_bytes()
        assert data.startswith(PNG_MAGIC), name
        assert len(data) > 10_000, name  # a real figure, not an empty canvas


def test_regression_run_figures(toy_run, capsys):
    capsys.readouterr()
    assert main(["figures", str(toy_run)]) == 0
    _check_pngs(toy_run / "figures", REGRESSION, _written(capsys))
    # the run folder's own files are untouched; figures go to RUN_DIR/figures by default
    assert (toy_run / "regression_band.png").is_file()


def test_classification_run_figures(fashion_run, tmp_path, capsys):
    capsys.readouterr()
    out = tmp_path / "figs"
    assert main(["figures", str(fashion_run), "--out", str(out), "--num-samples", "4",
                 "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "with 4 posterior samples" in printed
    written = [Path(line) for line in printed.splitlines() if line.endswith(".png")]
    _check_pngs(out, CLASSIFICATION, written)
    assert not (fashion_run / "figures").exists()
    # the out-of-distribution table: the 64 test images against their shifted copies
    lines = printed.splitlines()
    header = next(i for i, line in enumerate(lines) if line.endswith("AUROC (epistemic)"))
    rows = {line[:14].strip(): line.split() for line in lines[header + 1 : header + 5]}
    assert list(rows) == ["test (clean)", "rotated 90°", "inverted", "uniform noise"]
    assert rows["test (clean)"][-1] == "0.500"  # the clean images against themselves
    assert all(0 <= float(row[-1]) <= 1 for row in rows.values())


def test_figures_without_history(toy_run, tmp_path, capsys):
    run = tmp_path / "copy"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes((toy_run / "checkpoint.pt").read_bytes())
    assert main(["figures", str(run), "--out", str(tmp_path / "f")]) == 0
    names = sorted(p.name for p in _written(capsys))
    # no history.json: no curves
    assert names == ["regression_band.png", "uncertainty.png", "uncertainty_over_x.png"]


def test_figures_bad_input(toy_run, tmp_path, cli_error):
    err = cli_error(["figures", str(tmp_path / "missing")])
    assert err.startswith("error: ") and "run folder not found" in err
    (tmp_path / "empty").mkdir()
    err = cli_error(["figures", str(tmp_path / "empty")])
    assert "error: " in err and "is not a run folder" in err
    spec_only = tmp_path / "spec_only"
    spec_only.mkdir()
    (spec_only / "config.toml").write_text((toy_run / "config.toml").read_text())
    err = cli_error(["figures", str(spec_only)])
    assert "error: " in err and "has no checkpoint.pt" in err
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert cli_error(["figures", str(corrupt)]).startswith("error: ")
    bad_history = tmp_path / "bad_history"
    bad_history.mkdir()
    (bad_history / "checkpoint.pt").write_bytes((toy_run / "checkpoint.pt").read_bytes())
    (bad_history / "history.json").write_text("{")
    err = cli_error(["figures", str(bad_history)])
    assert "history.json is not valid JSON" in err
    assert not (bad_history / "figures").exists()  # nothing written before the checks pass
    assert "must be a positive integer" in cli_error(
        ["figures", str(toy_run), "--num-samples", "0"])

