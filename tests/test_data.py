import gzip
import math
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from pyro_bbb.data import (
    DEFAULT_FASHION_MNIST_ROOT,
    Standardizer,
    UCIProtocol,
    load_fashion_mnist,
    load_mushroom,
    load_uci_split,
    num_splits,
    read_idx,
    toy_regression,
    toy_regression_heldout,
    toy_regression_truth,
    uci_protocol,
)

DATA_DIR = Path(
    os.environ.get("PYRO_BBB_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)

# --------------------------------------------------------------------------- toy regression


def blundell_curve(x, eps):
    """The formula of Blundell et al. 2015, written out independently of the library."""
    return (
        x
        + 0.3 * torch.sin(2 * math.pi * (x + eps))
        + 0.3 * torch.sin(4 * math.pi * (x + eps))
        + eps
    )


def test_toy_truth_known_points():
    x = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=torch.float64)
    expected = torch.tensor([0.0, 0.25 + 0.3, 0.5, 1.0], dtype=torch.float64)
    torch.testing.assert_close(toy_regression_truth(x), expected)


def test_toy_regression_matches_formula():
    data = toy_regression(num_points=50, seed=3)
    # Re-draw the same numbers: x ~ U(0, 0.5) sorted, then ε ~ N(0, 0.02²).
    generator = torch.Generator().manual_seed(3)
    x = (0.5 * torch.rand(50, generator=generator, dtype=torch.float64)).sort().values
    eps = 0.02 * torch.randn(50, generator=generator, dtype=torch.float64)
    assert data.x.shape == (50, 1) and data.y.shape == (50,)
    assert data.x.dtype == data.y.dtype == torch.float32
    torch.testing.assert_close(data.x[:, 0], x.float())
    torch.testing.assert_close(data.y, blundell_curve(x, eps).float())


def test_toy_regression_range_and_noise_level():
    data = toy_regression(num_points=2000, seed=0, x_range=(0.1, 0.4))
    assert data.x.min() >= 0.1 and data.x.max() <= 0.4
    # To first order y − f(x) = f(x + ε) − f(x) ≈ f'(x) ε, so its std is 0.02·rms(f'(x)).
    x = data.x[:, 0].double()
    slope = (
        1 + 0.6 * math.pi * torch.cos(2 * math.pi * x) + 1.2 * math.pi * torch.cos(4 * math.pi * x)
    )
    residual = data.y.double() - toy_regression_truth(x)
    assert residual.std().item() == pytest.approx(0.02 * slope.pow(2).mean().sqrt().item(), rel=0.1)
    noise_free = toy_regression(num_points=20, seed=0, noise_std=0.0)
    torch.testing.assert_close(noise_free.y, toy_regression_truth(noise_free.x[:, 0]))


def test_toy_regression_seeding():
    state = torch.get_rng_state()
    a, b, c = toy_regression(seed=1), toy_regression(seed=1), toy_regression(seed=2)
    assert torch.equal(torch.get_rng_state(), state), "global RNG must be untouched"
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, c.x) and not torch.equal(a.y, c.y)


def test_toy_accepts_numpy_ints_and_list_range():
    data = toy_regression(num_points=np.int64(7), seed=np.int32(3), x_range=[0, 1])
    assert data.x.shape == (7, 1) and bool(((data.x >= 0) & (data.x <= 1)).all())
    assert torch.equal(data.y, toy_regression(7, 3, (0.0, 1.0)).y)


