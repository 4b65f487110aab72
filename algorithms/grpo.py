"""GRPO and its common variants (Dr.GRPO, RLOO): the default stage of every algorithm.

Pure functions (advantages, PPO-clip loss, loss aggregation, KL estimators) with tensor shapes in their
docstrings, and the `GRPO` class that wires them into the stages of docs/design.md. Other methods subclass
`GRPO` and override only the stages they change.

References: GRPO (DeepSeekMath, arXiv 2402.03300), Dr.GRPO (arXiv 2503.20783), RLOO (arXiv 2402.14740),
PPO clip-higher / token-mean (DAPO, arXiv 2503.14476), KL estimators k1/k2/k3 (Schulman 2020).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from harness.config import ConfigError, doc
from harness.core.rollouts import RolloutBatch
from harness.core.stages import Diagnostic, LossInputs, Needs, StepContext
from harness.registry import ALGORITHMS

LossAgg = Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"]


# --------------------------------------------------------------------------------------------------------------
# Pure functions


def group_advantages(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    baseline: Literal["mean", "loo"] = "mean",
    norm: Literal["std", "none"] = "std",
    eps: float = 1e-6,
) -> torch.Tensor:
    """Group-relative advantages for groups of any (mixed) sizes, vectorised.

    rewards [B] float, group_ids [B] long in 0..G-1 -> advantages [B].
    baseline "mean": A_i = r_i - mean_g(r)              (GRPO, Dr.GRPO)
    baseline "loo":  A_i = r_i - mean_{j != i in g}(r_j)  (RLOO; = n/(n-1) (r_i - mean))
    norm "std": divide by the group's unbiased std + eps (GRPO); "none" keeps the scale (Dr.GRPO, RLOO).
    A group of one sample gets advantage 0.
    """
    r = rewards.double()
    G = int(group_ids.max()) + 1
    count = torch.zeros(G, dtype=torch.float64).index_add_(0, group_ids, torch.ones_like(r))
    total = torch.zeros(G, dtype=torch.float64).index_add_(0, group_ids, r)
    mean = total / count
    n = count[group_ids]
    if baseline == "mean":
        adv = r - mean[group_ids]
    elif baseline == "loo":
        adv = (r - (total[group_ids] - r) / (n - 1).clamp_min(1)) * (n > 1)
    else:
        raise ValueError(f"baseline: unknown {baseline!r}")
    if norm == "std":
        sq = torch.zeros(G, dtype=torch.float64).index_add_(0, group_ids, (r - mean[group_ids]) ** 2)
        std = (sq / (count - 1).clamp_min(1)).sqrt()
        adv = adv / (std[group_ids] + eps)
    elif norm != "none":
        raise ValueError(f"norm: unknown {norm!r}")
    return (adv * (n > 1)).to(rewards.dtype)


def aggregate(values: torch.Tensor, mask: torch.Tensor, mode: LossAgg, norm_len: int | None = None) -> torch.Tensor:
    """Reduce per-token values [B, L] under mask [B, L] to a scalar.

    token-mean:              sum(v) / sum(mask)                          (DAPO, verl default)
    seq-mean-token-mean:     mean over sequences of each sequence's token mean (original GRPO)
    seq-mean-token-sum:      mean over sequences of each sequence's token sum
    seq-mean-token-sum-norm: sum(v) / (B * norm_len), a constant length (Dr.GRPO)
    """
    mask = mask.to(values.dtype)
    v = values * mask
    if mode == "token-mean":
        return v.sum() / mask.sum().clamp_min(1)
    if mode == "seq-mean-token-mean":
        return (v.sum(-1) / mask.sum(-1).clamp_min(1)).mean()
    if mode == "seq-mean-token-sum":
        return v.sum(-1).mean()
    if mode == "seq-mean-token-sum-norm":
        return v.sum() / (values.shape[0] * (norm_len or values.shape[1]))
    raise ValueError(f"loss aggregation: unknown {mode!r}")


def ppo_clip_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    clip_low: float,
    clip_high: float,
    dual_clip: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token PPO clipped surrogate loss (to minimise) and a clipped-token indicator.

    logp, old_logp [B, L]; advantages [B] (broadcast over tokens).
    loss = -min(rho A, clip(rho, 1 - clip_low, 1 + clip_high) A), rho = exp(logp - old_logp);
    with dual_clip c > 1, negative-advantage losses are capped at -c A (Ye et al. 2020).
    Returns (loss [B, L], clipped [B, L] bool: the clipped branch was the active one).
    """
    A = advantages[:, None]
    ratio = torch.exp(logp - old_logp)
    unclipped = -A * ratio
    clipped = -A * ratio.clamp(1 - clip_low, 1 + clip_high)
    loss = torch.maximum(unclipped, clipped)
    was_clipped = clipped > unclipped
    if dual_clip is not None:
        loss = torch.where(A < 0, torch.minimum(loss, -A * dual_clip), loss)
    return loss, was_clipped


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, kind: Literal["k1", "k2", "k3"] = "k3") -> torch.Tensor:
    """Per-token estimate of KL(pi || pi_ref) from samples of pi. logp, ref_logp [B, L] -> [B, L].

    k1 = log r^-1, k2 = (log r)^2 / 2, k3 = r - 1 - log r with r = pi_ref / pi (unbiased, non-negative; GRPO).
    """
    log_r = ref_logp - logp
    if kind == "k1":
        return -log_r
    if kind == "k2":
        return 0.5 * log_r**2
    if kind == "k3":
        return torch.exp(log_r) - 1 - log_r
    raise ValueError(f"kl estimator: unknown {kind!r}")


