"""PODS: generate n rollouts per prompt, train on a subset of m chosen by reward variance.

Xu et al., "Not All Rollouts are Useful: Down-Sampling Rollouts in LLM Reinforcement Learning"
(arXiv 2504.13818). Spec: shared/papers/pods.md. All n generated rollouts are charged; the n - m dropped
ones are tagged `downsampled`. Advantages are normalised inside the kept subset (released code).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from algorithms.grpo import GRPO, GRPOConfig
from harness.config import ConfigError, doc
from harness.registry import ALGORITHMS
from harness.rollouts import RolloutBatch


def max_variance_indices(rewards, m: int):
    """Indices of the m rewards with the largest population variance, O(n log n).

    rewards: 1-D tensor or array (one prompt's n rewards, any real values, ties allowed).
    Some optimal subset is {the m-i smallest} U {the i largest} for some i in 0..m (the variance is convex in
    each kept value, so a kept value between two dropped ones can be swapped outward); we sort once, then
    score every split with prefix sums. Returns the kept indices in increasing order, as the input's type
    (LongTensor for a tensor, int array otherwise); ties between equally good splits go to fewer top picks.
    """
    r = rewards.detach().cpu().double().numpy() if isinstance(rewards, torch.Tensor) else np.asarray(rewards, dtype=np.float64)
    n = r.shape[0]
    if r.ndim != 1:
        raise ValueError(f"rewards must be 1-D, got shape {r.shape}")
    if not 0 < m <= n:
        raise ValueError(f"need 0 < m <= n, got m={m}, n={n}")
    order = np.argsort(r, kind="stable")
    x = r[order] - np.median(r)  # centring only improves the numerics of sum-of-squares
    P = np.concatenate([[0.0], np.cumsum(x)])
    Q = np.concatenate([[0.0], np.cumsum(x * x)])
    i = np.arange(m + 1)  # i = number taken from the top
    s = P[m - i] + P[n] - P[n - i]
    q = Q[m - i] + Q[n] - Q[n - i]
    best = int(np.argmax(q / m - (s / m) ** 2))
    kept = np.sort(np.concatenate([order[: m - best], order[n - best :]]))
    return torch.as_tensor(kept, dtype=torch.long) if isinstance(rewards, torch.Tensor) else kept


def max_reward_indices(rewards: torch.Tensor, m: int) -> torch.Tensor:
    """The m highest rewards (stable: earlier index first among ties)."""
    order = torch.sort(rewards, descending=True, stable=True).indices
    return order[:m].sort().values


def random_indices(n: int, m: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randperm(n, generator=generator)[:m].sort().values


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

    def collect(self, ctx) -> RolloutBatch:
        idx, _ = self.plan(ctx)
        return ctx.rollout(idx, [self.cfg.generate_per_prompt] * len(idx))

    def select(self, ctx, batch: RolloutBatch) -> RolloutBatch:
        m = ctx.train_cfg.group_size
        gen = torch.Generator().manual_seed(int(ctx.rng.integers(2**62)))
        keep = torch.zeros(len(batch), dtype=torch.bool)
        kept_var, generated_var = [], []
        for g in range(batch.num_groups):  # groups are tiny (n <= 256): a loop over groups, vectorised inside
            rows = (batch.group_ids == g).nonzero().squeeze(-1)
            r = batch.rewards[rows]
            if self.cfg.rule == "max_variance":
                chosen = max_variance_indices(r, m)
            elif self.cfg.rule == "max_reward":
                chosen = max_reward_indices(r, m)
            else:
                chosen = random_indices(len(rows), m, gen)
            keep[rows[chosen]] = True
            kept_var.append(r[chosen].var(unbiased=False).item())
            generated_var.append(r.var(unbiased=False).item())
        ctx.discard(batch.index(~keep), "downsampled")
        self.diagnostics.update({
            "pods/kept_frac": keep.float().mean().item(),
            "pods/kept_reward_var": float(np.mean(kept_var)),
            "pods/generated_reward_var": float(np.mean(generated_var)),
        })
        return batch.index(keep)