def test_toy_heldout_is_noise_free_grid_over_wider_range():
    held = toy_regression_heldout(num_points=101, x_range=(-0.2, 1.2))
    assert held.x.shape == (101, 1) and held.y.shape == (101,)
    assert held.x[0, 0] == pytest.approx(-0.2) and held.x[-1, 0] == pytest.approx(1.2)
    torch.testing.assert_close(held.y, toy_regression_truth(held.x[:, 0]))
    noisy = toy_regression_heldout(num_points=101, noise_std=0.02)
    assert torch.equal(noisy.x, held.x) and not torch.equal(noisy.y, held.y)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_points": 0}, "num_points must be a positive int, got 0"),
        ({"num_points": 2.5}, "num_points must be a positive int, got 2.5"),
        ({"num_points": "10"}, "num_points must be a positive int, got '10'"),
        ({"x_range": (0.5, 0.5)}, "x_range must satisfy low < high"),
        ({"x_range": (0.0, math.inf)}, r"x_range must be \(low, high\) of two finite numbers"),
        ({"x_range": (math.nan, 1.0)}, "x_range must be .* finite"),
        ({"x_range": (0.0, 1.0, 2.0)}, "x_range must be .* got \\(0.0, 1.0, 2.0\\)"),
        ({"noise_std": -0.1}, "noise_std must be non-negative"),
        ({"noise_std": math.nan}, "noise_std must be a finite number, got nan"),
        ({"seed": None}, "seed must be an int >= 0, got None"),
        ({"seed": 1.5}, "seed must be an int >= 0, got 1.5"),
    ],
)
def test_toy_errors(kwargs, match):
    """Every argument is checked up front, with a message naming it."""
    for make in (toy_regression, toy_regression_heldout):
        with pytest.raises(ValueError, match=match):
            make(**kwargs)


# --------------------------------------------------------------------------- UCI folders

DATA_TXT = """\
1 2 10
2 4 20
3 6 30
4 8 40
5 10 50
"""


