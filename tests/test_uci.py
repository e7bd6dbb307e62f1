"""UCI benchmark protocol (pyro_bbb.uci and ``pyro-bbb uci``) on a tiny synthetic folder."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from pyro_bbb.cli import main
from pyro_bbb.uci import format_summary, run_uci, summarize

NOISE = 0.1
EPOCHS = 60


def write_folder(path, scale=1.0, n=200, d=3, n_splits=2, seed=0):
    """A linear function + N(0, NOISE²) noise in the standard UCI split format (target last)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * np.array([1.0, 5.0, 0.2]) + np.array([0.0, 10.0, -3.0])
    y = x @ np.array([1.0, 0.2, 3.0]) + 2.0 + NOISE * rng.normal(size=n)
    path.mkdir(parents=True, exist_ok=True)
    np.savetxt(path / "data.txt", np.column_stack([x, scale * y]), fmt="%.10g")
    np.savetxt(path / "index_features.txt", np.arange(d), fmt="%d")
    np.savetxt(path / "index_target.txt", [d], fmt="%d")
    for k in range(n_splits):
        perm = np.random.default_rng(100 + k).permutation(n)
        np.savetxt(path / f"index_train_{k}.txt", perm[: int(0.8 * n)], fmt="%d")
        np.savetxt(path / f"index_test_{k}.txt", perm[int(0.8 * n):], fmt="%d")
    (path / "n_splits.txt").write_text(f"{n_splits}\n")
    (path / "n_hidden.txt").write_text("20\n")
    (path / "n_epochs.txt").write_text("40\n")
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("uci")
    small = run_uci(write_folder(root / "unit"), epochs=EPOCHS, num_samples=50)
    big = run_uci(write_folder(root / "kilo", scale=1000.0), epochs=EPOCHS, num_samples=50)
    return small, big


def test_rmse_near_noise_and_finite_ll(runs):
    table, _ = runs
    assert list(table["split"]) == [0, 1] and set(table["method"]) == {"bbb"}
    assert (table["hidden"] == 20).all() and (table["epochs"] == EPOCHS).all()
    assert (table["rmse"] < 2.5 * NOISE).all(), table
    assert np.isfinite(table["test_ll"]).all()
    # a Gaussian with σ near NOISE has log density about -log(σ √(2π e)) ≈ 0.88
    assert (table["test_ll"] > -0.5).all(), table


def test_original_units(runs):
    small, big = runs
    np.testing.assert_allclose(big["rmse"], 1000 * small["rmse"], rtol=1e-4)
    np.testing.assert_allclose(big["test_ll"], small["test_ll"] - math.log(1000), atol=1e-4)
    np.testing.assert_allclose(big["y_std"], 1000 * small["y_std"], rtol=1e-5)


def test_summary_mean_and_standard_error():
    table = pd.DataFrame({"method": ["a", "a", "a", "b"], "split": [0, 1, 2, 0],
                          "rmse": [1.0, 2.0, 4.0, 3.0], "test_ll": [-1.0, -2.0, -3.0, 0.5],
                          "train_seconds": [1.0, 1.0, 1.0, 2.0]})
    summary = summarize(table).set_index("method")
    assert summary.loc["a", "rmse_mean"] == pytest.approx(7 / 3)
    assert summary.loc["a", "rmse_se"] == pytest.approx(np.std([1, 2, 4], ddof=1) / math.sqrt(3))
    assert summary.loc["a", "ll_mean"] == pytest.approx(-2.0)
    assert summary.loc["a", "ll_se"] == pytest.approx(1 / math.sqrt(3))
    assert summary.loc["b", "splits"] == 1 and summary.loc["b", "rmse_se"] == 0.0
    text = format_summary(summary.reset_index())
    assert "2.333 ± 0.882" in text and "-2 ± 0.577" in text


def test_cli_table_and_files(tmp_path, capsys):
    folder = write_folder(tmp_path / "synthetic")
    out = tmp_path / "out"
    status = main(["uci", "--data-dir", str(folder), "--splits", "1", "--epochs", "5",
                   "--num-samples", "10", "--out", str(out)])
    text = capsys.readouterr().out
    assert status == 0
    assert "bbb split 1" in text and "±" in text
    rows = pd.read_csv(out / "uci_splits.csv")
    assert list(rows["split"]) == [1]
    summary = pd.read_csv(out / "uci_summary.csv")
    assert summary.loc[0, "rmse_mean"] == pytest.approx(rows.loc[0, "rmse"])
    meta = json.loads((out / "uci.json").read_text())
    assert {"command", "hardware", "date", "seconds", "summary", "splits"} <= set(meta)
    figure = (out / "uci_splits.png").read_bytes()
    assert figure.startswith(b"\x89PNG") and len(figure) > 5_000


