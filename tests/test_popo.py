"""POPO (its weights: tests/test_importance.py): equivalence to GRPO through the real step, replay accounting,
resume with the buffer, and every ablation switch."""
import math

import pytest
import torch
from conftest import crash_at_step, learning, tiny_run_config

from harness.core.trainer import Trainer


def content_reward(problem, completion):
    """Continuous and (for distinct completions) almost surely distinct: every group is effective."""
    return (sum(map(ord, completion)) % 997) / 997


def parity_reward(problem, completion):
    return float(len(completion) % 2 == 0)


def run(tmp_path, reward, *args):
    t = Trainer(tiny_run_config(tmp_path, "task=countdown", *args), progress=False)
    t.task.score = reward
    t.run()
    return t


def test_popo_without_ineffective_groups_is_exactly_grpo(tmp_path):
    same = ["algo_args.clip_high=0.28", "algo_args.dual_clip=10"]
    g = run(tmp_path, content_reward, "name=g", "algo=grpo", *same)
    p = run(tmp_path, content_reward, "name=p", "algo=popo", *same)
    assert all(r["train/effective_group_frac"] == 1.0 for r in p.store.metrics())
    assert all(r["replay/groups"] == 0 for r in p.store.metrics())
    assert [r["train/loss"] for r in g.store.metrics()] == [r["train/loss"] for r in p.store.metrics()]
    wg, wp = g.model.state_dict(), p.model.state_dict()
    assert all(torch.equal(wg[k], wp[k]) for k in wg)


@pytest.mark.parametrize("task", ["countdown", "geometry"])  # geometry: replayed groups carry their images
def test_replay_fills_ineffective_groups_and_is_charged(tmp_path, task):
    t = run(tmp_path, parity_reward, "algo=popo", f"task={task}", "budget.amount=320", "budget.eval_every=160")
    led, rows = t.ledger, t.store.metrics()
    assert led.rollouts_generated == 320 and led.rollouts_generated == sum(led.rollouts_by_purpose.values())
    assert led.rows_replayed == sum(r["replay/groups"] for r in rows) * 4 > 0
    assert led.rollouts_by_purpose["replaced"] == led.rows_replayed  # every replayed group replaced one fresh group
    assert led.rows_trained == led.rollouts_by_purpose["train"] + led.rows_replayed
    replay_rows = [r for r in rows if r["replay/groups"]]
    assert all(r["offpolicy/staleness"] >= 1 for r in replay_rows)
    assert any(r["offpolicy/is_weight_mean"] != 1.0 for r in replay_rows)
    assert all(0 < r["offpolicy/ess"] <= 1 + 1e-6 for r in replay_rows)


def test_filter_only_drops_ineffective_groups(tmp_path):
    t = run(tmp_path, parity_reward, "algo=popo", "algo_args.replay=false")
    assert t.ledger.rows_replayed == 0
    assert t.ledger.rollouts_by_purpose["discarded"] + t.ledger.rollouts_by_purpose["train"] == t.ledger.rollouts_generated


@pytest.mark.parametrize("task", ["countdown", "geometry"])
def test_resume_restores_the_buffer(tmp_path, monkeypatch, task):
    args = ["algo=popo", f"task={task}", "train.checkpoint_every=2", "budget.amount=160", "budget.eval_every=80"]
    full = run(tmp_path, parity_reward, "name=full", *args)
    crashing = Trainer(tiny_run_config(tmp_path, "task=countdown", "name=resumed", *args), progress=False)
    crashing.task.score = parity_reward
    crash_at_step(crashing, 5, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        crashing.run()
    resumed = run(tmp_path, parity_reward, "name=resumed", *args)
    assert learning(resumed.store.metrics()) == learning(full.store.metrics())


@pytest.mark.parametrize("switches", [
    ["algo_args.reuse=pop"],
    ["algo_args.quality_gate=false"],
    ["algo_args.priority=stale", "algo_args.stale_age=2"],
    ["algo_args.priority=kl"],
    ["algo_args.leftover=drop"],
    ["algo_args.is_weight=none"],
    ["algo_args.is_weight=behaviour_clip"],
    ["algo_args.is_level=sequence", "algo_args.is_cap=null"],
    ["algo_args.is_level=sequence_geomean", "algo_args.is_cap_mode=clamp", "algo_args.is_cap=2"],
    ["algo_args.buffer_groups=2", "train.minibatches=2"],
])
@pytest.mark.parametrize("task", ["arithmetic", "countdown"])
def test_every_popo_switch_runs(tmp_path, switches, task):
    t = run(tmp_path, parity_reward, "algo=popo", f"task={task}", "task_args.train_size=64", "budget.amount=160", "budget.eval_every=80", *switches)
    assert t.store.summary()["status"] == "complete"
    assert t.ledger.rollouts_generated == sum(t.ledger.rollouts_by_purpose.values())
    assert not any(isinstance(v, float) and math.isnan(v) for r in t.store.metrics() for k, v in r.items() if k.startswith("offpolicy"))
