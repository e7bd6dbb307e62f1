"""Training noise: the parallel CPU draw is seeded by the global RNG and standard normal."""

import math

import pyro
import pytest
import torch

from pyro_bbb.infer import noise
from pyro_bbb.infer.noise import PARALLEL_MIN_NUMEL, retain_freed_memory, standard_normal


@pytest.fixture
def two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def test_parallel_draw_is_fixed_by_the_global_seed_and_moves_the_stream(two_threads):
    like = torch.zeros(())
    pyro.set_rng_seed(4)
    first, after = standard_normal((3, PARALLEL_MIN_NUMEL), like), torch.rand(())
    pyro.set_rng_seed(4)
    again, after_again = standard_normal((3, PARALLEL_MIN_NUMEL), like), torch.rand(())
    assert torch.equal(first, again) and torch.equal(after, after_again)
    assert not torch.equal(first, standard_normal((3, PARALLEL_MIN_NUMEL), like))


def test_parallel_draw_is_standard_normal_with_independent_halves(two_threads):
    pyro.set_rng_seed(0)
    n = 4 * PARALLEL_MIN_NUMEL
    draws = standard_normal((n,), torch.zeros((), dtype=torch.float64))
    assert draws.dtype == torch.float64 and draws.shape == (n,)
    se = 1 / math.sqrt(n)
    assert abs(draws.mean().item()) < 5 * se
    assert abs(draws.var().item() - 1) < 5 * math.sqrt(2) * se
    assert abs(((draws > 1.96).double().mean() - 0.025).item()) < 5 * math.sqrt(0.025 / n)
    first, second = draws[: n // 2], draws[n // 2:]  # two generators: not the same stream
    assert abs(torch.corrcoef(torch.stack([first, second]))[0, 1].item()) < 5 * math.sqrt(2) * se
    assert not torch.equal(first[:100], second[:100])


def test_small_or_single_thread_draws_are_the_global_streams_own(two_threads):
    pyro.set_rng_seed(1)
    small = standard_normal((2, 50), torch.zeros(()))
    pyro.set_rng_seed(1)
    assert torch.equal(small, torch.empty(2, 50).normal_())
    torch.set_num_threads(1)
    pyro.set_rng_seed(1)
    big = standard_normal((PARALLEL_MIN_NUMEL,), torch.zeros(()))
    pyro.set_rng_seed(1)
    assert torch.equal(big, torch.empty(PARALLEL_MIN_NUMEL).normal_())


def test_a_forked_process_gets_its_own_worker_thread(two_threads, monkeypatch):
    standard_normal((PARALLEL_MIN_NUMEL,), torch.zeros(()))
    parent = noise._get_worker()
    assert noise._get_worker() is parent
    monkeypatch.setattr(noise.os, "getpid", lambda: parent.pid + 1)  # as after os.fork()
    child = noise._get_worker()
    assert child is not parent and child.pid == parent.pid + 1
    out = standard_normal((PARALLEL_MIN_NUMEL,), torch.zeros(()))
    assert 0.9 < out.std().item() < 1.1


def test_allocator_setting_is_idempotent_and_can_be_switched_off(monkeypatch):
    applied = retain_freed_memory()
    assert retain_freed_memory() is applied
    monkeypatch.setattr(noise, "_tuned", False)
    monkeypatch.setenv("PYRO_BBB_MALLOC_TUNING", "0")
    assert retain_freed_memory() is False
