"""HeteroscedasticGaussian: y ~ N(f₀, (softplus(f₁) + min_scale)²), in the model, the engine, the
config, predictions and the UCI benchmark."""

import json
import math

import pyro
import pytest
import torch
import torch.nn.functional as F
from test_uci import NOISE, write_folder

from pyro_bbb import (
    BayesianMLP,
    HeteroscedasticGaussian,
    MeanFieldGuide,
    fit,
    gaussian_prior,
    posterior_predictive,
)
from pyro_bbb.cli import main
from pyro_bbb.config import LikelihoodConfig
from pyro_bbb.likelihoods import likelihood_from_spec
from pyro_bbb.uci import run_uci


def test_log_prob_and_summary_are_the_normal_of_the_two_outputs():
    likelihood = HeteroscedasticGaussian(min_scale=0.01)
    f = torch.randn(3, 5, 2)  # (S, N, 2)
    y = torch.randn(5)
    scale = F.softplus(f[..., 1]) + 0.01
    expected = torch.distributions.Normal(f[..., 0], scale).log_prob(y)
    torch.testing.assert_close(likelihood.log_prob(f, y, {}), expected)
    summary = likelihood.summarize(f, {})
    torch.testing.assert_close(summary.mean, f[..., 0].mean(0))
    torch.testing.assert_close(summary.aleatoric_std, scale.pow(2).mean(0).sqrt())
    torch.testing.assert_close(summary.epistemic_std, f[..., 0].std(0, unbiased=False))
    assert likelihood.latent_priors() == {} and likelihood.output_size == 2


def test_spec_and_config_round_trip_and_errors():
    likelihood = HeteroscedasticGaussian(0.05)
    rebuilt = likelihood_from_spec(likelihood.spec())
    assert isinstance(rebuilt, HeteroscedasticGaussian) and rebuilt.min_scale == 0.05
    built = LikelihoodConfig(kind="heteroscedastic_gaussian").build()
    assert isinstance(built, HeteroscedasticGaussian)
    assert LikelihoodConfig(kind="heteroscedastic_gaussian").task == "regression"
    with pytest.raises(ValueError, match="likelihood.noise"):
        LikelihoodConfig(kind="heteroscedastic_gaussian", noise=0.1)
    with pytest.raises(ValueError, match="min_scale"):
        HeteroscedasticGaussian(-1.0)
    with pytest.raises(ValueError, match="needs 2"):
        BayesianMLP([3, 4, 1], HeteroscedasticGaussian())


def test_bbb_learns_noise_that_grows_with_x():
    """Noise std 0.05 for x < 0 and 0.5 for x > 0: the fitted aleatoric std follows it."""
    torch.manual_seed(0)
    x = torch.rand(600, 1) * 4 - 2
    y = torch.sin(x[:, 0]) + torch.where(x[:, 0] < 0, 0.05, 0.5) * torch.randn(600)
    model = BayesianMLP([1, 32, 2], HeteroscedasticGaussian(), prior=gaussian_prior(1.0))
    pyro.set_rng_seed(0)
    guide = MeanFieldGuide(model, init_rho=-5.0)
    fit(model, guide, x, y, epochs=150, batch_size=100, lr=1e-2, progress=False, seed=0)
    grid = torch.tensor([[-1.5], [-0.75], [0.75], [1.5]])
    draws = guide.sample_posterior(100, generator=torch.Generator().manual_seed(0))
    aleatoric = posterior_predictive(model, draws, grid).aleatoric_std
    assert aleatoric[:2].max() < 0.1 and 0.35 < aleatoric[2:].min() and aleatoric[2:].max() < 0.7


def test_uci_heteroscedastic_run_in_original_units(tmp_path):
    small = run_uci(write_folder(tmp_path / "unit"), splits=[0], epochs=60, num_samples=50,
                    noise="heteroscedastic")
    big = run_uci(write_folder(tmp_path / "kilo", scale=1000.0), splits=[0], epochs=60,
                  num_samples=50, noise="heteroscedastic")
    assert (small["rmse"] < 2.5 * NOISE).all() and (small["test_ll"] > -0.5).all(), small
    assert big["test_ll"].iloc[0] == pytest.approx(small["test_ll"].iloc[0] - math.log(1000),
                                                   abs=1e-3)
    with pytest.raises(ValueError, match="noise must be one of"):
        run_uci(tmp_path / "unit", noise="poisson")


def test_cli_noise_option_is_recorded(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["uci", "--data-dir", str(write_folder(tmp_path / "data")), "--splits", "0",
                 "--epochs", "3", "--num-samples", "5", "--noise", "heteroscedastic",
                 "--out", str(out)]) == 0
    assert "heteroscedastic noise" in capsys.readouterr().out
    assert json.loads((out / "uci.json").read_text())["noise"] == "heteroscedastic"


def test_checkpoint_round_trip_predicts_the_same(tmp_path):
    from pyro_bbb.checkpoint import load_checkpoint, save_checkpoint

    model = BayesianMLP([2, 6, 2], HeteroscedasticGaussian(0.02))
    guide = MeanFieldGuide(model, init_rho=-3.0)
    path = save_checkpoint(tmp_path / "hetero.pt", model, guide)
    loaded = load_checkpoint(path)
    assert isinstance(loaded.model.likelihood, HeteroscedasticGaussian)
    assert loaded.model.likelihood.min_scale == 0.02
    x = torch.randn(7, 2)
    draws = guide.sample_posterior(20, generator=torch.Generator().manual_seed(1))
    again = loaded.guide.sample_posterior(20, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(posterior_predictive(loaded.model, again, x).std,
                               posterior_predictive(model, draws, x).std)
