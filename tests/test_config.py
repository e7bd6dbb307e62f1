"""Experiment specs: shipped specs load, round trips, unknown keys, types, values, overrides."""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

import pytest

from pyro_bbb.config import (
    DATA_ENV,
    ExperimentConfig,
    FashionMNISTData,
    ToyRegressionData,
    UCIData,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    config_to_toml,
    load_config,
    packaged_spec,
    smoke_config,
)
from pyro_bbb.distributions import ScaleMixtureNormal

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MODELS = Path(__file__).resolve().parents[1] / "models"


def toy(**sections) -> dict:
    """A minimal valid spec dict with the given sections replaced."""
    spec = {"name": "t", "data": {"kind": "toy_regression"}}
    spec.update(sections)
    return spec


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)


# --------------------------------------------------------------------------- shipped specs


@pytest.mark.parametrize("name", ["toy_regression", "fashion_mnist", "fashion_mnist_1200",
                                  "fashion_mnist_e-8"])
def test_shipped_specs_load_and_round_trip(name):
    config = load_config(MODELS / f"{name}.toml")
    assert config.name == name
    assert config_from_dict(tomllib.loads(config_to_toml(config))) == config
    assert config_from_dict(config_to_dict(config)) == config


def test_round_trip_with_noise_prior_and_optional_keys(tmp_path):
    config = config_from_dict({
        "name": "n", "seed": 2,
        "data": {"kind": "fashion_mnist", "root": "/data/fm", "limit_train": 10},
        "likelihood": {"kind": "categorical"},
        "evaluation": {"chunk_size": 64},
    })
    regression = config_from_dict(toy(likelihood={
        "kind": "gaussian", "noise_prior": {"kind": "lognormal", "loc": -2.0, "scale": 0.5}}))
    for original in (config, regression):
        path = tmp_path / f"{original.name}.toml"
        path.write_text(config_to_toml(original))
        assert load_config(path) == original
    assert regression.likelihood.build().noise_prior.loc == -2.0


def test_packaged_toy_spec_is_identical_to_models_copy():
    assert packaged_spec().read_bytes() == (MODELS / "toy_regression.toml").read_bytes()


def test_toy_spec_builds_the_papers_setup():
    config = load_config(MODELS / "toy_regression.toml")
    assert isinstance(config.data, ToyRegressionData)
    assert config.data.x_range == (0.0, 0.5) and config.data.noise_std == 0.02
    assert config.evaluation.outside_x == 1.0
    prior = config.prior.build()
    assert isinstance(prior, ScaleMixtureNormal)
    assert float(prior.sigma2) == pytest.approx(math.exp(-6))


def test_fashion_spec_is_784_400_400_10_scale_mixture():
    config = load_config(MODELS / "fashion_mnist.toml")
    assert isinstance(config.data, FashionMNISTData)
    assert config.network.layer_sizes(784, 10) == [784, 400, 400, 10]
    assert config.prior.to_dict() == {"kind": "scale_mixture", "pi": 0.5, "sigma1": 1.0,
                                      "sigma2": pytest.approx(math.exp(-6))}
    t = config.training
    assert (t.batch_size, t.lr, t.epochs, config.guide.init_rho) == (128, 1e-3, 10, -8.0)


def test_defaults_fill_optional_sections():
    config = config_from_dict(toy())
    assert config.likelihood.kind == "gaussian" and config.likelihood.noise is None
    assert config.network.hidden_sizes == (100, 100)
    fashion = config_from_dict({"name": "f", "data": {"kind": "fashion_mnist"}})
    assert fashion.likelihood.kind == "categorical"
    assert config_from_dict(toy(prior={"kind": "gaussian"})).prior.to_dict() == {
        "kind": "gaussian", "sigma": 1.0}


def test_name_defaults_to_file_stem(tmp_path):
    path = tmp_path / "my-exp.toml"
    path.write_text('[data]\nkind = "toy_regression"\n')
    assert load_config(path).name == "my-exp"


def test_configs_are_frozen():
    config = config_from_dict(toy())
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.training.epochs = 3  # type: ignore[misc]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "spec, expected",
    [
        (toy(trainig={}), ["'trainig'", "top level", "did you mean 'training'"]),
        (toy(training={"epoch": 3}), ["'epoch'", "[training]", "did you mean 'epochs'"]),
        ({"name": "t", "data": {"kind": "toy_regression", "num_point": 3}},
         ["'num_point'", "[data] (kind 'toy_regression')", "did you mean 'num_points'"]),
        ({"name": "t", "data": {"kind": "fashion_mnist", "limit_trian": 3}},
         ["'limit_trian'", "did you mean 'limit_train'"]),
        (toy(prior={"kind": "scale_mixture", "sigma_1": 2.0}),
         ["'sigma_1'", "[prior]", "did you mean 'sigma1'"]),
        (toy(evaluation={"num_sample": 3}), ["did you mean 'num_samples'"]),
        (toy(likelihood={"kind": "gaussian", "noise_prior": {"kind": "lognormal", "lco": 0.0}}),
         ["'lco'", "[likelihood.noise_prior]", "did you mean 'loc'"]),
    ],
)
def test_unknown_keys_name_key_section_and_suggestion(spec, expected):
    with pytest.raises(ValueError) as info:
        config_from_dict(spec)
    for text in expected:
        assert text in str(info.value)


