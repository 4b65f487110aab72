"""Does a 95% interval cover 95%? Coverage and A/A false-positive rates of the report's interval methods,
by simulation, at the seed counts sweeps use.

    python bench/stats_coverage.py [--sims 4000] [--store runs/controls]

Final accuracies are simulated as a benchmark produces them: a per-seed effect (sd 0.022, the seed-to-seed
sd measured on the old presets, slightly right-skewed) plus binomial eval noise on 256 prompts x 16 samples.
For n = 5, 10, 20 seeds it prints the coverage of the mean by the Student-t interval (what reports use now)
and by the percentile bootstrap (what they used before), and the share of A/A pairs (two arms from the same
distribution) that each method's difference interval calls significant, paired and unpaired.
With --store, the seed-to-seed spread is resampled from a real sweep's final accuracies instead.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from harness.analysis.stats import paired_difference, t_interval, welch_difference


def simulated_finals(rng: np.random.Generator, sims: int, n: int, pool: np.ndarray | None) -> np.ndarray:
    """[sims, n] final accuracies: resampled from `pool` (centred real values) or the parametric model."""
    if pool is not None:
        return 0.35 + rng.choice(pool - pool.mean(), size=(sims, n))
    p = np.clip(0.35 + rng.normal(0, 0.02, size=(sims, n)) + rng.exponential(0.01, size=(sims, n)), 0, 1)
    return rng.binomial(256 * 16, p) / (256 * 16)


def percentile_bootstrap(x: np.ndarray, rng: np.random.Generator, reps: int = 2000) -> tuple[float, float]:
    boot = x[rng.integers(0, len(x), size=(reps, len(x)))].mean(1)
    return tuple(np.percentile(boot, [2.5, 97.5]))


def bootstrap_diff(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, reps: int = 2000) -> tuple[float, float]:
    boot = a[rng.integers(0, len(a), (reps, len(a)))].mean(1) - b[rng.integers(0, len(b), (reps, len(b)))].mean(1)
    return tuple(np.percentile(boot, [2.5, 97.5]))


def real_pool(store: Path) -> np.ndarray:
    """Final accuracies of every complete run in a results directory, centred per (algo, task) cell group."""
    groups: dict[tuple, list[float]] = {}
    for summary in store.glob("*/summary.json"):
        s = json.loads(summary.read_text())
        if s.get("status") == "complete":
            groups.setdefault(summary.parent.name.rsplit("-s", 1)[0], []).append(s["final_accuracy"])
    return np.concatenate([np.array(v) - np.mean(v) for v in groups.values() if len(v) > 2])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sims", type=int, default=4000)
    ap.add_argument("--store", type=Path, help="a sweep's results directory to resample seed spread from")
    args = ap.parse_args()
    pool = real_pool(args.store) if args.store else None
    truth = simulated_finals(np.random.default_rng(99), 1, 400_000, pool).mean()
    print(f"{'seeds':>5} | {'t coverage':>10} | {'bootstrap coverage':>18} | {'A/A flagged: paired t':>21} | {'Welch t':>7} | {'bootstrap':>9}")
    for n in (5, 10, 20):
        rng = np.random.default_rng(n)
        x = simulated_finals(rng, args.sims, n, pool)
        t_cov = np.mean([lo <= truth <= hi for lo, hi in (t_interval(r)[1:] for r in x)])
        b_cov = np.mean([lo <= truth <= hi for lo, hi in (percentile_bootstrap(r, rng) for r in x)])
        y = simulated_finals(rng, args.sims, n, pool)
        paired = np.mean([not (d["lo"] <= 0 <= d["hi"]) for d in (paired_difference(a, b) for a, b in zip(x, y))])
        welch = np.mean([not (d["lo"] <= 0 <= d["hi"]) for d in (welch_difference(a, b) for a, b in zip(x, y))])
        boot = np.mean([not (lo <= 0 <= hi) for lo, hi in (bootstrap_diff(a, b, rng) for a, b in zip(x, y))])
        print(f"{n:>5} | {t_cov:>10.3f} | {b_cov:>18.3f} | {paired:>21.3f} | {welch:>7.3f} | {boot:>9.3f}")
    print(f"({args.sims} simulated sweeps per row; {'seed spread resampled from ' + str(args.store) if pool is not None else 'parametric seed spread'})")


if __name__ == "__main__":
    main()