def test_uci_figure_shows_every_split_and_the_mean_with_its_standard_error():
    from pyro_bbb.uci_plots import uci_figure

    table = pd.DataFrame({"method": ["bbb"] * 3 + ["dropout"] * 2, "split": [0, 1, 2, 0, 1],
                          "rmse": [3.0, 4.0, 5.0, 2.0, 2.5],
                          "test_ll": [-2.5, -2.6, -2.9, -2.4, -2.45],
                          "train_seconds": [1.0] * 5})
    fig = uci_figure(table)
    ll_ax, rmse_ax = fig.axes
    assert [t.get_text() for t in rmse_ax.get_xticklabels()] == ["bbb", "dropout"]
    for ax, column in ((ll_ax, "test_ll"), (rmse_ax, "rmse")):
        dots = np.concatenate([c.get_offsets()[:, 1] for c in ax.collections
                               if type(c).__name__ == "PathCollection"])
        np.testing.assert_allclose(sorted(dots), sorted(table[column]))
        groups = table.groupby("method", sort=False)[column]
        means = [bar.lines[0].get_ydata()[0] for bar in ax.containers]  # one errorbar per method
        np.testing.assert_allclose(means, groups.mean().to_numpy())
        low, high = ax.containers[0].lines[2][0].get_segments()[0][:, 1]  # bbb's ± SE bar
        assert high - low == pytest.approx(2 * groups.std(ddof=1).iloc[0] / math.sqrt(3))


@pytest.mark.parametrize("table, message", [
    (pd.DataFrame({"method": ["a"], "rmse": [1.0]}), "no column split, test_ll, train_seconds"),
    (pd.DataFrame(columns=["method", "split", "rmse", "test_ll", "train_seconds"]), "no rows"),
    (pd.DataFrame({"method": ["a"], "split": [3], "rmse": [float("nan")], "test_ll": [0.0],
                   "train_seconds": [1.0]}), "non-finite rmse or test_ll in .*'split': 3"),
])
def test_uci_figure_names_a_bad_table(table, message):
    from pyro_bbb.uci_plots import uci_figure

    with pytest.raises(ValueError, match=message):
        uci_figure(table)


def test_cli_ctrl_c_writes_the_rows_that_finished(tmp_path, capsys, monkeypatch,
                                                  interrupt_at_call):
    import pyro_bbb.uci as uci

    # Ctrl-C in the second (method, split)
    monkeypatch.setattr(uci, "run_method", interrupt_at_call(uci.run_method, 2))
    folder = write_folder(tmp_path / "synthetic")
    out = tmp_path / "out"
    status = main(["uci", "--data-dir", str(folder), "--splits", "0", "1", "--epochs", "5",
                   "--num-samples", "10", "--out", str(out)])
    assert status == 130
    assert "interrupted (Ctrl-C after 1 (method, split) rows)" in capsys.readouterr().err
    assert list(pd.read_csv(out / "uci_splits.csv")["split"]) == [0]
    meta = json.loads((out / "uci.json").read_text())
    assert meta["interrupted"].startswith("Ctrl-C after 1") and len(meta["splits"]) == 1


def test_cli_bad_folder(tmp_path, capsys):
    assert main(["uci", "--data-dir", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.startswith("error: UCI data folder not found")
    (tmp_path / "empty").mkdir()
    assert main(["uci", "--data-dir", str(tmp_path / "empty")]) == 2
    assert "error:" in capsys.readouterr().err


def test_bad_split_and_method(tmp_path):
    folder = write_folder(tmp_path / "synthetic")
    with pytest.raises(ValueError, match="out of range"):
        run_uci(folder, splits=[5])
    with pytest.raises(ValueError, match="unknown method"):
        run_uci(folder, methods=("nope",))
    with pytest.raises(ValueError, match=r"splits lists a split twice: \[0, 0\]"):
        run_uci(folder, splits=[0, 0])
    with pytest.raises(ValueError, match="hidden must be a positive int, got 0"):
        run_uci(folder, hidden=0)


@pytest.mark.parametrize("name", ["n_hidden.txt", "n_epochs.txt", "n_splits.txt"])
def test_a_zero_in_a_protocol_file_is_refused(tmp_path, name):
    folder = write_folder(tmp_path / "synthetic")
    (folder / name).write_text("0\n")
    with pytest.raises(ValueError, match=f"{name}: expected a positive integer, got 0"):
        run_uci(folder, splits=[0], epochs=1)
