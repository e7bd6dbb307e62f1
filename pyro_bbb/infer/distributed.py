"""Data-parallel training on torch.distributed: process-group setup and gradient averaging.

``fit(..., distributed="auto")`` uses these when it runs under ``torchrun`` (or inside an
initialised process group). Every rank holds the same guide; per step, rank r draws its own
weight noise ε_r and evaluates its shard B_r of the global minibatch G (|G| = n, W ranks)

    L_r = (N·W/n) Σ_{j∈B_r} −log p(y_j|x_j, w_r) + c_i · [log q(w_r|θ) − log p(w_r)]

(N·W/n = N/B when the W shards all hold B = n/W points), and the gradients are averaged:

    g = (1/W) Σ_r ∇L_r,   E[g] = ∇(−ELBO) estimated with global batch n and W noise draws,
    (1/W) Σ_r (N·W/n) Σ_{B_r} nll = (N/n) Σ_{j∈G} nll   when all w_r are equal.

So one step equals a single process with global batch n = W·B whose estimate averages W
single-sample estimates, each on its own shard. Gradients are averaged by one ``all_reduce``
of a flat buffer after ``backward`` rather than by wrapping the guide in
DistributedDataParallel: DDP's reducer is driven by the wrapped module's ``forward``, but the
step engines never call the guide's forward (FastELBO reads ``guide.locs()``/``scales()``; the
Pyro engine runs the guide under poutine traces), and DDP would buy nothing here: the guide is a
few flat tensors, so one bucket is what DDP would send anyway. All ranks receive the same
reduced buffer and run the same deterministic optimiser, so parameters stay identical after
every step (they start identical: ``broadcast_module`` copies rank 0's at the start).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

__all__ = [
    "DistributedInfo",
    "GradientAverager",
    "broadcast_module",
    "broadcast_object",
    "env_requests_distributed",
    "get_info",
    "is_main_process",
    "rank_seed",
    "setup_distributed",
]

_OBJECT_GROUP = None


@dataclass(frozen=True)
class DistributedInfo:
    """This process's place in the process group."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_requests_distributed() -> bool:
    """True when torchrun (or a similar launcher) set RANK, WORLD_SIZE and MASTER_ADDR."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def get_info() -> DistributedInfo | None:
    """The rank and world size of the initialised default group, None when there is none."""
    if not (dist.is_available() and dist.is_initialized()):
        return None
    local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    return DistributedInfo(dist.get_rank(), dist.get_world_size(), local)


def is_main_process() -> bool:
    """True outside distributed runs and on rank 0 (the rank that prints and writes files)."""
    info = get_info()
    if info is not None:
        return info.is_main
    return os.environ.get("RANK", "0") == "0"


def setup_distributed(mode: bool | str = "auto", timeout: float = 600.0
                      ) -> DistributedInfo | None:
    """The process group to train in, initialising it from torchrun's environment if needed.

    ``mode=False``: None (train alone). ``"auto"``: the existing default group, else one made
    from the environment when torchrun set it, else None. ``True``: as "auto" but an error when
    there is no group and no environment. The backend is gloo, plus NCCL for CUDA tensors when
    CUDA is available ("cpu:gloo,cuda:nccl"). Idempotent.
    """
    global _OBJECT_GROUP
    if mode is False:
        return None
    if mode not in (True, "auto"):
        raise ValueError(f"distributed must be 'auto', True or False, got {mode!r}")
    if not dist.is_available():
        if mode is True:
            raise RuntimeError("distributed=True but torch.distributed is not available")
        return None
    if not dist.is_initialized():
        if not env_requests_distributed():
            if mode is True:
                raise RuntimeError("distributed=True but no process group is initialised and no "
                                   "torchrun environment (RANK, WORLD_SIZE, MASTER_ADDR, "
                                   "MASTER_PORT) is set")
            return None
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout))
    if _OBJECT_GROUP is None:
        backend = dist.get_backend()
        _OBJECT_GROUP = dist.group.WORLD if backend == "gloo" else dist.new_group(backend="gloo")
    return get_info()


def broadcast_object(value, src: int = 0):
    """``value`` from rank ``src`` on every rank (through a CPU gloo group)."""
    box = [value]
    dist.broadcast_object_list(box, src=src, group=_OBJECT_GROUP)
    return box[0]


def broadcast_module(module: torch.nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers into ``module`` on every rank."""
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=src)


def rank_seed(seed: int, rank: int, step: int = 0) -> int:
    """A seed for rank ``rank``'s noise stream: ``seed`` itself for rank 0 at step 0 (so rank 0
    draws what a single process would), otherwise derived from (seed, rank, step)."""
    if rank == 0 and step == 0:
        return seed
    # 32 bits: NumPy's global seed (set by pyro.set_rng_seed) must fit in them
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1)[0])


class GradientAverager:
    """``averager(flag)`` replaces every parameter's ``.grad`` by its mean over the ranks with one
    all_reduce of a flat buffer, and returns whether ``flag`` was True on any rank (the flag
    travels in the same buffer, so agreeing to stop costs no extra collective; ``flag=None``
    skips reading it back, which on a GPU would be a host sync)."""

    def __init__(self, params: list[torch.Tensor], world_size: int):
        self.params, self.world_size = params, world_size

    def __call__(self, flag: bool | None = None) -> bool:
        grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in self.params]
        ref = grads[0]
        flag_value = torch.full((1,), float(bool(flag)), dtype=ref.dtype, device=ref.device)
        buffer = torch.cat([g.reshape(-1) for g in grads] + [flag_value])
        dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
        buffer /= self.world_size
        offset = 0
        for p, g in zip(self.params, grads, strict=True):
            n = g.numel()
            p.grad = buffer[offset:offset + n].view_as(g)
            offset += n
        return flag is not None and bool(buffer[-1] > 0)
