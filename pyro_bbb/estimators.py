"""scikit-learn style estimators: ``BBBRegressor`` and ``BBBClassifier``.

Both wrap the library's pieces (BayesianMLP, MeanFieldGuide, fit, predict) behind the familiar
``fit`` / ``predict`` / ``score`` interface. Features are standardised on the training data,

    x̃ = (x − μ_x) / σ_x        (per feature; a zero σ is replaced by 1),

and so are the regressor's targets, ỹ = (y − μ_y) / σ_y. The network sees only x̃ and ỹ, so the
prior (σ1 = 1, σ2 = e⁻⁶ by default) and the learned noise prior mean the same thing whatever
the units of the data. Predictions are mapped back: a predictive mean m̃ and standard deviation
s̃ in standardised units are m = σ_y m̃ + μ_y and s = σ_y s̃ in the units of y.

scikit-learn is optional. When it is importable the estimators inherit ``BaseEstimator`` and
the regressor/classifier mixins (so ``clone``, pipelines, grid search and ``is_classifier``
work); otherwise tiny stand-ins take their place. ``get_params``, ``set_params`` and ``score``
are implemented here and behave the same either way.
"""

from __future__ import annotations

import inspect
import math
import numbers
import random
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np
import pyro
import torch

from .distributions import check_prior, gaussian_prior, scale_mixture_prior
from .guide import MeanFieldGuide
from .infer import fit as svi_fit
from .infer import resolve_device
from .inputs import as_features, as_float, as_int, as_targets
from .likelihoods import Categorical, Gaussian, Likelihood
from .model import ACTIVATIONS, BayesianMLP
from .predict import posterior_predictive

try:
    from sklearn.base import BaseEstimator as _EstimatorRoot
    from sklearn.base import ClassifierMixin, RegressorMixin
    from sklearn.exceptions import DataConversionWarning, NotFittedError
except ImportError:  # scikit-learn is optional: minimal stand-ins

    class NotFittedError(ValueError, AttributeError):
        """Raised when a prediction method is called before ``fit``."""

    class DataConversionWarning(UserWarning):
        """Input data was converted (e.g. a column-vector y raveled)."""

    class _EstimatorRoot:
        def __repr__(self) -> str:
            defaults = _init_defaults(type(self))
            changed = [f"{k}={v!r}" for k, v in self.get_params().items()
                       if repr(v) != repr(defaults[k])]
            return f"{type(self).__name__}({', '.join(changed)})"

    class RegressorMixin:
        _estimator_type = "regressor"

    class ClassifierMixin:
        _estimator_type = "classifier"


__all__ = ["BBBRegressor", "BBBClassifier", "NotFittedError"]

_PRIORS = ("scale_mixture", "gaussian")
_KL_WEIGHTINGS = ("uniform", "blundell")


# --------------------------------------------------------------------------- parameters


def _init_parameters(cls: type) -> list[inspect.Parameter]:
    """The named constructor parameters of ``cls`` (what get_params reports)."""
    params = inspect.signature(cls.__init__).parameters.values()
    return [p for p in params if p.name != "self" and p.kind not in (p.VAR_POSITIONAL,
                                                                      p.VAR_KEYWORD)]


def _init_defaults(cls: type) -> dict[str, Any]:
    return {p.name: p.default for p in _init_parameters(cls)}


def _spell_out_settings(init: Callable) -> Callable:
    """Give ``init(self, *, own..., **settings)`` the signature with ``**settings`` spelled out.

    scikit-learn (get_params, clone, repr) and ``help`` learn an estimator's parameters from
    ``inspect.signature(cls.__init__)``. A subclass that adds a parameter forwards the shared
    ones as ``**settings``; this states them explicitly, so the shared list is written once.
    """
    own = [p for p in inspect.signature(init).parameters.values() if p.kind is not p.VAR_KEYWORD]
    shared = _init_parameters(_BBBEstimator)
    init.__signature__ = inspect.Signature(own + shared)
    return init


# --------------------------------------------------------------------------- setting checks


def _choice(name: str, value, choices) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose from {list(choices)}")
    return value


