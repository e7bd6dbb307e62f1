"""IDX files (the MNIST / Fashion-MNIST format), gzipped or raw.

Header: two zero bytes, a dtype code, the number of dimensions k, then k big-endian uint32 sizes;
the payload is the array in C order, big-endian.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

__all__ = ["DEFAULT_FASHION_MNIST_ROOT", "ImageData", "load_fashion_mnist", "read_idx"]

PathLike = str | os.PathLike

#: Where Debian's ``dataset-fashion-mnist`` package installs the files; used when ``root=None``.
DEFAULT_FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")

_GZIP_MAGIC = b"\x1f\x8b"
_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_PREFIX = {"train": "train", "test": "t10k"}


class ImageData(NamedTuple):
    """Images, float32 of shape (N, H·W) or (N, H, W), and labels, int64 of shape (N,)."""

    images: torch.Tensor
    labels: torch.Tensor


def _read_bytes(path: Path) -> bytes:
    """File contents, gunzipped when the file starts with the gzip magic bytes."""
    raw = path.read_bytes()
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(f"{path}: corrupt gzip stream ({err})") from err


def read_idx(path: PathLike) -> torch.Tensor:
    """Read an IDX file into a tensor of its stored dtype and shape."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[:2] != b"\x00\x00":
        raise ValueError(f"{path}: not an IDX file (bad magic number {data[:4].hex() or 'empty'})")
    code, ndim = data[2], data[3]
    if code not in _DTYPES:
        raise ValueError(f"{path}: unknown IDX dtype code 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated header, expected {header} bytes, got {len(data)}")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = _DTYPES[code]
    expected, actual = math.prod(shape) * dtype.itemsize, len(data) - header
    if actual != expected:
        raise ValueError(
            f"{path}: payload has {actual} bytes but header dims {shape} of {dtype.name} "
            f"need {expected} bytes" + (" (truncated file)" if actual < expected else "")
        )
    array = np.frombuffer(data, dtype, offset=header).astype(dtype.newbyteorder("="))
    return torch.from_numpy(array.reshape(shape))


def _find(root: Path, stem: str) -> Path:
    candidates = [root / f"{stem}.gz", root / stem]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"neither {candidates[0].name} nor {candidates[1].name} in {root}")


#: Fashion-MNIST's label names, index = label.
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot")


def load_fashion_mnist(
    root: PathLike | None = None,
    split: str = "train",
    flatten: bool = True,
    scale: bool = True,
) -> ImageData:
    """Fashion-MNIST (or MNIST: same file names) from ``root``.

    Images are float32, divided by 255 into [0, 1] when ``scale``, of shape (N, 784) when
    ``flatten`` else (N, 28, 28); labels are int64 in 0..9 (checked, as is that the images are
    finite). ``root`` may start with ``~``.
    """
    if not isinstance(split, str) or split not in _PREFIX:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = DEFAULT_FASHION_MNIST_ROOT if root is None else Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"Fashion-MNIST directory not found: {root}; on Debian/Ubuntu "
            f"`apt-get install dataset-fashion-mnist` installs it in {DEFAULT_FASHION_MNIST_ROOT}"
        )
    prefix = _PREFIX[split]
    images_path = _find(root, f"{prefix}-images-idx3-ubyte")
    images = read_idx(images_path)
    labels_path = _find(root, f"{prefix}-labels-idx1-ubyte")
    labels = read_idx(labels_path)
    if images.dim() != 3 or labels.dim() != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{root}: images {tuple(images.shape)} and labels {tuple(labels.shape)} do not match "
            "(expected (N, H, W) and (N,))"
        )
    if labels.is_floating_point():
        raise ValueError(f"{labels_path}: labels must be integers, got {labels.dtype}")
    classes = len(FASHION_MNIST_CLASSES)
    if labels.numel() and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"{labels_path}: labels must be class numbers 0..{classes - 1}, found "
                         f"values from {int(labels.min())} to {int(labels.max())}")
    if images.is_floating_point() and not bool(torch.isfinite(images).all()):
        raise ValueError(f"{images_path}: images contain NaN or infinite values")
    images = images.float()
    if scale:
        images = images / 255.0
    if flatten:
        images = images.flatten(1)
    return ImageData(images, labels.long())
