"""A training step recorded once as a CUDA graph and replayed for every full minibatch.

An eager step launches a few hundred small kernels from Python; on a GPU the launches, not the
arithmetic, set the pace of a 784-1200-1200-10 network at batch 128. ``CapturedStep`` records
the whole step once into a ``torch.cuda.CUDAGraph`` and replays it:

    index ← minibatch indices,  c ← KL weight c_i          (copies into static device buffers)
    replay:  x_b, y_b = x[index], y[index]                  (data stays on the device)
             loss = data(x_b, y_b) + c · complexity         (FastELBO, noise from the graph)
             ∇ loss;  optimiser step                        (capturable Adam, lr a device tensor)
             out = (loss, data, complexity)                 (static (3,) buffer, copied per step)

A replay repeats the recorded kernels on the recorded memory, so everything that changes between
steps must be a device tensor the graph reads: the indices, c_i and the learning rate (a 0-dim
tensor that ``fit`` fills in place, so a schedule needs no new capture). No host sync may
happen inside (no ``.item()``, validation off), and the weight noise comes from the default CUDA
generator, whose Philox offset each replay advances (torch's graph-safe RNG): every replay draws
fresh noise. What a replay cannot express runs the same step eagerly: a minibatch of another size
(the last, ragged one), the ``warmup`` full steps before the capture (lazy initialisation of
cuBLAS and of the optimiser state must not be recorded), an optimiser that is not capturable.
A new optimiser (after ``fit`` recovers from divergence) or a changed hyperparameter held as a
Python number triggers a new capture. A capture that fails warns once and leaves the eager step.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable

import torch

__all__ = ["CapturedStep", "CudaGraph", "is_capturable"]


def is_capturable(optimizer: torch.optim.Optimizer) -> bool:
    """True when every parameter group of ``optimizer`` was built with ``capturable=True``."""
    return all(group.get("capturable", False) for group in optimizer.param_groups)


class CudaGraph:
    """The recorder of one ``CapturedStep``: ``capture(body)`` records ``body()`` into a new
    ``torch.cuda.CUDAGraph`` (returning its output tensors, whose memory every ``replay()``
    rewrites); ``warmup()`` is the context of the eager warm-up steps. Warm-up and capture use
    one side stream, so that the cuBLAS handle and workspace of that stream exist before the
    capture (creating them is not capturable)."""

    def __init__(self, step: CapturedStep):
        self.stream = torch.cuda.Stream(device=step.x.device)
        self.graph: torch.cuda.CUDAGraph | None = None

    @contextlib.contextmanager
    def warmup(self):
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            yield
        torch.cuda.current_stream().wait_stream(self.stream)

    def capture(self, body: Callable[[], torch.Tensor]) -> torch.Tensor:
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, stream=self.stream):
            return body()

    def replay(self) -> None:
        self.graph.replay()


class CapturedStep:
    """``step(idx, kl_weight) -> (3,)`` tensor (loss, data, complexity) after one optimiser step.

    ``terms(x_b, y_b, num_data) -> ELBOTerms`` is the estimator (FastELBO), ``optimizer`` steps
    the guide's parameters, ``x``, ``y`` are the whole training data on the device and
    ``batch_size`` the size of the minibatches that replay. ``graph_factory(step)`` builds the
    recorder (``CudaGraph``; tests pass an emulator). ``captures`` counts the captures made and
    ``replays`` the replayed steps; ``disabled`` says why the step stays eager, if it does.
    """

    def __init__(self, terms: Callable, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                 y: torch.Tensor, batch_size: int, num_data: int, *, warmup: int = 3,
                 graph_factory: Callable[[CapturedStep], object] = CudaGraph):
        self.terms, self.optimizer, self.x, self.y = terms, optimizer, x, y
        self.batch_size, self.num_data, self.warmup = batch_size, num_data, warmup
        self.recorder = graph_factory(self)
        self.index = torch.zeros(batch_size, dtype=torch.long, device=x.device)
        self.kl_weight = torch.ones((), device=x.device)
        self.captured, self.out, self.signature, self._grads = False, None, None, []
        self.captures = self.replays = self._warm = 0
        self.disabled: str | None = None

    def __call__(self, idx: torch.Tensor, kl_weight: float) -> torch.Tensor:
        if self.disabled is None and not is_capturable(self.optimizer):
            self.disabled = "the optimizer was not built with capturable=True"
        if self.disabled is not None or idx.shape[0] != self.batch_size:
            return self._eager(idx, kl_weight)
        if self.captured and self._signature() != self.signature:
            self.captured, self._warm = False, 0  # a new optimiser or hyperparameter: record again
        if not self.captured and self._warm < self.warmup:
            self._warm += 1
            with self.recorder.warmup():
                return self._eager(idx, kl_weight)
        if not self.captured and not self._capture():
            return self._eager(idx, kl_weight)
        self.index.copy_(idx)
        self.kl_weight.fill_(kl_weight)
        self.recorder.replay()
        self.replays += 1
        return self.out.clone()

    def _body(self, idx: torch.Tensor, kl_weight: torch.Tensor | float) -> torch.Tensor:
        """The step: loss on the minibatch ``idx``, backward, optimiser step."""
        terms = self.terms(self.x[idx], self.y[idx], self.num_data)
        loss = terms.data + kl_weight * terms.complexity
        loss.backward()
        self.optimizer.step()
        return torch.stack([loss, terms.data, terms.complexity]).detach()

    def _eager(self, idx: torch.Tensor, kl_weight: float) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        return self._body(idx, kl_weight)

    def _capture(self) -> bool:
        """Record the step; on failure warn, stay eager and say why in ``disabled``."""
        self.optimizer.zero_grad(set_to_none=True)  # backward allocates .grad from the graph
        try:
            out = self.recorder.capture(lambda: self._body(self.index, self.kl_weight))
        except Exception as err:  # noqa: BLE001 - any failure leaves the eager step
            self.optimizer.zero_grad(set_to_none=True)
            self.disabled = f"CUDA graph capture failed: {type(err).__name__}: {err}"
            warnings.warn(f"{self.disabled}; training continues with the eager step",
                          RuntimeWarning, stacklevel=3)
            return False
        # the graph writes these .grad tensors on every replay: keep them alive even when an
        # eager step (ragged minibatch) sets .grad to None
        self._grads = [p.grad for g in self.optimizer.param_groups for p in g["params"]]
        self.captured, self.out, self.signature = True, out, self._signature()
        self.captures += 1
        return True

    def _signature(self) -> tuple:
        """What a capture bakes in: the optimiser object and its Python-number hyperparameters."""
        return (id(self.optimizer), tuple(
            tuple(sorted((k, repr(v)) for k, v in group.items()
                         if k != "params" and not torch.is_tensor(v)))
            for group in self.optimizer.param_groups))