def _hidden_widths(hidden_sizes) -> list[int]:
    """``hidden_sizes`` as a list of positive ints; a bare int means one hidden layer."""
    if isinstance(hidden_sizes, numbers.Integral) and not isinstance(hidden_sizes, bool):
        hidden_sizes = (hidden_sizes,)
    try:
        widths = list(hidden_sizes)
    except TypeError:
        widths = None
    if (widths is None or isinstance(hidden_sizes, str)
            or not all(isinstance(w, numbers.Integral) and not isinstance(w, bool) and w > 0
                       for w in widths)):
        raise ValueError(
            f"hidden_sizes must be a sequence of positive ints (() for no hidden layer), "
            f"got {hidden_sizes!r}"
        )
    return [int(w) for w in widths]


class _Settings(NamedTuple):
    """The constructor settings, checked and normalised (what ``fit`` works from)."""

    hidden: list[int]
    prior: torch.distributions.Distribution
    init_rho: float
    epochs: int
    batch_size: int
    lr: float
    num_particles: int
    num_samples: int
    kl_weighting: str
    seed: int | None
    device: torch.device


# --------------------------------------------------------------------------- data helpers


def _is_column(y) -> bool:
    """Whether ``y`` has shape (n, 1) (False for anything numpy cannot shape)."""
    try:
        shape = _to_numpy(y).shape
    except ValueError:
        return False
    return len(shape) == 2 and shape[1] == 1


def _to_numpy(data) -> np.ndarray:
    """numpy view of a pandas object, torch tensor, array or nested list (no checks)."""
    if hasattr(data, "to_numpy"):
        data = data.to_numpy()
    if torch.is_tensor(data):
        data = data.detach().cpu().numpy()
    return np.asarray(data)


def _feature_names(X) -> np.ndarray | None:
    """Column names of a DataFrame when they are all strings (sklearn's feature_names_in_)."""
    columns = getattr(X, "columns", None)
    if columns is None or not all(isinstance(c, str) for c in columns):
        return None
    return np.asarray(list(columns), dtype=object)


def _numeric(data, name: str) -> np.ndarray:
    """``_to_numpy`` with object arrays of numbers made float and read-only arrays copied."""
    a = _to_numpy(data)
    if a.dtype == object:
        try:
            a = a.astype(np.float64)
        except ValueError as err:  # strings; other objects raise float()'s TypeError
            raise ValueError(f"{name} must be numeric, got an object array ({err})") from None
    if not a.flags.writeable:  # pandas copy-on-write views; torch warns on read-only arrays
        a = a.copy()
    return a


def _features(X, estimator: str, n_features: int | None = None) -> np.ndarray:
    """X as a float64 (n_samples, n_features) array: ``as_features``' checks (numeric, finite,
    non-empty) plus the cases it lets through or words differently from scikit-learn."""
    if hasattr(X, "nnz") and hasattr(X, "toarray"):
        raise ValueError(f"{estimator} does not support sparse X; pass X.toarray()")
    a = _numeric(X, "X")
    if a.dtype.kind == "c":
        raise ValueError("Complex data not supported: X must hold real numbers")
    if a.ndim == 1:
        raise ValueError(
            f"Expected a 2-D X of shape (n_samples, n_features), got shape {a.shape}. Reshape "
            "your data with X.reshape(-1, 1) for a single feature or X.reshape(1, -1) for a "
            "single sample."
        )
    if a.ndim == 2 and a.shape[1] == 0:
        raise ValueError(f"0 feature(s) (shape={a.shape}) while a minimum of 1 is required.")
    x = as_features(a).double().numpy()
    if n_features is not None and x.shape[1] != n_features:
        raise ValueError(f"X has {x.shape[1]} features, but {estimator} is expecting "
                         f"{n_features} features as input")
    return x


def _regression_targets(y, num_rows: int) -> np.ndarray:
    """y as a float64 (num_rows,) array: numeric, finite, 1-D or (N, 1)."""
    values = _numeric(y, "y")
    as_targets(values, Gaussian(), num_rows)  # shape, finiteness, length: clear messages
    return values.astype(np.float64).reshape(-1)


