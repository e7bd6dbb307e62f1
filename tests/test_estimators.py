"""BBBRegressor / BBBClassifier: sklearn contract, known answers, units, errors.

Fits are small and seeded. Known answers: with ``hidden_sizes=()`` the regressor is Bayesian
linear regression, whose posterior mean under a broad prior is the least-squares line; the
predictive std must come back as the true noise level in the units of y.
"""

import importlib.util
import math
import pickle
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse
import torch
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.exceptions import DataConversionWarning
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils.estimator_checks import check_estimator

from pyro_bbb import estimators
from pyro_bbb.estimators import BBBClassifier, BBBRegressor, NotFittedError

SLOPE, INTERCEPT, NOISE = 3.0, -1.0, 0.5
CENTERS = np.array([[0.0, 3.0], [3.0, -2.0], [-3.0, -2.0]])
ANIMALS = np.array(["cat", "dog", "emu"])
# 200 epochs x 4 minibatches at lr 5e-3: enough for the linear fit to settle (~1.5 s)
LINEAR = dict(hidden_sizes=(), epochs=200, batch_size=100, lr=5e-3)
QUICK = dict(hidden_sizes=(8,), epochs=3, batch_size=50, num_samples=10)


def linear_data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, (n, 1))
    return x, SLOPE * x[:, 0] + INTERCEPT + NOISE * rng.standard_normal(n)


def blobs(n, seed, centers=CENTERS):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(centers), n)
    return centers[labels] + 0.6 * rng.standard_normal((n, centers.shape[1])), labels


@pytest.fixture(scope="module")
def linear():
    x, y = linear_data(400, seed=0)
    return x, y, BBBRegressor(**LINEAR).fit(x, y)


@pytest.fixture(scope="module")
def animals():
    x, labels = blobs(300, seed=0)
    clf = BBBClassifier(hidden_sizes=(16,), epochs=15, batch_size=100, lr=2e-2)
    return clf.fit(x, ANIMALS[labels])


@pytest.fixture(scope="module")
def small_regressor():
    x, y = linear_data(60, seed=3)
    return BBBRegressor(**QUICK).fit(np.hstack([x, x**2]), y)


# --------------------------------------------------------------------------- sklearn contract

SHARED = {
    "hidden_sizes": (100,), "activation": "relu", "prior": "scale_mixture", "prior_pi": 0.5,
    "prior_sigma1": 1.0, "prior_sigma2": math.exp(-6), "prior_sigma": 1.0, "init_rho": -5.0,
    "epochs": 100, "batch_size": 128, "lr": 1e-3, "num_particles": 1, "num_samples": 100,
    "kl_weighting": "uniform", "seed": 0, "device": "auto", "progress": False,
}


def test_defaults_and_parameter_names():
    assert BBBClassifier().get_params() == SHARED
    assert BBBRegressor().get_params() == {**SHARED, "noise": None}
    assert is_regressor(BBBRegressor()) and is_classifier(BBBClassifier())


def test_constructor_stores_settings_without_checking_them():
    est = BBBRegressor(epochs=0, lr=-1.0, prior="laplace", hidden_sizes="junk")
    assert (est.epochs, est.lr, est.prior, est.hidden_sizes) == (0, -1.0, "laplace", "junk")
    assert not hasattr(est, "model_")


@pytest.mark.parametrize("cls", [BBBRegressor, BBBClassifier])
def test_clone_and_set_params_round_trip(cls):
    est = cls(hidden_sizes=(8, 4), prior="gaussian", prior_sigma=0.3, epochs=7, seed=11)
    twin = clone(est)
    assert twin is not est and twin.get_params() == est.get_params()
    assert est.set_params(lr=0.05, hidden_sizes=(3,)) is est
    assert est.get_params()["lr"] == 0.05 and est.hidden_sizes == (3,)
    assert twin.lr == 1e-3  # the clone is independent
    assert cls().set_params(**est.get_params()).get_params() == est.get_params()
    with pytest.raises(ValueError, match="invalid parameter 'bogus'"):
        est.set_params(bogus=1)


def test_clone_of_fitted_estimator_is_unfitted(small_regressor):
    twin = clone(small_regressor)
    assert twin.get_params() == small_regressor.get_params()
    assert not hasattr(twin, "model_")


