import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pyro_bbb.metrics import (
    accuracy,
    brier_score,
    expected_calibration_error,
    gaussian_log_likelihood,
    interval_coverage,
    mixture_gaussian_log_likelihood,
    nll,
    reliability_curve,
    rmse,
)

# --------------------------------------------------------------------------- strategies


@st.composite
def classification(draw, max_n=20, max_c=6):
    """Random (probs, labels) with rows on the simplex (some one-hot rows included)."""
    n = draw(st.integers(1, max_n))
    c = draw(st.integers(2, max_c))
    weights = draw(
        st.lists(
            st.lists(st.floats(0.0, 1.0), min_size=c, max_size=c).filter(lambda r: sum(r) > 1e-3),
            min_size=n,
            max_size=n,
        )
    )
    w = torch.tensor(weights, dtype=torch.float64)
    labels = torch.tensor(draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    return w / w.sum(-1, keepdim=True), labels


@st.composite
def gaussian_mixture(draw, max_s=5, max_n=10):
    """Random (locs (S, N), scales (S, N), target (N,))."""
    s = draw(st.integers(1, max_s))
    n = draw(st.integers(1, max_n))

    def matrix(elements, rows):
        return torch.tensor(
            draw(
                st.lists(st.lists(elements, min_size=n, max_size=n), min_size=rows, max_size=rows)
            ),
            dtype=torch.float64,
        )

    locs = matrix(st.floats(-10, 10), s)
    scales = matrix(st.floats(0.05, 10), s)
    target = matrix(st.floats(-10, 10), 1)[0]
    return locs, scales, target


# --------------------------------------------------------------------------- known answers


def test_accuracy_known_answer():
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    labels = torch.tensor([0, 1, 1, 0])
    assert accuracy(probs, labels) == pytest.approx(0.5)


def test_accuracy_accepts_numpy():
    probs = np.array([[0.9, 0.1], [0.2, 0.8]])
    assert accuracy(probs, np.array([0, 1])) == 1.0


def test_nll_of_uniform_is_log_num_classes():
    for c in (2, 3, 10):
        probs = torch.full((7, c), 1.0 / c)
        labels = torch.arange(7) % c
        assert nll(probs, labels) == pytest.approx(math.log(c))


def test_nll_known_answer_and_eps_clamp():
    probs = torch.tensor([[0.5, 0.5], [0.25, 0.75]], dtype=torch.float64)
    labels = torch.tensor([0, 1])
    assert nll(probs, labels) == pytest.approx(-(math.log(0.5) + math.log(0.75)) / 2)
    confident_wrong = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    assert nll(confident_wrong, torch.tensor([1]), eps=1e-6) == pytest.approx(-math.log(1e-6))


def test_brier_perfect_uniform_and_worst():
    labels = torch.tensor([0, 2, 1])
    perfect = torch.nn.functional.one_hot(labels, 3).double()
    assert brier_score(perfect, labels) == 0.0
    uniform = torch.full((3, 3), 1.0 / 3)
    # (1 - 1/C)² + (C - 1)/C² = 1 - 1/C
    assert brier_score(uniform, labels) == pytest.approx(1 - 1 / 3)
    worst = torch.nn.functional.one_hot((labels + 1) % 3, 3).double()
    assert brier_score(worst, labels) == pytest.approx(2.0)


def test_ece_hand_computed():
    # 5 bins. Bin (0.8, 1.0]: confidences 0.9, 0.9, one right -> |0.5 - 0.9| = 0.4.
    # Bin (0.4, 0.6]: confidences 0.6, 0.6, both right -> |1.0 - 0.6| = 0.4.
    # ECE = 2/4 * 0.4 + 2/4 * 0.4 = 0.4.
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 1])
    assert expected_calibration_error(probs, labels, num_bins=5) == pytest.approx(0.4)


def test_reliability_curve_bins_are_right_closed():
    probs = torch.tensor([[0.6, 0.4], [0.7, 0.3], [1.0, 0.0]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 0])
    curve = reliability_curve(probs, labels, num_bins=5)
    assert curve.counts.tolist() == [0, 0, 1, 1, 1]  # 0.6 in (0.4, 0.6]; 0.7 in (0.6, 0.8]
    torch.testing.assert_close(curve.bin_centers, torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9]).double())
    torch.testing.assert_close(curve.accuracy[2:], torch.tensor([1.0, 0.0, 1.0]).double())
    torch.testing.assert_close(curve.confidence[2:], torch.tensor([0.6, 0.7, 1.0]).double())
    assert torch.isnan(curve.accuracy[:2]).all() and torch.isnan(curve.confidence[:2]).all()


