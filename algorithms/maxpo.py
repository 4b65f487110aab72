"""MaxPO: policy gradients for pass@K / max@K with a Leave-Two-Out baseline.

Takashiro et al., "On Advantage Estimates for Max@K Policy Gradients" (arXiv 2606.06080); effective rewards
from PKPO (Walder & Karkhanis, arXiv 2505.15201). Spec and derivations: docs/methods/maxpo.md (the
paper's method section was not retrievable; the estimators below are the spec's reconstruction).

One group: n rewards g, K <= n. Sorted ascending g_(1) <= ... <= g_(n), C(a, b) = 0 outside 0 <= b <= a.
    rho_K(g)  = sum_{r>=K} C(r-1, K-1) / C(n, K) * g_(r)                      unbiased max@K from n samples
    v_(r)     = [C(r-1, K-1) g_(r) + sum_{s>r} C(s-2, K-2) g_(s)] / C(n-1, K-1) E[max of K | sample r in it]
    A_i       = (K/n) * (v_i - b_i), with b_i built from the other samples only (gradient stays unbiased):
      pkpo: b_i = rho_{K-1}(g_{-i})   non-centered (>= 0 for every sample)
      loo:  b_i = rho_K(g_{-i})       centered (jackknife identity); needs n >= K+1
      l2o:  A_i = (K/n) * rowsum_j(D_ij) / (n-1), antisymmetric pair matrix D_ij = v_i^{(-j)} - v_j^{(-i)};
            sum_i A_i = 0 exactly. Computed in O(n log n) through its closed form: sum_{j != i} v_i^{(-j)} =
            (n-1) v_i (each K-subset holding i is missed by n-K of the removals) and sum_{j != i} v_j^{(-i)} =
            (n-1) rho_K(g_{-i}) (sum_j v_j = m rho_K over any m samples), so l2o = loo, as the spec derives.
            tests/test_maxpo.py builds the pair matrix by subset enumeration as the oracle.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import comb
from typing import Literal

import torch

from algorithms.grpo import GRPO, GRPOConfig
from harness.config import ConfigError, doc
from harness.core.rollouts import RolloutBatch
from harness.core.stages import Diagnostic
from harness.registry import ALGORITHMS

Estimator = Literal["pkpo", "loo", "l2o"]


def _c(a: torch.Tensor, b: int) -> torch.Tensor:
    """C(a, b) elementwise for integer tensor a (float64), 0 where b < 0 or a < b."""
    if b < 0:
        return torch.zeros_like(a, dtype=torch.float64)
    return torch.tensor([float(comb(int(x), b)) if x >= b else 0.0 for x in a.tolist()], dtype=torch.float64)


def _as_groups(rewards) -> tuple[torch.Tensor, bool]:
    g = torch.as_tensor(rewards, dtype=torch.float64)
    if g.ndim not in (1, 2):
        raise ValueError(f"rewards must be 1-D (one group) or 2-D (groups x n), got shape {tuple(g.shape)}")
    return (g[None] if g.ndim == 1 else g), g.ndim == 1


def _rho(gs: torch.Tensor, k: int) -> torch.Tensor:
    """rho_k of sorted groups gs [G, n] -> [G]; rho_0 = 0."""
    n = gs.shape[1]
    if k == 0:
        return torch.zeros(gs.shape[0], dtype=torch.float64)
    w = _c(torch.arange(n), k - 1) / comb(n, k)  # weight of rank r (0-based): C(r, k-1) / C(n, k)
    return gs @ w


def _v(gs: torch.Tensor, k: int) -> torch.Tensor:
    """v of each sorted sample [G, n] -> [G, n]: mean of max(g_r, best of k-1 others) over (k-1)-subsets."""
    n = gs.shape[1]
    r = torch.arange(n)
    own = _c(r, k - 1) * gs  # C(r-1, K-1) g_(r) in 1-based ranks
    later = _c(r - 1, k - 2) * gs  # C(s-2, K-2) g_(s)
    after = later.flip(-1).cumsum(-1).flip(-1) - later  # sum over s > r
    return (own + after) / comb(n - 1, k - 1)


def _rho_without_each(gs: torch.Tensor, k: int) -> torch.Tensor:
    """rho_k of the group with sample r removed, for every r: [G, n] -> [G, n]; 0 when k = 0."""
    n = gs.shape[1]
    if k == 0:
        return torch.zeros_like(gs)
    r = torch.arange(n)
    below = _c(r, k - 1) * gs  # a sample below r keeps its rank s: C(s-1, k-1)
    above = _c(r - 1, k - 1) * gs  # a sample above r moves down one rank: C(s-2, k-1)
    before = below.cumsum(-1) - below
    after = above.flip(-1).cumsum(-1).flip(-1) - above
    return (before + after) / comb(n - 1, k)


def maxk_estimate(rewards, k: int) -> torch.Tensor:
    """Unbiased max@K (pass@K for 0/1 rewards) of one group's n rewards [n] (or groups [G, n] -> [G])."""
    g, single = _as_groups(rewards)
    if not 1 <= k <= g.shape[1]:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={g.shape[1]}")
    out = _rho(g.sort(-1).values, k)
    return out[0] if single else out


