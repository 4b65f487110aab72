"""`rlvr probe-variance`: how noisy is each advantage estimator's policy gradient at a checkpoint?

Draws `batches` independent batches (G samples of the same `prompts` prompts, fresh seeds), and for each
advantage estimator computes the on-policy gradient  g = -grad (1/T) sum_i A_i sum_t log pi(y_i,t)  on the
*same* samples (paired comparison). Reports, per estimator, the total variance trace(Cov[g]) (streaming
Welford, never storing the gradients), the norm of the mean gradient, the signal-to-noise ratio
||E g||^2 / trace(Cov) and the mean advantage (centred estimators give 0).

MaxPO estimators target pass@K rather than pass@1: compare them with each other (the MaxPO claim is
L2O vs the non-centered PKPO estimator on the same objective), not with GRPO's numbers.
"""
from __future__ import annotations

from typing import Callable

import torch

from algorithms.grpo import group_advantages
from algorithms.maxpo import maxk_advantages
from harness.core.rollouts import RolloutBatch
from harness.core.trainer import Trainer
from harness.engines.policy import completion_logprobs


def estimators(group_size: int, k: int) -> dict[str, Callable[[RolloutBatch], torch.Tensor]]:
    """name -> advantages [B] of a batch whose groups all have `group_size` rollouts."""

    def grouped(fn):
        return lambda b: fn(b.rewards.double().view(-1, group_size)).reshape(-1).float()

    def maxk(baseline, std=False):
        def fn(r):
            a = maxk_advantages((r >= 1).double(), k, baseline)
            return a / (a.std(-1, keepdim=True) + 1e-6) if std else a

        return grouped(fn)

    out = {
        "grpo (mean/std)": lambda b: group_advantages(b.rewards, b.group_ids, "mean", "std"),
        "dr_grpo (mean)": lambda b: group_advantages(b.rewards, b.group_ids, "mean", "none"),
        "rloo": lambda b: group_advantages(b.rewards, b.group_ids, "loo", "none"),
        f"pass@{k} pkpo (non-centered)": maxk("pkpo"),
    }
    if group_size >= k + 1:
        out[f"pass@{k} loo"] = maxk("loo")
        out[f"pass@{k} l2o (MaxPO)"] = maxk("l2o")
        out[f"pass@{k} l2o + std"] = maxk("l2o", std=True)
    return out


class Welford:
    """Streaming mean of vectors and the trace of their covariance."""

    def __init__(self):
        self.n, self.mean, self.m2 = 0, None, 0.0

    def add(self, x: torch.Tensor) -> None:
        self.n += 1
        if self.mean is None:
            self.mean = x.clone()
            return
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += float((delta * (x - self.mean)).sum())

    @property
    def trace_cov(self) -> float:
        return self.m2 / max(self.n - 1, 1)


def probe_variance(t: Trainer, batches: int = 32, prompts: int = 16, k: int = 4, checkpoint: str | None = None) -> list[dict]:
    """Rows of the table for trainer `t`'s policy (its warm start or policy.path, or `checkpoint` if given)."""
    cfg = t.cfg
    if checkpoint:
        t.model.load_state_dict(torch.load(checkpoint, weights_only=True, map_location="cpu")["model"])
    G = cfg.train.group_size
    idx = torch.arange(prompts)  # the same prompts in every batch
    params = [p for p in t.model.parameters() if p.requires_grad]
    ests = estimators(G, k)
    stats = {name: Welford() for name in ests}
    adv_means = {name: 0.0 for name in ests}
    for b in range(batches):
        batch = t.rollout(idx, [G] * prompts, step=10_000 + b)  # fresh samples per batch
        logp, _ = completion_logprobs(t.model, batch.prompt_ids, batch.prompt_mask, batch.completion_ids, batch.completion_mask, cfg.sampler.temperature, pixel_values=batch.pixel_values)
        tokens = batch.completion_mask.sum()
        seq_logp = logp.sum(-1)
        for name, fn in ests.items():
            adv = fn(batch)
            adv_means[name] += adv.mean().item() / batches
            grads = torch.autograd.grad(-(adv * seq_logp).sum() / tokens, params, retain_graph=True, allow_unused=True)
            stats[name].add(torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)]).double())
    rows = []
    for name, s in stats.items():
        mean_sq = float((s.mean**2).sum())
        rows.append({"estimator": name, "trace_cov": s.trace_cov, "mean_grad_norm": mean_sq**0.5, "snr": mean_sq / max(s.trace_cov, 1e-30), "adv_mean": adv_means[name]})
    return rows


def format_table(rows: list[dict]) -> str:
    lines = [f"{'estimator':<30} {'trace Cov[g]':>14} {'||E g||':>10} {'SNR':>8} {'mean A':>9}"]
    for r in rows:
        lines.append(f"{r['estimator']:<30} {r['trace_cov']:>14.4e} {r['mean_grad_norm']:>10.4e} {r['snr']:>8.4f} {r['adv_mean']:>9.4f}")
    return "\n".join(lines)