def write_uci(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def uci_files(overrides: dict[str, str | None] | None = None) -> dict[str, str]:
    """A valid 5-row, 2-feature, 2-split folder; an override of None deletes that file."""
    files = {
        "data.txt": DATA_TXT,
        "index_features.txt": "0\n1\n",
        "index_target.txt": "2\n",
        "index_train_0.txt": "0\n1\n2\n",
        "index_test_0.txt": "3\n4\n",
        "index_train_1.txt": "4\n3\n2\n",
        "index_test_1.txt": "0\n1\n",
        "n_splits.txt": "2\n",
        "n_hidden.txt": "50\n",
        "n_epochs.txt": "40\n",
    }
    files.update(overrides or {})
    return {k: v for k, v in files.items() if v is not None}


@pytest.fixture
def uci_folder(tmp_path):
    return write_uci(tmp_path / "toyuci", uci_files())


def test_load_uci_split_known_values(uci_folder):
    split = load_uci_split(uci_folder, 0)
    torch.testing.assert_close(split.x_train, torch.tensor([[1.0, 2], [2, 4], [3, 6]]))
    torch.testing.assert_close(split.y_train, torch.tensor([10.0, 20, 30]))
    torch.testing.assert_close(split.x_test, torch.tensor([[4.0, 8], [5, 10]]))
    torch.testing.assert_close(split.y_test, torch.tensor([40.0, 50]))
    other = load_uci_split(str(uci_folder), 1)  # str paths work too; row order follows the file
    torch.testing.assert_close(other.y_train, torch.tensor([50.0, 40, 30]))
    assert all(t.dtype == torch.float32 for t in split)


def test_num_splits_and_protocol(uci_folder):
    assert num_splits(uci_folder) == 2
    assert uci_protocol(uci_folder) == UCIProtocol(n_splits=2, n_hidden=50, n_epochs=40)
    for name in ("n_splits.txt", "n_hidden.txt", "n_epochs.txt"):
        (uci_folder / name).unlink()
    assert uci_protocol(uci_folder) == UCIProtocol(n_splits=2, n_hidden=None, n_epochs=None)


def test_standardizer_known_values(uci_folder):
    split = load_uci_split(uci_folder, 0)
    scaler = Standardizer.fit(split.x_train, split.y_train)
    root = math.sqrt(2 / 3)  # population std of (1, 2, 3)
    torch.testing.assert_close(scaler.x_mean, torch.tensor([2.0, 4.0]))
    torch.testing.assert_close(scaler.x_std, torch.tensor([root, 2 * root]))
    torch.testing.assert_close(scaler.y_mean, torch.tensor(20.0))
    torch.testing.assert_close(scaler.y_std, torch.tensor(10 * root))
    scaled = scaler.transform(split)
    torch.testing.assert_close(scaled.x_train.mean(0), torch.zeros(2))
    torch.testing.assert_close(scaled.y_train.std(unbiased=False), torch.tensor(1.0))
    torch.testing.assert_close(scaled.y_test, torch.tensor([2.0, 3.0]) / root)
    torch.testing.assert_close(scaler.inverse_target(scaled.y_test), split.y_test)
    torch.testing.assert_close(scaler.inverse_scale(torch.tensor(1.0)), torch.tensor(10 * root))


def test_standardizer_constant_column_has_unit_std():
    x = torch.tensor([[1.0, 7.0], [3.0, 7.0]])
    scaler = Standardizer.fit(x, torch.tensor([5.0, 5.0]))
    torch.testing.assert_close(scaler.x_std, torch.tensor([1.0, 1.0]))
    assert scaler.y_std == 1.0
    assert torch.isfinite(scaler.transform_features(x)).all()
    torch.testing.assert_close(scaler.transform_features(x)[:, 1], torch.zeros(2))


def test_standardizer_rejects_empty():
    with pytest.raises(ValueError, match="zero examples"):
        Standardizer.fit(torch.zeros(0, 2), torch.zeros(0))


def test_standardizer_accepts_numpy_and_integers():
    x = np.array([[1, 10], [3, 10]])  # int64: the mean 2 must not be truncated, σ 0 → 1
    fitted = Standardizer.fit(x, np.array([0.0, 4.0]))
    assert fitted.x_mean.tolist() == [2.0, 10.0] and fitted.x_std.tolist() == [1.0, 1.0]
    assert fitted.y_mean.item() == 2.0 and fitted.y_std.item() == 2.0
    assert fitted.transform_features(np.array([[5.0, 12.0]])).tolist() == [[3.0, 2.0]]


@pytest.mark.parametrize(
    "x, y, match",
    [
        (torch.ones(4, 3), torch.ones(2), "x has 4 rows but y has 2"),
        (torch.tensor([[math.nan], [1.0]]), torch.ones(2), "x contains NaN or infinite"),
        (torch.ones(2, 1), torch.tensor([1.0, math.inf]), "y contains NaN or infinite"),
        (torch.ones(4), torch.ones(4), r"x of shape \(n, d\) and y of shape \(n,\), got \(4,\)"),
        (torch.ones(4, 3), torch.ones(4, 2), r"got \(4, 3\) and \(4, 2\)"),
        ([["a", "b"]], [1.0], "x must be numeric"),
    ],
)
def test_standardizer_fit_bad_input(x, y, match):
    with pytest.raises(ValueError, match=match):
        Standardizer.fit(x, y)


def test_standardizer_transform_wrong_width():
    fitted = Standardizer.fit(torch.randn(10, 3), torch.randn(10))
    with pytest.raises(ValueError, match=r"x has shape \(5, 4\), but the Standardizer was "
                       "fitted on 3 features"):
        fitted.transform_features(torch.randn(5, 4))


def test_num_splits_counts_index_files(tmp_path):
    folder = write_uci(tmp_path / "nosplitfile", uci_files({"n_splits.txt": None}))
    assert num_splits(folder) == 2


@pytest.mark.parametrize(
    "overrides, split, error, match",
    [
        ({"data.txt": None}, 0, FileNotFoundError, "missing file data.txt"),
        ({"index_test_1.txt": None}, 1, FileNotFoundError, "missing file index_test_1.txt"),
        ({"data.txt": "1 2 3\n4 5 6\n7 8\n"}, 0, ValueError, "data.txt line 3: ragged row"),
        ({"data.txt": "1 2 3\n4 abc 6\n"}, 0, ValueError, "data.txt line 2: 'abc' is not a"),
        ({"data.txt": "1 ? 3\n"}, 0, ValueError, r"data.txt line 1: '\?' is not a finite"),
        ({"data.txt": "1 2 nan\n"}, 0, ValueError, "'nan' is not a finite number"),
        ({"data.txt": "\n\n"}, 0, ValueError, "data.txt has no rows"),
        (
            {"index_train_0.txt": "0\n7\n"},
            0,
            ValueError,
            r"index_train_0.txt: row index 7 out of range \[0, 5\)",
        ),
        ({"index_train_0.txt": "-1\n"}, 0, ValueError, "index_train_0.txt: row index -1 out"),
        ({"index_train_0.txt": "0\n1\n0\n"}, 0, ValueError, "index_train_0.txt: duplicated row"),
        ({"index_features.txt": "0\n3\n"}, 0, ValueError, "index_features.txt: column index 3"),
        ({"index_features.txt": "1\n1\n"}, 0, ValueError, "index_features.txt: duplicated"),
        ({"index_features.txt": "0\n2\n"}, 0, ValueError, "target column 2 is also a feature"),
        ({"index_target.txt": "1\n2\n"}, 0, ValueError, "expected one target column, found 2"),
        ({"index_train_0.txt": "0\n1.5\n"}, 0, ValueError, "index_train_0.txt: 1.5 is not an"),
        ({"index_test_0.txt": ""}, 0, ValueError, "index_test_0.txt is empty"),
        ({"index_test_0.txt": "2\n3\n"}, 0, ValueError, "share 1 rows"),
        ({}, 2, ValueError, r"split 2 out of range \[0, 2\)"),
        ({}, -1, ValueError, "split must be an int >= 0, got -1"),
        ({}, "0", ValueError, "split must be an int >= 0, got '0'"),
        ({}, 1.0, ValueError, "split must be an int >= 0, got 1.0"),
        ({}, True, ValueError, "split must be an int >= 0, got True"),
        ({"index_train_0.txt": "1e20\n"}, 0, ValueError, "row index 100000000000000000000 out"),
        ({"data.txt": "1,2,3\n4,5,6\n"}, 0, ValueError,
         "data.txt line 1: values are separated by commas; expected whitespace-separated"),
        ({"data.txt": "1;2;3\n"}, 0, ValueError, "data.txt line 1: values are separated by semi"),
        ({"n_splits.txt": "2 3\n"}, 0, ValueError, "n_splits.txt: expected a single integer"),
    ],
)
def test_uci_errors(tmp_path, overrides, split, error, match):
    folder = write_uci(tmp_path / "bad", uci_files(overrides))
    with pytest.raises(error, match=match):
        load_uci_split(folder, split)


def test_uci_split_accepts_numpy_int(tmp_path):
    folder = write_uci(tmp_path / "ok", uci_files())
    split = load_uci_split(folder, np.int64(1))
    assert split.y_test.tolist() == [10.0, 20.0]  # index_test_1.txt holds rows 0 and 1


@pytest.mark.parametrize(
    "name, content, match",
    [
        ("data.txt", gzip.compress(DATA_TXT.encode()), "data.txt is not a UTF-8 text file: it is "
         r"gzipped\? decompress it first"),
        ("data.txt", b"1 2 3\n4 5 \xe9\n", r"data.txt is not a UTF-8 text file: byte 0xe9 at "
         "offset 10"),
        ("index_train_0.txt", "0\n1\n".encode("utf-16"), "index_train_0.txt is not a UTF-8 "
         "text file: it is UTF-16 encoded"),
        ("n_splits.txt", b"\xff\n", "n_splits.txt is not a UTF-8 text file"),
    ],
    ids=["gzip", "latin-1", "utf-16", "binary"],
)
def test_uci_undecodable_files_are_named(tmp_path, name, content, match):
    folder = write_uci(tmp_path / "bad", uci_files())
    (folder / name).write_bytes(content)
    with pytest.raises(ValueError, match=match):
        load_uci_split(folder, 0)


def test_uci_reads_files_with_a_utf8_bom(tmp_path):
    folder = write_uci(tmp_path / "bom", uci_files())
    for name in ("data.txt", "index_features.txt", "index_train_0.txt"):
        (folder / name).write_bytes(b"\xef\xbb\xbf" + (folder / name).read_bytes())
    split = load_uci_split(folder, 0)
    assert split.x_train[0].tolist() == [1.0, 2.0] and split.y_train.tolist() == [10.0, 20.0, 30.0]


def test_uci_missing_folder(tmp_path):
    for call in (lambda f: load_uci_split(f, 0), num_splits, uci_protocol):
        with pytest.raises(FileNotFoundError, match="UCI data folder not found"):
            call(tmp_path / "nope")


def test_uci_no_splits_at_all(tmp_path):
    folder = write_uci(tmp_path / "empty", {"data.txt": DATA_TXT})
    with pytest.raises(FileNotFoundError, match="no n_splits.txt and no index_train_K.txt"):
        num_splits(folder)


def test_real_boston_housing_split():
    folder = DATA_DIR / "uci" / "bostonHousing"
    split = load_uci_split(folder, 0)
    assert split.x_train.shape[1] == split.x_test.shape[1] == 13
    assert split.x_train.shape[0] + split.x_test.shape[0] == 506
    assert split.y_train.shape == split.x_train.shape[:1]
    assert uci_protocol(folder) == UCIProtocol(n_splits=20, n_hidden=50, n_epochs=40)
    # median house values in $1000s lie in [5, 50]
    y = torch.cat([split.y_train, split.y_test])
    assert y.min() == 5.0 and y.max() == 50.0


# --------------------------------------------------------------------------- IDX files

IDX_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C}
IDX_CODES.update({np.float32: 0x0D, np.float64: 0x0E})


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode an array as IDX: 0, 0, dtype code, ndim, big-endian dims, big-endian payload."""
    header = struct.pack(">BBBB", 0, 0, IDX_CODES[array.dtype.type], array.ndim)
    dims = struct.pack(f">{array.ndim}I", *array.shape)
    return header + dims + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    payload = idx_bytes(array)
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", list(IDX_CODES))
def test_read_idx_round_trip(tmp_path, dtype, gz):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    if dtype == np.uint8:
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4) * 10
    tensor = read_idx(write_idx(tmp_path / "a.idx", array, gz=gz))
    assert tuple(tensor.shape) == (2, 3, 4)
    np.testing.assert_array_equal(tensor.numpy(), array)
    assert tensor.numpy().dtype == np.dtype(dtype)


def test_read_idx_detects_gzip_by_magic_not_extension(tmp_path):
    array = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    gz_named_raw = write_idx(tmp_path / "raw.gz", array, gz=False)
    raw_named_gz = write_idx(tmp_path / "compressed.idx", array, gz=True)
    for path in (gz_named_raw, raw_named_gz):
        assert read_idx(path).tolist() == [3, 1, 4, 1, 5]


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_truncated_payload(tmp_path, gz):
    payload = idx_bytes(np.zeros((2, 3), dtype=np.int32))[:-5]  # 24 payload bytes -> 19
    path = tmp_path / "cut.idx"
    path.write_bytes(gzip.compress(payload) if gz else payload)
    with pytest.raises(ValueError, match=r"cut.idx: payload has 19 bytes .* need 24 bytes"):
        read_idx(path)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"\x01\x02\x08\x01\x00\x00\x00\x01\x07", "bad magic number 01020801"),
        (b"", "bad magic number empty"),
        (b"\x00\x00\x0a\x01\x00\x00\x00\x01\x07", "unknown IDX dtype code 0x0a"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x01", "truncated header, expected 16 bytes, got 8"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x01\x07\x07", "payload has 2 bytes"),
        (gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x01\x07")[:-6], "corrupt gzip stream"),
    ],
)
def test_read_idx_errors(tmp_path, content, match):
    path = tmp_path / "bad.idx"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        read_idx(path)


def write_image_set(root: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool):
    suffix = ".gz" if gz else ""
    write_idx(root / f"{prefix}-images-idx3-ubyte{suffix}", images, gz=gz)
    write_idx(root / f"{prefix}-labels-idx1-ubyte{suffix}", labels, gz=gz)


@pytest.fixture
def fake_mnist(tmp_path):
    """Train set gzipped (Debian naming), test set uncompressed (plain MNIST naming)."""
    images = np.array([[[0, 255], [51, 102]], [[255, 255], [0, 0]], [[1, 2], [3, 4]]], np.uint8)
    write_image_set(tmp_path, "train", images, np.array([7, 0, 9], np.uint8), gz=True)
    write_image_set(tmp_path, "t10k", images[:2], np.array([1, 2], np.uint8), gz=False)
    return tmp_path


def test_load_fake_fashion_mnist(fake_mnist):
    train = load_fashion_mnist(fake_mnist, split="train")
    assert train.images.shape == (3, 4) and train.images.dtype == torch.float32
    torch.testing.assert_close(train.images[0], torch.tensor([0.0, 1.0, 0.2, 0.4]))
    assert train.labels.dtype == torch.int64 and train.labels.tolist() == [7, 0, 9]
    test = load_fashion_mnist(str(fake_mnist), split="test", flatten=False, scale=False)
    assert test.images.shape == (2, 2, 2) and test.images.dtype == torch.float32
    assert test.images[0].tolist() == [[0.0, 255.0], [51.0, 102.0]]
    assert test.labels.tolist() == [1, 2]


def test_fashion_mnist_errors(tmp_path, fake_mnist):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path / "missing")
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'val'"):
        load_fashion_mnist(fake_mnist, split="val")
    with pytest.raises(ValueError, match=r"split must be 'train' or 'test', got \['train'\]"):
        load_fashion_mnist(fake_mnist, split=["train"])
    (fake_mnist / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(
        FileNotFoundError, match="neither t10k-labels-idx1-ubyte.gz nor t10k-labels-idx1-ubyte"
    ):
        load_fashion_mnist(fake_mnist, split="test")
    write_idx(fake_mnist / "t10k-labels-idx1-ubyte", np.array([1, 2, 3], np.uint8))
    with pytest.raises(ValueError, match=r"images \(2, 2, 2\) and labels \(3,\) do not match"):
        load_fashion_mnist(fake_mnist, split="test")


@pytest.mark.parametrize(
    "labels, match",
    [
        (np.array([1, 200], np.uint8), r"labels must be class numbers 0..9, found values from 1 "
         "to 200"),
        (np.array([-1, 3], np.int32), "labels must be class numbers 0..9, found values from -1"),
        (np.array([1.0, 2.0], np.float32), "labels must be integers, got torch.float32"),
    ],
)
def test_fashion_mnist_bad_labels(fake_mnist, labels, match):
    write_idx(fake_mnist / "t10k-labels-idx1-ubyte", labels)
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte: " + match):
        load_fashion_mnist(fake_mnist, split="test")


def test_fashion_mnist_nan_images(fake_mnist):
    write_idx(fake_mnist / "t10k-images-idx3-ubyte", np.full((2, 2, 2), np.nan, np.float32))
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte: images contain NaN"):
        load_fashion_mnist(fake_mnist, split="test")


def test_fashion_mnist_root_expands_user(fake_mnist, monkeypatch):
    monkeypatch.setenv("HOME", str(fake_mnist.parent))
    data = load_fashion_mnist(f"~/{fake_mnist.name}", split="test")
    assert data.labels.tolist() == [1, 2]


def test_real_fashion_mnist_test_set():
    data = load_fashion_mnist(DEFAULT_FASHION_MNIST_ROOT, split="test")
    assert data.images.shape == (10000, 784) and data.images.dtype == torch.float32
    assert data.images.min() == 0.0 and data.images.max() == 1.0
    assert data.labels.dtype == torch.int64
    assert torch.bincount(data.labels).tolist() == [1000] * 10  # balanced classes 0..9
    assert load_fashion_mnist(split="test").labels.equal(data.labels)  # root=None → default


# --------------------------------------------------------------------------- mushroom text files

MUSHROOM_ROW = "p,x,s,n,t,p,f,c,n,k,e,e,s,s,w,w,p,w,o,p,k,s,u\n"


def test_mushroom_reads_a_utf8_bom(tmp_path):
    path = tmp_path / "bom.data"
    path.write_bytes(b"\xef\xbb\xbf" + (MUSHROOM_ROW + MUSHROOM_ROW.replace("p", "e", 1)).encode())
    data = load_mushroom(path)
    assert data.edible.tolist() == [False, True]
    assert data.features.sum(1).tolist() == [22.0, 22.0]


@pytest.mark.parametrize(
    "content, match",
    [
        (gzip.compress(MUSHROOM_ROW.encode()), r"it is gzipped\? decompress it first"),
        (MUSHROOM_ROW.encode("utf-16"), "it is UTF-16 encoded; save it as UTF-8"),
        (MUSHROOM_ROW.encode()[:-3] + b"\xe9\n", "byte 0xe9 at offset 43 is not UTF-8"),
    ],
    ids=["gzip", "utf-16", "latin-1"],
)
def test_mushroom_undecodable_file_is_named(tmp_path, content, match):
    path = tmp_path / "agaricus-lepiota.data"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="lepiota.data is not a UTF-8 text file: " + match):
        load_mushroom(path)
