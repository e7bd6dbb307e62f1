"""A CPU stand-in for ``CudaGraph`` (a ``CapturedStep``'s recorder) that enforces what a real
CUDA graph assumes of the step it records.

A real capture records kernels without running them and a replay re-runs them on the recorded
memory with the recorded scalar arguments. ``EmulatedGraph`` runs the body on the CPU under a
``TorchDispatchMode`` that sees every aten op:

- capture: fails on a host sync (``.item()``/``float()``/``bool()`` of a tensor, ``nonzero``,
  boolean masks: reads that a capture cannot record), records each op's name, its non-tensor
  arguments and the storage of every tensor argument that existed before the body (parameters,
  optimizer state, static buffers), then puts parameters, gradients, optimizer state and the
  RNG back as they were (a capture changes nothing);
- replay: runs the body again (gradients from None, as the recorded backward created them)
  and fails where an op, a Python-number argument (a value the graph
  would have baked in) or the storage of a pre-existing tensor (memory the graph would not read)
  differs from the recording; the result is copied into the captured output, whose memory a
  real replay rewrites.

So a fit through the emulator equals the eager fit bit for bit exactly when the captured step is
replayable, which is what tests/test_captured.py checks on the CPU.
"""

from __future__ import annotations

import contextlib

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

_HOST_SYNCS = {"aten::_local_scalar_dense", "aten::nonzero", "aten::masked_select",
               "aten::is_nonzero", "aten::equal", "aten::unique_dim", "aten::_unique2"}


class HostSyncInCapture(RuntimeError):
    """The body read a device value on the host: a CUDA graph cannot record that."""


class ReplayMismatch(AssertionError):
    """A replay would not do what the recording does."""


class _Recorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops: list[tuple] = []
        self.made: set[int] = set()

    def _storage(self, t: torch.Tensor) -> int:
        return t.untyped_storage().data_ptr()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.name()
        if name.startswith("profiler::"):  # torch.optim's record_function markers
            return func(*args, **kwargs)
        if name in _HOST_SYNCS:
            raise HostSyncInCapture(f"{name} inside the captured step")
        record, inputs = [name], set()
        for leaf in tree_leaves((args, kwargs)):
            if isinstance(leaf, torch.Tensor):
                ptr = self._storage(leaf)
                inputs.add(ptr)
                record.append(("made",) if ptr in self.made else ("existing", ptr))
            elif isinstance(leaf, torch.Generator):  # a new Python wrapper each call
                record.append(("generator", leaf.device.type))
            else:
                record.append(repr(leaf))
        out = func(*args, **kwargs)
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor) and self._storage(leaf) not in inputs:
                self.made.add(self._storage(leaf))
        self.ops.append(tuple(record))
        return out


class EmulatedGraph:
    """``graph_factory`` for ``CapturedStep`` on the CPU (see the module docstring)."""

    def __init__(self, step):
        self.step = step

    def _state(self) -> list[torch.Tensor]:
        opt = self.step.optimizer
        params = [p for group in opt.param_groups for p in group["params"]]
        state = [v for p in params for v in opt.state.get(p, {}).values() if torch.is_tensor(v)]
        return params + [p.grad for p in params if p.grad is not None] + state

    def capture(self, body):
        tensors = self._state()
        saved = [t.detach().clone() for t in tensors]
        rng = torch.get_rng_state()
        with _Recorder() as recorder:
            out = body()
        with torch.no_grad():
            for t, value in zip(tensors, saved, strict=True):
                t.copy_(value)
        torch.set_rng_state(rng)
        self.body, self.ops, self.out = body, recorder.ops, out
        return out

    def replay(self) -> None:
        for group in self.step.optimizer.param_groups:  # the recorded backward created .grad;
            for p in group["params"]:  # replayed, it writes the gradient afresh
                p.grad = None
        with _Recorder() as recorder:
            result = self.body()
        for i, (want, got) in enumerate(zip(self.ops, recorder.ops, strict=False)):
            if want != got:
                raise ReplayMismatch(f"op {i} differs from the recording: {got} vs {want}")
        if len(self.ops) != len(recorder.ops):
            raise ReplayMismatch(f"{len(recorder.ops)} ops replayed, {len(self.ops)} recorded")
        self.out.copy_(result)

    def warmup(self):
        return contextlib.nullcontext()
