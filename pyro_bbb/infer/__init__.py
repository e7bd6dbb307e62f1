"""Inference: SVI training (fit) and the ELBO it optimises."""

from .captured import CapturedStep
from .elbo import ELBOTerms, elbo_terms
from .engine import FastELBO, supports_fast_elbo
from .fit import (
    EpochRecord,
    FitResult,
    NonFiniteLossError,
    TrainingInterrupted,
    TrainingState,
    fit,
    kl_weights,
    resolve_device,
)

__all__ = [
    "CapturedStep",
    "ELBOTerms",
    "elbo_terms",
    "FastELBO",
    "supports_fast_elbo",
    "EpochRecord",
    "FitResult",
    "NonFiniteLossError",
    "TrainingInterrupted",
    "TrainingState",
    "fit",
    "kl_weights",
    "resolve_device",
]
