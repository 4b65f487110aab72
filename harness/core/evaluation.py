"""Evaluation arithmetic of a run: when to evaluate, pass@k, the eval's own sampling error, and the prompt-length
check that fails a run at load instead of at its first oversized allocation."""
from __future__ import annotations

import math

import torch

from tasks.base import DataError


def pass_at_k(n: int, c: torch.Tensor, k: int) -> torch.Tensor:
    """Unbiased pass@k from n samples with c correct (Chen et al. 2021): 1 - C(n-c, k) / C(n, k). c [M] -> [M]."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    table = torch.tensor([1.0 - math.comb(n - j, k) / math.comb(n, k) if n - j >= k else 1.0 for j in range(n + 1)], dtype=torch.float64)
    return table[c.long()]


def next_eval_point(point: float, every: float, early: int) -> float:
    """The evaluation after `point`: 0, then every / 2**early, ..., every / 2 (the `early` extra points), then
    every multiple of `every`."""
    if point < every:
        for k in range(early, 0, -1):
            if every / 2**k > point:
                return every / 2**k
        return every
    return (math.floor(point / every + 1e-9) + 1) * every


def eval_sampling_se(correct: torch.Tensor, n: int) -> float:
    """Standard error of mean accuracy from the sampling alone, the prompts held fixed (every run and method
    is evaluated on the same prompts, so this is the eval noise a paired comparison sees): sqrt(sum_i
    p_i (1 - p_i) / (n - 1)) / P with p_i = correct_i / n, unbiased per prompt. correct [P] of n samples each."""
    if n < 2:
        return float("nan")
    p = correct.double() / n
    return math.sqrt(float((p * (1 - p)).sum()) / (n - 1)) / len(p)


def check_prompt_lengths(problems: list, prompts: list[list[int]], max_new_tokens: int, limit: int | None) -> None:
    """DataError naming the first problem (its `file:line` when the task records one) whose prompt tokens plus
    max_new_tokens exceed the policy's positions: caught at load, not as a huge allocation on step 0."""
    if limit is None:
        return
    over = [i for i, ids in enumerate(prompts) if len(ids) + max_new_tokens > limit]
    if over:
        i = over[0]
        where = problems[i].meta.get("source", f"problem {problems[i].prompt[:40]!r}")
        raise DataError(f"{where}: prompt is {len(prompts[i])} tokens; with max_new_tokens={max_new_tokens} that exceeds the "
                        f"policy's {limit} positions ({len(over)} of {len(prompts)} problems do); shorten or drop them")
