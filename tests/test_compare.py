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
    format_seed_summary,
    load_compare_spec,
    psis_loo,
    run_comparison,
    summarize_seeds,
    write_table,
)
from pyro_bbb.data import toy_regression, toy_regression_heldout, toy_regression_truth

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


def test_bands_figure_labels_every_panel_and_explains_its_marks(toy_comparison, tmp_path):
    comparison, train, _ = toy_comparison
    grid = torch.linspace(-0.2, 1.2, 50)[:, None]
    truth = toy_regression_truth
    fig = bands_figure(comparison, train.x, train.y, grid, truth=truth, ncols=2)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(shown) == len(TINY)
    assert [ax.get_title() for ax in shown] == [
        f"{name} ({comparison.results[name].num_samples} draws)" for name in TINY]
    fig.canvas.draw()
    for i, ax in enumerate(shown):  # a panel with nothing below it carries the x-axis
        bottom = i + 2 >= len(shown)
        assert (ax.get_xlabel() == "x") == bottom
        assert any(t.get_visible() and t.get_text() for t in ax.get_xticklabels()) == bottom
    (legend,) = fig.legends
    assert {t.get_text() for t in legend.get_texts()} == {
        "training data", "predictive mean", "central 95% interval", "training range",
        "true curve"}
    low, high = shown[0].get_ylim()  # the true curve is never cut off
    curve = truth(grid[:, 0])
    assert low < float(curve.min()) and float(curve.max()) < high
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


def test_compare_ctrl_c_writes_the_methods_that_finished(tmp_path, capsys, monkeypatch,
                                                         interrupt_at_call):
    import pyro_bbb.compare as compare_module

    # Ctrl-C in the second method
    monkeypatch.setattr(compare_module, "run_method",
                        interrupt_at_call(compare_module.run_method, 2))
    small = tmp_path / "tiny.toml"
    small.write_text(
        'name = "tiny"\n[data]\nkind = "toy_regression"\nnum_points = 20\nnum_test = 30\n'
        '[network]\nhidden_sizes = [4]\n[likelihood]\nkind = "gaussian"\nnoise = 0.05\n'
        '[compare]\nmethods = ["deterministic", "delta"]\nnum_samples = 8\n'
        '[compare.deterministic]\nepochs = 20\n[compare.delta]\nsteps = 20\n')
    out = tmp_path / "out"
    assert main(["compare", str(small), "--out", str(out), "--no-progress"]) == 130
    assert "interrupted: wrote the rows of deterministic" in capsys.readouterr().err
    table = pandas.read_csv(out / "comparison.csv", index_col="method")
    assert list(table.index) == ["deterministic"] and "rmse" in table.columns


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


def test_summarize_seeds_known_answers():
    table = pandas.DataFrame({
        "method": ["a", "b", "a", "b", "a"], "seed": [0, 0, 1, 1, 2],
        "rmse": [1.0, 2.0, 3.0, 2.0, 5.0], "elpd_loo": [1.0, 2.0, 3.0, math.nan, 5.0],
        "elpd_loo_se": [10.0, 1.0, 20.0, 1.0, 30.0], "note": ["x"] * 5}).set_index("method")
    summary = summarize_seeds(table)
    assert list(summary.index) == ["a", "b"] and list(summary["seeds"]) == [3, 2]
    assert summary.loc["a", "rmse"] == pytest.approx(3.0)
    assert summary.loc["a", "rmse_seed_se"] == pytest.approx(2.0 / math.sqrt(3))  # std 2
    assert summary.loc["b", "rmse_seed_se"] == 0.0
    # one finite elpd_loo for b: its mean, no spread; ArviZ's elpd_loo_se is averaged, not
    # overwritten by the spread over seeds
    assert summary.loc["b", "elpd_loo"] == 2.0 and summary.loc["b", "elpd_loo_seed_se"] == 0.0
    assert summary.loc["a", "elpd_loo_se"] == pytest.approx(20.0)
    assert "note" not in summary.columns and "seed" not in summary.columns
    text = format_seed_summary(summary)
    assert text.splitlines()[1].split()[:5] == ["a", "3", "3", "±", "1.2"]
    with pytest.raises(ValueError, match="'seed' column"):
        summarize_seeds(table.drop(columns="seed"))


