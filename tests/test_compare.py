"""The method comparison end to end on a tiny setting: table, PSIS-LOO, files, figure, CLI."""

import contextlib
import json
import math
import warnings
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
    psis_loo,
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
    "bbb_mixture": {"epochs": 100, "batch_size": 30, "lr": 0.05, "sigma2": 0.01},
    "deterministic": {"epochs": 50, "batch_size": 30, "lr": 0.05},
    "dropout": {"epochs": 50, "batch_size": 30, "lr": 0.05, "p": 0.2},
    "ensemble": {"epochs": 50, "batch_size": 30, "lr": 0.05, "num_members": 3},
}
REGRESSION_COLUMNS = {"rmse", "test_log_likelihood", "interval_coverage", "mean_std",
                      "std_inside", "std_outside", "std_ratio", "train_seconds",
                      "predict_seconds", "divergences", "fs_r_hat", "num_samples",
                      "elpd_loo", "elpd_loo_se", "p_loo", "pareto_k_over_0.7"}
LOO_COLUMNS = {"rank", "elpd_loo", "p_loo", "elpd_diff", "weight", "se", "dse", "warning",
               "scale"}


@contextlib.contextmanager
def strict():
    """Every warning is an error, except deprecations raised at lines of ArviZ's own code (ArviZ
    0.23 calls pandas APIs that pandas 3 deprecates; see pyro_bbb.diagnostics)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for category in (DeprecationWarning, FutureWarning):
            warnings.filterwarnings("ignore", category=category, module=r"arviz(\.|$)")
        yield


@pytest.fixture(scope="module")
def toy_comparison():
    train = toy_regression(30, seed=0)
    test = toy_regression_heldout(40)
    model = BayesianMLP([1, 8, 1], Gaussian(noise=0.05), prior=gaussian_prior(1.0))
    with strict():  # our side raises no warning, Pareto-k ones included (they are recorded)
        comparison = run_comparison(model, train.x, train.y, test.x, test.y, list(TINY),
                                    options=TINY, num_samples=20)
    return comparison, train, test


def test_table_has_every_method_and_finite_values(toy_comparison):
    comparison, *_ = toy_comparison
    table = comparison.table
    assert list(table.index) == list(TINY)
    assert REGRESSION_COLUMNS <= set(table.columns)
    always = table.drop(columns=["divergences", "fs_r_hat", "pareto_k_over_0.7"])
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


def test_loo_columns_and_az_compare_table(toy_comparison):
    comparison, train, _ = toy_comparison
    table, loo = comparison.table, comparison.loo
    assert LOO_COLUMNS <= set(loo.columns) and loo.index.name == "method"
    assert set(loo.index) == set(TINY) and sorted(loo["rank"]) == list(range(len(TINY)))
    assert loo["elpd_diff"].iloc[0] == 0 and (loo["elpd_diff"] >= 0).all()
    assert loo["weight"].sum() == pytest.approx(1.0)
    assert set(comparison.elpd) == set(TINY)
    for name in TINY:
        assert math.isfinite(table.loc[name, "elpd_loo"]), name
        assert table.loc[name, "elpd_loo"] == pytest.approx(loo.loc[name, "elpd_loo"])
        assert comparison.elpd[name].n_data_points == train.x.shape[0]
    # the chains were used: NUTS's 40 draws are 2 chains × 20
    assert comparison.elpd["nuts"].n_samples == 40
    # a repeated point: elpd_loo is the plug-in log predictive, p_loo 0, Pareto k undefined
    model = comparison.model
    for point in ("delta", "deterministic"):
        draws = comparison.results[point].draws
        f = model.network(train.x, {k: v[0] for k, v in draws.items()})[:, 0]
        plug_in = torch.distributions.Normal(f, 0.05).log_prob(train.y.reshape(-1)).sum()
        assert table.loc[point, "elpd_loo"] == pytest.approx(float(plug_in), rel=1e-6)
        assert table.loc[point, "p_loo"] == pytest.approx(0.0, abs=1e-6)
        assert math.isnan(table.loc[point, "pareto_k_over_0.7"])
        assert not loo.loc[point, "warning"]
    # Bayesian methods have a positive effective number of parameters and a k share in [0, 1]
    for name in ("nuts", "bbb", "bbb_mixture", "normal", "dropout", "ensemble"):
        assert table.loc[name, "p_loo"] > 0, name
        assert 0 <= table.loc[name, "pareto_k_over_0.7"] <= 1, name


def test_bbb_mixture_changes_only_the_prior(toy_comparison):
    from pyro_bbb.distributions import ScaleMixtureNormal

    comparison, *_ = toy_comparison
    model = comparison.model
    mixture = comparison.results["bbb_mixture"].extras["model"]
    assert all(isinstance(p, torch.distributions.Normal) for p in model.priors)  # untouched
    assert all(isinstance(p, ScaleMixtureNormal) for p in mixture.priors)
    assert [(float(p.pi), float(p.sigma1), float(p.sigma2)) for p in mixture.priors] == [
        (0.5, 1.0, pytest.approx(0.01))] * model.num_layers
    assert mixture.layer_sizes == model.layer_sizes and mixture.activation == model.activation
    assert mixture.likelihood is model.likelihood
    assert "model" not in comparison.results["bbb"].extras  # bbb fits the model as given
    draws = comparison.results["bbb_mixture"].draws
    assert {k: tuple(v.shape[1:]) for k, v in draws.items()} == model.site_shapes()


def test_loo_of_exact_posterior_draws_matches_exact_loo():
    """Known answer: conjugate Bayesian linear regression y = w x + b + ε, ε ~ N(0, σ²),
    w, b ~ N(0, τ²). Leaving point n out, p(y_n | D₋ₙ) = N(φₙᵀ m₋ₙ, σ² + φₙᵀ S₋ₙ φₙ) exactly;
    PSIS-LOO of 4000 exact posterior draws (2 chains) must agree within 0.05 nats in total,
    and ranks it above draws from a posterior shifted by 3 sd."""
    sigma, tau, n = 0.5, 1.0, 25
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, generator=g, dtype=torch.float64)
    y = 0.8 * x[:, 0] - 0.3 + sigma * torch.randn(n, generator=g, dtype=torch.float64)
    phi = torch.cat([x, torch.ones(n, 1, dtype=torch.float64)], 1)

    def posterior(rows):
        cov = torch.linalg.inv(torch.eye(2, dtype=torch.float64) / tau**2
                               + phi[rows].T @ phi[rows] / sigma**2)
        return cov @ phi[rows].T @ y[rows] / sigma**2, cov

    exact = 0.0
    for i in range(n):
        mean, cov = posterior([j for j in range(n) if j != i])
        var = sigma**2 + phi[i] @ cov @ phi[i]
        exact += float(torch.distributions.Normal(phi[i] @ mean, var.sqrt()).log_prob(y[i]))
    mean, cov = posterior(list(range(n)))
    w = torch.distributions.MultivariateNormal(mean, cov).sample((4000,))
    model = BayesianMLP([1, 1], Gaussian(noise=sigma), prior=gaussian_prior(tau))
    draws = {"layer0.weight": w[:, :1, None].float(), "layer0.bias": w[:, 1:].float()}
    shifted = {k: v + 3 * float(cov.diag().sqrt().max()) for k, v in draws.items()}
    with strict():
        elpd = psis_loo(model, draws, x.float(), y.float(), chains=2)
        worse = psis_loo(model, shifted, x.float(), y.float())
    assert elpd.n_samples == 4000 and (elpd.pareto_k.values < 0.7).all()
    assert float(elpd.elpd_loo) == pytest.approx(exact, abs=0.05)
    assert 1.0 < float(elpd.p_loo) < 3.0  # two parameters, weakly regularised
    from pyro_bbb.compare import loo_compare

    with strict():
        table = loo_compare({"exact": elpd, "shifted": worse})
    assert list(table.index) == ["exact", "shifted"] and table.loc["shifted", "elpd_diff"] > 2


def test_loo_ranks_a_trained_fit_above_an_untrained_one():
    train = toy_regression(30, seed=1)
    model = BayesianMLP([1, 8, 1], Gaussian(noise=0.05), prior=gaussian_prior(1.0))
    options = {"delta": {"steps": 300, "lr": 0.05}, "deterministic": {"epochs": 1, "lr": 1e-4}}
    with strict():
        comparison = run_comparison(model, train.x, train.y, train.x, train.y,
                                    ["deterministic", "delta"], options=options, num_samples=5)
    loo = comparison.loo
    assert list(loo.index) == ["delta", "deterministic"]
    assert loo.loc["deterministic", "elpd_diff"] > 100  # an untrained net is far off
    assert loo.loc["delta", "weight"] > 0.5  # stacking weights: not 1, pointwise mixtures
    without = run_comparison(model, train.x, train.y, train.x, train.y, ["deterministic"],
                             options=options, num_samples=5, loo=False)
    assert without.loo is None and "elpd_loo" not in without.table.columns


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
    assert set(spec.methods) == {"bbb", "bbb_mixture", "nuts", "normal", "delta", "dropout",
                                 "ensemble"}
    assert spec.options["bbb_mixture"]["epochs"] == spec.options["bbb"]["epochs"]
    assert spec.config.network.hidden_sizes == (50,)
    small = tmp_path / "tiny.toml"
    small.write_text(
        'name = "tiny"\n[data]\nkind = "toy_regression"\nnum_points = 20\nnum_test = 30\n'
        '[network]\nhidden_sizes = [4]\n[likelihood]\nkind = "gaussian"\nnoise = 0.05\n'
        '[compare]\nmethods = ["deterministic", "delta", "nuts"]\nnum_samples = 8\n'
        '[compare.deterministic]\nepochs = 20\n[compare.delta]\nsteps = 20\n'
        '[compare.nuts]\nnum_samples = 8\nwarmup = 8\nnum_chains = 2\nmax_tree_depth = 3\n')
    out = tmp_path / "out"
    assert main(["compare", str(small), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "deterministic" in printed and "rmse" in printed
    assert "elpd_loo" in printed and "elpd_diff" in printed
    assert {p.name for p in out.iterdir()} == {"comparison.csv", "comparison.json", "bands.png",
                                               "loo_compare.csv", "loo_compare.json",
                                               "loo_compare.png", "fs_rhat.png", "meta.json"}
    for name in ("bands.png", "loo_compare.png", "fs_rhat.png"):  # fs_rhat: nuts has 2 chains
        assert (out / name).read_bytes().startswith(b"\x89PNG"), name
        assert (out / name).stat().st_size > 5_000, name
    loo = pandas.read_csv(out / "loo_compare.csv", index_col="method")
    assert set(loo.index) == {"deterministic", "delta", "nuts"} and "elpd_diff" in loo.columns
    bad = tmp_path / "bad.toml"
    bad.write_text(small.read_text().replace('["deterministic", "delta", "nuts"]', '["laplace"]'))
    assert main(["compare", str(bad), "--out", str(tmp_path / "o2")]) == 2
    assert "laplace" in capsys.readouterr().err