def offpolicy_stats(replayed: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor, truncated: torch.Tensor,
                    clipped: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-mini-batch statistics of a weighted update with replayed rows (detached scalars).

    replayed [B] bool; mask, weight, truncated (bool), clipped (bool) [B, L]. On replayed tokens: the weights' mean,
    max, truncated share and effective sample size (sum w)^2 / (n sum w^2), and the clipped share; on fresh tokens
    the clipped share. A key is absent when its tokens are.
    """
    stats = {}
    rep = replayed[:, None] & mask.bool()
    if rep.any():
        wr = weight[rep]
        stats.update({
            "offpolicy/is_weight_mean": wr.mean(),
            "offpolicy/is_weight_max": wr.max(),
            "offpolicy/is_weight_clipfrac": truncated[rep].float().mean(),
            "offpolicy/ess": wr.sum() ** 2 / (len(wr) * (wr**2).sum()).clamp_min(1e-12),
            "clip/frac_replayed": clipped[rep].float().mean(),
        })
    fresh = ~replayed[:, None] & mask.bool()
    if fresh.any():
        stats["clip/frac_fresh"] = clipped[fresh].float().mean()
    return {k: v.detach() for k, v in stats.items()}


@dataclass
class Weighting:
    """How each token's clipped policy-gradient term is centred and weighted, all [B, L]."""

    centre: torch.Tensor  # log-probs the ratio is clipped around (PPO: pi_old)
    weight: torch.Tensor | None = None  # stop-gradient weight of the term; None = 1
    truncated: torch.Tensor | None = None  # bool, weights truncated or masked; None = no off-policy weight in play


# --------------------------------------------------------------------------------------------------------------
# Config and stages


@dataclass
class GRPOConfig:
    baseline: Literal["mean", "loo"] = doc("Group baseline: mean (GRPO) or leave-one-out (RLOO).", "mean")
    adv_norm: Literal["std", "none"] = doc("Divide advantages by the group std (GRPO) or not (Dr.GRPO, RLOO).", "std")
    adv_eps: float = doc("Added to the group std.", 1e-6)
    clip_low: float = doc("PPO clip: ratio lower bound is 1 - clip_low.", 0.2)
    clip_high: float = doc("PPO clip: ratio upper bound is 1 + clip_high (clip-higher: 0.28).", 0.2)
    dual_clip: float | None = doc("Dual-clip constant c > 1 for negative advantages; None = off.", None)
    loss_agg: LossAgg = doc("How token losses reduce to a scalar.", "token-mean")
    kl_coef: float = doc("Weight of KL(pi || pi_ref) to the initial policy; 0 = no reference model.", 0.0)
    kl_estimator: Literal["k1", "k2", "k3"] = doc("Per-token KL estimator.", "k3")
    entropy_coef: float = doc("Entropy bonus weight (subtracted from the loss).", 0.0)

    def validate(self) -> None:
        if not 0 <= self.clip_low < 1 or self.clip_high < 0:
            raise ConfigError(f"algo_args.clip_low/clip_high: need 0 <= clip_low < 1 and clip_high >= 0, got {self.clip_low}, {self.clip_high}")
        if self.dual_clip is not None and self.dual_clip <= 1:
            raise ConfigError(f"algo_args.dual_clip: must be > 1, got {self.dual_clip}")
        if self.kl_coef < 0 or self.entropy_coef < 0:
            raise ConfigError("algo_args.kl_coef / entropy_coef: must be >= 0")

    def check_run(self, run) -> None:
        """Checks against the rest of the RunConfig (called by resolve_plugins)."""
        if run.train.group_size < 2:
            raise ConfigError(f"train.group_size: {run.train.group_size} leaves every rollout alone in its group, so a "
                              "group-relative baseline gives it advantage 0 and nothing is trained; use >= 2")


@ALGORITHMS.register("grpo", config=GRPOConfig(), description="GRPO: group-normalised advantages, PPO clip, token-mean", paper="arXiv:2402.03300")
class GRPO:
    """Default stages (harness/core/stages.py): uniform prompts, G samples each, keep all, group-normalised
    advantages, PPO clip."""

    diagnostics: ClassVar[dict[str, Diagnostic]] = {
        "clip/frac": Diagnostic("share of tokens on the clipped branch"),
        "train/pg_loss": Diagnostic("policy-gradient loss"),
        "train/kl": Diagnostic("KL to the initial policy (kl_coef > 0)"),
        "train/entropy": Diagnostic("token entropy (entropy_coef > 0)"),
    }

    def __init__(self, cfg: GRPOConfig):
        self.cfg = cfg

    def needs(self) -> Needs:
        return Needs(ref_model=self.cfg.kl_coef > 0, entropy=self.cfg.entropy_coef > 0)

    # plan -> generate -> score: prompts and a group size per prompt
    def plan(self, ctx: StepContext) -> tuple[torch.Tensor, list[int]]:
        """Problem indices [N] into the train split, and the group size of each."""
        idx = ctx.rng.choice(ctx.num_train_problems, size=ctx.train_cfg.prompts_per_step, replace=False)
        return torch.as_tensor(idx, dtype=torch.long), [ctx.train_cfg.group_size] * len(idx)

    def collect(self, ctx: StepContext) -> RolloutBatch:
        """Generate and score this step's rollouts (DAPO/PODS override to generate more)."""
        idx, sizes = self.plan(ctx)
        return ctx.rollout(idx, sizes)

    def select(self, ctx: StepContext, batch: RolloutBatch) -> RolloutBatch:
        """Which rollouts to train on (drop others via ctx.discard so the ledger knows why)."""
        return batch

    def advantages(self, ctx: StepContext, batch: RolloutBatch) -> torch.Tensor:
        """[B] advantages of the selected batch."""
        c = self.cfg
        return group_advantages(batch.rewards, batch.group_ids, c.baseline, c.adv_norm, c.adv_eps)

    def weighting(self, inp: LossInputs) -> Weighting:
        """The trust region's centre and the tokens' weights: PPO clips around pi_old, unweighted (POPO overrides)."""
        return Weighting(inp.old_logp)

    def loss(self, inp: LossInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Scalar loss of one mini-batch and its diagnostics (detached scalars)."""
        c = self.cfg
        mask = inp.batch.completion_mask
        wt = self.weighting(inp)
        pg, clipped = ppo_clip_loss(inp.logp, wt.centre, inp.advantages, c.clip_low, c.clip_high, c.dual_clip)
        weight = wt.weight
        if inp.engine_weights is not None:  # the trainer's engine-mismatch correction (1 on replayed rows)
            weight = inp.engine_weights if weight is None else weight * inp.engine_weights
        pg_loss = aggregate(pg if weight is None else pg * weight, mask, c.loss_agg, inp.norm_len)
        stats = {"clip/frac": aggregate(clipped.float(), mask, "token-mean").detach(), "train/pg_loss": pg_loss.detach()}
        if wt.truncated is not None:
            stats.update(offpolicy_stats(inp.batch.replayed, mask, weight, wt.truncated, clipped))
        return self.regularise(pg_loss, stats, inp), stats

    def regularise(self, total: torch.Tensor, stats: dict, inp: LossInputs) -> torch.Tensor:
        """Add the KL penalty to pi_ref and subtract the entropy bonus (logging both into stats)."""
        c, mask = self.cfg, inp.batch.completion_mask
        if inp.ref_logp is not None and c.kl_coef > 0:
            kl = aggregate(kl_estimate(inp.logp, inp.ref_logp, c.kl_estimator), mask, c.loss_agg, inp.norm_len)
            total = total + c.kl_coef * kl
            stats["train/kl"] = kl.detach()
        if inp.entropy is not None:
            ent = aggregate(inp.entropy, mask, c.loss_agg, inp.norm_len)
            total = total - c.entropy_coef * ent
            stats["train/entropy"] = ent.detach()
        return total

    def after_step(self, ctx: StepContext, batch: RolloutBatch) -> None:
        """Bookkeeping once the update is done (replay buffers, curricula)."""

    # resumable state of stateful methods (replay buffers, curricula); GRPO has none
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


ALGORITHMS.register(
    "dr_grpo",
    config=GRPOConfig(adv_norm="none", loss_agg="seq-mean-token-sum-norm"),
    description="Dr.GRPO: no std normalisation, constant-length loss normalisation",
    paper="arXiv:2503.20783",
)(GRPO)
ALGORITHMS.register(
    "rloo",
    config=GRPOConfig(baseline="loo", adv_norm="none"),
    description="RLOO: leave-one-out baseline, no std normalisation",
    paper="arXiv:2402.14740",
)(GRPO)
