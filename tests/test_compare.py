"""The method comparison end to end on a tiny setting: table, files, figure, CLI."""

import json
import math
from pathlib import Path

import pandas
import pytest
import torch

from pyro_bbb import BayesianMLP, Categorical, Gaussian, gaussian_prior
from pyro_bbb.cli import main
from pyro_bbb.compare import (
    bands_figure,
    compare,
    load_compare_spec,
    run_comparison,
    write_table,
)
from pyro_bbb.data import toy_regression, toy_regression_heldout

MODELS = Path(__file__).resolve().parents[1] / "models"

TINY = {
    "nuts": {"num_samples": 20, "warmup": 20, "num_chains": 2, "max_tree_depth": 4},
    "normal": {"steps": 100, "lr": 0.05},
    "delta": {"steps": 100, "lr": 0.05},
    "bbb": {"epochs": 100, "batch_size": 30, "lr": 0.05},
    "deterministic": {"epochs": 50, "batch_size": 30, "lr": 0.05},
    "dropout": {"epochs": 50, "batch_size": 30, "lr": 0.05, "p": 0.2},
    "ensemble": {"epochs": 50, "batch_size": 30, "lr": 0.05, "num_members": 3},
}
REGRESSION_COLUMNS = {"rmse", "test_log_likelihood", "interval_coverage", "mean_std",
                      "std_inside", "std_outside", "std_ratio", "train_seconds",
                      "predict_seconds", "divergences", "fs_r_hat", "num_samples"}


@pytest.fixture(scope="module")
def toy_comparison():
    train = toy_regression(30, seed=0)
    test = toy_regression_heldout(40)
    model = BayesianMLP([1, 8, 1], Gaussian(noise=0.05), prior=gaussian_prior(1.0))
    comparison = run_comparison(model, train.x, train.y, test.x, test.y, list(TINY),
                                options=TINY, num_samples=20)
    return comparison, train, test


def test_table_has_every_method_and_finite_values(toy_comparison):
    comparison, *_ = toy_comparison
    table = comparison.table
    assert list(table.index) == list(TINY)
    assert REGRESSION_COLUMNS <= set(table.columns)
    always = table.drop(columns=["divergences", "fs_r_hat"])
    assert all(math.isfinite(v) for v in always.to_numpy().ravel())
    # NUTS alone has divergences and a function-space R-hat
    assert math.isfinite(table.loc["nuts", "divergences"])
    assert table.loc["nuts", "fs_r_hat"] >= 0.99
    assert table.drop(index="nuts")[["divergences", "fs_r_hat"]].isna().all().all()
    assert table.loc["nuts", "num_samples"] == 40  # 2 chains × 20 draws, flattened
    assert table.loc["ensemble", "num_samples"] == 3
    # point estimates carry only aleatoric noise: std 0.05 everywhere
    for point in ("delta", "deterministic"):
        assert table.loc[point, "std_inside"] == pytest.approx(0.05, rel=1e-4)
        assert table.loc[point, "std_ratio"] == pytest.approx(1.0, rel=1e-4)
    # Bayesian methods and ensembles widen outside [0, 0.5]
    for name in ("nuts", "bbb", "ensemble"):
        assert table.loc[name, "std_ratio"] > 1.0, name
    assert ((table["interval_coverage"] >= 0) & (table["interval_coverage"] <= 1)).all()


def test_compare_returns_the_table_and_writes_files(toy_comparison, tmp_path):
    _, train, test = toy_comparison
    model = BayesianMLP([1, 8, 1], Gaussian(noise=0.05), prior=gaussian_prior(1.0))
    table = compare(lambda: model, train.x, train.y, test.x, test.y, ["deterministic"],
                    options=TINY, x_outside=torch.tensor([[1.0]]))
    assert isinstance(table, pandas.DataFrame) and list(table.index) == ["deterministic"]
    files = write_table(table, tmp_path)
    back = pandas.read_csv(files["csv"], index_col="method")
    assert back.loc["deterministic", "rmse"] == pytest.approx(table.loc["deterministic", "rmse"],
                                                              rel=1e-5)
    records = json.loads(files["json"].read_text())
    assert records[0]["method"] == "deterministic" and records[0]["divergences"] is None


def test_bands_figure_renders(toy_comparison, tmp_path):
    comparison, train, _ = toy_comparison
    grid = torch.linspace(-0.2, 1.2, 50)[:, None]
    fig = bands_figure(comparison, train.x, train.y, grid)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == len(TINY)
    assert [ax.get_title() for ax in fig.axes[: len(TINY)]] == list(TINY)
    fig.savefig(tmp_path / "bands.png")
    assert (tmp_path / "bands.png").stat().st_size > 1000


def test_classification_columns():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 2, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    model = BayesianMLP([2, 6, 2], Categorical(2), prior=gaussian_prior(1.0))
    table = compare(model, x, y, x, y, ["deterministic", "bbb"], options=TINY, num_samples=10)
    assert {"accuracy", "nll", "ece", "std_inside"} <= set(table.columns)
    assert (table["accuracy"] > 0.8).all()


def test_compare_spec_and_cli(tmp_path, capsys):
    spec = load_compare_spec(MODELS / "compare_toy.toml")
    assert set(spec.methods) == {"bbb", "nuts", "normal", "delta", "dropout", "ensemble"}
    assert spec.config.network.hidden_sizes == (50,)
    small = tmp_path / "tiny.toml"
    small.write_text(
        'name = "tiny"\n[data]\nkind = "toy_regression"\nnum_points = 20\nnum_test = 30\n'
        '[network]\nhidden_sizes = [4]\n[likelihood]\nkind = "gaussian"\nnoise = 0.05\n'
        '[compare]\nmethods = ["deterministic", "delta"]\nnum_samples = 5\n'
        '[compare.deterministic]\nepochs = 20\n[compare.delta]\nsteps = 20\n')
    out = tmp_path / "out"
    assert main(["compare", str(small), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "deterministic" in printed and "rmse" in printed
    assert {p.name for p in out.iterdir()} == {"comparison.csv", "comparison.json", "bands.png",
                                               "meta.json"}
    bad = tmp_path / "bad.toml"
    bad.write_text(small.read_text().replace('["deterministic", "delta"]', '["laplace"]'))
    assert main(["compare", str(bad), "--out", str(tmp_path / "o2")]) == 2
    assert "laplace" in capsys.readouterr().err
