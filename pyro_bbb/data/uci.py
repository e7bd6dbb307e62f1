"""UCI regression benchmark folders in the standard split format (PBP / MC dropout papers).

A folder holds ``data.txt`` (whitespace-separated numbers, one row per example),
``index_features.txt`` and ``index_target.txt`` (0-based column numbers), ``index_train_K.txt``
and ``index_test_K.txt`` (0-based row numbers of split K) and optionally ``n_splits.txt``,
``n_hidden.txt`` and ``n_epochs.txt``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..inputs import _to_tensor, as_int
from ._text import read_text

__all__ = [
    "Standardizer",
    "UCIProtocol",
    "UCISplit",
    "load_uci_split",
    "num_splits",
    "uci_protocol",
]

PathLike = str | os.PathLike
_TRAIN_INDEX = re.compile(r"index_train_(\d+)\.txt")


class UCISplit(NamedTuple):
    """One train/test split: features (n, d) and targets (n,), float32."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


class UCIProtocol(NamedTuple):
    """Experiment settings stored in the folder; ``None`` where the file is absent."""

    n_splits: int
    n_hidden: int | None
    n_epochs: int | None


# --------------------------------------------------------------------------- file parsing


def _folder(folder: PathLike) -> Path:
    path = Path(folder)
    if not path.is_dir():
        raise FileNotFoundError(f"UCI data folder not found: {path}")
    return path


