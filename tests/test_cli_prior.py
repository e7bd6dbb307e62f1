"""pyro-bbb prior: the prior predictive figure of a spec, and clean errors on bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyro_bbb.cli import main
from pyro_bbb.config import DATA_ENV

MODELS = Path(__file__).resolve().parents[1] / "models"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MIXTURE = "scale mixture (π=0.5, σ1=1, σ2=0.00248)"


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)


def _check(capsys, folder: Path) -> str:
    out = capsys.readouterr().out
    path = folder / "prior_predictive.png"
    assert out.strip().splitlines()[-1] == str(path)
    assert sorted(p.name for p in folder.iterdir()) == ["prior_predictive.png"]
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000  # a real figure
    return out


def test_regression_prior_functions(tmp_path, capsys):
    out = tmp_path / "toy"
    assert main(["prior", str(MODELS / "toy_regression.toml"), "--out", str(out),
                 "--num-draws", "3", "--compare-sigmas", "0.1", "1", "--threads", "1"]) == 0
    printed = _check(capsys, out)
    assert f"{MIXTURE}, N(0, 0.1²), N(0, 1²)" in printed
    assert "BayesianMLP(1-100-100-1, relu, Gaussian)" in printed
    # run again into the same folder: the figure is replaced
    assert main(["prior", str(MODELS / "toy_regression.toml"), "--out", str(out),
                 "--num-draws", "2", "--compare-sigmas"]) == 0
    printed = _check(capsys, out)
    assert printed.splitlines()[0].endswith(f": {MIXTURE}")  # no Gaussian comparisons


def test_comparison_spec_prior_functions(tmp_path, capsys):
    """Notebook 02's prior functions: a comparison spec's model, its [compare] table unused."""
    out = tmp_path / "compare"
    assert main(["prior", str(MODELS / "compare_toy.toml"), "--out", str(out),
                 "--num-draws", "3", "--compare-sigmas", "--threads", "1"]) == 0
    printed = _check(capsys, out)
    assert printed.splitlines()[0] == ("prior predictive of compare_toy "
                                       "(BayesianMLP(1-50-1, relu, Gaussian)): N(0, 1²)")


def test_comparison_spec_errors_name_the_spec_problem(tmp_path, cli_error):
    spec = tmp_path / "bad.toml"
    spec.write_text((MODELS / "compare_toy.toml").read_text().replace("[compare]\n",
                                                                      "[compare]\nnonsense = 1\n"))
    err = cli_error(["prior", str(spec), "--out", str(tmp_path / "o")])
    assert "unknown key 'nonsense' in [compare]" in err
    spec.write_text((MODELS / "toy_regression.toml").read_text().replace("[network]",
                                                                         "[netwrk]"))
    err = cli_error(["prior", str(spec), "--out", str(tmp_path / "o")])
    assert str(spec) in err and "netwrk" in err  # the experiment spec's own message
    assert not (tmp_path / "o").exists()


def test_classification_prior_probabilities(tmp_path, capsys):
    out = tmp_path / "fashion"
    assert main(["prior", str(MODELS / "fashion_mnist.toml"), "--out", str(out),
                 "--set", "data.limit_train=64", "--set", "data.limit_test=8",
                 "--num-draws", "4", "--num-inputs", "32", "--compare-sigmas", "0.3"]) == 0
    printed = _check(capsys, out)
    assert "BayesianMLP(784-400-400-10, relu, Categorical)" in printed
    assert f"{MIXTURE}, N(0, 0.3²)" in printed


def test_default_output_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["prior", str(MODELS / "toy_regression.toml"), "--num-draws", "2",
                 "--compare-sigmas", "--set", "name=toy"]) == 0
    (folder,) = (tmp_path / "runs").iterdir()
    assert folder.name.startswith("toy-prior-")
    path = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert path.is_file() and path.parent.resolve() == folder.resolve()


def _uci_spec(root: Path, features: int) -> Path:
    """A spec on a tiny UCI-format folder with ``features`` input columns (standardised data)."""
    folder = root / f"uci{features}"
    folder.mkdir()
    rows = [" ".join(str((i + 1) * (k + 1) % 7) for k in range(features + 1)) for i in range(8)]
    (folder / "data.txt").write_text("\n".join(rows) + "\n")
    (folder / "index_features.txt").write_text("".join(f"{k}\n" for k in range(features)))
    (folder / "index_target.txt").write_text(f"{features}\n")
    (folder / "index_train_0.txt").write_text("0\n1\n2\n3\n4\n5\n")
    (folder / "index_test_0.txt").write_text("6\n7\n")
    (folder / "n_splits.txt").write_text("1\n")
    toy = (MODELS / "toy_regression.toml").read_text()
    start, end = toy.index("[data]"), toy.index("[network]")
    spec = root / f"uci{features}.toml"
    spec.write_text(toy[:start] + f'[data]\nkind = "uci"\nfolder = "{folder}"\nsplit = 0\n\n'
                    + toy[end:])
    return spec


def test_standardised_one_feature_regression(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["prior", str(_uci_spec(tmp_path, 1)), "--out", str(out), "--num-draws", "2",
                 "--compare-sigmas"]) == 0
    _check(capsys, out)


def test_prior_bad_input(tmp_path, cli_error):
    toy = str(MODELS / "toy_regression.toml")
    err = cli_error(["prior", str(tmp_path / "missing.toml")])
    assert err.startswith("error: ")
    err = cli_error(["prior", toy, "--set", "network.nonsense=1"])
    assert err.startswith("error: ") and "nonsense" in err
    assert "must be a positive finite number" in cli_error(["prior", toy, "--compare-sigmas", "0"])
    assert "must be a positive finite number" in cli_error(["prior", toy, "--compare-sigmas",
                                                          "wide"])
    assert "must be a positive integer" in cli_error(["prior", toy, "--num-draws", "0"])
    a_file = tmp_path / "file"
    a_file.write_text("x")
    err = cli_error(["prior", toy, "--out", str(a_file)])
    assert err.startswith("error: ") and "is not a folder" in err
    err = cli_error(["prior", str(_uci_spec(tmp_path, 2)), "--out", str(tmp_path / "o")])
    assert err.startswith("error: ") and "needs 1-D inputs" in err and "2 input features" in err
    assert not list(tmp_path.glob("**/prior_predictive.png"))
