"""Every test starts clean: empty param store, validation on, seeded RNGs."""

import os
from pathlib import Path

import pyro
import pytest
import torch

# Small tensors gain nothing from two threads, and on a busy 2-core machine thread hand-offs make
# every op milliseconds slower: the suite runs single-threaded.
torch.set_num_threads(1)

# tests/gpu runs on a machine with a CUDA device (part of `make test` there, `make test-gpu`
# asks for it explicitly); elsewhere it is not collected.
collect_ignore = [] if torch.cuda.is_available() else ["gpu"]


@pytest.fixture(autouse=True)
def clean_pyro():
    pyro.clear_param_store()
    pyro.enable_validation(True)
    pyro.set_rng_seed(0)
    torch.set_default_dtype(torch.float32)
    yield
    pyro.clear_param_store()


@pytest.fixture
def shared_data() -> Path:
    """../shared/data beside the repository, or $PYRO_BBB_DATA."""
    root = os.environ.get("PYRO_BBB_DATA")
    return Path(root) if root else Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory) -> Path:
    """A finished ``pyro-bbb run models/toy_regression.toml --smoke`` folder, shared by the
    tests that draw figures from a run (they write only into subfolders of it)."""
    from pyro_bbb.cli import main

    out = tmp_path_factory.mktemp("toy") / "run"
    models = Path(__file__).resolve().parents[1] / "models"
    assert main(["run", str(models / "toy_regression.toml"), "--smoke", "--out", str(out),
                 "--no-progress"]) == 0
    return out


@pytest.fixture
def cli_error(capsys):
    """``cli_error(argv)`` runs ``pyro-bbb argv``, asserts exit status 2 and no traceback, and
    returns what it wrote to stderr."""
    from pyro_bbb.cli import main

    def run(argv) -> str:
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        return err

    return run


@pytest.fixture
def interrupt_at_call():
    """``interrupt_at_call(real, n)``: ``real``, except that its n-th call raises
    KeyboardInterrupt (a Ctrl-C at that point of a run)."""

    def wrap(real, n: int):
        calls = []

        def wrapper(*args, **kwargs):
            calls.append(1)
            if len(calls) == n:
                raise KeyboardInterrupt
            return real(*args, **kwargs)

        return wrapper

    return wrap