def test_ece_zero_for_perfectly_calibrated_construction():
    # In the bin of confidence 0.75, exactly 3 out of 4 predictions are right; confidence 1.0
    # predictions are always right.
    probs = torch.tensor([[0.75, 0.25]] * 4 + [[0.0, 1.0]] * 2, dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-12)


def test_rmse_known_answer():
    assert rmse(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 4.0, 3.0])) == pytest.approx(
        math.sqrt(4 / 3)
    )


def test_gaussian_log_likelihood_closed_form():
    mean, std, y = 1.0, 2.0, 2.0
    expected = -0.5 * math.log(2 * math.pi) - math.log(std) - 0.5 * ((y - mean) / std) ** 2
    got = gaussian_log_likelihood(torch.tensor([mean]), torch.tensor([std]), torch.tensor([y]))
    assert got == pytest.approx(expected, rel=1e-6)
    at_mean = gaussian_log_likelihood(torch.zeros(3), torch.ones(3), torch.zeros(3))
    assert at_mean == pytest.approx(-0.5 * math.log(2 * math.pi), rel=1e-6)


def test_mixture_of_one_component_equals_gaussian():
    torch.manual_seed(0)
    mean, std, y = torch.randn(8), torch.rand(8) + 0.1, torch.randn(8)
    expected = gaussian_log_likelihood(mean, std, y)
    assert mixture_gaussian_log_likelihood(mean[None], std[None], y) == pytest.approx(expected)


def test_mixture_of_identical_components_equals_gaussian():
    mean, std, y = torch.tensor([0.5, -1.0]), torch.tensor([1.0, 3.0]), torch.tensor([0.0, 2.0])
    expected = gaussian_log_likelihood(mean, std, y)
    got = mixture_gaussian_log_likelihood(mean.expand(4, 2), std.expand(4, 2), y)
    assert got == pytest.approx(expected, rel=1e-6)


def test_mixture_known_two_component_value():
    # y = 0 under 0.5 N(0, 1) + 0.5 N(2, 1)
    dens = 0.5 * (math.exp(0) + math.exp(-2)) / math.sqrt(2 * math.pi)
    got = mixture_gaussian_log_likelihood(
        torch.tensor([[0.0], [2.0]]), torch.ones(2, 1), torch.zeros(1)
    )
    assert got == pytest.approx(math.log(dens), rel=1e-6)


def test_mixture_is_stable_far_in_the_tail():
    # exp-then-log would underflow to log(0) = -inf here
    got = mixture_gaussian_log_likelihood(
        torch.tensor([[0.0], [0.0]]), torch.full((2, 1), 1e-3), torch.tensor([1.0])
    )
    assert math.isfinite(got)


def test_interval_coverage_known_answer_and_closed_ends():
    lower = torch.tensor([0.0, 0.0, 0.0, 0.0])
    upper = torch.tensor([1.0, 1.0, 1.0, 1.0])
    target = torch.tensor([0.0, 1.0, 0.5, 1.5])
    assert interval_coverage(lower, upper, target) == pytest.approx(0.75)


# --------------------------------------------------------------------------- properties


@given(classification())
def test_ece_in_unit_interval(data):
    probs, labels = data
    assert 0.0 <= expected_calibration_error(probs, labels) <= 1.0


@given(classification())
def test_brier_in_zero_two(data):
    probs, labels = data
    assert 0.0 <= brier_score(probs, labels) <= 2.0 + 1e-12


@given(classification())
def test_nll_nonnegative(data):
    probs, labels = data
    assert nll(probs, labels) >= 0.0


@given(classification(), st.randoms(use_true_random=False))
def test_metrics_invariant_to_example_permutation(data, rnd):
    probs, labels = data
    perm = list(range(len(labels)))
    rnd.shuffle(perm)
    for metric in (accuracy, nll, brier_score, expected_calibration_error):
        assert metric(probs[perm], labels[perm]) == pytest.approx(metric(probs, labels))


@given(classification())
def test_reliability_counts_sum_to_n(data):
    probs, labels = data
    curve = reliability_curve(probs, labels, num_bins=7)
    assert int(curve.counts.sum()) == len(labels)


@settings(max_examples=50)
@given(gaussian_mixture())
def test_mixture_ll_bounds(data):
    """Jensen: log mean_s p_s >= mean_s log p_s; and log mean_s p_s <= max_s log p_s."""
    locs, scales, target = data
    mixture = mixture_gaussian_log_likelihood(locs, scales, target)
    per_component = [
        gaussian_log_likelihood(m, s, target) for m, s in zip(locs, scales, strict=True)
    ]
    assert mixture >= sum(per_component) / len(per_component) - 1e-9
    per_point_max = torch.stack(
        [
            torch.distributions.Normal(m, s).log_prob(target)
            for m, s in zip(locs, scales, strict=True)
        ]
    ).amax(0)
    assert mixture <= per_point_max.mean().item() + 1e-9


