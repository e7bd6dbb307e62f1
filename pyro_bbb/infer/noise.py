"""Standard normal noise for the training step, and the CPU allocator setting it relies on.

``standard_normal(shape, like)`` fills a tensor with N(0, 1) draws. Torch's CPU generator is
sequential (one Mersenne-Twister stream, about 2.6 ns per float here, single-threaded however
many threads torch uses), so drawing the 0.5 M weights of a 784-400-400-10 network costs about
as much as half a deterministic training step. For large CPU tensors and ≥ 2 torch threads the
draw is split in two halves, each filled by its own generator on its own thread; the two
generators are seeded from the global generator, so ``pyro.set_rng_seed`` still fixes every draw
and a checkpoint's RNG state still resumes the same stream. Small tensors, GPUs and one-thread
runs use ``Tensor.normal_`` on the global generator (the draws Pyro's ``rsample`` would make).

``retain_freed_memory()`` asks glibc to keep freed memory in the process (``mallopt``: trim
threshold 1 GiB, mmap threshold 32 MiB) instead of returning each freed multi-megabyte tensor to
the operating system; otherwise every new tensor of that size page-faults its memory back in,
which costs more than the arithmetic on it. Process-wide, idempotent, no-op off glibc; set
``PYRO_BBB_MALLOC_TUNING=0`` to leave the allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import torch

__all__ = ["standard_normal", "retain_freed_memory", "PARALLEL_MIN_NUMEL"]

PARALLEL_MIN_NUMEL = 1 << 16

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_TRIM_BYTES, _MMAP_BYTES = 1 << 30, 32 << 20


class _Worker:
    """One background thread and two private generators, rebuilt after a fork."""

    def __init__(self):
        self.pid = os.getpid()
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="pyro_bbb-noise")
        self.generators = (torch.Generator(), torch.Generator())
        self.lock = threading.Lock()


_worker: _Worker | None = None
_worker_lock = threading.Lock()


def _get_worker() -> _Worker:
    global _worker
    with _worker_lock:
        if _worker is None or _worker.pid != os.getpid():
            _worker = _Worker()
        return _worker


def standard_normal(shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """A tensor of ``shape`` with i.i.d. N(0, 1) entries, ``like``'s dtype and device."""
    out = torch.empty(shape, dtype=like.dtype, device=like.device)
    if (out.device.type != "cpu" or out.numel() < PARALLEL_MIN_NUMEL
            or torch.get_num_threads() < 2):
        return out.normal_()
    worker = _get_worker()
    seeds = torch.randint(0, 2**62, (2,)).tolist()  # consumes the global stream
    flat = out.view(-1)
    half = flat.numel() // 2
    with worker.lock:  # the private generators serve one draw at a time
        first, second = worker.generators
        first.manual_seed(seeds[0])
        second.manual_seed(seeds[1])
        pending = worker.pool.submit(flat[:half].normal_, generator=first)
        flat[half:].normal_(generator=second)
        pending.result()
    return out


_tuned = False


def retain_freed_memory() -> bool:
    """Keep freed heap memory in the process (glibc ``mallopt``); True when applied."""
    global _tuned
    if _tuned:
        return True
    if os.environ.get("PYRO_BBB_MALLOC_TUNING", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    _tuned = bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_BYTES)) and bool(
        mallopt(_M_MMAP_THRESHOLD, _MMAP_BYTES))
    return _tuned
