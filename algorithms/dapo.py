"""DAPO dynamic sampling: keep generating until the batch holds enough groups with reward variance > 0.

Yu et al., "DAPO: An Open-Source LLM Reinforcement Learning System at Scale" (arXiv 2503.14476).
The costly state of the art the sample-efficient methods are measured against: every generated rollout is
charged, the zero-variance groups it throws away are tagged `discarded`. Defaults: clip-higher
(eps_low 0.2, eps_high 0.28) and token-mean loss. At the round cap it trains on what it has and logs it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from algorithms.grpo import GRPO, GRPOConfig
from harness.config import ConfigError, doc
from harness.core.rollouts import RolloutBatch, effective_groups
from harness.core.stages import Diagnostic
from harness.registry import ALGORITHMS


@dataclass
class DAPOConfig(GRPOConfig):
    max_rounds: int = doc("Generation rounds per step before training on what it has (DAPO's cap).", 4)
    prompts_per_round: int | None = doc("Prompts drawn per round; None = train.prompts_per_step.", None)

    def validate(self) -> None:
        super().validate()
        if self.max_rounds < 1:
            raise ConfigError(f"algo_args.max_rounds: need >= 1, got {self.max_rounds}")


@ALGORITHMS.register(
    "dapo",
    config=DAPOConfig(clip_high=0.28, loss_agg="token-mean"),
    description="DAPO: dynamic sampling (re-sample until enough groups have reward variance), clip-higher",
    paper="arXiv:2503.14476",
)
class DAPO(GRPO):
    cfg: DAPOConfig
    diagnostics = {
        **GRPO.diagnostics,
        "dapo/rounds": Diagnostic("generation rounds this step"),
        "dapo/hit_cap": Diagnostic("steps that stopped at max_rounds short of the target"),
        "dapo/effective_groups": Diagnostic("effective groups generated this step"),
    }

    def collect(self, ctx) -> RolloutBatch:
        target = ctx.train_cfg.prompts_per_step
        per_round = self.cfg.prompts_per_round or target
        rounds, n_effective, batches = 0, 0, []
        while n_effective < target and rounds < self.cfg.max_rounds:
            idx = torch.as_tensor(ctx.rng.choice(ctx.num_train_problems, size=per_round, replace=False))
            b = ctx.rollout(idx, [ctx.train_cfg.group_size] * per_round, round_index=rounds)
            n_effective += int(effective_groups(b.rewards, b.group_ids).sum())
            batches.append(b)
            rounds += 1
        ctx.log(**{"dapo/rounds": rounds, "dapo/hit_cap": float(n_effective < target), "dapo/effective_groups": n_effective})
        return ctx.cat(batches)

    def select(self, ctx, batch: RolloutBatch) -> RolloutBatch:
        """The first `prompts_per_step` effective groups; the rest (zero-variance or surplus) are discarded."""
        eff = effective_groups(batch.rewards, batch.group_ids)
        chosen = eff & (eff.cumsum(0) <= ctx.train_cfg.prompts_per_step)
        keep = chosen[batch.group_ids]
        ctx.discard(batch.index(~keep), "discarded")
        return batch.index(keep)