def _sample_weight(sample_weight, num_rows: int) -> np.ndarray:
    """Score weights as a float64 (num_rows,) array: finite, >= 0 and not all zero."""
    if sample_weight is None:
        return np.ones(num_rows)
    w = _numeric(sample_weight, "sample_weight")
    if w.dtype.kind not in "biuf":
        raise ValueError(f"sample_weight must hold real numbers, got dtype {w.dtype}")
    if w.ndim != 1:
        raise ValueError(f"sample_weight must have shape (n_samples,), got {w.shape}")
    if w.shape[0] != num_rows:
        raise ValueError(f"X has {num_rows} rows but sample_weight has {w.shape[0]}")
    w = w.astype(np.float64)
    if not np.isfinite(w).all():
        raise ValueError("sample_weight contains NaN or infinite values")
    if (w < 0).any():
        raise ValueError(f"sample_weight must be >= 0, got {int((w < 0).sum())} negative")
    if w.sum() == 0:
        raise ValueError("sample_weight is all zero")
    return w


def _moments(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and population standard deviations (zero σ → 1), in float64."""
    mean = a.mean(0)
    std = a.std(0)
    return mean, np.where(std > 0, std, 1.0)


def _as_model_input(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(a, dtype=torch.get_default_dtype())


@contextmanager
def _seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Seed Python, numpy and torch for the block, then restore the caller's RNG states."""
    if seed is None:
        yield
        return
    py_state, np_state = random.getstate(), np.random.get_state()
    cuda = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=cuda):
            pyro.set_rng_seed(seed)
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


# --------------------------------------------------------------------------- shared base


