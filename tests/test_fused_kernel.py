"""The compiled CPU kernel: the plain expressions' values and gradients on fixed noise, N(0, 1)
noise that does not depend on the thread count, and a fallback to the eager path where it cannot
be built or does not apply."""

import math
import sys
import warnings

import pyro
import pytest
import torch
import torch.nn.functional as F

from pyro_bbb import (
    BayesianMLP,
    Categorical,
    MeanFieldGuide,
    elbo_terms,
    gaussian_prior,
    scale_mixture_prior,
)
from pyro_bbb.infer import FastELBO, fused_kernel
from pyro_bbb.infer.fused_site import fused_prior

# a site over two chunks (3000 > 2048) and odd sizes; the last site holds extreme ρ (below
# about −20 even a float64 Normal(μ, σ).log_prob no longer gives ∂/∂μ = 0 through (w − μ)/σ)
SHAPES = [(37, 129), (129,), (3000,), (9,)]
EXTREME_RHO = torch.tensor([-16.0, -12.0, -1.0, 0.0, 0.5, 3.0, 19.0, 21.0, 40.0])


@pytest.fixture(scope="module")
def lib():
    lib = fused_kernel.load()
    assert lib is not None, "the kernel must build where the tests run (a C compiler is there)"
    return lib


def sites(seed=0):
    gen = torch.Generator().manual_seed(seed)
    locs = [0.1 * torch.randn(s, generator=gen) for s in SHAPES]
    rhos = [-4.0 + torch.rand(s, generator=gen) for s in SHAPES]
    rhos[-1] = EXTREME_RHO.clone()
    return ([t.requires_grad_() for t in locs], [t.requires_grad_() for t in rhos])


def plain(prior, eps, particles, locs, rhos):
    """log q − log p and the w per site from torch.distributions and autograd."""
    values, log_q, log_p, offset = [], 0.0, 0.0, 0
    for loc, rho in zip(locs, rhos, strict=True):
        n = loc.numel()
        noise = eps[offset:offset + particles * n].reshape(particles, *loc.shape)
        offset += particles * n
        scale = F.softplus(rho)
        w = loc + scale * noise
        log_q = log_q + torch.distributions.Normal(loc, scale).log_prob(w).sum()
        log_p = log_p + prior.log_prob(w).sum()
        values.append(w if particles > 1 else w[0])
    return log_q - log_p, values


def loss_and_grads(complexity, values, locs, rhos, seed=1):
    gen = torch.Generator().manual_seed(seed)
    loss = 0.7 * complexity + sum((torch.randn(v.shape, generator=gen).to(v.dtype) * v).sum()
                                  for v in values)
    return torch.autograd.grad(loss, [*locs, *rhos])


@pytest.mark.parametrize("prior", [scale_mixture_prior(), scale_mixture_prior(0.25, 2.0, 1e-3),
                                   gaussian_prior(0.3)])
@pytest.mark.parametrize("particles", [1, 3])
def test_kernel_equals_the_plain_expressions_on_fixed_noise(lib, prior, particles):
    locs, rhos = sites()
    eps = torch.randn(particles * sum(math.prod(s) for s in SHAPES),
                      generator=torch.Generator().manual_seed(2))
    complexity, values, used = fused_kernel.sample_sites(lib, fused_prior(prior), eps, particles,
                                                         locs, rhos)
    assert used.data_ptr() == eps.data_ptr()  # the noise given is the noise used
    # the reference in float64: in float32 (w − μ)/σ itself loses digits when σ ≈ e⁻¹²
    locs64, rhos64 = ([t.detach().double().requires_grad_() for t in ts] for ts in (locs, rhos))
    want_complexity, want_values = plain(prior, eps.double(), particles, locs64, rhos64)
    for got, want in zip(values, want_values, strict=True):
        assert got.shape == want.shape
        torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(complexity.double(), want_complexity, rtol=2e-6, atol=1e-3)
    got_grads = loss_and_grads(complexity, values, locs, rhos)
    want_grads = loss_and_grads(want_complexity, want_values, locs64, rhos64)
    for got, want in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(got.double(), want, rtol=1e-4,
                                   atol=1e-5 * want.abs().max().item())


def test_noise_of_the_wrong_size_is_refused(lib):
    locs, rhos = sites()
    with pytest.raises(ValueError, match="eps must be a contiguous float32 tensor of 1 x 7911"):
        fused_kernel.sample_sites(lib, fused_prior(scale_mixture_prior()), torch.zeros(7910), 1,
                                  locs, rhos)


