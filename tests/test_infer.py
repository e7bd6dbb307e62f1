"""fit(): known answers (conjugate regression), KL weighting, divergence handling, bad input."""

import math

import pytest
import torch

from pyro_bbb import (
    BayesianMLP,
    Categorical,
    Gaussian,
    MeanFieldGuide,
    NonFiniteLossError,
    fit,
    gaussian_prior,
    predict,
)
from pyro_bbb.data import toy_regression
from pyro_bbb.infer import kl_weights, resolve_device
from pyro_bbb.infer.fit import TrainingInterrupted

NOISE, PRIOR_SIGMA = 0.5, 1.0


def conjugate_problem(n=100, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    y = x @ torch.tensor([1.5, -0.7]) + 0.3 + NOISE * torch.randn(n, generator=g)
    design = torch.cat([x, torch.ones(n, 1)], 1).double()
    precision = design.T @ design / NOISE**2 + torch.eye(3, dtype=torch.float64) / PRIOR_SIGMA**2
    covariance = torch.linalg.inv(precision)
    mean = covariance @ design.T @ y.double() / NOISE**2
    return x, y, mean, covariance, precision


@pytest.fixture(scope="module")
def fitted_linear_regression():
    x, y, mean, covariance, precision = conjugate_problem()
    model = BayesianMLP([2, 1], Gaussian(noise=NOISE), prior=gaussian_prior(PRIOR_SIGMA))
    guide = MeanFieldGuide(model, init_rho=-3.0)
    fit(model, guide, x, y, epochs=1500, batch_size=100, lr=0.01, num_particles=16,
        progress=False, seed=1)
    return model, guide, (x, y, mean, covariance, precision)


def test_conjugate_regression_posterior_mean(fitted_linear_regression):
    model, guide, (x, y, mean, covariance, precision) = fitted_linear_regression
    locs = guide.locs()
    fitted = torch.cat([locs["layer0.weight"][0], locs["layer0.bias"]]).double().detach()
    exact_sd = covariance.diagonal().sqrt()
    # tolerance: within 0.3 posterior standard deviations of the exact posterior mean
    assert torch.all((fitted - mean).abs() < 0.3 * exact_sd), (fitted, mean, exact_sd)


def test_conjugate_regression_scales_are_the_mean_field_optimum(fitted_linear_regression):
    # The KL-optimal mean-field Gaussian has variances 1/Λ_ii (Λ the exact posterior precision).
    model, guide, (_, _, _, _, precision) = fitted_linear_regression
    scales = guide.scales()
    fitted = torch.cat([scales["layer0.weight"][0], scales["layer0.bias"]]).double().detach()
    optimum = precision.diagonal().rsqrt()
    assert torch.all((fitted / optimum - 1).abs() < 0.25), (fitted, optimum)


def test_conjugate_regression_predictive_std(fitted_linear_regression):
    model, guide, (x, y, mean, covariance, _) = fitted_linear_regression
    x_new = torch.tensor([[0.0, 0.0], [1.0, -1.0], [3.0, 3.0]])
    design = torch.cat([x_new, torch.ones(3, 1)], 1).double()
    exact_epistemic = ((design @ covariance) * design).sum(1).sqrt()
    exact_std = (exact_epistemic**2 + NOISE**2).sqrt()
    got = predict(model, guide, x_new, num_samples=4000)
    ratio = got.std.double() / exact_std
    assert torch.all((ratio > 0.9) & (ratio < 1.1)), ratio  # stated factor: 1.1 on the total
    epistemic_ratio = got.epistemic_std.double() / exact_epistemic
    assert torch.all((epistemic_ratio > 0.5) & (epistemic_ratio < 1.3)), epistemic_ratio
    exact_mean = (design @ mean).float()
    assert torch.allclose(got.mean, exact_mean, atol=0.05)


def test_toy_regression_uncertainty_grows_outside_the_data():
    data = toy_regression(num_points=100, seed=0)
    model = BayesianMLP([1, 50, 50, 1], Gaussian(), prior=gaussian_prior(1.0))
    guide = MeanFieldGuide(model, init_rho=-5.0)
    fit(model, guide, data.x, data.y, epochs=250, batch_size=50, lr=1e-2, num_particles=4,
        progress=False, seed=0)
    inside = predict(model, guide, torch.tensor([[0.1], [0.25], [0.4]]), num_samples=300)
    outside = predict(model, guide, torch.tensor([[1.0]]), num_samples=300)
    assert outside.std[0] >= 3 * inside.std.mean()
    in_data = predict(model, guide, data.x, num_samples=100)
    assert (in_data.mean - data.y).pow(2).mean().sqrt() < 0.1


def test_elbo_improves_and_history_is_complete():
    torch.manual_seed(0)
    x = torch.randn(300, 4)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    model = BayesianMLP([4, 16, 3], Categorical(3))
    result = fit(model, MeanFieldGuide(model), x, y, epochs=15, batch_size=32, lr=1e-2,
                 progress=False)
    history = result.history_dict()
    assert len(history["elbo"]) == 15 and result.steps == 15 * math.ceil(300 / 32)
    assert history["elbo"][-1] > history["elbo"][0]
    for record in result.history:
        assert record.elbo == pytest.approx(-(record.nll + record.complexity))
        assert record.loss == pytest.approx(record.nll + record.complexity, rel=1e-4)


def test_blundell_kl_weights():
    weights = kl_weights(10, "blundell")
    pi = torch.tensor([2.0 ** (10 - i) / (2**10 - 1) for i in range(1, 11)])
    torch.testing.assert_close(weights, 10 * pi)
    assert weights.mean().item() == pytest.approx(1.0)
    big = kl_weights(5000, "blundell")  # no overflow for many minibatches
    assert torch.isfinite(big).all() and big.mean().item() == pytest.approx(1.0, rel=1e-5)
    torch.testing.assert_close(kl_weights(7, "uniform"), torch.ones(7))
    with pytest.raises(ValueError, match="kl_weighting must be"):
        kl_weights(3, "linear")


def test_blundell_weighting_trains():
    x = torch.randn(200, 3)
    y = x.sum(1)
    model = BayesianMLP([3, 1], Gaussian(noise=0.1), prior=gaussian_prior(1.0))
    guide = MeanFieldGuide(model)
    result = fit(model, guide, x, y, epochs=60, batch_size=20, lr=0.05, kl_weighting="blundell",
                 progress=False)
    assert result.history[-1].elbo > result.history[0].elbo
    torch.testing.assert_close(guide.locs()["layer0.weight"], torch.ones(1, 3), atol=0.1,
                               rtol=0)


class PoisonAfter:
    """An Adam that writes NaN into the first parameter on its ``step``-th step."""

    def __init__(self, step):
        self.at = step

    def __call__(self, params):
        params = list(params)
        opt = torch.optim.Adam(params, lr=1e-2)
        original, calls = opt.step, [0]

        def step(*args, **kwargs):
            out = original(*args, **kwargs)
            calls[0] += 1
            if calls[0] == self.at:
                with torch.no_grad():
                    params[0].fill_(float("nan"))
            return out

        opt.step = step
        return opt


@pytest.mark.parametrize("check_every", [1, 4])
def test_non_finite_training_stops_and_keeps_finite_parameters(check_every):
    x, y = torch.randn(64, 3), torch.randn(64)
    model = BayesianMLP([3, 4, 1], Gaussian(noise=0.5))
    guide = MeanFieldGuide(model)
    with pytest.raises(NonFiniteLossError, match="non-finite") as info:
        fit(model, guide, x, y, epochs=5, batch_size=8, optimizer=PoisonAfter(10),
            check_every=check_every, progress=False)
    # every step: the NaN parameters are caught right after step 10; every 4 steps: the first
    # NaN loss (step 11) is named and the parameters after step 8 are restored
    message = str(info.value)
    if check_every == 1:
        assert info.value.step == 10 and "parameters became non-finite after step 10" in message
        assert "restored to its parameters after step 9" in message
    else:
        assert info.value.step == 11 and "loss became non-finite (nan) at step 11" in message
        assert "restored to its parameters after step 8" in message
    assert all(torch.isfinite(p).all() for p in guide.parameters())


def test_non_finite_loss_names_its_step():
    x, y = torch.randn(16, 1), torch.randn(16)
    model = BayesianMLP([1, 1], Gaussian(noise=0.5))
    guide = MeanFieldGuide(model)
    before = {k: v.clone() for k, v in guide.state_dict().items()}
    x[3, 0] = 1e30  # finite input whose square overflows float32 in the likelihood
    with pytest.raises(NonFiniteLossError, match=r"loss became non-finite \(inf\) at step 1 "):
        fit(model, guide, x, y, epochs=1, batch_size=16, progress=False)
    for k, v in guide.state_dict().items():
        torch.testing.assert_close(v, before[k])


def _classifier():
    return BayesianMLP([3, 4, 3], Categorical(3))


@pytest.mark.parametrize(
    "x,y,kwargs,match",
    [
        (torch.full((5, 3), float("nan")), torch.zeros(5), {}, "X contains NaN"),
        (torch.randn(5, 3), torch.zeros(4), {}, "X has 5 rows but y has 4"),
        (torch.randn(5, 2), torch.zeros(5), {}, "X has 2 features but the model expects 3"),
        (torch.randn(5, 3), torch.tensor([0, 1, 2, 3, 0]), {}, r"labels must lie in \[0, 2\]"),
        (torch.randn(5, 3), torch.tensor([0.0, 0.5, 1, 1, 0]), {}, "must be integers"),
        (torch.randn(0, 3), torch.zeros(0), {}, "X is empty"),
        (torch.randn(5, 3), torch.zeros(5), {"epochs": 0}, "epochs must be a positive int"),
        (torch.randn(5, 3), torch.zeros(5), {"lr": -1.0}, "lr must be a positive number"),
        (torch.randn(5, 3), torch.zeros(5), {"device": "cuda:0"} if not
         torch.cuda.is_available() else {"kl_weighting": "x"}, "cuda|kl_weighting"),
        ([["a", "b", "c"]] * 5, torch.zeros(5), {}, "X must be numeric"),
        ([[1.0, 2.0, 3.0], [1.0]], torch.zeros(2), {}, "ragged"),
        (torch.randn(5, 3), torch.zeros(5), {"num_particles": 0}, "num_particles must be a"),
        (torch.randn(5, 3), torch.zeros(5), {"seed": -1}, r"seed must be None or an int"),
        (torch.randn(5, 3), torch.zeros(5), {"seed": 1.5}, r"seed must be None or an int"),
        (torch.randn(5, 3), torch.zeros(5), {"epochs": True}, "epochs must be a positive int"),
    ],
)
def test_fit_rejects_bad_input(x, y, kwargs, match):
    model = _classifier()
    guide = MeanFieldGuide(model)
    before = {k: v.clone() for k, v in guide.state_dict().items()}
    with pytest.raises(ValueError, match=match):
        fit(model, guide, x, y, progress=False, **kwargs)
    assert all(torch.equal(before[k], v) for k, v in guide.state_dict().items())


@pytest.mark.parametrize("other,match", [
    (BayesianMLP([3, 5, 3], Categorical(3)), r"layer0.weight has shape \(5, 3\), the model's"),
    (BayesianMLP([3, 4, 4, 3], Categorical(3)), r"unexpected sites \['layer2.weight'"),
    (BayesianMLP([3, 4, 1], Gaussian()), r"layer1.weight has shape \(1, 4\).*unexpected "
     r"sites \['noise'\]|unexpected sites \['noise'\].*layer1.weight"),
])
def test_a_guide_of_another_model_is_refused_by_fit_and_predict(other, match):
    model = _classifier()
    guide = MeanFieldGuide(other)
    x, y = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    with pytest.raises(ValueError, match="the guide does not match the model"):
        fit(model, guide, x, y, epochs=1, progress=False)
    with pytest.raises(ValueError, match=match):
        predict(model, guide, x)


def test_a_learned_noise_model_needs_its_noise_site_in_the_guide():
    fixed = MeanFieldGuide(BayesianMLP([3, 4, 1], Gaussian(noise=0.1)))
    with pytest.raises(ValueError, match=r"missing sites \['noise'\]"):
        fit(BayesianMLP([3, 4, 1], Gaussian()), fixed, torch.randn(6, 3), torch.randn(6),
            epochs=1, progress=False)


def test_numpy_integers_are_accepted_as_settings():
    np = pytest.importorskip("numpy")
    x, y = torch.randn(20, 3), torch.randint(0, 3, (20,))
    results = []
    for cast in (int, np.int64):
        torch.manual_seed(0)  # the same initial guide
        model = BayesianMLP([cast(3), cast(4), cast(3)], Categorical(cast(3)))
        result = fit(model, MeanFieldGuide(model), x, y, epochs=cast(2), batch_size=cast(8),
                     num_particles=cast(2), seed=cast(4), progress=False, device="cpu")
        results.append([r.loss for r in result.history])
    assert results[0] == results[1] and len(results[0]) == 2


def test_the_data_follows_the_guides_dtype():
    """A float64 guide trains on float32 data (and predicts in float64) instead of failing."""
    x, y = torch.randn(30, 3), torch.randn(30)
    model = BayesianMLP([3, 4, 1], Gaussian(noise=0.5))
    guide = MeanFieldGuide(model).double()
    result = fit(model, guide, x, y, epochs=3, batch_size=10, progress=False, device="cpu")
    assert all(p.dtype == torch.float64 for p in guide.parameters())
    assert all(math.isfinite(r.loss) for r in result.history)
    assert predict(model, guide, x, num_samples=4).mean.dtype == torch.float64


def test_resuming_with_another_kind_of_optimizer_is_refused():
    x, y = torch.randn(20, 3), torch.randn(20)
    model = BayesianMLP([3, 4, 1], Gaussian(noise=0.5))
    guide = MeanFieldGuide(model)
    first = fit(model, guide, x, y, epochs=1, batch_size=5, progress=False, device="cpu")
    with pytest.raises(ValueError, match=r"optimizer state does not fit.*no \['dampening', "
                                         r"'momentum'\].*than SGD"):
        fit(model, guide, x, y, epochs=2, batch_size=5, progress=False, device="cpu",
            state=first.state, optimizer=lambda p: torch.optim.SGD(p, lr=0.1))


class PoisonFirst(PoisonAfter):
    """Like PoisonAfter, but only the first optimizer it makes is poisoned."""

    def __init__(self, step):
        super().__init__(step)
        self.made = 0

    def __call__(self, params):
        self.made += 1
        if self.made == 1:
            return super().__call__(params)
        return torch.optim.Adam(list(params), lr=1e-2)


def test_divergence_can_lower_the_learning_rate_and_continue():
    x, y = torch.randn(64, 3), torch.randn(64)
    model = BayesianMLP([3, 4, 1], Gaussian(noise=0.5))
    guide = MeanFieldGuide(model)
    with pytest.warns(RuntimeWarning, match="non-finite.*learning rate x0.1"):
        result = fit(model, guide, x, y, epochs=5, batch_size=8, optimizer=PoisonFirst(10),
                     check_every=4, on_divergence="lower_lr", progress=False)
    assert result.lr_reductions == [{"step": 11, "epoch": 1, "lr_factor": pytest.approx(0.1)}]
    assert result.steps == 40 and len(result.history) == 5
    assert all(torch.isfinite(p).all() for p in guide.parameters())
    assert all(math.isfinite(r.loss) for r in result.history)  # epoch 1 averages steps 13..16
    assert result.state.optimizer_state["param_groups"][0]["lr"] == pytest.approx(1e-3)
    assert result.state.settings["lr_factor"] == pytest.approx(0.1)


def test_divergence_gives_up_after_max_lr_reductions():
    x, y = torch.randn(64, 3), torch.randn(64)
    model = BayesianMLP([3, 4, 1], Gaussian(noise=0.5))
    guide = MeanFieldGuide(model)
    with pytest.warns(RuntimeWarning), pytest.raises(NonFiniteLossError) as info:
        fit(model, guide, x, y, epochs=20, batch_size=8, optimizer=PoisonAfter(10),
            check_every=4, on_divergence="lower_lr", max_lr_reductions=2, progress=False)
    # each optimizer poisons at its 10th step; a recovery happens at the next check (every 4
    # steps): NaN losses at steps 11, 23 (recovered at 12 and 24), then 35 is one too many
    assert info.value.step == 35
    assert all(torch.isfinite(p).all() for p in guide.parameters())


def test_cosine_schedule_sets_each_epochs_learning_rate():
    x, y = torch.randn(32, 3), torch.randn(32)
    model = BayesianMLP([3, 4, 1], Gaussian(noise=0.5))
    seen = []

    def adam(params):
        opt = torch.optim.Adam(list(params), lr=0.02)
        original = opt.step

        def step(*args, **kwargs):
            seen.append(opt.param_groups[0]["lr"])
            return original(*args, **kwargs)

        opt.step = step
        return opt

    fit(model, MeanFieldGuide(model), x, y, epochs=4, batch_size=16, optimizer=adam,
        lr_schedule="cosine", progress=False)
    expected = [0.02 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4) for _ in range(2)]
    assert seen == pytest.approx(expected)
    assert seen[0] == pytest.approx(0.02) and seen[-1] == pytest.approx(0.02 * 0.1464, rel=1e-3)