@given(st.lists(st.floats(-100, 100), min_size=1, max_size=20), st.floats(0.0, 10.0))
def test_coverage_of_symmetric_interval(values, half_width):
    y = torch.tensor(values, dtype=torch.float64)
    assert interval_coverage(y - half_width, y + half_width, y) == 1.0
    assert 0.0 <= interval_coverage(y - 1.0, y + 1.0, y + 2 * half_width) <= 1.0


@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=20))
def test_rmse_zero_on_identity_and_nonnegative(values):
    y = torch.tensor(values, dtype=torch.float64)
    assert rmse(y, y) == 0.0
    assert rmse(y, y + 1.0) == pytest.approx(1.0)


# --------------------------------------------------------------------------- errors


GOOD_PROBS = torch.tensor([[0.5, 0.5], [0.1, 0.9]])


@pytest.mark.parametrize(
    "probs, labels, match",
    [
        (GOOD_PROBS, torch.tensor([0, 1, 1]), r"probs \(2, 2\).*labels \(3,\)"),
        (GOOD_PROBS, torch.tensor([0, 2]), r"labels out of range \[0, 2\)"),
        (GOOD_PROBS, torch.tensor([-1, 0]), r"labels out of range"),
        (GOOD_PROBS, torch.tensor([0.0, 0.5]), "labels must be integers"),
        (GOOD_PROBS, torch.tensor([0.0, float("nan")]), "labels must be integers"),
        (torch.empty(0, 3), torch.empty(0, dtype=torch.long), "probs is empty"),
        (torch.tensor([[float("nan"), 1.0]]), torch.tensor([0]), "probs contains NaN"),
        (torch.tensor([0.5, 0.5]), torch.tensor([0]), r"probs must have shape \(N, C\)"),
        (torch.tensor([[2.0, -1.0]]), torch.tensor([0]), r"probs must lie in \[0, 1\]"),
        (torch.tensor([[0.2, 0.2]]), torch.tensor([0]), "rows must sum to 1"),
    ],
)
@pytest.mark.parametrize(
    "metric", [accuracy, nll, brier_score, expected_calibration_error, reliability_curve]
)
def test_classification_errors(metric, probs, labels, match):
    with pytest.raises(ValueError, match=match):
        metric(probs, labels)


@pytest.mark.parametrize(
    "metric", [accuracy, nll, brier_score, expected_calibration_error])
def test_labels_as_fit_takes_them_give_the_integer_labels_answer(metric):
    probs, labels = torch.tensor([[0.7, 0.3], [0.2, 0.8], [0.6, 0.4]]), torch.tensor([0, 1, 1])
    want = metric(probs, labels)
    assert metric(probs, labels.float()) == want
    assert metric(probs, labels.bool()) == want
    assert metric(probs, labels.numpy().astype("float64")) == want


def test_num_bins_must_be_positive():
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="num_bins must be a positive int"):
            expected_calibration_error(GOOD_PROBS, torch.tensor([0, 1]), num_bins=bad)


def test_regression_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"mean \(3,\), target \(2,\)"):
        rmse(torch.zeros(3), torch.zeros(2))
    with pytest.raises(ValueError, match=r"std \(2,\)"):
        gaussian_log_likelihood(torch.zeros(3), torch.ones(2), torch.zeros(3))


def test_regression_empty_and_nan():
    with pytest.raises(ValueError, match="mean is empty"):
        rmse(torch.zeros(0), torch.zeros(0))
    with pytest.raises(ValueError, match="target contains NaN"):
        rmse(torch.zeros(1), torch.tensor([float("nan")]))


def test_nonpositive_scale_rejected():
    with pytest.raises(ValueError, match="std must be positive"):
        gaussian_log_likelihood(torch.zeros(2), torch.tensor([1.0, 0.0]), torch.zeros(2))
    with pytest.raises(ValueError, match="scales must be positive"):
        mixture_gaussian_log_likelihood(torch.zeros(2, 1), -torch.ones(2, 1), torch.zeros(1))


def test_mixture_shape_mismatch():
    with pytest.raises(ValueError, match=r"locs \(2, 3\) must be \(S, \*target.shape\)"):
        mixture_gaussian_log_likelihood(torch.zeros(2, 3), torch.ones(2, 3), torch.zeros(2))
    with pytest.raises(ValueError, match=r"locs \(2, 3\), scales \(3, 3\)"):
        mixture_gaussian_log_likelihood(torch.zeros(2, 3), torch.ones(3, 3), torch.zeros(3))


def test_coverage_rejects_inverted_interval():
    with pytest.raises(ValueError, match="lower exceeds upper at 1 points"):
        interval_coverage(torch.tensor([0.0, 2.0]), torch.tensor([1.0, 1.0]), torch.zeros(2))
