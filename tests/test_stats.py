"""harness.stats against closed forms, brute force and scipy on random inputs."""
import itertools

import numpy as np
import pytest
from scipy import stats as sps

from harness.stats import (
    bootstrap_ci,
    budget_to_target,
    budget_to_target_ci,
    interpolate,
    iqm,
    probability_of_improvement,
    probability_of_improvement_ci,
    stratified_bootstrap_ci,
)


@pytest.mark.parametrize("n", [4, 8, 20, 100])
def test_iqm_is_the_mean_of_the_middle_half(n):
    rng = np.random.default_rng(n)
    for _ in range(50):
        x = rng.normal(size=(n // 4, 4))
        s = np.sort(x.ravel())
        assert iqm(x) == pytest.approx(s[n // 4: n - n // 4].mean())


def test_bootstrap_ci_matches_the_normal_approximation_for_a_large_sample():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=400)
    mean, lo, hi = bootstrap_ci(x, reps=20_000)
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))
    assert mean == pytest.approx(x.mean())
    assert lo == pytest.approx(mean - half, abs=0.1 * half) and hi == pytest.approx(mean + half, abs=0.1 * half)
    assert bootstrap_ci(np.full(5, 0.3)) == pytest.approx((0.3, 0.3, 0.3))


def test_stratified_bootstrap_of_two_runs_by_enumeration():
    # one task, runs a < b: replicate means are a, (a+b)/2, b with probabilities 1/4, 1/2, 1/4
    point, lo, hi = stratified_bootstrap_ci(np.array([[0.2], [0.6]]), stat=np.mean, reps=4000)
    assert (point, lo, hi) == pytest.approx((0.4, 0.2, 0.6))
    # runs are resampled within each task: columns constant over runs leave nothing to resample
    s = np.tile(np.array([0.1, 0.5, 0.9]), (6, 1))
    assert stratified_bootstrap_ci(s) == pytest.approx((iqm(s),) * 3)


def test_probability_of_improvement_against_brute_force_and_mann_whitney():
    rng = np.random.default_rng(1)
    for _ in range(100):
        n, m, t = rng.integers(1, 7, size=3)
        x = rng.integers(0, 5, size=(n, t)) / 4  # ties are common, as with accuracies
        y = rng.integers(0, 5, size=(m, t)) / 4
        brute = np.mean([np.mean([(a > b) + 0.5 * (a == b) for a, b in itertools.product(x[:, k], y[:, k])]) for k in range(t)])
        assert probability_of_improvement(x, y) == pytest.approx(brute)
        u = np.mean([sps.mannwhitneyu(x[:, k], y[:, k]).statistic / (n * m) for k in range(t)])
        assert probability_of_improvement(x, y) == pytest.approx(u)
    x = np.array([[0.9, 0.8]] * 3)
    y = np.array([[0.1, 0.2]] * 4)
    assert probability_of_improvement_ci(x, y) == pytest.approx((1.0, 1.0, 1.0))
    assert probability_of_improvement(y, x) == 0.0 and probability_of_improvement(x, x) == 0.5


def test_interpolation_is_exact_on_lines_and_never_extrapolates():
    x = np.array([0.0, 100.0, 250.0])
    grid = np.array([-1.0, 0.0, 50.0, 175.0, 250.0, 251.0])
    y = interpolate(x, 2 * x + 1, grid)
    assert np.isnan(y[0]) and np.isnan(y[-1])
    assert y[1:-1] == pytest.approx(2 * grid[1:-1] + 1)


def test_budget_to_target_first_crossing_by_linear_interpolation():
    x = np.array([0.0, 10.0, 20.0, 30.0])
    y = np.array([0.1, 0.3, 0.2, 0.5])
    assert budget_to_target(x, y, 0.2) == pytest.approx(5.0)  # between the first two points
    assert budget_to_target(x, y, 0.3) == pytest.approx(10.0)
    assert budget_to_target(x, y, 0.4) == pytest.approx(20 + 10 * (0.4 - 0.2) / 0.3)  # after the dip
    assert budget_to_target(x, y, 0.05) == 0.0 and budget_to_target(x, y, 0.6) == float("inf")
    curves = np.tile(y, (5, 1))
    assert budget_to_target_ci(x, curves, 0.4) == pytest.approx((budget_to_target(x, y, 0.4),) * 3)
    # two seeds, one never reaching 0.6: replicates are both (inf), one of each (mean reaches it at 30), or
    # the good one twice; the 95% interval spans the good seed's crossing to inf
    point, lo, hi = budget_to_target_ci(x, np.stack([y, y + 0.2]), 0.6)
    assert (point, lo, hi) == pytest.approx((30.0, budget_to_target(x, y + 0.2, 0.6), float("inf")))
