"""The default optimizer of ``fit`` and the bandit agents."""

from __future__ import annotations

from collections.abc import Iterable

import torch

__all__ = ["default_adam"]


def default_adam(params: Iterable[torch.Tensor], lr: float, capturable: bool = False
                 ) -> torch.optim.Adam:
    """Adam(lr), fused where torch supports it (CPU from torch 2.4, CUDA): one kernel over all
    parameters instead of a loop, about 3× faster per step on a 784-400-400-10 guide on the CPU,
    same update rule. Falls back to the plain implementation elsewhere.

    ``capturable=True``: the Adam a CUDA graph can record (``CapturedStep``): fused, its step
    counts on the device and its lr a 0-dim tensor on the parameters' device, so that a new
    learning rate is written into the tensor the graph reads (``fill_``) instead of being baked
    into the recording."""
    params = list(params)
    if capturable:
        lr_tensor = torch.tensor(float(lr), device=params[0].device)
        return torch.optim.Adam(params, lr=lr_tensor, fused=True, capturable=True)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr)
