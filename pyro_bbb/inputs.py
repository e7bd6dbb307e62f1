"""Turn user data (tensors, numpy arrays, pandas objects) into checked tensors.

Every public entry point that takes data calls these, so bad input fails here with a message
that names the problem instead of deep inside torch.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

__all__ = ["as_features", "as_targets", "as_int", "as_float", "is_finite_number"]


def as_int(value, name: str, minimum: int = 1) -> int:
    """``value`` as a Python int >= ``minimum`` (numpy integers too; bools and floats are
    refused), or ValueError naming ``name``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        if int(value) >= minimum:
            return int(value)
    what = "a positive int" if minimum == 1 else f"an int >= {minimum}"
    raise ValueError(f"{name} must be {what}, got {value!r}")


def is_finite_number(value) -> bool:
    """Whether ``value`` is a finite real number (numpy numbers too; bools are not numbers)."""
    return (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
            and math.isfinite(value))


def as_float(value, name: str, *, positive: bool = False) -> float:
    """``value`` as a finite Python float (> 0 if ``positive``), or ValueError naming ``name``."""
    if is_finite_number(value) and (value > 0 or not positive):
        return float(value)
    what = "a positive finite number" if positive else "a finite number"
    raise ValueError(f"{name} must be {what}, got {value!r}")


def _to_tensor(data, name: str) -> torch.Tensor:
    if hasattr(data, "to_numpy"):  # pandas DataFrame / Series
        data = data.to_numpy()
    if torch.is_tensor(data):
        tensor = data
    else:
        try:
            array = np.asarray(data)
        except ValueError as err:  # ragged nested lists
            raise ValueError(f"{name} is ragged or not numeric: {err}") from None
        if array.dtype == object:
            try:
                array = array.astype(np.float64)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be numeric, got non-numeric entries") from None
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
            raise ValueError(f"{name} must be numeric, got dtype {array.dtype}")
        tensor = torch.from_numpy(array if array.flags.writeable else array.copy())
    if tensor.is_complex():
        raise ValueError(f"{name} must be real-valued, got complex dtype {tensor.dtype}")
    return tensor


def as_features(x, input_size: int | None = None, name: str = "X") -> torch.Tensor:
    """Features as a float tensor of shape (N, D): non-empty, finite, D == input_size if given."""
    x = _to_tensor(x, name)
    if x.dim() == 1 and input_size is not None and input_size == 1:
        x = x[:, None]
    if x.dim() != 2:
        raise ValueError(f"{name} must have shape (n_samples, n_features), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 rows)")
    if x.shape[1] == 0:
        raise ValueError(f"{name} has no features (0 columns)")
    if input_size is not None and x.shape[1] != input_size:
        raise ValueError(f"{name} has {x.shape[1]} features but the model expects {input_size}")
    x = x.to(torch.get_default_dtype())
    if not bool(torch.isfinite(x).all()):
        rows = torch.nonzero(~torch.isfinite(x).all(1)).flatten()[:5].tolist()
        raise ValueError(f"{name} contains NaN or infinite values (first bad rows: {rows})")
    return x


def as_targets(y, likelihood, num_rows: int, name: str = "y") -> torch.Tensor:
    """Targets checked by the likelihood (label range, finiteness) and against X's row count."""
    y = likelihood.check_targets(_to_tensor(y, name))
    if y.shape[0] != num_rows:
        raise ValueError(f"X has {num_rows} rows but {name} has {y.shape[0]}")
    return y
