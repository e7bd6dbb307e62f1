"""pyro_bbb: Bayes by Backprop (Blundell et al. 2015) on Pyro."""

from .distributions import ScaleMixtureNormal, gaussian_prior, scale_mixture_prior
from .guide import MeanFieldGuide
from .infer import FitResult, NonFiniteLossError, elbo_terms, fit
from .likelihoods import (
    Bernoulli,
    Categorical,
    ClassificationPrediction,
    Gaussian,
    HeteroscedasticGaussian,
    RegressionPrediction,
)
from .model import BayesianMLP
from .predict import log_likelihood, posterior_predictive, predict

__version__ = "0.1.0"

_LAZY = {"BBBRegressor": "estimators", "BBBClassifier": "estimators"}


def __getattr__(name: str):
    """BBBRegressor / BBBClassifier import scikit-learn, so they load on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "ScaleMixtureNormal",
    "gaussian_prior",
    "scale_mixture_prior",
    "MeanFieldGuide",
    "FitResult",
    "NonFiniteLossError",
    "elbo_terms",
    "fit",
    "Bernoulli",
    "Categorical",
    "ClassificationPrediction",
    "Gaussian",
    "HeteroscedasticGaussian",
    "RegressionPrediction",
    "BayesianMLP",
    "log_likelihood",
    "posterior_predictive",
    "predict",
    "BBBRegressor",
    "BBBClassifier",
]