def test_cosine_schedule_resumes_exactly():
    x, y = torch.randn(48, 3), torch.randn(48)
    model = BayesianMLP([3, 4, 1], Gaussian(noise=0.5))

    def run(**kwargs):
        torch.manual_seed(0)  # the same initial guide in every run
        guide = MeanFieldGuide(model)
        return guide, fit(model, guide, x, y, epochs=4, batch_size=16, lr=0.01, seed=3,
                          lr_schedule="cosine", progress=False, **kwargs)

    whole, _ = run()
    steps = []
    with pytest.raises(TrainingInterrupted) as info:
        run(stop=lambda: steps.append(1) or len(steps) >= 5)  # mid epoch 2
    resumed, _ = run(state=info.value.state)
    for k, v in whole.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k


@pytest.mark.parametrize("kwargs,match", [
    ({"lr_schedule": "step"}, "lr_schedule must be one of"),
    ({"on_divergence": "retry"}, "on_divergence must be 'stop' or 'lower_lr'"),
    ({"max_lr_reductions": -1}, "max_lr_reductions must be an int >= 0"),
])
def test_schedule_and_divergence_options_are_checked(kwargs, match):
    model = BayesianMLP([3, 1], Gaussian(noise=0.5))
    with pytest.raises(ValueError, match=match):
        fit(model, MeanFieldGuide(model), torch.randn(4, 3), torch.randn(4), progress=False,
            **kwargs)


