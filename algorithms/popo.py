"""POPO: prioritized group replay + decoupled importance sampling.

"Group Prioritized Off-Policy Optimization" (arXiv 2606.01281). Spec: docs/methods/popo.md (our readings
marked there; each alternative is a switch here and recorded in the run's config).

Step: fresh groups with reward variance 0 ("ineffective") are replaced by the newest effective groups from a
small FIFO buffer; the loss is PPO clip around pi_prox (the pre-update policy) times a stop-gradient
behaviour weight w = pi_prox / mu (mu: the policy that generated the group; w = 1 for fresh groups):
    J = (1/T) sum_tokens trunc(w) * min(rho A, clip(rho, 1 - eps_lo, 1 + eps_hi) A),   rho = pi / pi_prox.
With no ineffective fresh groups (or an empty buffer and leftovers kept) a POPO step is a GRPO step.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, fields, replace
from typing import Literal

import torch

from algorithms.grpo import GRPO, GRPOConfig, Weighting, aggregate, kl_estimate
from harness.config import ConfigError, doc
from harness.core.importance import importance_weights
from harness.core.rollouts import RolloutBatch, effective_groups
from harness.core.stages import Diagnostic, LossInputs, Needs
from harness.registry import ALGORITHMS

CAP_MODES = {"clamp": "truncate", "mask": "mask"}  # is_cap_mode -> importance_weights' truncation


@dataclass
class POPOConfig(GRPOConfig):
    buffer_groups: int = doc("FIFO replay buffer capacity in groups (the paper's K is 'small'; ~N to 2N).", 64)
    replay: bool = doc("Replace ineffective fresh groups from the buffer; false = GRPO-filter (drop them).", True)
    reuse: Literal["reuse", "pop"] = doc("Keep a replayed group in the buffer (reuse) or remove it (pop on use).", "reuse")
    quality_gate: bool = doc("Store only effective groups; false = POPO-ineff (store every group).", True)
    priority: Literal["newest", "stale", "kl"] = doc("Which buffered groups replay: newest first, ~stale_age steps old, or least KL to pi_prox (extra forward pass, charged).", "newest")
    stale_age: int = doc("Target age in steps for priority=stale (the POPO-stale(10) ablation).", 10)
    leftover: Literal["keep", "drop"] = doc("Ineffective groups the buffer cannot replace: keep (zero advantage, GRPO) or drop.", "keep")
    is_weight: Literal["decoupled", "none", "behaviour_clip"] = doc("decoupled: clip on pi/pi_prox times w = pi_prox/mu; none: w = 1 (POPO-pi_old); behaviour_clip: clip pi/mu, w = 1.", "decoupled")
    is_level: Literal["token", "sequence", "sequence_geomean"] = doc("Granularity of the behaviour weight.", "token")
    is_cap: float | None = doc("Truncate behaviour weights at C; None = no truncation.", 5.0)
    is_cap_mode: Literal["clamp", "mask"] = doc("clamp: min(w, C); mask: drop tokens with w > C.", "mask")

    def validate(self) -> None:
        super().validate()
        if self.buffer_groups < 1:
            raise ConfigError(f"algo_args.buffer_groups: need >= 1, got {self.buffer_groups}")
        if self.is_cap is not None and self.is_cap <= 1:
            raise ConfigError(f"algo_args.is_cap: need > 1, got {self.is_cap}")


@dataclass(eq=False)  # identity equality: entries hold tensors
class Entry:
    group: RolloutBatch  # one group, birth_step set, replayed flag False as stored
    reuse: int = 0


@ALGORITHMS.register(
    "popo",
    config=POPOConfig(clip_high=0.28, dual_clip=10.0),
    description="POPO: replay effective groups in place of ineffective ones, decoupled importance sampling",
    paper="arXiv:2606.01281",
)
class POPO(GRPO):
    cfg: POPOConfig
    diagnostics = {
        **GRPO.diagnostics,
        "replay/groups": Diagnostic("groups replayed this step"),
        "replay/leftover_groups": Diagnostic("ineffective groups kept for want of buffered ones"),
        "replay/buffer_groups": Diagnostic("groups in the buffer"),
        "replay/reuse_mean": Diagnostic("times a replayed group has been replayed"),
        "offpolicy/staleness": Diagnostic("staleness (steps)", plot=True),
        "offpolicy/is_weight_mean": Diagnostic("IS weight mean (replayed)", plot=True),
        "offpolicy/is_weight_max": Diagnostic("IS weight max (replayed)"),
        "offpolicy/is_weight_clipfrac": Diagnostic("share of replayed tokens whose IS weight was truncated"),
        "offpolicy/ess": Diagnostic("effective sample size of the IS weights (replayed)"),
        "clip/frac_replayed": Diagnostic("clipped share, replayed tokens"),
        "clip/frac_fresh": Diagnostic("clipped share, fresh tokens"),
    }

    def __init__(self, cfg: POPOConfig):
        super().__init__(cfg)
        self.buffer: deque[Entry] = deque()
        self._fresh: RolloutBatch | None = None  # this step's groups to store once the update is done

    def needs(self) -> Needs:
        return replace(super().needs(), rescoring=self.cfg.priority == "kl", replay=self.cfg.replay)

    # -- select: replace ineffective groups -------------------------------------------------------------------
    def select(self, ctx, batch: RolloutBatch) -> RolloutBatch:
        c = self.cfg
        eff = effective_groups(batch.rewards, batch.group_ids)
        self._fresh = batch.index(eff[batch.group_ids]) if c.quality_gate else batch
        ineff_ids = (~eff).nonzero().squeeze(-1)
        replayed = self._take(ctx, len(ineff_ids)) if c.replay else []
        keep_left = c.replay and c.leftover == "keep"  # GRPO-filter (replay off) always drops them
        left_ids = ineff_ids[len(replayed):] if keep_left else ineff_ids[:0]
        drop_rows = torch.isin(batch.group_ids, ineff_ids) & ~torch.isin(batch.group_ids, left_ids)
        ctx.discard(batch.index(drop_rows), "replaced" if c.replay else "discarded")
        for e in replayed:
            e.reuse += 1
        ages = [ctx.step - int(e.group.birth_step[0]) for e in replayed]
        ctx.log(**{
            "replay/groups": len(replayed),
            "replay/leftover_groups": len(left_ids),
            "replay/buffer_groups": len(self.buffer),
            "offpolicy/staleness": sum(ages) / len(ages) if ages else 0.0,
            "replay/reuse_mean": sum(e.reuse for e in replayed) / len(replayed) if replayed else 0.0,
        })
        if c.reuse == "pop":
            for e in replayed:
                self.buffer.remove(e)
        parts = [batch.index(~drop_rows)] + [replace(e.group, replayed=torch.ones(len(e.group), dtype=torch.bool)) for e in replayed]
        return ctx.cat([p for p in parts if len(p)]) if any(len(p) for p in parts) else parts[0]

    def _take(self, ctx, m: int) -> list[Entry]:
        """Up to m distinct buffered groups by the configured priority (all born before this step)."""
        if m == 0 or not self.buffer:
            return []
        entries = list(self.buffer)  # oldest first
        if self.cfg.priority == "newest":
            return entries[::-1][:m]
        if self.cfg.priority == "stale":
            return sorted(entries, key=lambda e: (abs(ctx.step - int(e.group.birth_step[0]) - self.cfg.stale_age), -int(e.group.birth_step[0])))[:m]
        return sorted(entries, key=lambda e: self._kl_to_prox(ctx, e.group))[:m]

    def _kl_to_prox(self, ctx, group: RolloutBatch) -> float:
        """Mean per-token k3 KL(mu || pi_prox) estimate of a buffered group (an extra forward, charged)."""
        prox = ctx.score(group)
        mask = group.completion_mask.to(prox.device)
        return float(aggregate(kl_estimate(group.behav_logp.to(prox.device), prox, "k3"), mask, "token-mean"))

    # -- loss: the decoupled objective changes only the trust region's centre and the tokens' weights ----------
    def weighting(self, inp: LossInputs) -> Weighting:
        c, b = self.cfg, inp.batch
        none = torch.zeros_like(b.replayed)
        if c.is_weight == "behaviour_clip":  # trust region around mu for replayed rows, no weight
            centre, weighted = torch.where(b.replayed[:, None], b.behav_logp, inp.old_logp), none
        else:  # w = pi_prox / mu on replayed rows (pi_prox = pi_old); is_weight none: w = 1 (POPO-pi_old)
            centre, weighted = inp.old_logp, b.replayed if c.is_weight == "decoupled" else none
        w, truncated = importance_weights(inp.old_logp, b.behav_logp, b.completion_mask, weighted, c.is_level, c.is_cap, CAP_MODES[c.is_cap_mode])
        return Weighting(centre, w, truncated)

    # -- after the update: insert this step's groups ------------------------------------------------------------
    def after_step(self, ctx, batch: RolloutBatch) -> None:
        fresh = self._fresh
        self._fresh = None
        if fresh is None or not len(fresh):
            return
        for g in range(fresh.num_groups):
            self.buffer.append(Entry(fresh.index(fresh.group_ids == g)))
        while len(self.buffer) > self.cfg.buffer_groups:
            self.buffer.popleft()

    def state_dict(self) -> dict:
        return {"buffer": [({f.name: getattr(e.group, f.name) for f in fields(e.group)}, e.reuse) for e in self.buffer]}

    def load_state_dict(self, state: dict) -> None:
        known = {f.name for f in fields(RolloutBatch)}  # checkpoints from before token_weights left the batch hold it
        self.buffer = deque(Entry(RolloutBatch(**{k: v for k, v in g.items() if k in known}), reuse) for g, reuse in state["buffer"])