def test_cli_seeds_repeat_the_comparison_and_summarize_it(tmp_path, capsys):
    path = _spec(tmp_path, "[compare]\nmethods = ['deterministic', 'delta']\nnum_samples = 6\n"
                 "[compare.deterministic]\nepochs = 15\n[compare.delta]\nsteps = 15\n")
    out, alone = tmp_path / "out", tmp_path / "alone"
    assert main(["compare", str(path), "--seeds", "4", "9", "--out", str(out),
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "mean ± standard error over 2 seeds" in printed
    table = pandas.read_csv(out / "comparison.csv", index_col="method")
    assert list(zip(table.index, table["seed"], strict=True)) == [
        ("deterministic", 4), ("delta", 4), ("deterministic", 9), ("delta", 9)]
    assert table.loc["delta", "rmse"].nunique() == 2  # the seeds train differently
    # each seed's rows are that seed's comparison run alone
    assert main(["compare", str(path), "--seeds", "9", "--out", str(alone), "--no-progress"]) == 0
    single = pandas.read_csv(alone / "comparison.csv", index_col="method")
    assert "seed" not in single.columns and not (alone / "comparison_summary.csv").exists()
    nine = table[table["seed"] == 9]
    for col in ("rmse", "test_log_likelihood", "interval_coverage", "elpd_loo"):
        assert nine[col].tolist() == pytest.approx(single[col].tolist(), rel=1e-5), col
    summary = pandas.read_csv(out / "comparison_summary.csv", index_col="method")
    rmse = table.loc["delta", "rmse"]
    assert summary.loc["delta", "rmse"] == pytest.approx(rmse.mean(), rel=1e-5)
    assert summary.loc["delta", "rmse_seed_se"] == pytest.approx(
        abs(rmse.iloc[0] - rmse.iloc[1]) / 2, rel=1e-4)  # s/√2 for two values
    assert json.loads((out / "meta.json").read_text())["seeds"] == [4, 9]


def test_cli_refuses_a_repeated_seed_before_training(tmp_path, capsys):
    path = _spec(tmp_path, "[compare.delta]\nsteps = 1\n")
    out = tmp_path / "out"
    assert main(["compare", str(path), "--methods", "delta", "--seeds", "1", "2", "1",
                 "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "error: --seeds repeats 1" in captured.err and "trained" not in captured.out
    assert not out.exists()


def test_compare_seeds_ctrl_c_keeps_the_finished_seeds(tmp_path, capsys, monkeypatch,
                                                       interrupt_at_call):
    import pyro_bbb.compare as compare_module

    # Ctrl-C in the second seed's first method
    monkeypatch.setattr(compare_module, "run_method",
                        interrupt_at_call(compare_module.run_method, 3))
    path = _spec(tmp_path, "[compare]\nmethods = ['deterministic', 'delta']\nnum_samples = 4\n"
                 "[compare.deterministic]\nepochs = 5\n[compare.delta]\nsteps = 5\n")
    out = tmp_path / "out"
    assert main(["compare", str(path), "--seeds", "0", "1", "--out", str(out),
                 "--no-progress"]) == 130
    assert ("wrote the rows of deterministic (seed 0), delta (seed 0)"
            in capsys.readouterr().err)
    table = pandas.read_csv(out / "comparison.csv", index_col="method")
    assert list(table.index) == ["deterministic", "delta"] and set(table["seed"]) == {0}


# --------------------------------------------------------------------------- bad input

TINY_SPEC = ('name = "tiny"\n[data]\nkind = "toy_regression"\nnum_points = 12\nnum_test = 16\n'
             '[network]\nhidden_sizes = [3]\n[likelihood]\nkind = "gaussian"\nnoise = 0.05\n')


def _spec(tmp_path, compare, top=""):
    path = tmp_path / "spec.toml"
    path.write_text(top + TINY_SPEC + compare)
    return path


def test_method_options_follow_the_runners():
    from pyro_bbb.compare import method_options
    from pyro_bbb.infer.methods import METHODS

    for name in METHODS:  # every runner takes a seed, which run_comparison always passes
        assert "seed" in method_options(name), name
        assert set(TINY.get(name, {})) <= set(method_options(name)), name
    assert {"steps", "lr", "num_samples"} <= set(method_options("delta"))
    assert "kind" not in method_options("delta")  # fixed by the method name
    assert {"pi", "sigma1", "sigma2", "epochs", "init_rho"} <= set(method_options("bbb_mixture"))
    assert method_options("map") == method_options("delta")
    assert "num_samples" not in method_options("ensemble")  # one draw per member


@pytest.mark.parametrize("compare, top, message", [
    ("[compare.delta]\nstep = 5\n", "",
     "unknown key 'step' in [compare.delta]; did you mean 'steps'? (valid: steps, lr"),
    ("[compare.bbb]\nepoch = 5\n", "", "unknown key 'epoch' in [compare.bbb]; did you mean "
     "'epochs'?"),
    ("[compare.bbb_mixture]\nsigma_1 = 1.0\n", "", "did you mean 'sigma1'?"),
    ("[compare.ensemble]\nnum_samples = 5\n", "", "unknown key 'num_samples' in "
     "[compare.ensemble]"),
    ("[compare.delta]\nkind = 'normal'\n", "", "unknown key 'kind' in [compare.delta]"),
    ("[compare]\ndelta = 3\n", "", "[compare.delta] must be a table of options, got 3"),
    ("[compare]\nmethod = ['delta']\n", "", "unknown key 'method' in [compare]; did you mean "
     "'methods'?"),
    ("", "compare = 3\n", "[compare] must be a table, got compare = 3"),
    ("[compare]\nmethods = 'bbb'\n", "", "compare.methods must be a list of method names"),
    ("[compare]\nmethods = ['bbb', 1]\n", "", "compare.methods must be a list of method names"),
    ("[compare]\nmethods = []\n", "", "compare.methods is empty"),
    ("[compare]\nmethods = ['bbb', 'delta', 'bbb']\n", "", "compare.methods lists 'bbb' twice"),
    ("[compare]\nmethods = ['laplace']\n", "", "unknown method(s) ['laplace']"),
    ("[compare]\nnum_samples = 0\n", "", "compare.num_samples must be a positive integer"),
    ("[compare]\nnum_samples = '5'\n", "", "compare.num_samples must be a positive integer"),
])
def test_bad_compare_table_is_refused_when_loaded(tmp_path, compare, top, message):
    path = _spec(tmp_path, compare, top)
    with pytest.raises(ValueError) as err:
        load_compare_spec(path)
    assert message in str(err.value) and str(err.value).startswith(f"{path}: ")


def test_cli_refuses_an_option_typo_before_training(tmp_path, capsys):
    """A typo in the second method's options: nothing trains, no folder, `error:`, exit 2."""
    path = _spec(tmp_path, "[compare]\nmethods = ['deterministic', 'delta']\n"
                 "[compare.deterministic]\nepochs = 1\n[compare.delta]\nstep = 5\n")
    out = tmp_path / "out"
    assert main(["compare", str(path), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "error: " in captured.err and "did you mean 'steps'?" in captured.err
    assert "Traceback" not in captured.err and "trained" not in captured.out
    assert not out.exists()


def test_cli_refuses_a_repeated_method(tmp_path, capsys):
    path = _spec(tmp_path, "[compare.delta]\nsteps = 1\n")
    out = tmp_path / "out"
    assert main(["compare", str(path), "--methods", "delta", "delta", "--out", str(out)]) == 2
    assert "error: methods lists 'delta' twice" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("override", ["training.epochs=1", "guide.init_rho=-3",
                                      "evaluation.num_samples=5"])
def test_cli_refuses_overrides_that_compare_would_ignore(tmp_path, capsys, override):
    path = _spec(tmp_path, "[compare.delta]\nsteps = 1\n")
    out = tmp_path / "out"
    assert main(["compare", str(path), "--methods", "delta", "deterministic", "--set", override,
                 "--out", str(out)]) == 2
    assert f"error: pyro-bbb compare does not use {override}" in capsys.readouterr().err
    assert not out.exists()


def test_set_overrides_the_compare_table(tmp_path, capsys):
    path = _spec(tmp_path, "[compare]\nmethods = ['bbb']\n[compare.delta]\nsteps = 50\n")
    out = tmp_path / "out"
    code = main(["compare", str(path), "--set", 'compare.methods=["delta", "deterministic"]',
                 "--set", "compare.delta.steps=2", "--set", "compare.deterministic.epochs=1",
                 "--set", "compare.num_samples=7", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    table = pandas.read_csv(out / "comparison.csv", index_col="method")
    assert list(table.index) == ["delta", "deterministic"]
    assert set(table["num_samples"]) == {7}


@pytest.mark.parametrize("override,message", [
    ("compare.delta.step=2", "unknown key 'step' in [compare.delta]; did you mean 'steps'?"),
    ("compare.laplace.scale=1", "unknown key 'laplace.scale' in [compare]"),
    ("compare.method=['delta']", "unknown key 'method' in [compare]; did you mean 'methods'?"),
    ("compare.methods=['delta', 'delta']", "compare.methods lists 'delta' twice"),
    ("compare.num_samples=0", "compare.num_samples must be a positive integer, got 0"),
])
def test_bad_compare_overrides_are_refused_before_training(tmp_path, capsys, override, message):
    path = _spec(tmp_path, "[compare.delta]\nsteps = 1\n")
    out = tmp_path / "out"
    assert main(["compare", str(path), "--methods", "delta", "--set", override,
                 "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_evaluate_takes_a_comparison_spec_for_its_experiment(tmp_path, capsys):
    plain = tmp_path / "plain.toml"
    plain.write_text(TINY_SPEC + "[training]\nepochs = 2\nbatch_size = 12\ndevice = 'cpu'\n")
    assert main(["run", str(plain), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    capsys.readouterr()
    comparison = _spec(tmp_path, "[compare]\nmethods = ['delta']\n")
    args = ["evaluate", str(tmp_path / "run" / "checkpoint.pt"), "--output"]
    assert main([*args, str(tmp_path / "a.json"), "--spec", str(comparison)]) == 0
    assert main([*args, str(tmp_path / "b.json"), "--spec", str(plain)]) == 0
    a, b = (json.loads((tmp_path / f"{k}.json").read_text()) for k in "ab")
    assert a["metrics"] == b["metrics"] and math.isfinite(a["metrics"]["rmse"])


def test_prior_reads_a_comparison_spec_without_its_warning(tmp_path, capsys):
    path = _spec(tmp_path, "[compare.delta]\nsteps = 1\n")
    path.write_text(path.read_text() + "\n[training]\nepochs = 3\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["prior", str(path), "--num-draws", "3", "--out", str(tmp_path / "p")]) == 0
    assert (tmp_path / "p" / "prior_predictive.png").is_file()


def test_cli_single_method_writes_the_table(tmp_path, capsys):
    """One method: no az.compare table or figure (they need two), everything else written."""
    path = _spec(tmp_path, "[compare.delta]\nsteps = 2\n")
    out = tmp_path / "out"
    code = main(["compare", str(path), "--methods", "delta", "--num-samples", "5",
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert {p.name for p in out.iterdir()} == {"comparison.csv", "comparison.json", "bands.png",
                                               "meta.json"}
    table = pandas.read_csv(out / "comparison.csv", index_col="method")
    assert list(table.index) == ["delta"] and table.loc["delta", "num_samples"] == 5
    assert math.isfinite(table.loc["delta", "elpd_loo"])  # per-method PSIS-LOO is kept


def _fail_if_run(*args, **kwargs):
    raise AssertionError("a method was trained")


@pytest.mark.parametrize("methods, options, message", [
    (["delta", "delta"], {}, "methods lists 'delta' twice"),
    (["map", "delta"], {}, "methods lists 'delta' twice (as 'map' and 'delta')"),
    (["deterministic", "delta"], {"delta": {"step": 1}}, "did you mean 'steps'?"),
    (["map"], {"delta": {"step": 1}}, "unknown key 'step' in [compare.map]"),
    ("delta", {}, "methods must be a list of method names"),
    ([], {}, "methods is empty"),
    (["laplace"], {}, "unknown method(s) ['laplace']"),
])
def test_run_comparison_checks_before_training(monkeypatch, methods, options, message):
    monkeypatch.setattr("pyro_bbb.compare.run_method", _fail_if_run)
    model = BayesianMLP([1, 3, 1], Gaussian(noise=0.05), prior=gaussian_prior(1.0))
    x = torch.linspace(0, 1, 8)[:, None]
    with pytest.raises(ValueError) as err:
        run_comparison(model, x, x[:, 0], x, x[:, 0], methods, options=options)
    assert message in str(err.value)


def test_single_method_and_alias_options(monkeypatch):
    """One method has no az.compare table; an alias (map) runs with its method's options."""
    from pyro_bbb.infer import methods

    calls = []

    def spy(name, *args, **kwargs):
        calls.append((name, kwargs))
        return methods.run_method(name, *args, **kwargs)

    monkeypatch.setattr("pyro_bbb.compare.run_method", spy)
    model = BayesianMLP([1, 3, 1], Gaussian(noise=0.05), prior=gaussian_prior(1.0))
    x = torch.linspace(0, 1, 8)[:, None]
    with strict():
        comparison = run_comparison(model, x, x[:, 0], x, x[:, 0], ["map"],
                                    options={"delta": {"steps": 2}}, num_samples=3)
    assert calls == [("map", {"seed": 0, "progress": False, "steps": 2, "num_samples": 3})]
    assert comparison.loo is None and list(comparison.elpd) == ["map"]
    assert list(comparison.table.index) == ["map"] and "elpd_loo" in comparison.table.columns


def test_spec_sections_compare_does_not_use(tmp_path):
    """[training] and [guide] warn (each method has its own options); evaluation.num_samples is
    the default of compare.num_samples."""
    path = _spec(tmp_path, "[training]\nepochs = 7\n[guide]\ninit_rho = -4.0\n"
                 "[evaluation]\nnum_samples = 7\n")
    with pytest.warns(UserWarning, match=r"does not use \[training\] and \[guide\]"):
        spec = load_compare_spec(path)
    assert spec.num_samples == 7
    path = _spec(tmp_path, "[evaluation]\nnum_samples = 7\n[compare]\nnum_samples = 9\n")
    with strict():  # nothing ignored: no warning
        assert load_compare_spec(path).num_samples == 9
