"""The run-folder lock: exclusive while held, removed after, stale locks taken over."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from pyro_bbb.runlock import LOCK_NAME, RunFolderLocked, run_folder_lock


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_lock_is_exclusive_and_removed_on_exit(tmp_path):
    with run_folder_lock(tmp_path) as path:
        owner = json.loads(path.read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        with pytest.raises(RunFolderLocked, match=f"in use by process {os.getpid()}"):
            with run_folder_lock(tmp_path):
                pass
        assert path.exists()  # the refused attempt did not remove the holder's lock
    assert not (tmp_path / LOCK_NAME).exists()


def test_lock_is_released_when_the_block_raises(tmp_path):
    with pytest.raises(ZeroDivisionError), run_folder_lock(tmp_path):
        raise ZeroDivisionError
    assert not (tmp_path / LOCK_NAME).exists()


@pytest.mark.parametrize("content", ["stale", "garbage", ""])
def test_stale_or_unreadable_lock_is_taken_over(tmp_path, content):
    lock = tmp_path / LOCK_NAME
    if content == "stale":
        content = json.dumps({"host": socket.gethostname(), "pid": _dead_pid(), "started": "x"})
    lock.write_text(content)
    with run_folder_lock(tmp_path):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()


def test_lock_from_another_host_is_refused(tmp_path):
    lock = tmp_path / LOCK_NAME
    lock.write_text(json.dumps({"host": "elsewhere", "pid": 1, "started": "then"}))
    with pytest.raises(RunFolderLocked, match="process 1 on elsewhere.*delete"):
        with run_folder_lock(tmp_path):
            pass
    assert lock.exists()