class _BBBEstimator(_EstimatorRoot):
    """What the regressor and the classifier share: settings, feature handling, fit, predict.

    A subclass supplies ``_encode_targets`` (targets → model units, plus fitted attributes)
    and ``_likelihood`` (the observation model for those targets).
    """

    def __init__(
        self,
        *,
        hidden_sizes=(100,),
        activation: str = "relu",
        prior="scale_mixture",
        prior_pi: float = 0.5,
        prior_sigma1: float = 1.0,
        prior_sigma2: float = math.exp(-6),
        prior_sigma: float = 1.0,
        init_rho: float = -5.0,
        epochs: int = 100,
        batch_size: int = 128,
        lr: float = 1e-3,
        num_particles: int = 1,
        num_samples: int = 100,
        kl_weighting: str = "uniform",
        seed: int | None = 0,
        device: str = "auto",
        progress: bool = False,
    ):
        self.hidden_sizes = hidden_sizes
        self.activation = activation
        self.prior = prior
        self.prior_pi = prior_pi
        self.prior_sigma1 = prior_sigma1
        self.prior_sigma2 = prior_sigma2
        self.prior_sigma = prior_sigma
        self.init_rho = init_rho
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.num_particles = num_particles
        self.num_samples = num_samples
        self.kl_weighting = kl_weighting
        self.seed = seed
        self.device = device
        self.progress = progress

    # ----------------------------------------------------------------- parameters

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor settings by name (``deep`` is accepted for sklearn; nothing nests)."""
        return {p.name: getattr(self, p.name) for p in _init_parameters(type(self))}

    def set_params(self, **params):
        """Set constructor settings by name and return self; unknown names raise ValueError."""
        valid = _init_defaults(type(self))
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"invalid parameter {name!r} for estimator {type(self).__name__}; valid "
                    f"parameters are: {sorted(valid)}"
                )
            setattr(self, name, value)
        return self

    # ----------------------------------------------------------------- settings

    def _prior(self) -> torch.distributions.Distribution:
        if isinstance(self.prior, torch.distributions.Distribution):
            return check_prior(self.prior)
        if _choice("prior", self.prior, _PRIORS) == "gaussian":
            return gaussian_prior(as_float(self.prior_sigma, "prior_sigma", positive=True))
        pi = self.prior_pi
        if isinstance(pi, bool) or not isinstance(pi, numbers.Real) or not 0 < pi < 1:
            raise ValueError(f"prior_pi must lie strictly between 0 and 1, got {pi!r}")
        return scale_mixture_prior(float(pi),
                                   as_float(self.prior_sigma1, "prior_sigma1", positive=True),
                                   as_float(self.prior_sigma2, "prior_sigma2", positive=True))

    def _check_settings(self) -> _Settings:
        """Check every setting (sklearn rule: here, in fit, never in __init__)."""
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {self.activation!r}; choose from {list(ACTIVATIONS)}"
            )
        init_rho = self.init_rho
        if isinstance(init_rho, bool) or not isinstance(init_rho, numbers.Real) or not (
            math.isfinite(init_rho)
        ):
            raise ValueError(f"init_rho must be a finite number, got {init_rho!r}")
        seed = self.seed
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
                                 or not 0 <= seed < 2**32):
            raise ValueError(f"seed must be None or an int in [0, 2**32), got {seed!r}")
        try:
            device = resolve_device(self.device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"unknown device {self.device!r}: {err}") from None
        return _Settings(
            hidden=_hidden_widths(self.hidden_sizes),
            prior=self._prior(),
            init_rho=float(init_rho),
            epochs=as_int(self.epochs, "epochs"),
            batch_size=as_int(self.batch_size, "batch_size"),
            lr=as_float(self.lr, "lr", positive=True),
            num_particles=as_int(self.num_particles, "num_particles"),
            num_samples=as_int(self.num_samples, "num_samples"),
            kl_weighting=_choice("kl_weighting", self.kl_weighting, _KL_WEIGHTINGS),
            seed=None if seed is None else int(seed),
            device=device,
        )

    # ----------------------------------------------------------------- subclass hooks

    def _encode_targets(self, y, num_rows: int) -> tuple[torch.Tensor, dict[str, Any]]:
        """Targets in the model's units and the fitted attributes that undo the encoding."""
        raise NotImplementedError

    def _likelihood(self, fitted: dict[str, Any]) -> Likelihood:
        raise NotImplementedError

    # ----------------------------------------------------------------- fit / predict

    def fit(self, X, y):
        """Fit the mean-field posterior q(w|θ) by Bayes by Backprop; returns self.

        X: (n_samples, n_features) array, tensor or DataFrame; y: (n_samples,) targets.
        """
        settings = self._check_settings()
        self._require_y(y)
        if _is_column(y):
            warnings.warn("A column-vector y was passed when a 1d array was expected; it is "
                          "used as y.ravel() (shape (n_samples,))", DataConversionWarning,
                          stacklevel=2)
        x = _features(X, type(self).__name__)
        x_mean, x_scale = _moments(x)
        targets, fitted = self._encode_targets(y, x.shape[0])
        likelihood = self._likelihood(fitted)
        model = BayesianMLP([x.shape[1], *settings.hidden, likelihood.output_size], likelihood,
                            settings.prior, self.activation)
        with _seeded(settings.seed, settings.device):
            guide = MeanFieldGuide(model, init_rho=settings.init_rho)
            result = svi_fit(
                model, guide, _as_model_input((x - x_mean) / x_scale), targets,
                epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr,
                num_particles=settings.num_particles, kl_weighting=settings.kl_weighting,
                seed=None, device=settings.device, progress=bool(self.progress),
            )
        # every fitted attribute is set only once fitting has succeeded
        fitted.update(model_=model, guide_=guide, history_=result.history_dict(),
                      n_features_in_=x.shape[1], x_mean_=x_mean, x_scale_=x_scale)
        names = _feature_names(X)
        if names is not None:
            fitted["feature_names_in_"] = names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        for name, value in fitted.items():
            setattr(self, name, value)
        return self

    def _require_y(self, y) -> None:
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y "
                             "is None")

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "guide_")

    def _check_is_fitted(self) -> None:
        if not self.__sklearn_is_fitted__():
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator."
            )

    def _standardised_features(self, X) -> torch.Tensor:
        """Checked features at prediction time, in the standardised units of training."""
        self._check_is_fitted()
        fitted_names, names = getattr(self, "feature_names_in_", None), _feature_names(X)
        if (fitted_names is not None and names is not None
                and not np.array_equal(fitted_names, names)):
            raise ValueError(
                f"X has feature names {list(names)} but the estimator was fitted with "
                f"{list(fitted_names)}"
            )
        x = _features(X, type(self).__name__, self.n_features_in_)
        return _as_model_input((x - self.x_mean_) / self.x_scale_)

    def _predictive(self, X, level: float = 0.95):
        """Posterior predictive summary over ``num_samples`` weight draws (seeded by ``seed``)."""
        x = self._standardised_features(X)
        generator = None
        if self.seed is not None:
            device = next(self.guide_.parameters()).device
            generator = torch.Generator(device=device).manual_seed(int(self.seed))
        draws = self.guide_.sample_posterior(self.num_samples, generator=generator)
        # in float64 a row's prediction does not depend on the other rows (float32 matmul
        # kernels change with the batch size), as scikit-learn's invariance checks ask
        draws = {name: value.double() for name, value in draws.items()}
        return posterior_predictive(self.model_, draws, x, level=level)


