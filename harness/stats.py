"""Statistics for comparisons across seeds and tasks (what reports print), in numpy/scipy.

The aggregate estimators follow Agarwal et al. 2021 ("Deep RL at the Edge of the Statistical Precipice",
the rliable library): interquartile mean over all runs x tasks, stratified bootstrap (runs resampled within
each task) for its confidence interval, and the probability of improvement P(X > Y) + P(X = Y) / 2 averaged
over tasks. rliable itself does not import with pandas 3 (see shared/ENVIRONMENT.md), so the few lines it
would provide live here, checked against closed forms and brute force in tests/test_stats.py.

Shapes: `scores` is [runs, tasks] (one number per seed and task); curves are [runs, points].
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import stats as sps

Stat = Callable[[np.ndarray], float]


def iqm(x: np.ndarray) -> float:
    """Interquartile mean of all entries: the mean of the middle 50% (25% trimmed from each end)."""
    return float(sps.trim_mean(np.asarray(x, dtype=float).ravel(), 0.25))


def bootstrap_ci(x: np.ndarray, stat: Stat = np.mean, reps: int = 10_000, conf: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(stat(x), lo, hi): percentile bootstrap over the entries of x [n] (e.g. seeds)."""
    x = np.asarray(x, dtype=float)
    if len(x) == 1:
        return float(stat(x)), float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, len(x), size=(reps, len(x)))
    boot = np.apply_along_axis(stat, 1, x[idx]) if stat is not np.mean else x[idx].mean(1)
    lo, hi = np.percentile(boot, [50 * (1 - conf), 50 * (1 + conf)])
    return float(stat(x)), float(lo), float(hi)


def stratified_bootstrap_ci(scores: np.ndarray, stat: Stat = iqm, reps: int = 2_000, conf: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(stat(scores), lo, hi) for scores [runs, tasks]: each replicate resamples runs within every task."""
    s = np.asarray(scores, dtype=float)
    n, t = s.shape
    rng = np.random.default_rng(seed)
    boot = np.empty(reps)
    cols = np.arange(t)
    for r in range(reps):
        boot[r] = stat(s[rng.integers(0, n, size=(n, t)), cols])
    lo, hi = np.percentile(boot, [50 * (1 - conf), 50 * (1 + conf)])
    return float(stat(s)), float(lo), float(hi)


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """Mean over tasks of P(X > Y) + P(X = Y) / 2, X a run of method x and Y of method y on that task
    (the Mann-Whitney U statistic / (n m)). x [n, tasks], y [m, tasks]."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    gt = (x[:, None, :] > y[None, :, :]).mean((0, 1))
    eq = (x[:, None, :] == y[None, :, :]).mean((0, 1))
    return float((gt + 0.5 * eq).mean())


def probability_of_improvement_ci(x: np.ndarray, y: np.ndarray, reps: int = 2_000, conf: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Point estimate and stratified-bootstrap CI of probability_of_improvement(x, y) (runs of both methods
    resampled within each task, independently)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    rng = np.random.default_rng(seed)
    cols = np.arange(x.shape[1])
    boot = np.empty(reps)
    for r in range(reps):
        xb = x[rng.integers(0, len(x), size=x.shape), cols]
        yb = y[rng.integers(0, len(y), size=y.shape), cols]
        boot[r] = probability_of_improvement(xb, yb)
    lo, hi = np.percentile(boot, [50 * (1 - conf), 50 * (1 + conf)])
    return probability_of_improvement(x, y), float(lo), float(hi)


def interpolate(x: np.ndarray, y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """A curve's y at each grid point by linear interpolation; NaN outside [x[0], x[-1]] (never extrapolate)."""
    x, y, grid = (np.asarray(a, dtype=float) for a in (x, y, grid))
    out = np.interp(grid, x, y)
    out[(grid < x[0]) | (grid > x[-1])] = np.nan
    return out


def budget_to_target(x: np.ndarray, y: np.ndarray, target: float) -> float:
    """First budget at which the curve (x [points], y [points], linear between points) reaches target; inf if never."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    hit = np.flatnonzero(y >= target)
    if not len(hit):
        return float("inf")
    i = hit[0]
    if i == 0:
        return float(x[0])
    return float(x[i - 1] + (target - y[i - 1]) * (x[i] - x[i - 1]) / (y[i] - y[i - 1]))


def budget_to_target_ci(grid: np.ndarray, curves: np.ndarray, target: float, reps: int = 2_000, conf: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Budget at which the seed-mean curve reaches target, with a bootstrap CI over seeds.
    grid [points], curves [seeds, points] on that grid. A replicate that never reaches target counts as inf,
    so an upper bound of inf means 'not reached in enough resamples'."""
    c = np.asarray(curves, dtype=float)
    rng = np.random.default_rng(seed)
    point = budget_to_target(grid, c.mean(0), target)
    boot = np.array([budget_to_target(grid, c[rng.integers(0, len(c), size=len(c))].mean(0), target) for _ in range(reps)])
    lo, hi = np.percentile(boot, [50 * (1 - conf), 50 * (1 + conf)], method="nearest")
    return point, float(lo), float(hi)


def speedup_ci(grid_b: np.ndarray, curves_b: np.ndarray, grid_m: np.ndarray, curves_m: np.ndarray,
               target: Callable[[np.ndarray], float], reps: int = 2_000, conf: float = 0.95, seed: int = 0) -> dict:
    """How much sooner method m reaches the baseline's target than the baseline b does.

    curves_b [seeds_b, points] on grid_b, curves_m [seeds_m, points] on grid_m; target(mean baseline curve)
    gives the accuracy to reach (e.g. its final value, or 99% of its peak). Each bootstrap replicate resamples
    the seeds of both methods, recomputes the target, both budgets-to-target and their ratio b / m
    (0 when m never reaches it). Returns point estimates and percentile CIs of both budgets and the ratio."""
    b, m = np.asarray(curves_b, dtype=float), np.asarray(curves_m, dtype=float)

    def one(bc: np.ndarray, mc: np.ndarray) -> tuple[float, float, float]:
        mean_b = bc.mean(0)
        t = target(mean_b)
        tb, tm = budget_to_target(grid_b, mean_b, t), budget_to_target(grid_m, mc.mean(0), t)
        return tb, tm, (tb / tm if np.isfinite(tm) and tm > 0 else (np.inf if tm == 0 else 0.0))

    rng = np.random.default_rng(seed)
    boot = np.array([one(b[rng.integers(0, len(b), len(b))], m[rng.integers(0, len(m), len(m))]) for _ in range(reps)])
    q = [50 * (1 - conf), 50 * (1 + conf)]
    point = one(b, m)
    out = {"target": target(b.mean(0))}
    for i, key in enumerate(("baseline_budget", "method_budget", "speedup")):
        lo, hi = np.percentile(boot[:, i], q, method="nearest")
        out[key] = (float(point[i]), float(lo), float(hi))
    return out
