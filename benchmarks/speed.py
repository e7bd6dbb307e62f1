"""Training-step and prediction speed, all methods measured in one run on one machine.

    python benchmarks/speed.py [--device auto] [--sizes 400 1200] [--batches 128 1024]
                               [--repeats 7] [--steps 10] [--markdown] [--only {all,memory}]
                               [--memory-n 10000 40000] [--memory-chunks default 256 1024]

Prints JSON: for each network 784-H-H-10 and batch size, the median over ``repeats`` of the mean
ms per training step (forward, backward, Adam) over ``steps`` steps, after warm-up, with the
methods taking turns within each repeat, all with fit's optimizer (``default_adam``: fused Adam
where torch has it), for:
a deterministic MLP (the baseline of ``x_deterministic``; also once with ``torch.optim.Adam``'s
defaults, the step most deterministic code runs); pyro_bbb's FastELBO engine (fit's default,
with the CPU allocator setting it applies, which the other methods share in the same process;
on the CPU with its compiled kernel, ``compiled_kernel`` in the JSON, and once with the kernel
turned off; on CUDA, the eager step and fit's default there, the step replayed from a CUDA graph);
pyro_bbb's Pyro-trace path;
pyro.infer.Trace_ELBO on the same model and guide; a hand-written eager PyTorch BBB; and, when
installed, blitz-bayesian-pytorch and bayesian-torch (``make bench`` installs both). Every BBB
step uses the scale-mixture prior (π=½, σ1=1, σ2=e⁻⁶; bayesian-torch supports only a Gaussian
prior with an analytic KL) and one weight sample. Also: posterior-predictive time for S = 100
samples over 10,000 inputs.

Peak memory of prediction (key ``predictive_memory``; ``--only memory`` runs just this part, no
timings): for 784-400-400-10 with S = 100 posterior draws, ``posterior_predictive`` over N inputs
(each of ``--memory-n``) with each chunk size of ``--memory-chunks`` ("default" = the library's
``default_chunk_size``), on the CPU, each in a fresh subprocess that does, in order:

1. build the model and guide, the inputs ``x`` (N × 784 float32) and the S draws;
2. warm up: one prediction on the first chunk of rows (one-time allocator / BLAS set-up);
3. ``gc.collect()``, reset the kernel's peak-RSS counter (``echo 5 > /proc/self/clear_refs``,
   Linux ≥ 4.0), then read the baseline = peak RSS (VmHWM in /proc/self/status; ru_maxrss
   where there is no /proc);
4. the measured ``posterior_predictive`` call; peak = the peak RSS again.

``growth_MiB`` = peak − baseline: the extra resident memory of the call (activations of one chunk,
softmax and entropies of that chunk, the O(N·C) result, the O(N·784)-byte finiteness mask of input
validation), with model, guide, draws and data excluded. Where the peak counter cannot be reset
(``peak_reset: false``, e.g. macOS) the baseline is the high-water mark of steps 1-2 and growth
below it is invisible. ``unchunked_activations_MiB`` = S × N × 400 × 4 bytes, the size of one
hidden activation if all N inputs went through at once; ``chunk_activation_MiB`` = S × chunk ×
400 × 4 bytes. Growth that rises with N at a fixed chunk size is glibc keeping freed heap
memory: the per-chunk results that stay alive fragment the heap (``malloc_trim(0)`` after the
call returns RSS to the baseline; a forward pass that keeps no results does not grow).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import pyro
import torch
import torch.nn.functional as F
from pyro.infer import Trace_ELBO
from torch import nn

import pyro_bbb as bbb
from pyro_bbb.argtypes import positive_int, run_script
from pyro_bbb.experiment import hardware_string
from pyro_bbb.infer import CapturedStep, FastELBO, fused_kernel, resolve_device
from pyro_bbb.infer.optim import default_adam

PI, SIGMA1, SIGMA2 = 0.5, 1.0, math.exp(-6)
NUM_DATA = 60_000


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(steps: dict[str, Callable[[], None]], device, repeats: int, count: int
                     ) -> dict[str, float]:
    """Median over repeats of the mean ms per step; methods take turns within each repeat, so
    a slow spell of a shared machine hits them all alike. ``count`` warm-up steps first."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for step in steps.values():
        for _ in range(count):
            step()
    _sync(device)
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(count):
                step()
            _sync(device)
            times[name].append((time.perf_counter() - start) * 1000 / count)
    return {name: statistics.median(t) for name, t in times.items()}