def test_repr_shows_changed_settings():
    assert repr(BBBRegressor(noise=0.1, epochs=3)) == "BBBRegressor(epochs=3, noise=0.1)"


def test_fit_leaves_settings_unchanged_and_sets_fitted_attributes(small_regressor):
    assert small_regressor.get_params() == {**SHARED, **QUICK, "noise": None}
    assert small_regressor.n_features_in_ == 2
    assert small_regressor.model_.layer_sizes == [2, 8, 1]
    assert set(small_regressor.history_) == {"epoch", "loss", "nll", "complexity", "elbo",
                                             "seconds"}
    assert len(small_regressor.history_["loss"]) == QUICK["epochs"]


@pytest.mark.parametrize("method", ["predict", "predict_interval", "score"])
def test_regressor_not_fitted(method):
    args = (np.zeros((2, 1)), np.zeros(2)) if method == "score" else (np.zeros((2, 1)),)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        getattr(BBBRegressor(), method)(*args)


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score"])
def test_classifier_not_fitted(method):
    args = (np.zeros((2, 1)), np.zeros(2)) if method == "score" else (np.zeros((2, 1)),)
    with pytest.raises(NotFittedError, match="BBBClassifier instance is not fitted"):
        getattr(BBBClassifier(), method)(*args)


@pytest.mark.parametrize("estimator", [BBBRegressor(epochs=30), BBBClassifier(epochs=30)],
                         ids=["regressor", "classifier"])
