"""The stage contract (harness/core/stages.py): stages run against a StepContext with nothing of the trainer
behind it, and the trainer stops a run whose algorithm breaks the contract (undeclared diagnostics, calls or
replayed rows it did not declare needing)."""
import numpy as np
import pytest
import torch
from conftest import tiny_run_config

from algorithms.dapo import DAPO, DAPOConfig
from algorithms.grpo import GRPO, GRPOConfig
from harness.config import TrainConfig
from harness.core.rollouts import RolloutBatch
from harness.core.stages import Needs, StepContext
from harness.core.trainer import Trainer


def fake_batch(problem_idx: torch.Tensor, sizes: list[int], solved: set[int]) -> RolloutBatch:
    """Rollouts of problems whose groups are all-correct (in `solved`) or mixed (others): no model needed."""
    B, L = sum(sizes), 3
    rows = torch.repeat_interleave(problem_idx, torch.as_tensor(sizes))
    rewards = torch.tensor([1.0 if int(p) in solved else float(j % 2) for p, n in zip(problem_idx.tolist(), sizes) for j in range(n)])
    return RolloutBatch(
        prompt_ids=torch.zeros(B, 2, dtype=torch.long), prompt_mask=torch.ones(B, 2, dtype=torch.long),
        completion_ids=torch.zeros(B, L, dtype=torch.long), completion_mask=torch.ones(B, L, dtype=torch.long),
        behav_logp=torch.zeros(B, L), rewards=rewards,
        group_ids=torch.repeat_interleave(torch.arange(len(sizes)), torch.as_tensor(sizes)), problem_idx=rows,
        birth_step=torch.zeros(B, dtype=torch.long), replayed=torch.zeros(B, dtype=torch.bool), finished=torch.ones(B, dtype=torch.bool),
    )


def fake_context(solved: set[int], needs: Needs = Needs(), num_problems: int = 40) -> tuple[StepContext, dict]:
    books = {"generated": 0, "tags": {}, "rounds": []}

    def generate(idx, sizes, round_index):
        books["generated"] += sum(sizes)
        books["rounds"].append(round_index)
        return fake_batch(idx, sizes, solved)

    def tag(purpose, n):
        books["tags"][purpose] = books["tags"].get(purpose, 0) + n

    ctx = StepContext(step=0, seed=0, rng=np.random.default_rng(0), train_cfg=TrainConfig(prompts_per_step=4, group_size=4),
                      num_train_problems=num_problems, needs=needs, pad_id=0, generate=generate,
                      rescore=lambda batch: torch.zeros_like(batch.behav_logp), tag=tag)
    return ctx, books


def test_dapo_stages_against_a_context_without_a_trainer():
    """DAPO re-samples in new rounds until it has prompts_per_step effective groups, then keeps exactly those and
    tags every other generated rollout: checked on fake rollouts where 3 problems in 4 are always solved."""
    solved = {i for i in range(40) if i % 4}
    algo = DAPO(DAPOConfig(max_rounds=50))
    ctx, books = fake_context(solved)
    batch = algo.collect(ctx)
    kept = algo.select(ctx, batch)
    assert books["rounds"] == list(range(len(books["rounds"]))) and len(books["rounds"]) > 1
    assert kept.num_groups == 4 and len(kept) == 16
    assert not any(int(p) in solved for p in kept.problem_idx)
    assert books["tags"]["discarded"] + len(kept) == books["generated"] == len(batch)
    assert ctx.logged["dapo/rounds"] == len(books["rounds"]) and ctx.logged["dapo/effective_groups"] >= 4
    adv = algo.advantages(ctx, kept)
    assert adv.shape == (16,) and adv.abs().sum() > 0


def test_score_needs_to_be_declared():
    ctx, _ = fake_context(set())
    batch = fake_batch(torch.arange(2), [2, 2], set())
    with pytest.raises(RuntimeError, match="Needs\\(rescoring=True\\)"):
        ctx.score(batch)
    ctx, _ = fake_context(set(), Needs(rescoring=True))
    assert ctx.score(batch).shape == batch.behav_logp.shape


class Chatty(GRPO):
    def select(self, ctx, batch):
        ctx.log(**{"chatty/undeclared": 1.0})
        return batch


class Replaying(GRPO):
    def select(self, ctx, batch):
        batch.replayed[:] = True  # claims rows from an earlier step without declaring Needs(replay=True)
        return batch


class Loud(GRPO):
    def loss(self, inp):
        loss, stats = super().loss(inp)
        return loss, {**stats, "loud/undeclared": loss.detach()}


@pytest.mark.parametrize("cls, match", [(Chatty, "logged chatty/undeclared without declaring"),
                                        (Replaying, "replayed rows; declare Needs\\(replay=True\\)"),
                                        (Loud, "returned loud/undeclared without declaring")])
def test_trainer_stops_an_algorithm_that_breaks_the_contract(tmp_path, cls, match):
    t = Trainer(tiny_run_config(tmp_path), progress=False)
    t.algo = cls(GRPOConfig())
    with pytest.raises(RuntimeError, match=match):
        t.run()
    assert t.store.summary()["status"] == "failed"


def test_needs_decide_the_reference_model_and_entropy(tmp_path):
    plain = Trainer(tiny_run_config(tmp_path, "name=a"), progress=False)
    assert plain.ref_model is None and plain.needs == Needs()
    reg = Trainer(tiny_run_config(tmp_path, "name=b", "algo_args.kl_coef=0.1", "algo_args.entropy_coef=0.01"), progress=False)
    assert reg.ref_model is not None and reg.needs.entropy
    rows = reg.run() and reg.store.metrics()
    assert all("train/kl" in r and "train/entropy" in r for r in rows)
