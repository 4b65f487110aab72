"""Statistics for comparisons across seeds and tasks (what reports print), in numpy/scipy.

Comparisons between methods are paired by seed: methods at the same seed share the warm start, the prompt
stream, the sampling seeds and the evaluation seed, so the per-seed difference cancels what they share. With
the 5-20 seeds a CPU sweep affords, intervals are Student-t (a percentile bootstrap over 5 seeds covers ~85%,
not 95%; bench/stats_coverage.py measures both), and every comparison carries its minimum detectable effect:
the true difference a two-sided t-test at these seeds would find with 80% power. Fewer than MIN_SEEDS seeds
give no interval at all.

The aggregate estimators follow Agarwal et al. 2021 ("Deep RL at the Edge of the Statistical Precipice",
the rliable library): interquartile mean over all runs x tasks, stratified bootstrap (runs resampled within
each task) for its confidence interval, and the probability of improvement P(X > Y) + P(X = Y) / 2 averaged
over tasks. rliable itself does not import with pandas 3, so the few lines it
would provide live here, checked against closed forms and brute force in tests/test_stats.py.

Shapes: `scores` is [runs, tasks] (one number per seed and task); curves are [runs, points]; paired
inputs a, b are [seeds] in the same seed order.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import optimize
from scipy import stats as sps

Stat = Callable[[np.ndarray], float]
MIN_SEEDS = 3  # below this a t interval is too wide to mean anything: no interval, and the report says so
CONF, POWER = 0.95, 0.80


def t_interval(x: np.ndarray, conf: float = CONF) -> tuple[float, float, float]:
    """(mean, lo, hi): Student-t interval for the mean of x [n]; lo = hi = NaN below MIN_SEEDS entries."""
    x = np.asarray(x, dtype=float)
    m = float(x.mean())
    if len(x) < MIN_SEEDS:
        return m, float("nan"), float("nan")
    half = float(sps.t.ppf(0.5 + conf / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return m, m - half, m + half


def mde(se: float, df: float, conf: float = CONF, power: float = POWER) -> float:
    """Minimum detectable effect: the true effect a two-sided t-test (standard error se, df degrees of freedom,
    level 1 - conf) rejects with probability `power`; solved exactly on the noncentral t. NaN when df < 1."""
    if not (df >= 1 and np.isfinite(se)):
        return float("nan")
    if se == 0:
        return 0.0
    crit = sps.t.ppf(0.5 + conf / 2, df)

    def shortfall(nc: float) -> float:
        wrong_side = np.nan_to_num(sps.nct.cdf(-crit, df, nc), nan=0.0)  # ~0 and NaN in scipy far out: drop it
        return sps.nct.sf(crit, df, nc) + wrong_side - power

    return float(optimize.brentq(shortfall, 0.0, 2 * crit + 20.0) * se)


def _summary(n: int, point: float, se: float, df: float, conf: float, method: str) -> dict:
    """The numbers every comparison reports, from its estimate, standard error and degrees of freedom; no
    interval when a side has fewer than MIN_SEEDS seeds (n: the smaller side)."""
    if n < MIN_SEEDS or not np.isfinite(se):
        lo = hi = p = m = float("nan")
    else:
        half = sps.t.ppf(0.5 + conf / 2, df) * se
        lo, hi = point - half, point + half
        p = float(2 * sps.t.sf(abs(point) / se, df)) if se > 0 else float(point == 0)
        m = mde(se, df, conf)
    return {"point": float(point), "lo": float(lo), "hi": float(hi), "se": float(se), "df": float(df), "p": p, "mde": m,
            "n": int(n), "method": method}


def paired_difference(a: np.ndarray, b: np.ndarray, conf: float = CONF) -> dict:
    """mean(a - b) over seeds with a paired t interval, p-value and MDE. a, b [seeds], the same seed order.
    Returns {point, lo, hi, se, df, p, mde, n, method, per_seed}; no interval below MIN_SEEDS seeds."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired_difference: seeds do not match ({a.shape} vs {b.shape})")
    d = a - b
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
    return {**_summary(len(d), float(d.mean()), se, len(d) - 1, conf, "paired t"), "per_seed": d.tolist()}


