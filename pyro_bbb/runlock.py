"""A lock file that keeps two processes from training into the same run folder.

``run_folder_lock(folder)`` creates ``folder/.lock`` atomically (O_CREAT | O_EXCL) holding the
owner's host, pid and start time, and removes it on exit. A second process gets
``RunFolderLocked`` naming the owner. A lock left behind by a process that no longer runs on this
host (killed with SIGKILL, a crashed machine) is stale and taken over; one from another host
cannot be checked and is refused, with the path to delete.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["LOCK_NAME", "RunFolderLocked", "run_folder_lock"]

LOCK_NAME = ".lock"


class RunFolderLocked(FileExistsError):
    """Another live process is training into this run folder."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _owner(path: Path) -> dict | None:
    """The lock's owner record, or None when the file is unreadable or not ours to parse."""
    try:
        owner = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


def _try_create(path: Path, record: dict) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        json.dump(record, handle)
    return True


@contextlib.contextmanager
def run_folder_lock(folder: str | os.PathLike) -> Iterator[Path]:
    """Hold ``folder/.lock`` for the duration of the block (see the module docstring)."""
    path = Path(folder) / LOCK_NAME
    host = socket.gethostname()
    record = {"host": host, "pid": os.getpid(),
              "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if not _try_create(path, record):
        owner = _owner(path)
        same_host = owner is not None and owner.get("host") == host
        pid = owner.get("pid") if owner is not None else None
        if owner is not None and not (same_host and isinstance(pid, int) and not _alive(pid)):
            where = f"process {pid} on {owner.get('host')}, since {owner.get('started')}"
            raise RunFolderLocked(
                f"run folder {path.parent} is in use by {where}; two runs writing one folder "
                f"would corrupt it. If that process is gone, delete {path} and try again.")
        path.unlink(missing_ok=True)  # stale (its process is gone) or unreadable: take over
        if not _try_create(path, record):
            raise RunFolderLocked(f"run folder {path.parent} was locked by another process "
                                  f"just now ({path})")
    try:
        yield path
    finally:
        if _owner(path) == record:
            path.unlink(missing_ok=True)
