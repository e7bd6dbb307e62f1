"""UCI Mushroom (``agaricus-lepiota.data``): 22 categorical features, class edible / poisonous.

Format: one mushroom per line, 23 comma-separated single-letter codes, no header; column 0 is
the class (``e`` edible, ``p`` poisonous), columns 1–22 the attributes below; ``?`` marks a
missing stalk-root. The UCI file has 8124 rows, 4208 edible and 3916 poisonous.

Encoding: every attribute is one-hot over the value set documented in the dataset's
``agaricus-lepiota.names`` (``MUSHROOM_ATTRIBUTES``; for stalk-root, ``?`` is a value of its
own). That gives a fixed width of ``NUM_MUSHROOM_FEATURES = 126`` columns, whatever rows a file
holds; 117 of them occur in the UCI file (9 documented values never do: e.g. veil-type is
always ``p``), and the unused columns are simply always 0. Each row has exactly 22 ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ._text import read_text

__all__ = [
    "MUSHROOM_ATTRIBUTES",
    "MUSHROOM_FEATURE_NAMES",
    "NUM_MUSHROOM_FEATURES",
    "MushroomData",
    "load_mushroom",
]

PathLike = str | os.PathLike

# (attribute, documented value codes), in file order (columns 1..22).
MUSHROOM_ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("cap-shape", "bcxfks"),
    ("cap-surface", "fgys"),
    ("cap-color", "nbcgrpuewy"),
    ("bruises", "tf"),
    ("odor", "alcyfmnps"),
    ("gill-attachment", "adfn"),
    ("gill-spacing", "cwd"),
    ("gill-size", "bn"),
    ("gill-color", "knbhgropuewy"),
    ("stalk-shape", "et"),
    ("stalk-root", "bcuezr?"),
    ("stalk-surface-above-ring", "fyks"),
    ("stalk-surface-below-ring", "fyks"),
    ("stalk-color-above-ring", "nbcgopewy"),
    ("stalk-color-below-ring", "nbcgopewy"),
    ("veil-type", "pu"),
    ("veil-color", "nowy"),
    ("ring-number", "not"),
    ("ring-type", "ceflnpsz"),
    ("spore-print-color", "knbhrouwy"),
    ("population", "acnsvy"),
    ("habitat", "glmpuwd"),
)
MUSHROOM_FEATURE_NAMES: tuple[str, ...] = tuple(
    f"{name}={code}" for name, codes in MUSHROOM_ATTRIBUTES for code in codes
)
NUM_MUSHROOM_FEATURES = len(MUSHROOM_FEATURE_NAMES)  # 126
_CLASSES = {"e": True, "p": False}
_NUM_COLUMNS = 1 + len(MUSHROOM_ATTRIBUTES)


def _offsets() -> list[dict[str, int]]:
    """Per attribute: value code → column of the one-hot encoding."""
    tables, start = [], 0
    for _, codes in MUSHROOM_ATTRIBUTES:
        tables.append({code: start + i for i, code in enumerate(codes)})
        start += len(codes)
    return tables


_COLUMN_OF = _offsets()


@dataclass(frozen=True)
class MushroomData:
    """Mushrooms as one-hot features (N, 126) float32 and labels ``edible`` (N,) bool."""

    features: torch.Tensor
    edible: torch.Tensor

    @property
    def poisonous(self) -> torch.Tensor:
        return ~self.edible

    @property
    def feature_names(self) -> tuple[str, ...]:
        """``attribute=code`` for each column, e.g. ``odor=n``."""
        return MUSHROOM_FEATURE_NAMES

    def __len__(self) -> int:
        return int(self.edible.shape[0])

    def subset(self, index: torch.Tensor) -> MushroomData:
        """The rows ``index`` (indices or a boolean mask)."""
        return MushroomData(self.features[index], self.edible[index])


def load_mushroom(path: PathLike) -> MushroomData:
    """Read ``agaricus-lepiota.data`` at ``path`` and one-hot encode it (see the module doc).

    Blank lines are skipped. Raises FileNotFoundError for a missing file and ValueError, naming
    the file (and line), for a file that is not UTF-8 text (e.g. gzipped), a wrong number of
    columns, a class other than ``e``/``p``, or an attribute value outside the documented set.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mushroom data file not found: {path} (expected the UCI file "
                                "agaricus-lepiota.data, e.g. ../shared/data/mushroom/)")
    rows: list[list[int]] = []
    edible: list[bool] = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != _NUM_COLUMNS:
            raise ValueError(f"{path.name} line {number}: expected {_NUM_COLUMNS} comma-separated "
                             f"columns (class + 22 attributes), got {len(fields)}")
        label = fields[0]
        if label not in _CLASSES:
            raise ValueError(f"{path.name} line {number}: unknown class label {label!r}; "
                             "expected 'e' (edible) or 'p' (poisonous)")
        columns = []
        for (name, codes), table, value in zip(MUSHROOM_ATTRIBUTES, _COLUMN_OF, fields[1:],
                                               strict=True):
            if value not in table:
                raise ValueError(f"{path.name} line {number}: {name} has unknown value "
                                 f"{value!r}; expected one of {list(codes)}")
            columns.append(table[value])
        rows.append(columns)
        edible.append(_CLASSES[label])
    if not rows:
        raise ValueError(f"{path.name}: no mushrooms in the file")
    index = torch.tensor(rows, dtype=torch.long)
    features = torch.zeros(len(rows), NUM_MUSHROOM_FEATURES)
    features.scatter_(1, index, 1.0)
    return MushroomData(features, torch.tensor(edible, dtype=torch.bool))
