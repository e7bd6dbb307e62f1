"""A small seeded Table 1 grid (benchmarks/table1.py) on 2,000 Fashion-MNIST images."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from pyro_bbb.data import DEFAULT_FASHION_MNIST_ROOT
from pyro_bbb.experiment import hardware_string
from pyro_bbb.infer import resolve_device

ROOT = Path(__file__).resolve().parents[1]


def _table1():
    spec = importlib.util.spec_from_file_location("table1", ROOT / "benchmarks" / "table1.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    out = tmp_path_factory.mktemp("table1")
    text = (ROOT / "models" / "fashion_mnist.toml").read_text()
    text = text.replace("# limit_train = 1000", "limit_train = 2000").replace(
        "# limit_test = 1000", "limit_test = 500")
    (out / "spec.toml").write_text(text)
    argv = ["--spec", str(out / "spec.toml"), "--widths", "32", "--epochs", "4", "--lr", "0.003",
            "--num-samples", "20", "--out", str(out), "--no-progress",
            "--data-root", str(DEFAULT_FASHION_MNIST_ROOT)]
    table1 = _table1()
    assert table1.main(argv) == 0
    return table1, argv, out, json.loads((out / "table1.json").read_text())


def test_every_cell_learns_and_is_reported(grid):
    table1, _, out, summary = grid
    cells = summary["cells"]
    assert sorted(cells) == sorted(f"{m}_32" for m in table1.METHODS)
    for name, cell in cells.items():
        assert cell["accuracy"] >= 0.6, name          # chance is 0.1
        assert cell["nll"] < math.log(10), name        # better than the uniform prediction
        assert 0 <= cell["ece"] < 0.5 and cell["epochs"] == 4
        device = resolve_device("auto") if name.startswith("bbb") else "cpu"  # point methods: CPU
        assert cell["hardware"] == hardware_string(device), name
    table = (out / "table1.md").read_text()
    for method, label in table1.LABELS.items():
        cell = cells[f"{method}_32"]
        assert f"| {label} | {100 * (1 - cell['accuracy']):.2f}% / {cell['nll']:.3f}" in table


def test_bbb_cells_record_a_learning_curve_and_a_run_folder(grid):
    _, _, out, summary = grid
    for prior in ("gaussian", "mixture"):
        cell = summary["cells"][f"bbb_{prior}_32"]
        curve = cell["curve"]
        assert [c["epoch"] for c in curve] == [1, 2, 3, 4]
        assert curve[-1]["test_accuracy"] > curve[0]["test_accuracy"]
        times = [c["train_seconds"] for c in curve]
        assert times == sorted(times) and times[-1] <= cell["train_seconds"] + 1e-6
        assert cell["seconds_to_88"] is None  # 2,000 images never get there
        run = Path(cell["run_dir"])
        metrics = json.loads((run / "metrics.json").read_text())["metrics"]
        assert metrics["accuracy"] == cell["accuracy"] and (run / "checkpoint.pt").is_file()
    assert summary["cells"]["bbb_gaussian_32"]["prior"]["kind"] == "gaussian"
    assert summary["cells"]["bbb_mixture_32"]["prior"]["kind"] == "scale_mixture"
    assert summary["cells"]["bbb_mixture_32"]["lr_schedule"] == "cosine"


def test_a_rerun_reuses_finished_cells(grid):
    table1, argv, out, summary = grid
    cell_files = {p.name: p.read_bytes() for p in (out / "cells").iterdir()}
    assert table1.main(argv) == 0
    assert {p.name: p.read_bytes() for p in (out / "cells").iterdir()} == cell_files


def test_pruning_spec_is_the_table1_h1200_mixture_cell():
    """models/fashion_mnist_1200.toml (what README's pruning command trains) must stay the
    Table 1 cell whose pruning the README reports."""
    from pyro_bbb.config import config_to_dict, load_config

    table1 = _table1()
    cell = config_to_dict(table1.cell_config(table1.build_parser().parse_args([]),
                                             "bbb_mixture", 1200))
    spec = config_to_dict(load_config(ROOT / "models" / "fashion_mnist_1200.toml"))
    assert (cell.pop("name"), spec.pop("name")) == ("table1_bbb_mixture_1200", "fashion_mnist_1200")
    assert spec == cell
