"""Inference: SVI training (fit) and the ELBO it optimises."""

from .elbo import ELBOTerms, elbo_terms
from .fit import EpochRecord, FitResult, NonFiniteLossError, fit, kl_weights, resolve_device

__all__ = [
    "ELBOTerms",
    "elbo_terms",
    "EpochRecord",
    "FitResult",
    "NonFiniteLossError",
    "fit",
    "kl_weights",
    "resolve_device",
]
