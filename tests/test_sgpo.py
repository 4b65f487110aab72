"""sGPO: bucket rule, profiling charged, filtering and phases against an oracle recomputation, switches."""
import math
import zlib

import pytest
import torch
from conftest import crash_at_step, learning, tiny_run_config

from algorithms.sgpo import bucket_size
from harness.core.trainer import Trainer


def graded_reward(problem, completion):
    """Success rate varies by prompt (about 1, 1/2, 1/3, 1/4) even for an untrained policy."""
    k = 1 + zlib.crc32(problem.prompt.encode()) % 4
    return float(len(completion) % k == 0)


@pytest.mark.parametrize("p, g", [(1 / 8, 8), (2 / 8, 4), (3 / 8, 2), (6 / 8, 2), (1.0, 2), (0.0, 8), (1 / 16, 8), (0.2, 4)])
def test_bucket_size_table(p, g):
    assert bucket_size(p, 2, 8) == g


def test_bucket_size_is_clipped_power_of_two_of_inverse_p():
    for k in range(1, 65):
        p = k / 64
        g = bucket_size(p, 2, 16)
        assert g & (g - 1) == 0 and 2 <= g <= 16
        assert g == min(16, max(2, 2 ** math.floor(math.log2(64 / k) + 1e-9)))


def run(tmp_path, *args):
    cfg = tiny_run_config(tmp_path, "algo=sgpo", "task_args.train_size=64", "budget.amount=1200", "budget.eval_every=600", *args)
    t = Trainer(cfg, progress=False)
    t.task.score = graded_reward
    t.run()
    return t


def test_profile_filter_phases_against_oracle(tmp_path):
    t = run(tmp_path)
    algo, led = t.algo, t.ledger
    p = algo.p_hat
    assert led.rollouts_by_purpose["profile"] == 64 * 8  # N = 8 samples of every training prompt, charged
    assert ((p * 8).round() == p * 8).all()
    trivial = set((p > 0.75).nonzero().squeeze(-1).tolist())
    unsolved = set((p == 0).nonzero().squeeze(-1).tolist())
    learn = set(range(64)) - trivial - unsolved
    sizes = [g for g, _ in algo.phases]
    assert sizes == sorted(sizes)  # easy (small groups) to hard
    for g, ids in algo.phases:
        assert not set(ids) & trivial
        assert {i for i in ids if i in learn} == {i for i in learn if bucket_size(float(p[i]), 2, 8) == g}
        assert len(set(ids) & unsolved) == math.ceil(0.1 * len(unsolved))
    rows = t.store.metrics()
    assert [r["sgpo/phase"] for r in rows] == sorted(r["sgpo/phase"] for r in rows)
    for r in rows:
        if r["sgpo/phase"] < len(algo.phases):
            assert r["sgpo/group_size_mean"] == algo.phases[r["sgpo/phase"]][0]
    assert led.rollouts_generated == sum(led.rollouts_by_purpose.values())


def test_without_curriculum_batches_mix_group_sizes(tmp_path):
    t = run(tmp_path, "algo_args.curriculum=false")
    rows = t.store.metrics()
    assert any(r["sgpo/group_size_min"] < r["sgpo/group_size_max"] for r in rows)


@pytest.mark.parametrize("switches", [
    ["algo_args.filter=false"],
    ["algo_args.adaptive_size=false", "train.group_size=4"],
    ["algo_args.curriculum=false", "algo_args.adaptive_size=false"],
    ["algo_args.drop_zero_var=true"],
    ["algo_args.group_max=16", "algo_args.profile_samples=16", "algo_args.phase_epochs=0.5"],
])
@pytest.mark.parametrize("task", ["arithmetic", "countdown"])
def test_every_sgpo_switch_runs(tmp_path, switches, task):
    t = run(tmp_path, f"task={task}", *switches)
    assert t.store.summary()["status"] == "complete"
    assert t.ledger.rollouts_generated == sum(t.ledger.rollouts_by_purpose.values())


def test_resume_keeps_the_profile(tmp_path, monkeypatch):
    full = run(tmp_path, "name=full", "train.checkpoint_every=2")
    crashing = Trainer(tiny_run_config(tmp_path, "algo=sgpo", "task_args.train_size=64", "budget.amount=1200",
                                       "budget.eval_every=600", "name=res", "train.checkpoint_every=2"), progress=False)
    crashing.task.score = graded_reward
    crash_at_step(crashing, 5, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        crashing.run()
    resumed = run(tmp_path, "name=res", "train.checkpoint_every=2")
    assert resumed.ledger.rollouts_by_purpose["profile"] == 64 * 8  # not profiled twice
    assert learning(resumed.store.metrics()) == learning(full.store.metrics())
    assert torch.equal(resumed.algo.p_hat, full.algo.p_hat)