def _numpy64(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


# --------------------------------------------------------------------------- regressor


class BBBRegressor(RegressorMixin, _BBBEstimator):
    """Bayesian neural network regressor trained by Bayes by Backprop.

    y = f(x; w) + ε, ε ~ N(0, σ²), with a mean-field Gaussian posterior over the weights w.
    ``noise=None`` learns σ (a latent site with a LogNormal(0, 1) prior on the standardised
    scale); a float fixes σ, in standardised target units (σ_y × noise in the units of y).
    ``hidden_sizes=()`` is Bayesian linear regression. Other parameters: see ``BBBClassifier``,
    which shares them.

    Fitted attributes: ``model_``, ``guide_``, ``history_`` (per-epoch loss, nll, complexity,
    elbo), ``n_features_in_``, ``feature_names_in_`` (DataFrame input), ``x_mean_``,
    ``x_scale_``, ``y_mean_``, ``y_scale_``.
    """

    @_spell_out_settings
    def __init__(self, *, noise: float | None = None, **settings):
        super().__init__(**settings)
        self.noise = noise

    def _encode_targets(self, y, num_rows):
        values = _regression_targets(y, num_rows)
        y_mean, y_scale = _moments(values)
        return _as_model_input((values - y_mean) / y_scale), {"y_mean_": y_mean,
                                                              "y_scale_": y_scale}

    def _likelihood(self, fitted):
        noise = None if self.noise is None else as_float(self.noise, "noise", positive=True)
        return Gaussian(noise)

    def predict(self, X, return_std: bool = False):
        """Predictive mean in the units of y; with ``return_std`` also the predictive std.

        std² = E_q[σ²] + Var_q[f(x; w)] (aleatoric + epistemic), scaled by σ_y.
        """
        pred = self._predictive(X)
        mean = _numpy64(pred.mean) * self.y_scale_ + self.y_mean_
        if return_std:
            return mean, _numpy64(pred.std) * self.y_scale_
        return mean

    def predict_interval(self, X, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Central ``level`` interval (lower, upper) of the predictive mixture, in units of y."""
        pred = self._predictive(X, level)
        return (_numpy64(pred.lower) * self.y_scale_ + self.y_mean_,
                _numpy64(pred.upper) * self.y_scale_ + self.y_mean_)

    def score(self, X, y, sample_weight=None) -> float:
        """Coefficient of determination R² = 1 − Σ w (y − ŷ)² / Σ w (y − ȳ)² (ȳ weighted).

        y and sample_weight are checked as in fit (shape, length, finite; weights >= 0)."""
        self._require_y(y)
        y_pred = self.predict(X)
        y_true = _regression_targets(y, len(y_pred))
        weight = _sample_weight(sample_weight, len(y_pred))
        residual = np.sum(weight * (y_true - y_pred) ** 2)
        total = np.sum(weight * (y_true - np.average(y_true, weights=weight)) ** 2)
        if total == 0:
            return 1.0 if residual == 0 else 0.0
        return float(1 - residual / total)


# --------------------------------------------------------------------------- classifier


class BBBClassifier(ClassifierMixin, _BBBEstimator):
    """Bayesian neural network classifier trained by Bayes by Backprop.

    p(y = c | x, w) = softmax(f(x; w))_c over the ``classes_`` seen in fit (any labels: ints,
    strings, ...); predictions average over ``num_samples`` draws of w from q.

    Parameters (shared with ``BBBRegressor``):
        hidden_sizes: widths of the hidden layers; () gives (multinomial) logistic regression.
        activation: hidden-layer nonlinearity, a name in ``pyro_bbb.model.ACTIVATIONS``.
        prior: "scale_mixture" (π N(0, σ1²) + (1 − π) N(0, σ2²) with ``prior_pi``,
            ``prior_sigma1``, ``prior_sigma2``), "gaussian" (N(0, ``prior_sigma``²)), or a
            univariate torch Distribution over the reals.
        init_rho: initial ρ of the guide; σ = softplus(ρ).
        epochs, batch_size, lr, num_particles, kl_weighting: passed to ``pyro_bbb.fit``.
        num_samples: weight draws per prediction.
        seed: seeds fitting and prediction without disturbing the global RNG; None uses it.
        device: "auto" (CUDA if available), "cpu", "cuda", ...
        progress: show a progress bar while fitting.

    Fitted attributes: ``classes_``, ``model_``, ``guide_``, ``history_``, ``n_features_in_``,
    ``feature_names_in_`` (DataFrame input), ``x_mean_``, ``x_scale_``.
    """

    def _encode_targets(self, y, num_rows):
        labels = _labels(y, num_rows)
        try:
            classes, codes = np.unique(labels, return_inverse=True)
        except TypeError as err:  # e.g. a mix of strings and numbers, or None
            raise ValueError(f"y labels must be mutually comparable: {err}") from None
        if len(classes) < 2:
            raise ValueError(
                f"y has only one class ({classes[0]!r}); a classifier needs at least two"
            )
        return torch.as_tensor(codes.reshape(-1), dtype=torch.long), {"classes_": classes}

    def _likelihood(self, fitted):
        return Categorical(len(fitted["classes_"]))

    def predict_proba(self, X) -> np.ndarray:
        """Posterior predictive probabilities E_q[softmax f(x; w)], shape (n, len(classes_))."""
        return _numpy64(self._predictive(X).probs)

    def predict(self, X) -> np.ndarray:
        """The most probable class under the posterior predictive, as an original label."""
        probs = self.predict_proba(X)  # first: it raises NotFittedError before fit
        return self.classes_[probs.argmax(1)]

    def score(self, X, y, sample_weight=None) -> float:
        """Accuracy: the (weighted) fraction of rows whose predicted label equals y.

        A label not seen in fit counts as wrong (as in scikit-learn), but a y with no label of
        fit's at all is refused: it is a mix-up (e.g. codes for string classes). sample_weight
        is checked (length, finite, >= 0)."""
        self._require_y(y)
        y_pred = self.predict(X)
        y_true = _labels(y, len(y_pred))
        if not np.isin(y_true, self.classes_).any():
            first = list(dict.fromkeys(y_true.tolist()))[:5]
            raise ValueError(f"y has none of the labels seen in fit (first: {first}); the "
                             f"classes are {self.classes_.tolist()}")
        weight = _sample_weight(sample_weight, len(y_pred))
        return float(np.average(y_pred == y_true, weights=weight))


def _labels(y, num_rows: int | None = None) -> np.ndarray:
    """Class labels as a 1-D numpy array, checked for shape, length and NaN."""
    labels = _to_numpy(y)
    if (isinstance(y, (list, tuple)) and labels.dtype.kind == "U"
            and not all(isinstance(v, str) for v in np.asarray(y, dtype=object).ravel())):
        raise ValueError("y mixes strings with other labels; numpy would turn them all into "
                         "strings")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(f"y must have shape (n_samples,), got {labels.shape}")
    if num_rows is not None and labels.shape[0] != num_rows:
        raise ValueError(f"X has {num_rows} rows but y has {labels.shape[0]}")
    if labels.dtype.kind == "f":
        if not np.isfinite(labels).all():
            raise ValueError(
                f"y contains {int((~np.isfinite(labels)).sum())} NaN or infinite labels"
            )
        if not np.all(labels == np.round(labels)):
            raise ValueError("Unknown label type: continuous. y holds non-integer floats, which "
                             "look like a regression target; use BBBRegressor")
    return labels
