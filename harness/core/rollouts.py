"""The batch of scored rollouts that flows through the stages of a training step, and `sample_and_score`
(n samples per problem, scored by the task: what evaluations and warm-start checks run)."""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch


@dataclass
class RolloutBatch:
    """B rollouts in G groups (one group = the samples of one prompt); P prompt and L completion columns.

    prompt_ids, prompt_mask:          [B, P] left-padded
    completion_ids, completion_mask:  [B, L] right-padded (mask includes the EOS token)
    behav_logp:                       [B, L] log-probs under the policy that generated them (mu)
    rewards:                          [B] float verifier scores
    group_ids:                        [B] long, 0..G-1, rollouts of one prompt share an id
    problem_idx:                      [B] long, index of the prompt in the task's train split
    birth_step:                       [B] long, training step that generated the rollout
    replayed:                         [B] bool, True for rollouts reused from an earlier step
    finished:                         [B] bool, True if the completion ended with EOS
    pixel_values:                     [B, ...] image inputs of each rollout's prompt (image tasks; Policy.prompt_inputs), else None
    """

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    behav_logp: torch.Tensor
    rewards: torch.Tensor
    group_ids: torch.Tensor
    problem_idx: torch.Tensor
    birth_step: torch.Tensor
    replayed: torch.Tensor
    finished: torch.Tensor
    pixel_values: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.rewards.shape[0]

    @property
    def num_groups(self) -> int:
        return int(self.group_ids.max()) + 1 if len(self) else 0

    @property
    def prompt_tokens(self) -> int:
        return int(self.prompt_mask.sum())

    @property
    def completion_tokens(self) -> int:
        return int(self.completion_mask.sum())

    def _map(self, fn) -> RolloutBatch:
        """The batch with fn applied to every tensor field (absent optional fields stay None)."""
        return replace(self, **{f.name: fn(x) for f in fields(self) if (x := getattr(self, f.name)) is not None})

    def to(self, device: torch.device | str) -> RolloutBatch:
        return self._map(lambda x: x.to(device))

    def index(self, rows: torch.Tensor) -> RolloutBatch:
        """Sub-batch of `rows` (long indices or bool mask); group ids renumbered to 0..G'-1 in order."""
        sub = self._map(lambda x: x[rows])
        if len(sub):
            sub.group_ids = torch.unique(sub.group_ids, return_inverse=True)[1]
        return sub


def _pad_to(x: torch.Tensor, width: int, value: float, left: bool) -> torch.Tensor:
    extra = width - x.shape[1]
    if extra == 0:
        return x
    pad = torch.full((x.shape[0], extra), value, dtype=x.dtype)
    return torch.cat([pad, x] if left else [x, pad], 1)


def cat_batches(batches: list[RolloutBatch], pad_id: int) -> RolloutBatch:
    """Concatenate batches (re-padding prompts on the left and completions on the right; group ids offset)."""
    batches = [b for b in batches if len(b)]
    if len(batches) == 1:
        return batches[0]
    P = max(b.prompt_ids.shape[1] for b in batches)
    L = max(b.completion_ids.shape[1] for b in batches)
    offset = 0
    gids = []
    for b in batches:
        gids.append(b.group_ids + offset)
        offset += b.num_groups
    return RolloutBatch(
        prompt_ids=torch.cat([_pad_to(b.prompt_ids, P, pad_id, True) for b in batches]),
        prompt_mask=torch.cat([_pad_to(b.prompt_mask, P, 0, True) for b in batches]),
        completion_ids=torch.cat([_pad_to(b.completion_ids, L, pad_id, False) for b in batches]),
        completion_mask=torch.cat([_pad_to(b.completion_mask, L, 0, False) for b in batches]),
        behav_logp=torch.cat([_pad_to(b.behav_logp, L, 0.0, False) for b in batches]),
        rewards=torch.cat([b.rewards for b in batches]),
        group_ids=torch.cat(gids),
        problem_idx=torch.cat([b.problem_idx for b in batches]),
        birth_step=torch.cat([b.birth_step for b in batches]),
        replayed=torch.cat([b.replayed for b in batches]),
        finished=torch.cat([b.finished for b in batches]),
        pixel_values=None if batches[0].pixel_values is None else torch.cat([b.pixel_values for b in batches]),
    )


def group_reward_range(rewards: torch.Tensor, group_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-group min and max reward: rewards [B], group_ids [B] in 0..G-1 -> ([G], [G])."""
    G = int(group_ids.max()) + 1
    lo = torch.full((G,), float("inf")).scatter_reduce(0, group_ids, rewards, "amin")
    hi = torch.full((G,), float("-inf")).scatter_reduce(0, group_ids, rewards, "amax")
    return lo, hi


def effective_groups(rewards: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """[G] bool: groups whose rewards are not all equal (they carry a group-relative learning signal)."""
    lo, hi = group_reward_range(rewards, group_ids)
    return hi > lo


def group_reward_stats(rewards: torch.Tensor, group_ids: torch.Tensor) -> dict[str, float]:
    """Share of groups with reward variance > 0, and of all-correct / all-wrong (all-max / all-min) groups."""
    lo, hi = group_reward_range(rewards, group_ids)
    mixed = (hi > lo).float()
    return {
        "train/effective_group_frac": mixed.mean().item(),
        "train/all_correct_group_frac": ((hi == lo) & (lo >= 1.0)).float().mean().item(),
        "train/all_wrong_group_frac": ((hi == lo) & (hi <= 0.0)).float().mean().item(),
    }


@torch.no_grad()
def sample_and_score(policy, engine, task, problems, n: int, max_new_tokens: int, temperature: float, top_p: float, seed: int) -> tuple[torch.Tensor, int]:
    """n samples of each problem, scored by the task: rewards [len(problems), n] and the tokens processed."""
    prompts, pixels = policy.prompt_inputs(problems)
    images = None if pixels is None else pixels.repeat_interleave(n, 0)
    gen = engine.generate([p for p in prompts for _ in range(n)], max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed, images=images)
    texts = policy.decode(gen.completion_ids.tolist())
    rewards = torch.tensor(task.score_batch([problems[i // n] for i in range(len(texts))], texts))
    return rewards.view(len(problems), n), int(gen.prompt_mask.sum() + gen.completion_mask.sum())