def maxk_advantages(rewards, k: int, baseline: Estimator = "l2o") -> torch.Tensor:
    """Per-sample max@K advantages, same shape as `rewards` ([n] or [G, n]), float64, vectorised over groups.

    baseline: "pkpo" (non-centered, PKPO loo-1), "loo" (rho_K without the sample) or "l2o" (pair matrix, = loo).
    """
    g, single = _as_groups(rewards)
    n = g.shape[1]
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    if baseline not in ("pkpo", "loo", "l2o"):
        raise ValueError(f"baseline: unknown {baseline!r}")
    if baseline in ("loo", "l2o") and n < k + 1:
        raise ValueError(f"baseline {baseline!r} needs n >= k + 1 samples, got n={n}, k={k}")
    gs, order = g.sort(-1)
    base = _rho_without_each(gs, k - 1 if baseline == "pkpo" else k)  # l2o: the pair-matrix row sums in closed form
    adv_sorted = (k / n) * (_v(gs, k) - base)
    adv = torch.empty_like(adv_sorted).scatter_(-1, order, adv_sorted)
    return adv[0] if single else adv


@dataclass
class MaxPOConfig(GRPOConfig):
    k: int = doc("K of the max@K / pass@K objective (group size must be >= K + 1 for loo/l2o).", 4)
    estimator: Estimator = doc("Advantage estimator: l2o (MaxPO), loo, or pkpo (non-centered).", "l2o")
    objective: Literal["pass", "max"] = doc("pass@K (rewards >= 1 count as solved) or max@K of raw rewards.", "pass")
    adv_std_norm: bool = doc("Divide each group's advantages by their std + adv_eps (GRPO-style scale).", False)

    def validate(self) -> None:
        super().validate()
        if self.k < 1:
            raise ConfigError(f"algo_args.k: need >= 1, got {self.k}")

    def check_run(self, run) -> None:
        super().check_run(run)
        need = self.k + (self.estimator != "pkpo")
        if run.train.group_size < need:
            raise ConfigError(f"train.group_size: {run.train.group_size} < {need}, the group size {self.estimator} needs for algo_args.k={self.k}")


@ALGORITHMS.register(
    "maxpo",
    config=MaxPOConfig(),
    description="MaxPO: pass@K / max@K policy gradient with a Leave-Two-Out baseline",
    paper="arXiv:2606.06080",
)
class MaxPO(GRPO):
    cfg: MaxPOConfig
    diagnostics = {
        **GRPO.diagnostics,
        "maxpo/adv_group_sum_abs": Diagnostic("|sum of a group's advantages| (0 when centered)"),
        "maxpo/adv_mean": Diagnostic("mean advantage"),
    }

    def advantages(self, ctx, batch: RolloutBatch) -> torch.Tensor:
        c = self.cfg
        r = batch.rewards.double()
        if c.objective == "pass":
            r = (r >= 1.0).double()
        out = torch.zeros_like(r)
        sizes = torch.bincount(batch.group_ids)
        for n in sizes.unique().tolist():  # one vectorised call per distinct group size
            sel = (sizes[batch.group_ids] == n).nonzero().squeeze(-1)
            rows = sel[batch.group_ids[sel].argsort(stable=True)].view(-1, n)  # [groups of size n, n]
            if n < c.k + (c.estimator != "pkpo"):
                raise ConfigError(f"algo_args.k: {c.k} needs groups of >= {c.k + 1} rollouts for {c.estimator}, got {n}")
            adv = maxk_advantages(r[rows], c.k, c.estimator)
            if c.adv_std_norm:
                adv = adv / (adv.std(-1, keepdim=True) + c.adv_eps)
            out[rows] = adv
        group_sums = torch.zeros(batch.num_groups, dtype=torch.float64).index_add_(0, batch.group_ids, out)
        ctx.log(**{"maxpo/adv_group_sum_abs": group_sums.abs().mean().item(),  # 0 for l2o/loo: centered
                   "maxpo/adv_mean": out.mean().item()})
        return out.float()