@pytest.mark.parametrize(
    "spec, expected",
    [
        (toy(training={"epochs": "10"}), "training.epochs must be an integer, got str '10'"),
        (toy(training={"epochs": True}), "training.epochs must be an integer"),
        (toy(training={"lr": "fast"}), "training.lr must be a number"),
        (toy(network={"hidden_sizes": [1.5]}), "network.hidden_sizes[0] must be an integer"),
        (toy(network={"hidden_sizes": 8}), "network.hidden_sizes must be a list of integers"),
        ({"name": "t", "data": {"kind": "toy_regression", "x_range": [0.0]}},
         "data.x_range must be a list of 2 numbers"),
        (toy(prior={"kind": "gaussian", "sigma": "1"}), "prior.sigma must be a number"),
        (toy(training=[1, 2]), "[training] must be a table"),
        ({"name": 3, "data": {"kind": "toy_regression"}}, "name must be a string"),
    ],
)
def test_wrong_types_name_key_and_expected_type(spec, expected):
    with pytest.raises(ValueError) as info:
        config_from_dict(spec)
    assert expected in str(info.value)


@pytest.mark.parametrize(
    "spec, expected",
    [
        (toy(training={"epochs": 0}), "training.epochs must be a positive integer, got 0"),
        (toy(training={"lr": -0.1}), "training.lr must be a positive number"),
        (toy(training={"batch_size": -1}), "training.batch_size must be a positive integer"),
        (toy(training={"kl_weighting": "blundel"}), "did you mean 'blundell'"),
        (toy(training={"lr_schedule": "cosin"}),
         "training.lr_schedule must be one of ['constant', 'cosine'], got 'cosin' (did you mean"),
        (toy(training={"on_divergence": "retry"}), "training.on_divergence must be one of"),
        (toy(training={"cuda_graph": "yes"}), 'training.cuda_graph must be true, false or "auto"'),
        (toy(training={"cuda_graph": 1}), "training.cuda_graph must be a boolean (true/false) or"),
        (toy(training={"device": "gpu0"}),
         "training.device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'gpu0'"),
        (toy(training={"device": "mps"}), "training.device must be 'auto', 'cpu', 'cuda'"),
        ({**toy(), "seed": -1}, "seed must be an integer in [0, 2**32), got -1"),
        ({**toy(), "seed": 2**32}, "seed must be an integer in [0, 2**32), got 4294967296"),
        (toy(prior={"kind": "scale_mixture", "pi": 1.5}), "pi must be in (0.0, 1.0)"),
        (toy(prior={"kind": "scale_mixture", "pi": 0.0}), "pi must be in (0.0, 1.0)"),
        (toy(prior={"kind": "scale_mixture", "sigma1": 0.0}), "sigma1 must be > 0"),
        (toy(prior={"kind": "gaussian", "sigma": -1.0}), "sigma must be a positive"),
        (toy(prior={"kind": "lognormal"}), "needs the keys ['loc', 'scale']"),
        (toy(prior={"kind": "laplace"}), "prior.kind must be one of"),
        (toy(network={"activation": "rleu"}), "did you mean 'relu'"),
        (toy(network={"hidden_sizes": [8, 0]}), "network.hidden_sizes[1] must be a positive"),
        (toy(evaluation={"level": 1.5}), "evaluation.level must lie in (0, 1)"),
        (toy(guide={"init_rho": float("nan")}), "guide.init_rho must be a finite number"),
        (toy(likelihood={"kind": "gaussian", "noise": 0.0}), "likelihood.noise must be a positive"),
        (toy(likelihood={"kind": "categorical"}), "is for classification"),
        ({"name": "f", "data": {"kind": "fashion_mnist"},
          "likelihood": {"kind": "categorical", "num_classes": 5}}, "fashion_mnist has 10"),
        ({"name": "t", "data": {"kind": "toy_regression", "x_range": [1.0, 0.0]}},
         "data.x_range must be [low, high] with low < high"),
        ({"name": "t", "data": {"kind": "uci"}}, "missing key 'folder' in [data] (kind 'uci')"),
        ({"name": "t"}, "missing table [data]"),
        ({"name": "a b", "data": {"kind": "toy_regression"}}, "name must be letters"),
    ],
)
def test_bad_values_raise_clearly(spec, expected):
    with pytest.raises(ValueError) as info:
        config_from_dict(spec)
    assert expected in str(info.value)