def test_drawn_noise_is_the_noise_used_and_fixed_by_the_seed(lib):
    """ε=None: the kernel draws; feeding that ε back in gives the same w and complexity (the
    layout of several sites and particles), and the same seed gives the same draws."""
    prior, (locs, rhos) = fused_prior(scale_mixture_prior()), sites()
    torch.manual_seed(5)
    first, values, eps = fused_kernel.sample_sites(lib, prior, None, 2, locs, rhos)
    again, again_values, given = fused_kernel.sample_sites(lib, prior, eps, 2, locs, rhos)
    assert given.data_ptr() == eps.data_ptr() and torch.equal(first, again)
    assert all(torch.equal(a, b) for a, b in zip(values, again_values, strict=True))
    torch.manual_seed(5)
    assert torch.equal(fused_kernel.sample_sites(lib, prior, None, 2, locs, rhos)[2], eps)
    assert not torch.equal(fused_kernel.sample_sites(lib, prior, None, 2, locs, rhos)[2], eps)


def test_kernel_noise_is_standard_normal(lib):
    n = 1_000_001  # 488 full blocks of 2048 and a last block of odd length 577
    z = fused_kernel.normal(lib, n, seed=123).double()
    assert torch.isfinite(z).all()
    assert abs(z.mean()) < 5 / math.sqrt(n)
    assert abs(z.var() - 1) < 5 * math.sqrt(2 / n)
    assert abs((z**3).mean()) < 5 * math.sqrt(15 / n)
    assert abs((z**4).mean() - 3) < 5 * math.sqrt(96 / n)
    # Kolmogorov-Smirnov against Φ; 1.95/√m is the 0.1% critical value
    sample = z[:200_000].sort().values
    m = sample.numel()
    cdf = torch.special.ndtr(sample)
    ranks = torch.arange(1, m + 1, dtype=torch.float64)
    ks = torch.maximum(ranks / m - cdf, cdf - (ranks - 1) / m).max()
    assert ks < 1.95 / math.sqrt(m)
    # a block's cosine and sine halves share a radius: they and their squares are uncorrelated
    blocks = z[:488 * 2048].view(488, 2, 1024)
    cos, sin = blocks[:, 0].reshape(-1), blocks[:, 1].reshape(-1)
    for a, b in [(cos, sin), (cos**2, sin**2), (z[:-1], z[1:])]:
        assert abs(torch.corrcoef(torch.stack([a, b]))[0, 1]) < 5 / math.sqrt(a.numel())


def test_kernel_noise_does_not_depend_on_the_thread_count(lib):
    threads = torch.get_num_threads()
    try:
        draws = []
        for count in (1, 2):
            torch.set_num_threads(count)
            draws.append(fused_kernel.normal(lib, 100_000, seed=9))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(*draws)
    assert not torch.equal(draws[0], fused_kernel.normal(lib, 100_000, seed=10))


def big_model():
    model = BayesianMLP([300, 256, 3], Categorical(3), prior=scale_mixture_prior())
    pyro.set_rng_seed(0)
    return model, MeanFieldGuide(model, init_rho=-3.0)


def step(elbo, guide, seed):
    pyro.set_rng_seed(seed)
    x = torch.randn(16, 300, generator=torch.Generator().manual_seed(3))
    y = torch.arange(16) % 3
    terms = elbo(x, y, 100)
    return terms.loss.detach(), torch.autograd.grad(terms.loss, list(guide.parameters()))


def test_fast_elbo_uses_the_kernel_and_is_reproducible_across_thread_counts(lib, monkeypatch):
    model, guide = big_model()
    calls = []
    sample = fused_kernel.sample_sites
    monkeypatch.setattr(fused_kernel, "sample_sites",
                        lambda *args: calls.append(args[2]) or sample(*args))
    elbo = FastELBO(model, guide)
    threads = torch.get_num_threads()
    try:
        results = []
        for count in (1, 2):
            torch.set_num_threads(count)
            results.append(step(elbo, guide, seed=4))
    finally:
        torch.set_num_threads(threads)
    assert calls == [None, None]  # one node for all sites, noise drawn by the kernel
    (loss_1, grads_1), (loss_2, grads_2) = results
    assert torch.equal(loss_1, loss_2)
    assert all(torch.equal(a, b) for a, b in zip(grads_1, grads_2, strict=True))
    assert not torch.equal(step(elbo, guide, seed=5)[0], loss_1)


def test_nan_parameters_give_a_nan_complexity(lib):
    prior, (locs, rhos) = fused_prior(scale_mixture_prior()), sites()
    for params in (locs, rhos):
        with torch.no_grad():
            params[2][17] = float("nan")
        complexity, values, _ = fused_kernel.sample_sites(lib, prior, None, 1, locs, rhos)
        assert torch.isnan(complexity) and torch.isnan(values[2][17])
        assert torch.isfinite(values[2][:17]).all()
        with torch.no_grad():
            params[2][17] = 0.1 if params is locs else -4.0