def welch_difference(a: np.ndarray, b: np.ndarray, conf: float = CONF) -> dict:
    """mean(a) - mean(b) for independent samples: Welch's t interval (Satterthwaite df), p-value and MDE."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = min(len(a), len(b))
    if n < 2:
        return _summary(n, float(a.mean() - b.mean()), float("nan"), 0, conf, "welch t")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = float(np.sqrt(va + vb))
    df = float((va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))) if va + vb > 0 else float(len(a) + len(b) - 2)
    return _summary(n, float(a.mean() - b.mean()), se, df, conf, "welch t")


def difference(a: dict[int, float], b: dict[int, float], conf: float = CONF) -> dict:
    """A - B from {seed: value} of each side: paired by seed when both ran the same seeds, Welch otherwise."""
    if set(a) == set(b):
        seeds = sorted(a)
        return {**paired_difference([a[s] for s in seeds], [b[s] for s in seeds], conf), "seeds": seeds}
    return welch_difference(list(a.values()), list(b.values()), conf)


def decide(d: dict, higher_is_better: bool = True) -> str:
    """Verdict of a difference interval d (paired_difference / welch_difference): 'better' or 'worse' when
    it excludes 0, else 'no significant difference'; 'too few seeds' when there is no interval."""
    if np.isnan(d["lo"]):
        return "too few seeds"
    lo, hi = (d["lo"], d["hi"]) if higher_is_better else (-d["hi"], -d["lo"])
    return "better" if lo > 0 else "worse" if hi < 0 else "no significant difference"


def iqm(x: np.ndarray) -> float:
    """Interquartile mean of all entries: the mean of the middle 50% (25% trimmed from each end)."""
    return float(sps.trim_mean(np.asarray(x, dtype=float).ravel(), 0.25))


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




def gain_target(initial: np.ndarray, final: np.ndarray, frac: float) -> float:
    """The accuracy a speed-up is measured to: the baseline's warm start plus `frac` of its gain at the
    budget (means over its seeds). Fixed by the baseline alone, before any method's result is read, and on
    the steep part of its curve rather than its plateau, where noise decides when a curve first touches it."""
    i, f = float(np.mean(initial)), float(np.mean(final))
    return i + frac * (f - i)


def paired_speedup(base: list[tuple[np.ndarray, np.ndarray]], method: list[tuple[np.ndarray, np.ndarray]], target: float,
                   conf: float = CONF) -> dict:
    """How much sooner `method` reaches `target` than `base`, seed by seed.

    base, method: per seed (same order) the eval curve (x [points], y [points]). Each seed's budget-to-target
    is its own first crossing; a seed that never reaches it is censored at its budget (its last x): the true
    value is larger, so that seed's ratio is a bound, and the counts of censored seeds travel with the result.
    The speed-up is the geometric mean over seeds of base_budget / method_budget, with a paired t interval on
    the log ratios (budgets-to-target are positive and their ratios skewed; logs make them symmetric).
    Returns {speedup: (point, lo, hi), mde (the smallest speed-up factor detectable at 80% power), log (the
    paired_difference of log budgets), base_budget / method_budget [seeds] (inf = never), censored counts,
    early: how many of the 2 x seeds curves cross within their first evaluation interval (resolution-limited)}."""
    if len(base) != len(method):
        raise ValueError(f"paired_speedup: {len(base)} baseline seeds vs {len(method)} method seeds")

    def budgets(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, int]:
        """(raw budgets [seeds] with inf = never, budgets censored and clipped for the log, early crossings)."""
        raw = np.array([budget_to_target(x, y, target) for x, y in curves])
        ends = np.array([float(np.asarray(x)[-1]) for x, _ in curves])
        firsts = np.array([float(np.asarray(x)[min(1, len(x) - 1)]) for x, _ in curves])  # end of the first interval
        # a seed already at the target at its first evaluation is credited half the first interval (not 0: log);
        # a crossing inside the first interval is interpolated from the warm start and one point: coarse
        return raw, np.clip(np.minimum(raw, ends), 0.5 * firsts, None), int((raw <= firsts).sum())

    tb_raw, tb, early_b = budgets(base)
    tm_raw, tm, early_m = budgets(method)
    early = early_b + early_m
    log = paired_difference(np.log(tb), np.log(tm), conf)
    ratio = tuple(float(np.exp(log[k])) for k in ("point", "lo", "hi"))
    return {"target": float(target), "speedup": ratio, "mde": float(np.exp(log["mde"])), "log": log,
            "base_budget": tb_raw.tolist(), "method_budget": tm_raw.tolist(),
            "censored": {"base": int(np.isinf(tb_raw).sum()), "method": int(np.isinf(tm_raw).sum())}, "early": early}
