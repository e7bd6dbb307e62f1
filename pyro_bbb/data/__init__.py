"""Data loaders; each takes an explicit path (Fashion-MNIST falls back to Debian's location)."""

from pyro_bbb.data.idx import (
    DEFAULT_FASHION_MNIST_ROOT,
    FASHION_MNIST_CLASSES,
    ImageData,
    load_fashion_mnist,
    read_idx,
)
from pyro_bbb.data.mushroom import MushroomData, load_mushroom
from pyro_bbb.data.toy import (
    ToyRegression,
    toy_regression,
    toy_regression_heldout,
    toy_regression_truth,
)
from pyro_bbb.data.uci import (
    Standardizer,
    UCIProtocol,
    UCISplit,
    load_uci_split,
    num_splits,
    uci_protocol,
)

__all__ = [
    "DEFAULT_FASHION_MNIST_ROOT",
    "FASHION_MNIST_CLASSES",
    "ImageData",
    "MushroomData",
    "Standardizer",
    "ToyRegression",
    "UCIProtocol",
    "UCISplit",
    "load_fashion_mnist",
    "load_mushroom",
    "load_uci_split",
    "num_splits",
    "read_idx",
    "toy_regression",
    "toy_regression_heldout",
    "toy_regression_truth",
    "uci_protocol",
]
