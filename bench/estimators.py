"""Advantage estimators and selection rules: the vectorised code against the implementations it replaced.

    python bench/estimators.py [--groups 10000] [--n 64] [--k 4] [--pods-groups 512] [--threads 2]

Prints seconds (best of 3) and ratios, measured in the same run:
- MaxPO L2O advantages for G groups of n: the O(n^2)-per-group pair matrix it replaced, the closed form now in
  algorithms/maxpo.py, and PKPO on the same input (the cheapest estimator, as the floor);
- PODS max-variance selection of m = n/4 of n = 16: the per-group loop it replaced, and the batched rule.
Both old implementations are reproduced below and checked equal to the new ones on the benchmark's input.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from algorithms.maxpo import _v, maxk_advantages
from algorithms.pods import max_variance_mask


def best_of(fn, repeats: int = 3) -> tuple[float, object]:
    out, times = None, []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def l2o_pair_matrix(g: torch.Tensor, k: int) -> torch.Tensor:
    """The previous L2O: V[:, i, j] = v_i without sample j for every j (n calls), D = V - V^T, row sums."""
    gs, order = g.sort(-1)
    G, n = gs.shape
    cols = torch.arange(n)
    V = torch.zeros(G, n, n, dtype=torch.float64)
    for j in range(n):
        keep = cols[cols != j]
        V[:, keep, j] = _v(gs[:, keep], k)
    adv_sorted = (k / n) * (V - V.transpose(1, 2)).sum(-1) / (n - 1)
    return torch.empty_like(adv_sorted).scatter_(-1, order, adv_sorted)


def max_variance_loop(rewards: torch.Tensor, m: int) -> torch.Tensor:
    """The previous PODS selection: one numpy call per group."""
    keep = torch.zeros_like(rewards, dtype=torch.bool)
    for row, r in enumerate(rewards.numpy()):
        n = len(r)
        order = np.argsort(r, kind="stable")
        x = r[order] - np.median(r)
        P, Q = np.concatenate([[0.0], np.cumsum(x)]), np.concatenate([[0.0], np.cumsum(x * x)])
        i = np.arange(m + 1)
        s, q = P[m - i] + P[n] - P[n - i], Q[m - i] + Q[n] - Q[n - i]
        best = int(np.argmax(q / m - (s / m) ** 2))
        keep[row, torch.as_tensor(np.concatenate([order[: m - best], order[n - best:]]))] = True
    return keep


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=10_000)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--pods-groups", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)

    g = (torch.rand(args.groups, args.n, generator=gen) < 0.3).double()
    t_old, old = best_of(lambda: l2o_pair_matrix(g, args.k), repeats=1)
    t_new, new = best_of(lambda: maxk_advantages(g, args.k, "l2o"))
    t_pkpo, _ = best_of(lambda: maxk_advantages(g, args.k, "pkpo"))
    assert torch.allclose(old, new, atol=1e-12), "closed-form L2O differs from the pair matrix"
    print(f"MaxPO L2O, {args.groups} groups of {args.n}, K={args.k}: pair matrix {t_old:.3f} s, closed form {t_new:.4f} s "
          f"({t_old / t_new:.0f}x faster); PKPO {t_pkpo:.4f} s (L2O / PKPO = {t_new / t_pkpo:.2f})")

    r = torch.rand(args.pods_groups, 16, generator=gen).double()
    t_loop, loop = best_of(lambda: max_variance_loop(r, 4))
    t_vec, vec = best_of(lambda: max_variance_mask(r, 4))
    assert torch.equal(loop, vec), "batched PODS selection differs from the per-group loop"
    print(f"PODS max-variance, {args.pods_groups} groups, 4 of 16: per-group loop {t_loop * 1e3:.1f} ms "
          f"({t_loop / args.pods_groups * 1e3:.3f} ms per group), batched {t_vec * 1e3:.2f} ms ({t_loop / t_vec:.0f}x faster)")


if __name__ == "__main__":
    main()