def adam_step(params, loss_fn: Callable[[], torch.Tensor], optimizer=default_adam
              ) -> Callable[[], None]:
    """One training step with fit's optimizer (fused Adam where torch has it), for every
    method alike."""
    optimizer = optimizer(params, lr=1e-3)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss_fn().backward()
        optimizer.step()

    return step


def deterministic(sizes, x, y, optimizer=default_adam):
    layers = []
    for d_in, d_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(d_in, d_out), nn.ReLU()]
    net = nn.Sequential(*layers[:-1]).to(x.device)
    return adam_step(net.parameters(), lambda: F.cross_entropy(net(x), y), optimizer)


def deterministic_default_adam(sizes, x, y):
    """The same network with ``torch.optim.Adam``'s defaults (no fused kernel on the CPU)."""
    return deterministic(sizes, x, y, lambda params, lr: torch.optim.Adam(params, lr=lr))


def pyro_bbb_model(sizes, device):
    model = bbb.BayesianMLP(sizes, bbb.Categorical(sizes[-1]),
                            prior=bbb.scale_mixture_prior(PI, SIGMA1, SIGMA2))
    return model, bbb.MeanFieldGuide(model).to(device)


def pyro_bbb_fast(sizes, x, y, compiled=True):
    model, guide = pyro_bbb_model(sizes, x.device)
    elbo = FastELBO(model, guide, compiled=compiled)
    return adam_step(guide.parameters(), lambda: elbo(x, y, NUM_DATA).loss)


def pyro_bbb_captured(sizes, x, y):
    """fit's step on a GPU: FastELBO, backward and capturable Adam recorded in one CUDA graph
    (``CapturedStep``, after its eager warm-up steps) and replayed."""
    model, guide = pyro_bbb_model(sizes, x.device)
    optimizer = default_adam(list(guide.parameters()), 1e-3, capturable=True)
    captured = CapturedStep(FastELBO(model, guide), optimizer, x, y, x.shape[0], NUM_DATA)
    idx = torch.arange(x.shape[0], device=x.device)

    def step():
        captured(idx, 1.0)

    return step


def pyro_bbb_fast_eager(sizes, x, y):
    """FastELBO with its compiled CPU kernel turned off (the torch-only fused node)."""
    return pyro_bbb_fast(sizes, x, y, compiled=False)


def pyro_bbb_traces(sizes, x, y):
    model, guide = pyro_bbb_model(sizes, x.device)
    return adam_step(guide.parameters(),
                     lambda: bbb.elbo_terms(model, guide, x, y, num_data=NUM_DATA).loss)


def pyro_trace_elbo(sizes, x, y):
    model, guide = pyro_bbb_model(sizes, x.device)
    elbo = Trace_ELBO(max_plate_nesting=1)
    return adam_step(guide.parameters(),
                     lambda: elbo.differentiable_loss(model, guide, x, y, num_data=NUM_DATA))


class HandWrittenBBB(nn.Module):
    """The usual eager PyTorch Bayes by Backprop layer stack (the baseline people write)."""

    def __init__(self, sizes):
        super().__init__()
        shapes = [s for a, b in zip(sizes[:-1], sizes[1:], strict=True) for s in ((b, a), (b,))]
        self.mu = nn.ParameterList(nn.Parameter(torch.randn(s) * 0.05) for s in shapes)
        self.rho = nn.ParameterList(nn.Parameter(torch.full(s, -5.0)) for s in shapes)

    def loss(self, x, y):
        log_q = log_p = 0.0
        weights = []
        for mu, rho in zip(self.mu, self.rho, strict=True):
            sigma = F.softplus(rho)
            w = mu + sigma * torch.randn_like(mu)
            log_q = log_q + torch.distributions.Normal(mu, sigma).log_prob(w).sum()
            mixture = torch.stack([
                math.log(PI) + torch.distributions.Normal(0.0, SIGMA1).log_prob(w),
                math.log(1 - PI) + torch.distributions.Normal(0.0, SIGMA2).log_prob(w)])
            log_p = log_p + torch.logsumexp(mixture, 0).sum()
            weights.append(w)
        h = x
        for i in range(0, len(weights), 2):
            h = F.linear(h, weights[i], weights[i + 1])
            h = torch.relu(h) if i + 2 < len(weights) else h
        nll = F.cross_entropy(h, y, reduction="sum") * NUM_DATA / x.shape[0]
        return nll + log_q - log_p


