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

from algorithms.grpo import GRPO, GRPOConfig, aggregate, kl_estimate, ppo_clip_loss
from harness.config import ConfigError, doc
from harness.core.rollouts import RolloutBatch, effective_groups
from harness.registry import ALGORITHMS


def behaviour_weights(
    prox_logp: torch.Tensor,
    behav_logp: torch.Tensor,
    mask: torch.Tensor,
    replayed: torch.Tensor,
    level: Literal["token", "sequence", "sequence_geomean"] = "token",
) -> torch.Tensor:
    """Importance weights pi_prox / mu per token [B, L] (exactly 1 on fresh rows, 0 where masked).

    token: per-token ratio; sequence: product over the sequence's tokens; sequence_geomean: its geometric mean
    (GSPO-style, length-independent). No gradient flows through the weights.
    """
    log_r = ((prox_logp - behav_logp) * mask).detach()
    if level == "sequence":
        log_r = log_r.sum(-1, keepdim=True).expand_as(log_r)
    elif level == "sequence_geomean":
        log_r = (log_r.sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp_min(1)).expand_as(log_r)
    elif level != "token":
        raise ValueError(f"is_level: unknown {level!r}")
    w = torch.where(replayed[:, None], torch.exp(log_r), torch.ones_like(log_r))
    return w * mask


def truncate_weights(w: torch.Tensor, cap: float | None, mode: Literal["clamp", "mask"]) -> tuple[torch.Tensor, torch.Tensor]:
    """min(w, C) (clamp) or w * 1[w <= C] (mask); returns (weights, capped-token indicator)."""
    if cap is None:
        return w, torch.zeros_like(w, dtype=torch.bool)
    capped = w > cap
    return (w.clamp(max=cap) if mode == "clamp" else w * ~capped), capped


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

    def __init__(self, cfg: POPOConfig):
        super().__init__(cfg)
        self.buffer: deque[Entry] = deque()
        self._fresh: RolloutBatch | None = None  # this step's groups to store once the update is done

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
        self.diagnostics.update({
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
        prox = ctx.trainer.score_no_grad(group)
        mask = group.completion_mask.to(prox.device)
        return float(aggregate(kl_estimate(group.behav_logp.to(prox.device), prox, "k3"), mask, "token-mean"))

    # -- loss: decoupled objective -----------------------------------------------------------------------------
    def loss(self, batch, advantages, logp, old_logp, ref_logp, entropy, norm_len):
        c = self.cfg
        mask = batch.completion_mask
        behav = batch.behav_logp
        if c.is_weight == "behaviour_clip":  # trust region around mu for replayed rows, no weight
            centre = torch.where(batch.replayed[:, None], behav, old_logp)
            w = mask.float()
        else:
            centre = old_logp
            w = behaviour_weights(old_logp, behav, mask, batch.replayed, c.is_level)
            if c.is_weight == "none":
                w = mask.float()
        w, capped = truncate_weights(w, c.is_cap, c.is_cap_mode)
        if batch.token_weights is not None:  # the trainer's engine-mismatch correction (1 on replayed rows)
            w = w * batch.token_weights
        pg, clipped = ppo_clip_loss(logp, centre, advantages, c.clip_low, c.clip_high, c.dual_clip)
        total = aggregate(w * pg, mask, c.loss_agg, norm_len)
        stats = {"clip/frac": aggregate(clipped.float(), mask, "token-mean").detach()}
        rep = batch.replayed[:, None] & mask.bool()
        if rep.any():
            wr = w[rep]
            stats.update({
                "offpolicy/is_weight_mean": wr.mean(),
                "offpolicy/is_weight_max": wr.max(),
                "offpolicy/is_weight_clipfrac": capped[rep].float().mean(),
                "offpolicy/ess": wr.sum() ** 2 / (len(wr) * (wr**2).sum()).clamp_min(1e-12),
                "clip/frac_replayed": clipped[rep].float().mean(),
            })
        fresh = ~batch.replayed[:, None] & mask.bool()
        if fresh.any():
            stats["clip/frac_fresh"] = clipped[fresh].float().mean()
        stats["train/pg_loss"] = total.detach()
        total = self.regularise(total, stats, logp, ref_logp, entropy, mask, norm_len)
        return total, {k: v.detach() for k, v in stats.items()}

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
        self.buffer = deque(Entry(RolloutBatch(**g), reuse) for g, reuse in state["buffer"])