def test_invalid_toml_names_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("name = \n")
    with pytest.raises(ValueError, match="bad.toml: invalid TOML"):
        load_config(path)


def test_errors_in_a_spec_file_name_the_file(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text('[data]\nkind = "toy_regression"\n[training]\nepohcs = 2\n')
    with pytest.raises(ValueError, match=r"typo.toml: unknown key 'epohcs'.*did you mean"):
        load_config(path)


def test_missing_spec_file():
    with pytest.raises(FileNotFoundError, match="spec file not found"):
        load_config("/nonexistent/spec.toml")


# --------------------------------------------------------------------------- overrides


def test_overrides_apply_and_validate():
    config = config_from_dict(toy())
    new = apply_overrides(config, ["training.epochs=2", "training.lr=3e-4",
                                   "network.hidden_sizes=[8, 4]", "training.device=cpu",
                                   "likelihood.noise=0.1", "seed=7", "prior.sigma=0.5",
                                   "prior.kind=gaussian"])
    assert (new.training.epochs, new.training.lr, new.training.device) == (2, 3e-4, "cpu")
    assert new.network.hidden_sizes == (8, 4)
    assert new.likelihood.noise == 0.1 and new.seed == 7
    assert new.prior.to_dict() == {"kind": "gaussian", "sigma": 0.5}
    assert config.training.epochs == 10  # the original is untouched


def test_override_none_restores_default():
    config = config_from_dict({"name": "f", "data": {"kind": "fashion_mnist", "limit_train": 5}})
    assert apply_overrides(config, ["data.limit_train=none"]).data.limit_train is None


@pytest.mark.parametrize(
    "override, expected",
    [
        ("training.epoch=2", "did you mean 'epochs'"),
        ("trainig.epochs=2", "did you mean 'training'"),
        ("training.epochs=0", "training.epochs must be a positive integer"),
        ("training.epochs", "must look like section.key=value"),
        ("name.x=1", "name is not a table"),
    ],
)
def test_bad_overrides(override, expected):
    with pytest.raises(ValueError) as info:
        apply_overrides(config_from_dict(toy()), [override])
    assert expected in str(info.value)


def test_smoke_config_is_tiny():
    fashion = smoke_config(load_config(MODELS / "fashion_mnist.toml"))
    assert fashion.training.epochs == 1 and fashion.evaluation.num_samples <= 10
    assert fashion.data.limit_train <= 512 and fashion.data.limit_test <= 512
    toy_smoke = smoke_config(load_config(MODELS / "toy_regression.toml"))
    assert toy_smoke.training.epochs == 1
    assert toy_smoke.network == load_config(MODELS / "toy_regression.toml").network


# --------------------------------------------------------------------------- data paths


def _spec_with_root(tmp_path: Path, root: str) -> Path:
    spec = tmp_path / "specs" / "f.toml"
    spec.parent.mkdir()
    spec.write_text(f'[data]\nkind = "fashion_mnist"\nroot = "{root}"\n')
    return spec


def test_relative_data_path_resolves_against_spec_directory(tmp_path):
    config = load_config(_spec_with_root(tmp_path, "fmnist"))
    assert Path(config.data.root) == tmp_path / "specs" / "fmnist"


def test_data_env_var_wins_over_spec_directory(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "datasets"))
    config = load_config(_spec_with_root(tmp_path, "fmnist"))
    assert Path(config.data.root) == tmp_path / "datasets" / "fmnist"


def test_absolute_data_path_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV, "/elsewhere")
    config = load_config(_spec_with_root(tmp_path, "/data/fmnist"))
    assert config.data.root == "/data/fmnist"


def test_uci_folder_resolves_and_survives_overrides(tmp_path):
    spec = tmp_path / "u.toml"
    spec.write_text('[data]\nkind = "uci"\nfolder = "boston"\nsplit = 2\n')
    config = load_config(spec)
    assert isinstance(config.data, UCIData) and config.data.split == 2
    assert Path(config.data.folder) == tmp_path / "boston"
    moved = apply_overrides(config, ["training.epochs=1"])
    assert moved.data.folder == config.data.folder
    assert isinstance(moved, ExperimentConfig)


@pytest.mark.parametrize("value", [True, False, "auto"])
def test_training_cuda_graph_takes_a_boolean_or_auto(value):
    read = config_from_dict(toy(training={"cuda_graph": value})).training.cuda_graph
    assert read == value and type(read) is type(value)
    assert config_from_dict(toy()).training.cuda_graph == "auto"
