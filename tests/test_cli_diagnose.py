"""pyro-bbb diagnose: ArviZ figures of a run folder's posterior, and clean errors on bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyro_bbb.cli import main
from pyro_bbb.config import DATA_ENV

MODELS = Path(__file__).resolve().parents[1] / "models"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = ["khat.png", "posterior.png", "ppc.png"]


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)


def test_diagnose_writes_the_arviz_figures(toy_run, tmp_path, capsys):
    capsys.readouterr()
    out = tmp_path / "diag"
    assert main(["diagnose", str(toy_run), "--out", str(out), "--num-samples", "30",
                 "--max-points", "40"]) == 0
    printed = capsys.readouterr().out
    assert "on 40 training points" in printed
    assert "elpd_loo" in printed and "Pareto k" in printed  # the az.loo summary
    written = [Path(line) for line in printed.splitlines() if line.endswith(".png")]
    assert sorted(p.name for p in written) == FIGURES
    assert sorted(p.name for p in out.iterdir()) == FIGURES
    for name in FIGURES:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC), name
        assert len(data) > 5_000, name  # a real figure, not an empty canvas


def test_diagnose_defaults_to_run_dir_diagnostics(toy_run, capsys):
    assert main(["diagnose", str(toy_run), "--num-samples", "10"]) == 0
    assert sorted(p.name for p in (toy_run / "diagnostics").iterdir()) == FIGURES


def test_diagnose_refits_seeds_as_chains(toy_run, tmp_path, capsys):
    capsys.readouterr()
    out = tmp_path / "diag"
    assert main(["diagnose", str(toy_run), "--out", str(out), "--num-samples", "20",
                 "--max-points", "30", "--seeds", "0", "1"]) == 0
    printed = capsys.readouterr().out
    assert "refitting toy_regression from seeds [0, 1]" in printed
    r_hat = float(printed.split("function-space R-hat across 2 fits: max ")[1].split()[0])
    assert r_hat >= 1.0  # rank-normalised R-hat of two chains
    seed_figures = ["fs_rhat_seeds.png", "seed_bands.png"]
    for name in seed_figures:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000, name
    assert sorted(p.name for p in out.iterdir()) == sorted([*FIGURES, *seed_figures])
    written = [Path(line).name for line in printed.splitlines() if line.endswith(".png")]
    assert sorted(written) == sorted([*FIGURES, *seed_figures])
    capsys.readouterr()
    assert main(["diagnose", str(toy_run), "--out", str(out), "--seeds", "3", "3"]) == 2
    assert "at least two different seeds" in capsys.readouterr().err


def test_diagnose_bad_input_exits_2(tmp_path, capsys):
    capsys.readouterr()
    assert main(["diagnose", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.startswith("error:")
    empty = tmp_path / "not_a_run"
    empty.mkdir()
    assert main(["diagnose", str(empty)]) == 2
    assert capsys.readouterr().err.startswith("error:")


def test_figures_of_a_classifier_in_python(tmp_path):
    """The library functions behind the command: classification data, several inputs, chains."""
    import torch

    from pyro_bbb import BayesianMLP, Categorical, MeanFieldGuide, gaussian_prior
    from pyro_bbb.diagnostic_plots import diagnostic_figures, function_space_rhat_figure
    from pyro_bbb.diagnostics import function_space_summary, sample_prior

    g = torch.Generator().manual_seed(0)
    x = torch.randn(80, 3, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 1).long()
    model = BayesianMLP([3, 6, 3], Categorical(3), prior=gaussian_prior(1.0))
    draws = MeanFieldGuide(model).sample_posterior(20, generator=g)
    result = diagnostic_figures(model, draws, x, y, tmp_path,
                                prior_draws=sample_prior(model, 20, seed=1))
    assert sorted(p.name for p in result.files.values()) == FIGURES
    assert result.loo.pareto_k.shape == (80,)
    summary = function_space_summary(model, draws, x[:10], chains=2)
    fig = function_space_rhat_figure({"bbb": summary}, x[:10])
    assert len(fig.axes[0].lines) == 2  # the method's R-hat per input and the 1.01 line