def test_loading_the_kernel_keeps_subnormal_floats(lib):
    """Linked with -ffast-math, gcc's crtfastmath.o would switch the whole process to flush
    subnormals to zero (breaking e.g. hypothesis' float strategies)."""
    assert sys.float_info.min / 2 > 0
    assert torch.tensor(1e-40) > 0


def test_kernel_off_where_it_does_not_apply(lib, monkeypatch):
    assert fused_kernel.kernel_for(torch.zeros(3)) is lib
    assert fused_kernel.kernel_for(torch.zeros(3, dtype=torch.float64)) is None
    monkeypatch.setenv("PYRO_BBB_COMPILED_KERNEL", "0")
    assert fused_kernel.kernel_for(torch.zeros(3)) is None


def test_float64_sites_take_the_eager_path_and_match_pyro(lib, monkeypatch):
    """A guide moved to float64: no kernel call, and Trace_ELBO's terms on the same draws."""
    calls = []
    sample = fused_kernel.sample_sites
    monkeypatch.setattr(fused_kernel, "sample_sites",
                        lambda *args: calls.append(args) or sample(*args))
    model = BayesianMLP([4, 6, 3], Categorical(3), prior=scale_mixture_prior())
    guide = MeanFieldGuide(model, init_rho=-2.0).double()
    x, y = torch.randn(9, 4, dtype=torch.float64), torch.randint(0, 3, (9,))
    pyro.set_rng_seed(3)
    fast = FastELBO(model, guide)(x, y, 50)
    pyro.set_rng_seed(3)
    traced = elbo_terms(model, guide, x, y, num_data=50)
    assert not calls and fast.loss.dtype == torch.float64
    torch.testing.assert_close(fast.loss, traced.loss, rtol=1e-10, atol=1e-8)


def test_build_is_cached_by_content(monkeypatch, tmp_path):
    monkeypatch.setenv("PYRO_BBB_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(fused_kernel, "_state", {})
    assert fused_kernel.load() is not None
    (built,) = tmp_path.glob("fused_kernel-*.so")
    stamp = built.stat().st_mtime_ns
    monkeypatch.setattr(fused_kernel, "_state", {})  # a new process: loads, does not rebuild
    lib = fused_kernel.load()
    assert list(tmp_path.glob("fused_kernel-*.so")) == [built]
    assert built.stat().st_mtime_ns == stamp
    assert torch.equal(fused_kernel.normal(lib, 10, seed=1), fused_kernel.normal(lib, 10, seed=1))


def test_an_unwritable_cache_folder_falls_back_to_the_temp_folder(monkeypatch, tmp_path):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("PYRO_BBB_CACHE_DIR", str(tmp_path / "a-file" / "cache"))
    monkeypatch.setattr(fused_kernel.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    monkeypatch.setattr(fused_kernel, "_state", {})
    assert fused_kernel.load() is not None
    assert len(list((tmp_path / "tmp" / "pyro_bbb-kernels").glob("fused_kernel-*.so"))) == 1


def test_without_a_compiler_fast_elbo_falls_back_to_the_eager_path(monkeypatch, tmp_path):
    """No working compiler: one warning, then the eager node, which on the same draws (a small
    model: torch's generator) gives what the kernel gives, and trains a large model too."""
    monkeypatch.setattr(fused_kernel, "_state", {})
    monkeypatch.setenv("PYRO_BBB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setattr(fused_kernel.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    with pytest.warns(RuntimeWarning, match="could not compile the fused CPU kernel"):
        assert fused_kernel.load() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once only
        assert fused_kernel.load() is None

    model = BayesianMLP([4, 6, 3], Categorical(3), prior=scale_mixture_prior())
    guide = MeanFieldGuide(model, init_rho=-2.0)
    x, y = torch.randn(9, 4), torch.randint(0, 3, (9,))
    pyro.set_rng_seed(3)
    fallback = FastELBO(model, guide)(x, y, 50)
    monkeypatch.setattr(fused_kernel, "_state", {})
    monkeypatch.delenv("CC")
    pyro.set_rng_seed(3)
    compiled = FastELBO(model, guide)(x, y, 50)
    assert fused_kernel.load() is not None
    torch.testing.assert_close(fallback.loss, compiled.loss, rtol=1e-5, atol=1e-4)

    monkeypatch.setattr(fused_kernel, "_state", {"lib": None})  # no kernel, large model
    model, guide = big_model()
    loss, grads = step(FastELBO(model, guide), guide, seed=4)
    assert torch.isfinite(loss) and all(torch.isfinite(g).all() for g in grads)
