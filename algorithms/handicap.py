"""A planted handicap, for the benchmark's controls (sweeps/controls.yaml): GRPO that generates `waste` times
the groups it trains on and throws the surplus away at random, every rollout charged.

Its learning is GRPO's on the groups it keeps, so against the rollout axis it is a GRPO curve stretched by
exactly `waste` (in expectation). A benchmark that cannot find it slower by that factor cannot find a real
method's speed-up of that size either. Not a method to use: a known answer to test the instrument with.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from algorithms.grpo import GRPO, GRPOConfig
from harness.config import ConfigError, doc
from harness.core.rollouts import RolloutBatch
from harness.registry import ALGORITHMS


@dataclass
class HandicapConfig(GRPOConfig):
    waste: float = doc("Groups generated per group trained (1.5 = half as many again, discarded at random; 1 = GRPO).", 1.5)

    def validate(self) -> None:
        super().validate()
        if not (math.isfinite(self.waste) and self.waste >= 1):
            raise ConfigError(f"algo_args.waste: need a finite number >= 1, got {self.waste}")


@ALGORITHMS.register("grpo_handicap", config=HandicapConfig(),
                     description="control: GRPO that generates `waste` x the groups it trains on and discards the surplus at random")
class Handicap(GRPO):
    cfg: HandicapConfig

    def plan(self, ctx) -> tuple[torch.Tensor, list[int]]:
        n = min(ctx.num_train_problems, math.ceil(self.cfg.waste * ctx.train_cfg.prompts_per_step))
        idx = ctx.rng.choice(ctx.num_train_problems, size=n, replace=False)
        return torch.as_tensor(idx, dtype=torch.long), [ctx.train_cfg.group_size] * n

    def select(self, ctx, batch: RolloutBatch) -> RolloutBatch:
        """prompts_per_step whole groups chosen uniformly at random (whatever their rewards); the rest discarded."""
        kept = torch.as_tensor(ctx.rng.permutation(batch.num_groups)[: ctx.train_cfg.prompts_per_step])
        keep = torch.isin(batch.group_ids, kept)
        if not keep.all():  # waste = 1 discards nothing and logs exactly what GRPO logs
            ctx.discard(batch.index(~keep), "discarded")
        return batch.index(keep)
