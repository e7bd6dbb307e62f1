"""A compiled CPU kernel for FastELBO's fused sites: one pass each way, noise included.

For all real sites under one constant prior (a ``FusedPrior``) the forward pass draws ε (or takes
it), writes w = μ + softplus(ρ) ε and sums log q − log p; the backward pass turns ∂L/∂w and
∂L/∂(log q − log p) into ∂L/∂μ and ∂L/∂ρ, recomputing softplus, sigmoid and the prior's slope
instead of storing them (the math: ``fused_site``'s docstring). The eager torch node needs about
twenty passes over the parameters and a separate noise draw; the C loops (``fused_kernel.c``)
read each weight once per direction, are vectorised (AVX-512 where the CPU has it) and run on
torch's thread count with OpenMP (torch's own runtime). ``benchmarks/speed.py`` compares both.

Noise: ε is a pure function of (seed, position), SplitMix64 bits through Box-Muller, so it does not
depend on the thread count; the seed comes from torch's global generator, so
``pyro.set_rng_seed`` fixes every draw and a checkpoint's RNG state resumes the same stream.

Build: the C source ships with the package and is compiled on first use with the system C
compiler (``$CC``, else ``cc``; under a second) into a cache folder (``$PYRO_BBB_CACHE_DIR``, else
``$XDG_CACHE_HOME/pyro_bbb``, else ``~/.cache/pyro_bbb``; the temp folder if that is read-only),
named by a hash of source, flags, compiler and CPU, so an upgrade or another machine rebuilds.
Where nothing compiles, ``load()`` warns once and returns ``None``, and FastELBO keeps its eager
path. ``PYRO_BBB_COMPILED_KERNEL=0`` (or ``FastELBO(..., compiled=False)``) turns it off.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

import torch

__all__ = ["load", "sample_sites", "normal", "draw_seed", "enabled", "kernel_for"]

_SOURCE = Path(__file__).with_name("fused_kernel.c")
_VERSION = 9  # pyro_bbb_kernel_version() of the C source
_BUILD_RECIPE = b"compile, then link without -ffast-math"  # part of the cache key
_IEEE = ["-O3", "-ffast-math", "-fno-finite-math-only"]  # NaN and inf keep their meaning
_FLAG_SETS = (
    [*_IEEE, "-march=native", "-mprefer-vector-width=512", "-fopenmp"],
    [*_IEEE, "-fopenmp"],
    _IEEE,
)
_lock = threading.Lock()
_state: dict[str, object] = {}


def enabled() -> bool:
    """False when ``PYRO_BBB_COMPILED_KERNEL=0``."""
    return os.environ.get("PYRO_BBB_COMPILED_KERNEL", "1") != "0"


def kernel_for(like: torch.Tensor) -> ctypes.CDLL | None:
    """The kernel for sites like ``like`` (float32 on the CPU), or ``None`` where it does not
    apply, is turned off or cannot be built."""
    if like.device.type != "cpu" or like.dtype != torch.float32:
        return None
    return load()


def _cache_dirs() -> list[Path]:
    """Where a build is looked for and written, in order: the user's cache, then the temp
    folder (not named like the package: /tmp is sys.path[0] for scripts run from there)."""
    fallback = Path(tempfile.gettempdir()) / "pyro_bbb-kernels"
    if os.environ.get("PYRO_BBB_CACHE_DIR"):
        return [Path(os.environ["PYRO_BBB_CACHE_DIR"]), fallback]
    try:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    except RuntimeError:  # no home directory
        return [fallback]
    return [Path(base) / "pyro_bbb", fallback]


def _cpu_identity() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    lines = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags"))]
    return "\n".join(dict.fromkeys(lines))


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def _build(compiler: str, flags: list[str], target: Path) -> bool:
    """Compile, then link without -ffast-math: linked with it, gcc adds crtfastmath.o, whose
    constructor switches the whole process to flush subnormal floats to zero."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    except OSError:  # not writable: the caller tries the next folder
        return False
    os.close(fd)
    obj = tmp[:-3] + ".o"
    openmp = [f for f in flags if f == "-fopenmp"]
    commands = [[compiler, *flags, "-fPIC", "-c", str(_SOURCE), "-o", obj],
                [compiler, "-shared", *openmp, obj, "-o", tmp, "-lm"]]
    try:
        for cmd in commands:
            if subprocess.run(cmd, capture_output=True, text=True, timeout=120).returncode != 0:
                return False
        os.replace(tmp, target)  # atomic: concurrent processes never load a partial file
        return True
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        for path in (tmp, obj):
            if os.path.exists(path):
                os.unlink(path)


def _open(path: Path) -> ctypes.CDLL | None:
    try:
        lib = ctypes.CDLL(str(path))
    except OSError:
        return None
    if lib.pyro_bbb_kernel_version() != _VERSION:
        return None
    i64, ptr, i32, f32 = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int, ctypes.c_float
    u64 = ctypes.c_uint64
    lib.pyro_bbb_normal.argtypes = [i64, u64, ptr, i32]
    lib.pyro_bbb_normal.restype = None
    lib.pyro_bbb_forward.argtypes = [i64, *[ptr] * 3, i64, ptr, u64, i32, ptr, i32, ptr, ptr,
                                     i32]
    lib.pyro_bbb_forward.restype = i32
    lib.pyro_bbb_backward.argtypes = [i64, *[ptr] * 3, i64, ptr, ptr, f32, i32, *[ptr] * 3, i32]
    lib.pyro_bbb_backward.restype = i32
    return lib


