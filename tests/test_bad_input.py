"""One table of bad inputs, each met by the pyro-bbb command with a clear error and no lost file.

Every case runs the real command line (`main`), expects exit status 2, an ``error:`` line that
names the problem, no traceback, and leaves a sentinel run folder and every input untouched.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from pyro_bbb import BayesianMLP, Gaussian, MeanFieldGuide
from pyro_bbb.checkpoint import save_checkpoint
from pyro_bbb.cli import main
from pyro_bbb.config import config_to_dict, load_config

TOY = """
name = "bad"
seed = 0
[data]
kind = "toy_regression"
num_points = 20
num_test = 10
[network]
hidden_sizes = [4]
[likelihood]
kind = "gaussian"
noise = 0.1
[training]
epochs = 2
batch_size = 10
device = "cpu"
[evaluation]
num_samples = 5
"""


def spec_with(old: str, new: str) -> str:
    assert old in TOY
    return TOY.replace(old, new)


def uci_spec(folder: Path) -> str:
    data = f'[data]\nkind = "uci"\nfolder = "{folder}"\nsplit = 0\n'
    start, end = TOY.index("[data]"), TOY.index("[network]")
    return TOY[:start] + data + TOY[end:]


def uci_folder(root: Path, *, rows=None, train="0\n1\n2\n3\n", test="4\n5\n") -> Path:
    folder = root / "uci"
    folder.mkdir()
    rows = rows if rows is not None else [f"{i} {2 * i} {i % 3}" for i in range(6)]
    (folder / "data.txt").write_text("\n".join(rows) + "\n")
    (folder / "index_features.txt").write_text("0\n1\n")
    (folder / "index_target.txt").write_text("2\n")
    (folder / "index_train_0.txt").write_text(train)
    (folder / "index_test_0.txt").write_text(test)
    (folder / "n_splits.txt").write_text("1\n")
    return folder


def idx_root(root: Path, truncate: bool) -> Path:
    folder = root / "fm"
    folder.mkdir()
    for split, n in (("train", 4), ("t10k", 3)):
        images = struct.pack(">IIII", 0x803, n, 28, 28) + bytes(n * 784 - (5 if truncate else 0))
        labels = struct.pack(">II", 0x801, n) + bytes(n)
        (folder / f"{split}-images-idx3-ubyte.gz").write_bytes(gzip.compress(images))
        (folder / f"{split}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    return folder


def fm_spec(root: Path) -> str:
    data = f'[data]\nkind = "fashion_mnist"\nroot = "{root}"\n'
    start, end = TOY.index("[data]"), TOY.index("[network]")
    likelihood = '[likelihood]\nkind = "categorical"\nnum_classes = 10\n'
    body = TOY[:start] + data + TOY[end:]
    start, end = body.index("[likelihood]"), body.index("[training]")
    return body[:start] + likelihood + body[end:]


class Bomb:
    """Unpickling this would create the file ``target``."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (Path.touch, (self.target,))


def checkpoint(root: Path, sizes=(1, 4, 1)) -> Path:
    model = BayesianMLP(list(sizes), Gaussian(noise=0.1))
    return save_checkpoint(root / f"ckpt-{'-'.join(map(str, sizes))}.pt", model,
                           MeanFieldGuide(model))


def old_run(root: Path) -> Path:
    """A run folder whose checkpoint's saved spec has a key this pyro_bbb does not know."""
    spec = config_to_dict(load_config(write(root, "s.toml", TOY)))
    spec["training"]["old_key"] = 1
    model = BayesianMLP([1, 4, 1], Gaussian(noise=0.1))
    folder = root / "old-run"
    folder.mkdir()
    save_checkpoint(folder / "checkpoint.pt", model, MeanFieldGuide(model), {"spec": spec})
    return folder


def npy(root: Path, name: str, array: np.ndarray) -> Path:
    np.save(root / name, array)
    return root / name


