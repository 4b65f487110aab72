"""harness.analysis.stats against closed forms, brute force and scipy on random inputs."""
import itertools

import numpy as np
import pytest
from scipy import stats as sps

from harness.analysis.stats import (
    MIN_SEEDS,
    budget_to_target,
    decide,
    difference,
    gain_target,
    interpolate,
    iqm,
    mde,
    paired_difference,
    paired_speedup,
    probability_of_improvement,
    probability_of_improvement_ci,
    stratified_bootstrap_ci,
    t_interval,
    welch_difference,
)


@pytest.mark.parametrize("n", [4, 8, 20, 100])
def test_iqm_is_the_mean_of_the_middle_half(n):
    rng = np.random.default_rng(n)
    for _ in range(50):
        x = rng.normal(size=(n // 4, 4))
        s = np.sort(x.ravel())
        assert iqm(x) == pytest.approx(s[n // 4: n - n // 4].mean())


def _realistic_finals(rng, sims: int, n: int) -> np.ndarray:
    """Final accuracies as a benchmark produces them: a seed effect plus binomial eval noise on 256 x 16
    samples around 0.35 (skewed a little, bounded in [0, 1])."""
    p = np.clip(0.35 + rng.normal(0, 0.02, size=(sims, n)) + rng.exponential(0.01, size=(sims, n)), 0, 1)
    return rng.binomial(256 * 16, p) / (256 * 16)


@pytest.mark.parametrize("n", [5, 10, 20])
def test_t_interval_covers_the_mean_95_percent_by_simulation(n):
    rng = np.random.default_rng(n)
    sims = 3000
    x = _realistic_finals(rng, sims, n)
    truth = np.mean(_realistic_finals(np.random.default_rng(99), 200, 1000))  # the population mean, by a big sample
    cover = np.mean([lo <= truth <= hi for lo, hi in (t_interval(row)[1:] for row in x)])
    assert 0.93 <= cover <= 0.97, cover


def test_t_interval_is_scipys_and_refuses_below_min_seeds():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=7)
    mean, lo, hi = t_interval(x)
    ref = sps.ttest_1samp(x, 0.0).confidence_interval(0.95)
    assert (mean, lo, hi) == pytest.approx((x.mean(), ref.low, ref.high))
    assert all(np.isnan(v) for v in t_interval(x[: MIN_SEEDS - 1])[1:])
    assert t_interval(np.full(5, 0.3)) == pytest.approx((0.3, 0.3, 0.3))


def test_paired_and_welch_differences_match_scipy():
    rng = np.random.default_rng(2)
    for n in (3, 5, 12):
        a, b = rng.normal(0.4, 0.03, n), rng.normal(0.38, 0.03, n)
        d = paired_difference(a, b)
        ref = sps.ttest_rel(a, b)
        ci = ref.confidence_interval(0.95)
        assert (d["point"], d["lo"], d["hi"], d["p"]) == pytest.approx(((a - b).mean(), ci.low, ci.high, ref.pvalue))
        assert d["per_seed"] == pytest.approx((a - b).tolist())
        w = welch_difference(a, b[1:] if n > 3 else b)
        ref = sps.ttest_ind(a, b[1:] if n > 3 else b, equal_var=False)
        ci = ref.confidence_interval(0.95)
        assert (w["lo"], w["hi"], w["p"]) == pytest.approx((ci.low, ci.high, ref.pvalue))
    # difference() pairs when both sides ran the same seeds, and falls back to Welch otherwise
    assert difference({0: 1.0, 1: 2.0, 2: 4.0}, {2: 3.0, 0: 0.5, 1: 1.0})["per_seed"] == pytest.approx([0.5, 1.0, 1.0])
    assert difference({0: 1.0, 1: 2.0, 2: 4.0}, {0: 0.5, 1: 1.0, 5: 3.0})["method"] == "welch t"
    two = paired_difference([0.1, 0.2], [0.0, 0.0])
    assert np.isnan(two["lo"]) and np.isnan(two["mde"]) and decide(two) == "too few seeds"


def test_mde_is_the_effect_found_with_80_percent_power():
    # large df: the normal approximation (z_0.975 + z_0.8) * se
    assert mde(1.0, 10_000) == pytest.approx(sps.norm.ppf(0.975) + sps.norm.ppf(0.8), rel=1e-3)
    # n = 5 paired seeds: simulate a true effect equal to the MDE; the t-test rejects ~80% of the time
    rng = np.random.default_rng(3)
    sd, n, sims = 0.02, 5, 4000
    effect = mde(sd / np.sqrt(n), n - 1)
    d = rng.normal(effect, sd, size=(sims, n))
    p = sps.ttest_1samp(d, 0.0, axis=1).pvalue
    # the MDE uses the true sd; the test its estimate, as the formula assumes: power 0.8 within MC error
    assert np.mean(p < 0.05) == pytest.approx(0.8, abs=0.025)
    assert mde(0.0, 4) == 0.0 and np.isnan(mde(1.0, 0))


def test_a_a_comparisons_are_significant_5_percent_of_the_time():
    rng = np.random.default_rng(4)
    for n in (5, 10):
        a, b = _realistic_finals(rng, 2000, n), _realistic_finals(rng, 2000, n)
        flagged = np.mean([decide(paired_difference(x, y)) != "no significant difference" for x, y in zip(a, b)])
        assert flagged <= 0.065, (n, flagged)


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


def test_paired_speedup_recovers_a_planted_stretch_and_counts_censoring():
    x = np.linspace(0, 1000, 11)
    rng = np.random.default_rng(5)
    base, slow = [], []
    for s in range(6):
        rate = 0.3 + 0.02 * rng.normal()
        base.append((x, 0.2 + rate * x / 1000))
        slow.append((x, 0.2 + rate * x / 1500))  # the same curve, 1.5x more budget for the same accuracy
    target = gain_target(np.full(6, 0.2), np.array([y[-1] for _, y in base]), 0.5)
    out = paired_speedup(base, slow, target)
    assert out["speedup"] == pytest.approx((1 / 1.5,) * 3, rel=1e-6)  # exact per seed: a zero-width interval
    assert out["censored"] == {"base": 0, "method": 0} and out["log"]["n"] == 6
    # a method that never gets there is censored at its budget, counted, and its budget kept as inf
    never = [(x, np.full(11, 0.2)) for _ in range(6)]
    out = paired_speedup(base, never, target)
    assert out["censored"]["method"] == 6 and all(np.isinf(out["method_budget"])) and out["speedup"][2] < 1
    with pytest.raises(ValueError):
        paired_speedup(base, slow[:3], target)