def test_scikit_learns_estimator_checks_pass(estimator):
    """sklearn's own contract: input validation, clone, pickling, invariance to row order and
    subsets (float64 prediction), column-vector y (DataConversionWarning), learning at all."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(estimator, on_fail=None)
    failed = [(r["check_name"], repr(r["exception"])[:200]) for r in results
              if r["status"] == "failed"]
    assert failed == []
    assert sum(r["status"] == "passed" for r in results) >= 45


def test_not_fitted_error_is_sklearns_and_a_value_and_attribute_error():
    assert NotFittedError is SklearnNotFittedError
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)


# --------------------------------------------------------------------------- regression


def test_linear_regression_recovers_least_squares_line(linear):
    x, y, reg = linear
    slope, intercept = np.polyfit(x[:, 0], y, 1)
    grid = np.linspace(-2, 2, 9)[:, None]
    mean = reg.predict(grid)
    assert mean.shape == (9,) and mean.dtype == np.float64
    # posterior mean ≈ least squares (broad prior, N = 400): within 0.06 over the data range
    np.testing.assert_allclose(mean, slope * grid[:, 0] + intercept, atol=0.06)
    # ... and close to the true line (least squares itself is off by ~0.05 at the ends)
    fitted_slope = (mean[-1] - mean[0]) / 4
    assert fitted_slope == pytest.approx(SLOPE, abs=0.05)
    assert mean[4] == pytest.approx(INTERCEPT, abs=0.05)
    # the network is one linear layer whose weight, mapped back to original units, is the slope
    w = reg.guide_.locs()["layer0.weight"].item() * reg.y_scale_ / reg.x_scale_[0]
    assert w == pytest.approx(slope, abs=0.03)


def test_return_std_is_the_noise_level_in_units_of_y(linear):
    _, _, reg = linear
    grid = np.linspace(-2, 2, 9)[:, None]
    mean, std = reg.predict(grid, return_std=True)
    np.testing.assert_array_equal(mean, reg.predict(grid))
    # aleatoric noise dominates; the epistemic part adds < 1% for N = 400
    np.testing.assert_allclose(std, NOISE, rtol=0.1)


def test_outputs_scale_with_the_units_of_y():
    x, y = linear_data(200, seed=1)
    settings = dict(hidden_sizes=(), epochs=10, batch_size=100, lr=1e-2)
    small = BBBRegressor(**settings).fit(x, y)
    large = BBBRegressor(**settings).fit(x, 1000 * y + 5e6)
    grid = np.linspace(-2, 2, 5)[:, None]
    mean_s, std_s = small.predict(grid, return_std=True)
    mean_l, std_l = large.predict(grid, return_std=True)
    np.testing.assert_allclose(std_l, 1000 * std_s, rtol=1e-4)
    np.testing.assert_allclose(mean_l, 1000 * mean_s + 5e6, rtol=1e-6, atol=0.1)
    lower_s, upper_s = small.predict_interval(grid)
    lower_l, upper_l = large.predict_interval(grid)
    np.testing.assert_allclose(upper_l - lower_l, 1000 * (upper_s - lower_s), rtol=1e-4)


@pytest.mark.parametrize("level", [0.5, 0.95])
def test_interval_coverage_is_near_nominal_on_held_out_data(linear, level):
    _, _, reg = linear
    x, y = linear_data(2000, seed=1)
    lower, upper = reg.predict_interval(x, level=level)
    assert np.all(lower < reg.predict(x)) and np.all(reg.predict(x) < upper)
    coverage = np.mean((lower <= y) & (y <= upper))
    # binomial s.e. ≈ 0.011 at level 0.5, 0.005 at 0.95; allow model error on top
    assert coverage == pytest.approx(level, abs=0.04)


def test_regressor_score_is_r2(linear):
    _, _, reg = linear
    x, y = linear_data(500, seed=2)
    assert reg.score(x, y) == pytest.approx(r2_score(y, reg.predict(x)), rel=1e-12)
    # R² of the true line: 1 − σ² / Var(y) = 1 − 0.25 / (9·4/3 + 0.25) ≈ 0.979
    assert reg.score(x, y) == pytest.approx(0.979, abs=0.01)
    weights = np.linspace(0.1, 2, 500)
    assert reg.score(x, y, sample_weight=weights) == pytest.approx(
        r2_score(y, reg.predict(x), sample_weight=weights), rel=1e-9)


def test_fixed_noise_is_in_standardised_units():
    x, y = linear_data(200, seed=4)
    reg = BBBRegressor(hidden_sizes=(), noise=0.05, epochs=10, batch_size=100, lr=1e-2)
    reg.fit(x, y)
    assert reg.guide_.site_names == ["layer0.weight", "layer0.bias"]  # no learned noise site
    _, std = reg.predict(x[:20], return_std=True)
    assert np.all(std >= 0.05 * reg.y_scale_ * (1 - 1e-6))


def test_predictions_are_reproducible_and_leave_global_rng_alone(small_regressor):
    x, y = linear_data(60, seed=3)
    x = np.hstack([x, x**2])
    torch.manual_seed(123)
    np.random.seed(123)
    expected = torch.rand(3), np.random.rand(3)
    torch.manual_seed(123)
    np.random.seed(123)
    again = BBBRegressor(**QUICK).fit(x, y)
    assert torch.equal(torch.rand(3), expected[0])
    np.testing.assert_array_equal(np.random.rand(3), expected[1])
    np.testing.assert_array_equal(again.predict(x), small_regressor.predict(x))
    np.testing.assert_array_equal(again.predict(x), again.predict(x))
    other = BBBRegressor(**{**QUICK, "seed": 1}).fit(x, y)
    assert not np.allclose(other.predict(x), again.predict(x))


def test_fitted_estimator_pickles(small_regressor):
    x = np.random.default_rng(0).normal(size=(5, 2))
    twin = pickle.loads(pickle.dumps(small_regressor))
    np.testing.assert_allclose(twin.predict(x), small_regressor.predict(x), rtol=1e-6)


@pytest.mark.parametrize("option", [dict(prior="gaussian", prior_sigma=0.5),
                                    dict(kl_weighting="blundell", num_particles=2),
                                    dict(activation="tanh", hidden_sizes=[4, 4]),
                                    dict(prior=torch.distributions.Normal(0.0, 2.0))])
def test_settings_reach_the_model(option):
    x, y = linear_data(50, seed=5)
    reg = BBBRegressor(**{**QUICK, **option}).fit(x, y)
    assert np.all(np.isfinite(reg.predict(x)))
    prior = reg.model_.priors[0]
    if option.get("prior") == "gaussian":
        assert isinstance(prior, torch.distributions.Normal) and float(prior.scale) == 0.5
    if "activation" in option:
        assert reg.model_.activation == "tanh" and reg.model_.layer_sizes == [1, 4, 4, 1]


# --------------------------------------------------------------------------- classification


def test_classifier_separates_three_string_classes(animals):
    x, labels = blobs(300, seed=1)
    assert list(animals.classes_) == ["cat", "dog", "emu"]
    predicted = animals.predict(x)
    assert set(predicted) <= set(ANIMALS)
    assert accuracy_score(ANIMALS[labels], predicted) >= 0.97
    assert animals.score(x, ANIMALS[labels]) == accuracy_score(ANIMALS[labels], predicted)
    probs = animals.predict_proba(x)
    assert probs.shape == (300, 3) and probs.dtype == np.float64
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert np.all(probs >= 0)
    # columns follow classes_: a point at a blob's centre is confidently that class
    centre_probs = animals.predict_proba(CENTERS)
    np.testing.assert_array_equal(centre_probs.argmax(1), [0, 1, 2])
    assert np.all(centre_probs.max(1) > 0.9)


def test_binary_classifier_keeps_integer_labels():
    x, labels = blobs(200, seed=2, centers=CENTERS[:2])
    y = np.where(labels == 1, 7, -1)
    clf = BBBClassifier(hidden_sizes=(), epochs=20, batch_size=100, lr=2e-2).fit(x, y)
    np.testing.assert_array_equal(clf.classes_, [-1, 7])
    assert clf.model_.layer_sizes == [2, 2]
    xt, lt = blobs(200, seed=3, centers=CENTERS[:2])
    predicted = clf.predict(xt)
    assert predicted.dtype == y.dtype
    assert np.mean(predicted == np.where(lt == 1, 7, -1)) >= 0.97


# --------------------------------------------------------------------------- input types


def test_pandas_input():
    x, y = linear_data(80, seed=6)
    frame = pd.DataFrame({"a": x[:, 0], "b": np.cos(x[:, 0])})
    reg = BBBRegressor(**QUICK).fit(frame, pd.Series(y, name="target"))
    np.testing.assert_array_equal(reg.feature_names_in_, ["a", "b"])
    from_frame = reg.predict(frame)
    np.testing.assert_allclose(from_frame, reg.predict(frame.to_numpy()))
    assert isinstance(from_frame, np.ndarray)
    with pytest.raises(ValueError, match="feature names"):
        reg.predict(frame.rename(columns={"b": "c"}))
    reg.fit(frame.to_numpy(), y)  # refit without names forgets them
    assert not hasattr(reg, "feature_names_in_")

    labels = pd.Series(np.where(x[:, 0] > 0, "up", "down"))
    clf = BBBClassifier(**{**QUICK, "epochs": 30, "lr": 1e-2}).fit(frame, labels)
    assert list(clf.classes_) == ["down", "up"]
    assert clf.predict_proba(frame).shape == (80, 2)
    assert clf.score(frame, labels) >= 0.95


def test_torch_input():
    x, y = linear_data(80, seed=7)
    xt = torch.tensor(x, requires_grad=True)
    reg = BBBRegressor(**QUICK).fit(xt, torch.tensor(y))
    np.testing.assert_allclose(reg.predict(xt), reg.predict(x), rtol=1e-6)
    clf = BBBClassifier(**QUICK).fit(x.astype(np.float32), torch.tensor(x[:, 0] > 0))
    assert clf.classes_.tolist() == [False, True]


def test_object_array_of_numbers_is_accepted():
    x, y = linear_data(50, seed=8)
    reg = BBBRegressor(**QUICK).fit(x.astype(object), y.astype(object))
    np.testing.assert_array_equal(reg.predict(x.astype(object)), reg.predict(x))


def test_column_target_is_accepted_with_sklearns_warning():
    x, y = linear_data(50, seed=8)
    with pytest.warns(DataConversionWarning, match="column-vector y"):
        reg = BBBRegressor(**QUICK).fit(x, y[:, None])
    assert reg.predict(x).shape == (50,)
    np.testing.assert_array_equal(reg.predict(x), BBBRegressor(**QUICK).fit(x, y).predict(x))


# --------------------------------------------------------------------------- errors

X4, Y4 = linear_data(40, seed=9)
NAN_X = X4.copy()
NAN_X[3, 0] = np.nan


@pytest.mark.parametrize(
    "cls, X, y, match",
    [
        (BBBRegressor, NAN_X, Y4, "X contains NaN"),
        (BBBRegressor, np.where(NAN_X != NAN_X, np.inf, NAN_X), Y4, "NaN or infinite"),
        (BBBRegressor, X4, np.where(np.arange(40) == 5, np.nan, Y4), "y contains 1 NaN"),
        (BBBRegressor, X4, Y4[:30], "X has 40 rows but y has 30"),
        (BBBClassifier, X4, (Y4 > 0)[:30], "X has 40 rows but y has 30"),
        (BBBRegressor, X4[:0], Y4[:0], "X is empty"),
        (BBBClassifier, X4[:0], Y4[:0], "X is empty"),
        (BBBRegressor, X4[:, 0], Y4, r"shape \(n_samples, n_features\)"),
        (BBBRegressor, np.hstack([X4, X4]), np.stack([Y4, Y4], 1), "shape"),
        (BBBClassifier, X4, np.full(40, "spam"), "only one class"),
        (BBBClassifier, X4, np.where(np.arange(40) == 2, np.nan, 1.0), "NaN or infinite"),
        (BBBClassifier, X4, ["a", 1] * 20, "mixes strings"),
        (BBBRegressor, X4, ["a"] * 40, "numeric"),
        (BBBRegressor, X4, None, "requires y to be passed"),
        (BBBClassifier, X4, Y4, "Unknown label type: continuous"),
        (BBBRegressor, X4[:, :0], Y4, r"0 feature\(s\)"),
        (BBBRegressor, X4 + 1j, Y4, "Complex data not supported"),
        (BBBRegressor, np.array([["1.5"], ["x"]] * 20, dtype=object), Y4, "numeric"),
        (BBBRegressor, scipy.sparse.csr_matrix(X4), Y4, "sparse"),
    ],
)
def test_bad_data_raises(cls, X, y, match):
    with pytest.raises(ValueError, match=match):
        cls(**QUICK).fit(X, y)


@pytest.mark.parametrize(
    "setting, match",
    [
        (dict(epochs=0), "epochs must be a positive int"),
        (dict(epochs=2.5), "epochs"),
        (dict(batch_size=0), "batch_size"),
        (dict(lr=-1e-3), "lr must be a positive"),
        (dict(lr=float("nan")), "lr"),
        (dict(num_particles=0), "num_particles"),
        (dict(num_samples=0), "num_samples"),
        (dict(prior="laplace"), "unknown prior 'laplace'"),
        (dict(prior_pi=1.0), "prior_pi"),
        (dict(prior_sigma2=0.0), "prior_sigma2"),
        (dict(prior="gaussian", prior_sigma=-1.0), "prior_sigma"),
        (dict(hidden_sizes=(10, 0)), "hidden_sizes"),
        (dict(hidden_sizes=None), "hidden_sizes"),
        (dict(activation="swish"), "unknown activation 'swish'"),
        (dict(kl_weighting="linear"), "kl_weighting"),
        (dict(init_rho=float("inf")), "init_rho"),
        (dict(seed=-1), "seed"),
        (dict(device="banana"), "device"),
        (dict(noise=0.0), "noise must be a positive"),
        (dict(noise=-0.1), "noise"),
    ],
)
def test_bad_settings_raise_in_fit(setting, match):
    est = BBBRegressor(**{**QUICK, **setting})  # constructing is fine
    with pytest.raises(ValueError, match=match):
        est.fit(X4, Y4)
    assert not hasattr(est, "model_")


def test_bad_data_at_predict_time(small_regressor, animals):
    with pytest.raises(ValueError, match="X has 3 features, but BBBRegressor is expecting 2"):
        small_regressor.predict(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="X has 1 features, but BBBClassifier is expecting 2"):
        animals.predict_proba(np.zeros((4, 1)))
    with pytest.raises(ValueError, match="Reshape your data"):
        animals.predict(np.zeros(2))
    with pytest.raises(ValueError, match="NaN or infinite"):
        small_regressor.predict(np.array([[0.0, np.inf]]))
    with pytest.raises(ValueError, match="empty"):
        animals.predict(np.zeros((0, 2)))
    with pytest.raises(ValueError, match="level"):
        small_regressor.predict_interval(np.zeros((2, 2)), level=1.5)


XS, YS = np.hstack([X4, X4**2]), Y4  # small_regressor's two features
XB, LB = blobs(40, seed=5)  # the animals classifier's two features
AB = ANIMALS[LB]


@pytest.mark.parametrize(
    "fixture, X, y, weight, match",
    [
        ("small_regressor", XS, np.full(40, np.nan), None, "y contains 40 NaN"),
        ("small_regressor", XS, YS[:5], None, "X has 40 rows but y has 5"),
        ("small_regressor", XS[:10], np.zeros((5, 2)), None, r"shape \(N,\), got \(5, 2\)"),
        ("small_regressor", XS, None, None, "requires y to be passed"),
        ("small_regressor", XS, YS, np.ones(3), "X has 40 rows but sample_weight has 3"),
        ("small_regressor", XS, YS, np.full(40, np.nan), "sample_weight contains NaN"),
        ("small_regressor", XS, YS, -np.ones(40), "sample_weight must be >= 0"),
        ("small_regressor", XS, YS, np.zeros(40), "sample_weight is all zero"),
        ("small_regressor", XS, YS, np.ones((40, 2)), r"sample_weight must have shape"),
        ("small_regressor", XS, YS, ["a"] * 40, "sample_weight must hold real numbers"),
        ("animals", XB, AB, np.ones(3), "X has 40 rows but sample_weight has 3"),
        ("animals", XB, AB[:5], None, "X has 40 rows but y has 5"),
        ("animals", XB, LB, None, r"none of the labels seen in fit.*the classes are \['cat'"),
        ("animals", XB, np.stack([AB, AB], 1), None, r"y must have shape \(n_samples,\)"),
        ("animals", XB, None, None, "requires y to be passed"),
    ],
)
def test_bad_data_at_score_time(request, fixture, X, y, weight, match):
    with pytest.raises(ValueError, match=match):
        request.getfixturevalue(fixture).score(X, y, sample_weight=weight)


def test_an_unseen_label_counts_as_wrong_as_in_sklearn(animals):
    y = np.where(LB == 0, "cow", AB)
    assert animals.score(XB, y) == pytest.approx(accuracy_score(y, animals.predict(XB)))
    assert animals.score(XB, y) < animals.score(XB, AB)


def test_score_accepts_column_y_and_list_weights(small_regressor, animals):
    weights = list(range(1, 41))
    r2 = r2_score(YS, small_regressor.predict(XS), sample_weight=weights)
    assert small_regressor.score(XS, YS[:, None], sample_weight=weights) == pytest.approx(r2)
    accuracy = accuracy_score(AB, animals.predict(XB), sample_weight=weights)
    assert animals.score(XB, AB[:, None], sample_weight=weights) == pytest.approx(accuracy)


def test_failed_refit_keeps_the_previous_fit():
    est = BBBRegressor(**QUICK).fit(X4, Y4)
    before = est.predict(np.zeros((2, 1)))
    with pytest.raises(ValueError, match="X has 5 rows but y has 4"):
        est.fit(np.zeros((5, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="noise"):
        est.set_params(noise=-1.0).fit(np.zeros((5, 2)), np.zeros(5))
    assert est.n_features_in_ == 1
    np.testing.assert_array_equal(est.predict(np.zeros((2, 1))), before)


# --------------------------------------------------------------------------- without sklearn


def test_works_without_sklearn(monkeypatch):
    for name in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "sklearn", None)
    spec = importlib.util.spec_from_file_location("pyro_bbb._estimators_no_sklearn",
                                                  estimators.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    assert module.NotFittedError is not SklearnNotFittedError
    assert issubclass(module.NotFittedError, ValueError)
    assert issubclass(module.NotFittedError, AttributeError)
    reg = module.BBBRegressor(**QUICK)
    assert reg._estimator_type == "regressor"
    assert reg.get_params() == {**SHARED, **QUICK, "noise": None}
    assert repr(module.BBBRegressor(epochs=3)) == "BBBRegressor(epochs=3)"
    with pytest.raises(module.NotFittedError, match="not fitted"):
        reg.predict(X4)
    with pytest.raises(ValueError, match="invalid parameter"):
        reg.set_params(nope=1)
    reg.fit(X4, Y4)
    pred = reg.predict(X4)
    r2 = 1 - np.sum((Y4 - pred) ** 2) / np.sum((Y4 - Y4.mean()) ** 2)
    assert reg.score(X4, Y4) == pytest.approx(r2, rel=1e-12)

    clf = module.BBBClassifier(**QUICK).fit(X4, np.where(X4[:, 0] > 0, "pos", "neg"))
    assert clf._estimator_type == "classifier"
    labels = np.where(X4[:, 0] > 0, "pos", "neg")
    assert clf.score(X4, labels) == pytest.approx(np.mean(clf.predict(X4) == labels))