def load() -> ctypes.CDLL | None:
    """The compiled kernel (built and cached on first call), or ``None`` where it cannot be."""
    if not enabled():
        return None
    if "lib" in _state:  # every training step asks: no lock once decided
        return _state["lib"]
    with _lock:
        if "lib" in _state:
            return _state["lib"]
        _state["lib"] = lib = _load_uncached()
        if lib is None:
            warnings.warn("pyro_bbb: could not compile the fused CPU kernel (no working C "
                          "compiler?); the training step uses the slower eager path",
                          RuntimeWarning, stacklevel=3)
        return lib


def _load_uncached() -> ctypes.CDLL | None:
    compiler = _compiler()
    if compiler is None:
        return None
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True,
                                 timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    source = _SOURCE.read_bytes()
    for flags in _FLAG_SETS:
        key = hashlib.sha256(b"\0".join(
            [source, _BUILD_RECIPE, " ".join(flags).encode(), compiler.encode(), version.encode(),
             _cpu_identity().encode(), platform.machine().encode()])).hexdigest()[:16]
        for folder in _cache_dirs():
            target = folder / f"fused_kernel-{key}.so"
            if target.exists() or _build(compiler, flags, target):
                lib = _open(target)
                if lib is not None:
                    return lib
    return None


def _ptr(t: torch.Tensor) -> int:
    return t.data_ptr()


def _pointers(tensors) -> ctypes.Array:
    return (ctypes.c_void_p * len(tensors))(*(t.data_ptr() for t in tensors))


def draw_seed() -> int:
    """A 62-bit seed for the kernel's noise, drawn from torch's global generator."""
    return int(torch.randint(0, 2**62, ()).item())


def normal(lib: ctypes.CDLL, num: int, seed: int) -> torch.Tensor:
    """The kernel's N(0, 1) draws for ``seed``: entry j is a function of (seed, j) alone (the
    same whatever the thread count), the draws a single segment of ``num`` entries gets."""
    out = torch.empty(num)
    lib.pyro_bbb_normal(num, seed, _ptr(out), torch.get_num_threads())
    return out


def _check(ok: int) -> None:
    if not ok:
        raise MemoryError("pyro_bbb's fused CPU kernel could not allocate its chunk table")


class _KernelSites(torch.autograd.Function):
    """All sites under one prior in one compiled pass each way (the module docstring)."""

    @staticmethod
    def forward(ctx, lib, prior, eps, num_particles, shapes, *locs_and_rhos):
        m = len(shapes)
        locs, rhos = locs_and_rhos[:m], locs_and_rhos[m:]
        sizes = (ctypes.c_int64 * m)(*(math.prod(s) for s in shapes))
        k, total = num_particles, sum(sizes)
        generate = eps is None
        if generate:
            eps = locs[0].new_empty(k * total)
        elif eps.dtype != torch.float32 or not eps.is_contiguous() or eps.numel() != k * total:
            raise ValueError(f"eps must be a contiguous float32 tensor of {k} x {total} entries, "
                             f"got {eps.dtype} of shape {tuple(eps.shape)}")
        value, complexity = torch.empty_like(eps), locs[0].new_empty(())
        _check(lib.pyro_bbb_forward(
            m, sizes, _pointers(locs), _pointers(rhos), k, _ptr(eps),
            draw_seed() if generate else 0, int(generate), _ptr(value), prior.kernel_kind,
            _ptr(prior.kernel_params), _ptr(complexity), torch.get_num_threads()))
        ctx.save_for_backward(eps, value, *rhos)
        ctx.lib, ctx.prior, ctx.sizes, ctx.shapes, ctx.k = lib, prior, sizes, shapes, k
        ctx.mark_non_differentiable(eps)
        lead = () if k == 1 else (k,)  # one draw: the sites' own shapes
        return (complexity, eps, *(piece.view(*lead, *shape) for piece, shape in
                                   zip(value.split([k * n for n in sizes]), shapes, strict=True)))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_complexity, grad_eps, *grad_values):
        eps, value, *rhos = ctx.saved_tensors
        k, prior = ctx.k, ctx.prior
        grads = [rho.new_zeros(k * rho.numel()) if g is None else g.contiguous()
                 for g, rho in zip(grad_values, rhos, strict=True)]
        grad_locs = [torch.empty_like(rho) for rho in rhos]
        grad_rhos = [torch.empty_like(rho) for rho in rhos]
        _check(ctx.lib.pyro_bbb_backward(
            len(rhos), ctx.sizes, _pointers(rhos), _pointers(grads), k, _ptr(eps), _ptr(value),
            float(grad_complexity), prior.kernel_kind, _ptr(prior.kernel_params),
            _pointers(grad_locs), _pointers(grad_rhos), torch.get_num_threads()))
        return (None, None, None, None, None, *grad_locs, *grad_rhos)


def sample_sites(lib: ctypes.CDLL, prior, eps: torch.Tensor | None, num_particles: int,
                 locs: list[torch.Tensor], rhos: list[torch.Tensor]
                 ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """``(log q(w) − log p(w), [w per site], ε)`` for contiguous float32 CPU ``locs``, ``rhos``
    under ``prior`` (a ``FusedPrior``), summed over ``num_particles`` draws. ``eps``: flat noise,
    site after site, each site's (K, n_s) block row-major; ``None`` draws the kernel's noise
    (from a seed out of torch's generator). The ε returned is the noise used, in that layout."""
    complexity, eps, *values = _KernelSites.apply(lib, prior, eps, num_particles,
                                                  [tuple(t.shape) for t in locs], *locs, *rhos)
    return complexity, values, eps