def hand_written(sizes, x, y):
    net = HandWrittenBBB(sizes).to(x.device)
    return adam_step(net.parameters(), lambda: net.loss(x, y))


def blitz(sizes, x, y):
    from blitz.modules import BayesianLinear

    layers = [BayesianLinear(a, b, prior_sigma_1=SIGMA1, prior_sigma_2=SIGMA2, prior_pi=PI)
              for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    net = nn.ModuleList(layers).to(x.device)

    def loss():
        h = x
        for i, layer in enumerate(net):
            h = layer(h)
            h = torch.relu(h) if i < len(net) - 1 else h
        complexity = sum(layer.log_variational_posterior - layer.log_prior for layer in net)
        return F.cross_entropy(h, y, reduction="sum") * NUM_DATA / x.shape[0] + complexity

    return adam_step(net.parameters(), loss)


def bayesian_torch(sizes, x, y):
    from bayesian_torch.layers import LinearReparameterization

    net = nn.ModuleList(LinearReparameterization(a, b)
                        for a, b in zip(sizes[:-1], sizes[1:], strict=True)).to(x.device)

    def loss():
        h, kl = x, 0.0
        for i, layer in enumerate(net):
            h, layer_kl = layer(h)
            kl = kl + layer_kl
            h = torch.relu(h) if i < len(net) - 1 else h
        return F.cross_entropy(h, y, reduction="sum") * NUM_DATA / x.shape[0] + kl

    return adam_step(net.parameters(), loss)


METHODS = {
    "deterministic MLP": deterministic,
    "deterministic MLP, torch.optim.Adam defaults": deterministic_default_adam,
    "pyro_bbb FastELBO (fit default)": pyro_bbb_fast,
    "pyro_bbb FastELBO + CUDA graph (fit default on CUDA)": pyro_bbb_captured,
    "pyro_bbb FastELBO, compiled kernel off": pyro_bbb_fast_eager,
    "pyro_bbb Pyro traces": pyro_bbb_traces,
    "pyro Trace_ELBO": pyro_trace_elbo,
    "hand-written PyTorch BBB": hand_written,
    "blitz-bayesian-pytorch 0.2.8": blitz,
    "bayesian-torch 0.5.0 (Gaussian prior, analytic KL)": bayesian_torch,
}


def predictive_ms(device, repeats: int) -> float:
    """ms for S=100 posterior draws over 10,000 inputs of 784-400-400-10 (chunked)."""
    model, guide = pyro_bbb_model([784, 400, 400, 10], device)
    x = torch.rand(10_000, 784, device=device)
    draws = guide.sample_posterior(100)
    step = {"predict": lambda: bbb.posterior_predictive(model, draws, x)}
    return time_interleaved(step, device, repeats, 1)["predict"]


MEMORY_NET = [784, 400, 400, 10]
MEMORY_SAMPLES = 100


def _maxrss_bytes() -> int:
    """Peak RSS of this process in bytes: VmHWM from /proc/self/status on Linux (the counter
    that /proc/self/clear_refs resets; ru_maxrss is not reset and, after fork + exec, still
    holds the parent's peak), else ru_maxrss (Linux KiB, macOS bytes)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def _reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark of this process's RSS (Linux ≥ 4.0); False if not."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def predictive_memory_child(num_inputs: int, chunk_size: int | None) -> dict:
    """One measurement (run in a fresh process, see the module docstring): bytes, seconds."""
    from pyro_bbb.predict import default_chunk_size

    pyro.set_rng_seed(0)
    model, guide = pyro_bbb_model(MEMORY_NET, torch.device("cpu"))
    x = torch.rand(num_inputs, MEMORY_NET[0])
    draws = guide.sample_posterior(MEMORY_SAMPLES)
    chunk = min(chunk_size or default_chunk_size(MEMORY_SAMPLES, max(MEMORY_NET)), num_inputs)
    bbb.posterior_predictive(model, draws, x[:chunk], chunk_size=chunk_size)  # warm-up
    gc.collect()
    reset = _reset_peak_rss()
    baseline = _maxrss_bytes()
    start = time.perf_counter()
    pred = bbb.posterior_predictive(model, draws, x, chunk_size=chunk_size)
    seconds = time.perf_counter() - start
    peak = _maxrss_bytes()
    output = sum(v.numel() * v.element_size() for v in vars(pred).values() if torch.is_tensor(v))
    return {"chunk_rows": chunk, "baseline": baseline, "peak": peak, "peak_reset": reset,
            "output": output, "seconds": seconds}


class MemoryChildError(RuntimeError):
    """A memory-measurement subprocess failed (its last stderr line is in the message)."""


def predictive_memory(num_inputs: list[int], chunks: list[str]) -> dict:
    """Peak-RSS growth of posterior_predictive, one fresh subprocess per (N, chunk size)."""
    mib = 2.0**-20
    runs = []
    for n in num_inputs:
        for chunk in chunks:
            child = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--memory-child", str(n), chunk],
                capture_output=True, text=True)
            if child.returncode != 0:
                lines = child.stderr.strip().splitlines() or ["(no output)"]
                raise MemoryChildError(f"the memory measurement for N = {n}, chunk size {chunk} "
                                   f"failed (exit status {child.returncode}): {lines[-1]}")
            r = json.loads(child.stdout.strip().splitlines()[-1])
            width = max(MEMORY_NET[1:-1])
            runs.append({
                "N": n, "chunk_size": chunk, "chunk_rows": r["chunk_rows"],
                "baseline_MiB": round(r["baseline"] * mib, 1),
                "peak_MiB": round(r["peak"] * mib, 1),
                "growth_MiB": round((r["peak"] - r["baseline"]) * mib, 1),
                "chunk_activation_MiB": round(
                    MEMORY_SAMPLES * r["chunk_rows"] * width * 4 * mib, 1),
                "unchunked_activations_MiB": round(MEMORY_SAMPLES * n * width * 4 * mib, 1),
                "output_MiB": round(r["output"] * mib, 2),
                "peak_reset": r["peak_reset"],
                "seconds": round(r["seconds"], 2),
            })
            print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    return {
        "net": "-".join(map(str, MEMORY_NET)), "S": MEMORY_SAMPLES, "device": "cpu",
        "measured": "per run, a fresh subprocess; growth = peak RSS (VmHWM) after the "
                    "posterior_predictive call minus peak RSS after building model, guide, "
                    "inputs and draws and a warm-up call, with the peak counter reset "
                    "(/proc/self/clear_refs) right before the baseline; see benchmarks/speed.py",
        "runs": runs,
    }


def _chunk(text: str) -> str:
    if text != "default" and not (text.isdigit() and int(text) > 0):
        raise argparse.ArgumentTypeError(f"must be 'default' or a positive integer, got {text!r}")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (auto)")
    parser.add_argument("--sizes", type=positive_int, nargs="+", default=[400, 1200],
                        metavar="H", help="hidden widths H of 784-H-H-10 (400 1200)")
    parser.add_argument("--batches", type=positive_int, nargs="+", default=[128, 1024],
                        metavar="B", help="minibatch sizes (128 1024)")
    parser.add_argument("--repeats", type=positive_int, default=7,
                        help="timed repeats; the median is reported (7)")
    parser.add_argument("--steps", type=positive_int, default=10,
                        help="training steps per repeat, and warm-up steps (10)")
    parser.add_argument("--markdown", action="store_true", help="also print tables to stderr")
    parser.add_argument("--only", choices=["all", "memory"], default="all",
                        help="'memory': only the predictive peak-memory part (no timings)")
    parser.add_argument("--memory-n", type=positive_int, nargs="+", default=[10_000, 40_000],
                        metavar="N", help="inputs N of the memory part (10000 40000)")
    parser.add_argument("--memory-chunks", type=_chunk, nargs="+",
                        default=["default", "256", "1024"], metavar="CHUNK",
                        help="chunk sizes of the memory part, each a positive integer or "
                        "'default' (= default_chunk_size); three runs per N by default: "
                        "default, 256, 1024")
    parser.add_argument("--memory-child", nargs=2, metavar=("N", "CHUNK"), help=argparse.SUPPRESS)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.memory_child:
        n, chunk = args.memory_child
        with pyro.validation_enabled(False):
            r = predictive_memory_child(int(n), None if chunk == "default" else int(chunk))
        print(json.dumps(r))
        return 0
    try:
        device = resolve_device(args.device)
    except ValueError as err:
        parser.error(f"--device: {err}")
    if args.only == "memory":
        memory = predictive_memory(args.memory_n, args.memory_chunks)
        report = {"date": datetime.date.today().isoformat(),
                  "hardware": hardware_string("cpu"), "torch": torch.__version__,
                  "threads": torch.get_num_threads(), "predictive_memory": memory}
        print(json.dumps(report, indent=2))
        if args.markdown:
            print(memory_markdown(memory), file=sys.stderr)
        return 0
    pyro.set_rng_seed(0)
    results = []
    with pyro.validation_enabled(False):
        for hidden in args.sizes:
            sizes = [784, hidden, hidden, 10]
            for batch in args.batches:
                x = torch.rand(batch, 784, device=device)
                y = torch.randint(0, 10, (batch,), device=device)
                steps, net = {}, "-".join(map(str, sizes))
                for name, build in METHODS.items():
                    if build is pyro_bbb_fast_eager and device.type != "cpu":
                        continue  # off the CPU FastELBO has only its torch path
                    if build is pyro_bbb_captured and device.type != "cuda":
                        continue
                    try:
                        steps[name] = build(sizes, x, y)
                    except ImportError as err:
                        results.append({"net": net, "batch": batch, "method": name,
                                        "skipped": f"not installed ({err})"})
                medians = time_interleaved(steps, device, args.repeats, args.steps)
                baseline = medians["deterministic MLP"]
                for name, ms in medians.items():
                    results.append({"net": net, "batch": batch, "method": name,
                                    "ms_per_step": round(ms, 3),
                                    "x_deterministic": round(ms / baseline, 2)})
                    print(json.dumps(results[-1]), file=sys.stderr, flush=True)
        predictive = predictive_ms(device, max(3, args.repeats // 2))
        print(json.dumps({"posterior_predictive_S100_N10000_784-400-400-10_ms":
                          round(predictive, 1)}), file=sys.stderr, flush=True)
    memory = predictive_memory(args.memory_n, args.memory_chunks)
    report = {
        "date": datetime.date.today().isoformat(),
        "hardware": hardware_string(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "compiled_kernel": fused_kernel.kernel_for(torch.empty(0, device=device)) is not None,
        "train_step": results,
        "posterior_predictive_S100_N10000_784-400-400-10_ms": round(predictive, 1),
        "predictive_memory": memory,
    }
    print(json.dumps(report, indent=2))
    if args.markdown:
        print(markdown(results), file=sys.stderr)
        print("\n" + memory_markdown(memory), file=sys.stderr)
    return 0


def markdown(results) -> str:
    lines = ["| net | batch | method | ms / step | × deterministic |", "|---|---|---|---|---|"]
    for r in results:
        if "ms_per_step" in r:
            lines.append(f"| {r['net']} | {r['batch']} | {r['method']} | {r['ms_per_step']:.2f} "
                         f"| {r['x_deterministic']:.2f} |")
    return "\n".join(lines)



def memory_markdown(memory: dict) -> str:
    lines = [f"Peak memory of posterior_predictive, {memory['net']}, S = {memory['S']} (CPU, "
             "growth of peak RSS over the state after building model, draws and data):", "",
             "| N | chunk size | rows / chunk | peak growth (MiB) | one chunk's 400-wide "
             "activation (MiB) | unchunked S × N × 400 activation (MiB) | result (MiB) |",
             "|---|---|---|---|---|---|---|"]
    for r in memory["runs"]:
        lines.append(f"| {r['N']:,} | {r['chunk_size']} | {r['chunk_rows']} | "
                     f"{r['growth_MiB']:.1f} | {r['chunk_activation_MiB']:.1f} | "
                     f"{r['unchunked_activations_MiB']:,.0f} | {r['output_MiB']:.2f} |")
    return "\n".join(lines)


def cli(argv=None) -> int:
    """``main`` with a failed memory child or Ctrl-C reported in one line (``run_script``)."""
    return run_script(main, argv, "nothing was printed (the results are printed at the end)",
                      failures=(MemoryChildError,))


if __name__ == "__main__":
    sys.exit(cli())