def _file(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise FileNotFoundError(f"missing file {name} in UCI folder {folder}")
    return path


def _tokens(path: Path) -> list[tuple[int, list[str]]]:
    """(1-based line number, whitespace-separated tokens) of every non-blank line."""
    lines = read_text(path).splitlines()
    return [(n, line.split()) for n, line in enumerate(lines, start=1) if line.strip()]


def _number(token: str, path: Path, line: int) -> float:
    try:
        value = float(token)
    except ValueError:
        for sep, name in ((",", "commas"), (";", "semicolons")):
            if sep in token:
                raise ValueError(f"{path.name} line {line}: values are separated by {name}; "
                                 "expected whitespace-separated numbers") from None
        value = float("nan")
    if not np.isfinite(value):
        raise ValueError(f"{path.name} line {line}: {token!r} is not a finite number")
    return value


def _read_matrix(path: Path) -> np.ndarray:
    """All rows of a whitespace-separated numeric table, checked to be rectangular."""
    rows = _tokens(path)
    if not rows:
        raise ValueError(f"{path.name} has no rows")
    width = len(rows[0][1])
    for line, tokens in rows:
        if len(tokens) != width:
            raise ValueError(
                f"{path.name} line {line}: ragged row with {len(tokens)} columns, "
                f"expected {width} (as on line {rows[0][0]})"
            )
    return np.array([[_number(t, path, line) for t in tokens] for line, tokens in rows])


def _read_ints(path: Path) -> list[int]:
    values = [_number(t, path, line) for line, tokens in _tokens(path) for t in tokens]
    for value in values:
        if not value.is_integer():
            raise ValueError(f"{path.name}: {value} is not an integer")
    return [int(v) for v in values]


def _read_indices(path: Path, upper: int, what: str) -> np.ndarray:
    """0-based indices in [0, upper), non-empty and without duplicates."""
    values = _read_ints(path)
    if not values:
        raise ValueError(f"{path.name} is empty")
    bad = [v for v in values if not 0 <= v < upper]
    if bad:
        raise ValueError(f"{path.name}: {what} index {bad[0]} out of range [0, {upper})")
    index = np.array(values, dtype=np.int64)
    values, counts = np.unique(index, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"{path.name}: duplicated {what} index {values[counts > 1][0]}")
    return index


def _read_int(path: Path) -> int:
    values = _read_ints(path)
    if len(values) != 1:
        raise ValueError(f"{path.name}: expected a single integer, found {len(values)} values")
    return values[0]


def _optional_int(folder: Path, name: str) -> int | None:
    """The positive integer in ``folder/name``, or None when the file is absent."""
    path = folder / name
    if not path.is_file():
        return None
    value = _read_int(path)
    if value < 1:
        raise ValueError(f"{path}: expected a positive integer, got {value}")
    return value


# --------------------------------------------------------------------------- public API


def num_splits(folder: PathLike) -> int:
    """Number of splits: ``n_splits.txt`` if present, else the count of ``index_train_K.txt``."""
    path = _folder(folder)
    stored = _optional_int(path, "n_splits.txt")
    if stored is not None:
        return stored
    count = sum(1 for p in path.iterdir() if _TRAIN_INDEX.fullmatch(p.name))
    if count == 0:
        raise FileNotFoundError(f"no n_splits.txt and no index_train_K.txt files in {path}")
    return count


def uci_protocol(folder: PathLike) -> UCIProtocol:
    """Number of splits and, where stored, hidden units and training epochs of the folder."""
    path = _folder(folder)
    n_hidden, n_epochs = (_optional_int(path, f"n_{key}.txt") for key in ("hidden", "epochs"))
    return UCIProtocol(num_splits(path), n_hidden, n_epochs)


def load_uci_split(folder: PathLike, split: int) -> UCISplit:
    """Load split ``split`` of a UCI folder, in original (unstandardised) units."""
    path = _folder(folder)
    split = as_int(split, "split", minimum=0)
    total = num_splits(path)
    if not split < total:
        raise ValueError(f"split {split} out of range [0, {total}) for {path}")
    data = _read_matrix(_file(path, "data.txt"))
    rows, cols = data.shape
    features = _read_indices(_file(path, "index_features.txt"), cols, "column")
    target = _read_indices(_file(path, "index_target.txt"), cols, "column")
    if target.size != 1:
        raise ValueError(f"index_target.txt: expected one target column, found {target.size}")
    if target[0] in features:
        raise ValueError(f"index_target.txt: target column {target[0]} is also a feature")
    train, test = (
        _read_indices(_file(path, f"index_{part}_{split}.txt"), rows, "row")
        for part in ("train", "test")
    )
    overlap = np.intersect1d(train, test)
    if overlap.size:
        raise ValueError(
            f"index_train_{split}.txt and index_test_{split}.txt share {overlap.size} rows "
            f"(first: {overlap[0]})"
        )
    x = torch.as_tensor(data[:, features], dtype=torch.float32)
    y = torch.as_tensor(data[:, target[0]], dtype=torch.float32)
    train_t, test_t = torch.as_tensor(train), torch.as_tensor(test)
    return UCISplit(x[train_t], y[train_t], x[test_t], y[test_t])


def _float_tensor(data, name: str) -> torch.Tensor:
    """``data`` (tensor, numpy array, list) as a floating tensor, or ValueError naming it."""
    tensor = _to_tensor(data, name)
    return tensor if tensor.is_floating_point() else tensor.to(torch.get_default_dtype())


@dataclass(frozen=True)
class Standardizer:
    """Affine maps x ↦ (x − μ_x)/σ_x and y ↦ (y − μ_y)/σ_y fitted on training data.

    σ is the population standard deviation (as ``np.std``); a zero σ is replaced by 1. A Gaussian
    predictive N(m, s²) in standardised units is N(σ_y m + μ_y, (σ_y s)²) in original units, so its
    log density there is lower by log σ_y.
    """

    x_mean: torch.Tensor
    x_std: torch.Tensor
    y_mean: torch.Tensor
    y_std: torch.Tensor

    @classmethod
    def fit(cls, x: torch.Tensor, y: torch.Tensor) -> Standardizer:
        """Fit on features (n, d) and targets (n,): tensors or numpy arrays, finite values."""
        x, y = _float_tensor(x, "x"), _float_tensor(y, "y")
        if x.dim() != 2 or y.dim() != 1:
            raise ValueError(f"Standardizer.fit expects x of shape (n, d) and y of shape (n,), "
                             f"got {tuple(x.shape)} and {tuple(y.shape)}")
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x has {x.shape[0]} rows but y has {y.shape[0]}")
        if x.shape[0] == 0:
            raise ValueError("cannot fit a Standardizer on zero examples")
        for name, t in (("x", x), ("y", y)):
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"{name} contains NaN or infinite values")

        def moments(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            t64 = t.double()
            std = t64.std(0, unbiased=False)
            return t64.mean(0).to(t.dtype), torch.where(std > 0, std, 1.0).to(t.dtype)

        return cls(*moments(x), *moments(y))

    def transform_features(self, x: torch.Tensor) -> torch.Tensor:
        """(x − μ_x)/σ_x for features (n, d) with the d fitted on."""
        x = _float_tensor(x, "x")
        if x.dim() == 0 or x.shape[-1] != self.x_mean.shape[-1]:
            raise ValueError(f"x has shape {tuple(x.shape)}, but the Standardizer was fitted on "
                             f"{self.x_mean.shape[-1]} features")
        return (x - self.x_mean) / self.x_std

    def transform_target(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.y_mean) / self.y_std

    def inverse_target(self, y: torch.Tensor) -> torch.Tensor:
        """Map a target or predictive mean back to original units: σ_y y + μ_y."""
        return y * self.y_std + self.y_mean

    def inverse_scale(self, std: torch.Tensor) -> torch.Tensor:
        """Map a predictive standard deviation back to original units: σ_y s."""
        return std * self.y_std

    def transform(self, split: UCISplit) -> UCISplit:
        """Standardise both halves of a split with the fitted statistics."""
        return UCISplit(
            self.transform_features(split.x_train),
            self.transform_target(split.y_train),
            self.transform_features(split.x_test),
            self.transform_target(split.y_test),
        )
