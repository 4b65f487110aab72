"""PODS: generate n rollouts per prompt, train on a subset of m chosen by reward variance.

Xu et al., "Not All Rollouts are Useful: Down-Sampling Rollouts in LLM Reinforcement Learning"
(arXiv 2504.13818). Spec: docs/methods/pods.md. All n generated rollouts are charged; the n - m dropped
ones are tagged `downsampled`. Advantages are normalised inside the kept subset (released code).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from algorithms.grpo import GRPO, GRPOConfig
from harness.config import ConfigError, doc
from harness.core.rollouts import RolloutBatch
from harness.core.stages import Diagnostic
from harness.registry import ALGORITHMS


def max_variance_mask(rewards: torch.Tensor, m: int) -> torch.Tensor:
    """Which m of each group's n rewards have the largest population variance: [G, n] -> bool [G, n], O(n log n).

    Some optimal subset is {the m-i smallest} U {the i largest} for some i in 0..m (the variance is convex in
    each kept value, so a kept value between two dropped ones can be swapped outward); we sort once, then
    score every split with prefix sums, all groups at once. Ties between equally good splits go to fewer top
    picks; ties between equal rewards to the earlier index.
    """
    r = torch.as_tensor(rewards, dtype=torch.float64)
    if r.ndim != 2:
        raise ValueError(f"rewards must be 2-D (groups x n), got shape {tuple(r.shape)}")
    G, n = r.shape
    if not 0 < m <= n:
        raise ValueError(f"need 0 < m <= n, got m={m}, n={n}")
    x, order = r.sort(dim=-1, stable=True)
    x = x - (x[:, (n - 1) // 2] + x[:, n // 2])[:, None] / 2  # centring on the median only helps the numerics
    zero = x.new_zeros(G, 1)
    P, Q = torch.cat([zero, x.cumsum(-1)], -1), torch.cat([zero, (x * x).cumsum(-1)], -1)
    i = torch.arange(m + 1)  # i = number taken from the top
    s = P[:, m - i] + P[:, n:] - P[:, n - i]
    q = Q[:, m - i] + Q[:, n:] - Q[:, n - i]
    best = (q / m - (s / m) ** 2).argmax(-1, keepdim=True)  # first maximum: fewest top picks
    rank = torch.arange(n)
    keep_sorted = (rank < m - best) | (rank >= n - best)
    return torch.zeros_like(keep_sorted).scatter_(-1, order, keep_sorted)


def max_variance_indices(rewards, m: int):
    """max_variance_mask for one group: 1-D rewards (tensor or array) -> the m kept indices in increasing order,
    as the input's type (LongTensor for a tensor, int array otherwise)."""
    r = torch.as_tensor(np.asarray(rewards, dtype=np.float64) if not isinstance(rewards, torch.Tensor) else rewards.detach().cpu())
    if r.ndim != 1:
        raise ValueError(f"rewards must be 1-D, got shape {tuple(r.shape)}")
    kept = max_variance_mask(r[None], m)[0].nonzero().squeeze(-1)
    return kept if isinstance(rewards, torch.Tensor) else kept.numpy()


def max_reward_mask(rewards: torch.Tensor, m: int) -> torch.Tensor:
    """The m highest rewards of each group [G, n] -> bool [G, n] (earlier index first among ties)."""
    order = torch.sort(rewards, dim=-1, descending=True, stable=True).indices
    return torch.zeros_like(rewards, dtype=torch.bool).scatter_(-1, order[:, :m], True)


def random_mask(G: int, n: int, m: int, generator: torch.Generator) -> torch.Tensor:
    """m of n uniformly at random in each of G groups -> bool [G, n]."""
    order = torch.rand(G, n, generator=generator).argsort(-1)
    return torch.zeros(G, n, dtype=torch.bool).scatter_(-1, order[:, :m], True)


@dataclass
class PODSConfig(GRPOConfig):
    generate_per_prompt: int = doc("n: rollouts generated per prompt; train.group_size = m are kept.", 32)
    rule: Literal["max_variance", "max_reward", "random"] = doc("Which m of the n to train on.", "max_variance")

    def validate(self) -> None:
        super().validate()
        if self.generate_per_prompt < 2:
            raise ConfigError(f"algo_args.generate_per_prompt: need >= 2, got {self.generate_per_prompt}")

    def check_run(self, run) -> None:
        super().check_run(run)
        if self.generate_per_prompt < run.train.group_size:
            raise ConfigError(f"algo_args.generate_per_prompt ({self.generate_per_prompt}) must be >= train.group_size ({run.train.group_size})")


@ALGORITHMS.register(
    "pods",
    config=PODSConfig(adv_eps=1e-4),
    description="PODS: generate n per prompt, train on the max-variance m",
    paper="arXiv:2504.13818",
)
class PODS(GRPO):
    cfg: PODSConfig
    diagnostics = {
        **GRPO.diagnostics,
        "pods/kept_frac": Diagnostic("share of generated rollouts kept"),
        "pods/kept_reward_var": Diagnostic("kept reward variance (PODS)", plot=True),
        "pods/generated_reward_var": Diagnostic("generated reward variance"),
    }

    def collect(self, ctx) -> RolloutBatch:
        idx, _ = self.plan(ctx)
        return ctx.rollout(idx, [self.cfg.generate_per_prompt] * len(idx))

    def select(self, ctx, batch: RolloutBatch) -> RolloutBatch:
        m = ctx.train_cfg.group_size
        gen = torch.Generator().manual_seed(int(ctx.rng.integers(2**62)))
        rows = batch.group_ids.argsort(stable=True).view(batch.num_groups, -1)  # [G, n]: every group has n rows
        r = batch.rewards[rows]
        if self.cfg.rule == "max_variance":
            chosen = max_variance_mask(r, m)
        elif self.cfg.rule == "max_reward":
            chosen = max_reward_mask(r, m)
        else:
            chosen = random_mask(*r.shape, m, gen)
        keep = torch.zeros(len(batch), dtype=torch.bool)
        keep[rows[chosen]] = True
        kept_var = r[chosen].view(len(r), m).var(-1, unbiased=False)
        ctx.discard(batch.index(~keep), "downsampled")
        ctx.log(**{
            "pods/kept_frac": keep.float().mean().item(),
            "pods/kept_reward_var": kept_var.mean().item(),
            "pods/generated_reward_var": r.var(-1, unbiased=False).mean().item(),
        })
        return batch.index(keep)