def write(root: Path, name: str, text: str | bytes) -> Path:
    path = root / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def predict_csv(root: Path, text: str | bytes, *options: str, sizes=(1, 4, 1)) -> list:
    """argv of ``pyro-bbb predict`` on a fresh checkpoint with x.csv holding ``text``."""
    return ["predict", checkpoint(root, sizes), "--input", write(root, "x.csv", text), *options]


# each case: (id, builder(root) -> argv, expected phrase in the error message)
CASES = [
    ("config typo", lambda r: ["run", write(r, "s.toml", spec_with("epochs = 2", "epoch = 2"))],
     "epochs"),
    ("config wrong type",
     lambda r: ["run", write(r, "s.toml", spec_with("epochs = 2", 'epochs = "two"'))],
     "training.epochs"),
    ("zero epochs", lambda r: ["run", write(r, "s.toml", spec_with("epochs = 2", "epochs = 0"))],
     "epochs"),
    ("negative scale", lambda r: ["run", write(r, "s.toml", TOY + '[prior]\nkind = "gaussian"\n'
                                               "sigma = -1.0\n")], "sigma"),
    ("pi outside (0,1)", lambda r: ["run", write(r, "s.toml", TOY + '[prior]\nkind = '
                                                 '"scale_mixture"\npi = 1.5\nsigma1 = 1.0\n'
                                                 "sigma2 = 0.01\n")], "pi"),
    ("unknown activation",
     lambda r: ["run", write(r, "s.toml", spec_with("hidden_sizes = [4]",
                                                    'hidden_sizes = [4]\nactivation = "swish"'))],
     "swish"),
    ("unreadable TOML", lambda r: ["run", write(r, "s.toml", "[training\nepochs = 2")], "toml"),
    ("run on a comparison spec",
     lambda r: ["run", write(r, "s.toml", TOY + "[compare]\nmethods = ['delta']\n")],
     "is a comparison spec (it has a [compare] table): run it with `pyro-bbb compare"),
    ("missing spec file", lambda r: ["run", r / "nope.toml"], "nope.toml"),
    ("missing UCI folder", lambda r: ["run", write(r, "s.toml", uci_spec(r / "missing"))],
     "missing"),
    ("UCI duplicated index",
     lambda r: ["run", write(r, "s.toml", uci_spec(uci_folder(r, train="0\n1\n1\n2\n")))],
     "duplicate"),
    ("UCI index out of range",
     lambda r: ["run", write(r, "s.toml", uci_spec(uci_folder(r, test="4\n60\n")))],
     "range"),
    ("UCI ragged data row",
     lambda r: ["run", write(r, "s.toml", uci_spec(uci_folder(
         r, rows=["0 0 0", "1 2", "2 4 2", "3 6 0", "4 8 1", "5 10 2"])))], "line"),
    ("UCI empty split", lambda r: ["run", write(r, "s.toml", uci_spec(uci_folder(r, test="")))],
     "empty"),
    ("UCI non-numeric entry",
     lambda r: ["run", write(r, "s.toml", uci_spec(uci_folder(
         r, rows=["0 0 0", "1 x 1", "2 4 2", "3 6 0", "4 8 1", "5 10 2"])))], "line"),
    ("missing Fashion-MNIST directory",
     lambda r: ["run", write(r, "s.toml", fm_spec(r / "no-fm"))], "dataset-fashion-mnist"),
    ("truncated IDX file",
     lambda r: ["run", write(r, "s.toml", fm_spec(idx_root(r, truncate=True)))], "bytes"),
    ("corrupt checkpoint", lambda r: ["evaluate", write(r, "c.pt", b"PK\x03\x04garbage")],
     "c.pt"),
    ("truncated checkpoint",
     lambda r: ["evaluate", write(r, "t.pt", checkpoint(r).read_bytes()[:300])], "t.pt"),
    ("empty checkpoint", lambda r: ["evaluate", write(r, "e.pt", b"")], "e.pt"),
    ("pickle bomb checkpoint",
     lambda r: ["evaluate", write(r, "bomb.pt", pickle.dumps(Bomb(r / "PWNED")))], "bomb.pt"),
    ("wrong feature count at predict",
     lambda r: predict_csv(r, "1,2\n3,4\n"), "features"),
    ("NaN features at predict",
     lambda r: predict_csv(r, "1\nnan\n"), "NaN"),
    ("ragged CSV at predict",
     lambda r: predict_csv(r, "1,2\n3\n", sizes=(2, 4, 1)), "x.csv"),
    ("non-numeric CSV at predict",
     lambda r: predict_csv(r, "a\nb\n"), "x.csv"),
    ("missing input file", lambda r: ["predict", checkpoint(r), "--input", r / "none.csv"],
     "none.csv"),
    ("infinite features at predict",
     lambda r: predict_csv(r, "1\ninf\n"), "infinite"),
    ("string dtype at predict",
     lambda r: ["predict", checkpoint(r), "--input", npy(r, "s.npy", np.array(["a", "b"]))],
     "numeric"),
    ("complex dtype at predict",
     lambda r: ["predict", checkpoint(r), "--input", npy(r, "c.npy", np.array([[1j], [2j]]))],
     "real-valued"),
    ("column-number header at predict (pandas)",
     lambda r: predict_csv(r, "0\n0.5\n1\n"), "--header yes or --header no"),
    ("non-UTF-8 CSV at predict",
     lambda r: predict_csv(r, b"\xff\xfe1\x00\n"), "x.csv is not UTF-8"),
    ("semicolon CSV at predict",
     lambda r: predict_csv(r, "0.1;0.2\n"),
     "separated by semicolons; predict reads comma-separated values"),
    ("header-only CSV at predict",
     lambda r: predict_csv(r, "x\n"), "no data rows"),
    ("explicit header leaves no rows",
     lambda r: predict_csv(r, "1\n", "--header", "yes"), "no data rows"),
    ("predict output onto its input",
     lambda r: predict_csv(r, "1\n", "--output", r / "x.csv"), "is the input"),
    ("predict output onto its checkpoint",
     lambda r: predict_csv(r, "1\n", "--output", r / "." / "ckpt-1-4-1.pt"), "is the checkpoint"),
    ("evaluate output onto its checkpoint",
     lambda r: ["evaluate", checkpoint(r), "--output", r / "ckpt-1-4-1.pt"], "is the checkpoint"),
    ("invalid saved spec at evaluate",
     lambda r: ["evaluate", old_run(r) / "checkpoint.pt"],
     "checkpoint.pt: its saved spec is not valid here: unknown key 'old_key'"),
    ("invalid saved spec at figures", lambda r: ["figures", old_run(r)],
     "checkpoint.pt: its saved spec is not valid here"),
    ("invalid saved spec at diagnose", lambda r: ["diagnose", old_run(r)],
     "checkpoint.pt: its saved spec is not valid here"),
    ("checkpoint of another architecture",
     lambda r: ["evaluate", checkpoint(r, (1, 8, 1)), "--spec", write(r, "s.toml", TOY)],
     "does not match"),
]


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_error_and_loses_nothing(case, tmp_path, capsys, monkeypatch):
    name, build, phrase = case
    monkeypatch.chdir(tmp_path)
    sentinel = tmp_path / "runs" / "earlier-run"
    sentinel.mkdir(parents=True)
    (sentinel / "checkpoint.pt").write_bytes(b"an earlier run's work")
    argv = [str(a) for a in build(tmp_path)]
    if argv[0] == "run":
        argv += ["--out", str(tmp_path / "runs" / "new"), "--no-progress"]
    before = snapshot(tmp_path)
    assert main(argv) == 2, name
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err, err
    assert phrase.lower() in err.lower(), err
    assert snapshot(tmp_path) == before  # nothing overwritten, removed or half-written
    assert not (tmp_path / "PWNED").exists()
    assert not (tmp_path / "runs" / "new").exists()


def test_table_is_large_enough():
    assert len(CASES) >= 20


def test_running_into_an_existing_folder_keeps_it(tmp_path, capsys):
    spec = write(tmp_path, "s.toml", TOY)
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"precious")
    assert main(["run", str(spec), "--out", str(out), "--no-progress"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "checkpoint.pt").read_bytes() == b"precious"
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt"]
