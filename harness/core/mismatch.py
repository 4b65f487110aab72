"""Rollout-engine vs trainer log-prob mismatch: what the trainer logs every step, and the standard corrections.

A fast engine (vLLM) samples from mu, its own numerics of the policy; the trainer recomputes pi_old with the
same weights. They differ slightly (kernels, precision, batch shapes), which makes on-policy training quietly
off-policy. The corrections reweight each fresh token's policy-gradient term by w = pi_old / mu:
    token_truncate  w_t = min(pi_old/mu, C)                                  (TIS, Yao et al. 2025)
    token_mask      w_t = pi_old/mu if 1/C <= pi_old/mu <= C else 0          (masked IS, IcePop-style band)
    seq_truncate    w = min(prod_t pi_old/mu, C) for every token of the sequence
    seq_mask        w = prod_t pi_old/mu if 1/C <= it <= C else 0
Replayed rows keep w = 1: their distance to the current policy is the replaying method's own business (POPO).
"""
from __future__ import annotations

import torch

from harness.core.importance import importance_weights

LEVELS = {"token": "token", "seq": "sequence"}  # sampler.correction's names -> importance_weights'
MODES = {"truncate": "truncate", "mask": "band"}


def mismatch_stats(old_logp: torch.Tensor, behav_logp: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Disagreement on the sampled tokens. old_logp (log pi_old, the trainer's), behav_logp (log mu, the engine's), mask [B, L] -> scalars:
    mean and max |log pi_old - log mu| per token, and the k3 estimate of KL(mu || pi_old) = E_mu[r - 1 - log r], r = pi_old/mu."""
    m = mask.bool()
    if not m.any():
        return {}
    log_r = (old_logp - behav_logp).detach()[m]
    return {
        "engine/logp_diff_mean": log_r.abs().mean(),
        "engine/logp_diff_max": log_r.abs().max(),
        "engine/kl_k3": (torch.exp(log_r) - 1 - log_r).mean(),
    }


def correction_weights(
    old_logp: torch.Tensor, behav_logp: torch.Tensor, mask: torch.Tensor, fresh: torch.Tensor, kind: str, cap: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token loss weights [B, L] (no gradient) and which tokens were truncated or masked [B, L] bool.
    old_logp (log pi_old, the trainer's), behav_logp (log mu, the engine's), mask [B, L]; fresh [B] bool (rows generated this step);
    kind as in the module doc."""
    level, _, mode = kind.partition("_")
    if level not in LEVELS or mode not in MODES:
        raise ValueError(f"correction: unknown {kind!r}")
    return importance_weights(old_logp, behav_logp, mask, fresh, LEVELS[level], cap, MODES[mode])
