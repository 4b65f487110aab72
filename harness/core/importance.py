"""Importance weights between two policies' log-probs, with truncation: the one function behind POPO's
behaviour weights (pi_prox / mu on replayed rows) and the rollout engine's mismatch correction (pi_old / mu on
fresh rows)."""
from __future__ import annotations

from typing import Literal

import torch

Level = Literal["token", "sequence", "sequence_geomean"]
Truncation = Literal["truncate", "mask", "band"]


def importance_weights(
    num_logp: torch.Tensor,
    den_logp: torch.Tensor,
    mask: torch.Tensor,
    rows: torch.Tensor,
    level: Level = "token",
    cap: float | None = None,
    mode: Truncation = "truncate",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token weights w = pi_num / pi_den [B, L] on the rows where rows [B] is True (1 on the others), 0 where
    mask [B, L] is 0; no gradient flows through them.

    level: token (the token's ratio), sequence (the product over the sequence's tokens) or sequence_geomean (its
    geometric mean, length-independent: GSPO-style). With a cap C > 1 (None: no truncation), mode:
        truncate  min(w, C)                   (TIS; POPO's `clamp`)
        mask      w * 1[w <= C]               (POPO's `mask`)
        band      w * 1[1/C <= w <= C]        (masked IS, IcePop-style)
    Returns (weights [B, L], hit [B, L] bool: the tokens of the weighted rows that were truncated or masked).
    """
    log_r = ((num_logp - den_logp) * mask).detach()
    if level == "sequence":
        log_r = log_r.sum(-1, keepdim=True).expand_as(log_r)
    elif level == "sequence_geomean":
        log_r = (log_r.sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp_min(1)).expand_as(log_r)
    elif level != "token":
        raise ValueError(f"importance weight level: unknown {level!r}")
    w = torch.exp(log_r)
    if cap is None:
        hit = torch.zeros_like(w, dtype=torch.bool)
    elif mode == "truncate":
        hit = w > cap
        w = w.clamp(max=cap)
    elif mode in ("mask", "band"):
        hit = (w > cap) | (w < 1 / cap) if mode == "band" else w > cap
        w = w * ~hit
    else:
        raise ValueError(f"importance weight truncation: unknown {mode!r}")
    keep = rows[:, None].expand_as(w)
    return torch.where(keep, w, torch.ones_like(w)) * mask, hit & keep & mask.bool()