@pytest.mark.parametrize("device,match", [
    ("mps", r"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'mps'"),
    ("meta", r"got 'meta'"),
    ("gpu", r"got 'gpu'"),
    (3.5, r"got 3.5"),
    ("cuda:64", r"'cuda:64' was asked for but (no CUDA device is available|this machine has)"),
])
def test_unusable_devices_are_named(device, match):
    with pytest.raises(ValueError, match=match):
        resolve_device(device)
    assert resolve_device("cpu") == torch.device("cpu")


def test_a_pruned_or_non_finite_guide_is_refused_before_training():
    from pyro_bbb.pruning import prune

    x, y = torch.randn(40, 3), torch.randint(0, 3, (40,))
    model = _classifier()
    guide = MeanFieldGuide(model)
    fit(model, guide, x, y, epochs=2, progress=False, device="cpu")
    pruned = prune(guide, 0.5)
    before = {k: v.clone() for k, v in pruned.state_dict().items()}
    with pytest.raises(ValueError, match=r"the guide has 12 entries with σ = softplus\(ρ\) = 0 "
                                         r"\(pruned"):
        fit(model, pruned, x, y, epochs=1, progress=False, device="cpu")
    assert all(torch.equal(before[k], v) for k, v in pruned.state_dict().items())
    with torch.no_grad():
        guide.loc["layer0__weight"][0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"parameters \['loc.layer0__weight'\] hold NaN or inf"):
        fit(model, guide, x, y, epochs=1, progress=False, device="cpu")
