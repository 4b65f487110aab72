"""Short real runs through the whole step: learning, determinism, resume, ledger consistency, store, W&B."""
import copy
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, crash_at_step, learning, tiny_run_config

from harness.config import load_config
from harness.core.evaluation import pass_at_k
from harness.core.trainer import Trainer
from harness.experiments.pretrain import warm_start, warm_start_report


@pytest.mark.parametrize("task", ["arithmetic", "countdown", "geometry"])
def test_short_run_writes_a_complete_store(tmp_path, task):
    cfg = tiny_run_config(tmp_path, f"task={task}")
    summary = Trainer(cfg, progress=False).run()
    root = tmp_path / cfg.run_name
    assert summary["status"] == "complete"
    assert {"config.yaml", "env.json", "metrics.jsonl", "evals.jsonl", "summary.json", "checkpoint"} <= {p.name for p in root.iterdir()}
    env = json.loads((root / "env.json").read_text())
    assert env["seed"] == 0 and env["packages"]["torch"].startswith("2.13") and "commit" in env["git"]
    evals = [json.loads(x) for x in (root / "evals.jsonl").read_text().splitlines()]
    assert [e["budget_point"] for e in evals] == [0, 48, 96]  # fixed budget points, aligned across algorithms
    assert summary["ledger/rollouts"] == 96


def test_same_seed_is_bit_identical_and_seed_matters(tmp_path):
    runs = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        cfg = tiny_run_config(tmp_path, f"name={name}", f"seed={seed}", "task=countdown")
        t = Trainer(cfg, progress=False)
        t.run()
        runs.append((learning(t.store.metrics()), learning(t.store.evals()), t.model.state_dict()))
    (ma, ea, wa), (mb, eb, wb), (mc, _, _) = runs
    assert ma == mb and ea == eb
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert ma != mc


def test_ledger_adds_up(tmp_path):
    cfg = tiny_run_config(tmp_path, "train.ppo_epochs=2", "train.minibatches=2", "algo_args.kl_coef=0.01")
    t = Trainer(cfg, progress=False)
    t.run()
    led, rows = t.ledger, t.store.metrics()
    n = t.policy.non_embedding_params
    assert led.rollouts_generated == sum(led.rollouts_by_purpose.values()) == 96
    assert led.tokens_generated == led.prompt_tokens_generated + led.completion_tokens_generated
    # every step forwards its batch twice without grad (old log-probs, reference) and trains on it twice
    assert led.tokens_forwarded == 2 * led.tokens_generated
    assert led.tokens_trained == 2 * led.tokens_generated
    assert led.flops == pytest.approx(2 * n * (led.tokens_generated + led.tokens_forwarded) + 6 * n * led.tokens_trained)
    # per-step rows are cumulative and consistent with the final ledger
    assert [r["ledger/rollouts"] for r in rows] == [16 * (i + 1) for i in range(len(rows))]
    assert rows[-1]["ledger/flops"] == led.flops
    # wall-clock by phase covers the step
    for r in rows:
        assert r["time/generate"] > 0 and r["time/update"] > 0
    assert sum(led.seconds[p] for p in ("generate", "score", "select", "update", "overhead")) == pytest.approx(led.charged_seconds)
    assert led.eval_rollouts == 3 * 8 * 2 and "eval" not in [k for k in led.rollouts_by_purpose]


def test_budget_in_other_units(tmp_path):
    cfg = tiny_run_config(tmp_path, "budget.unit=tokens", "budget.amount=2000", "budget.eval_every=1000")
    t = Trainer(cfg, progress=False)
    t.run()
    assert 2000 <= t.ledger.tokens_generated < 2000 + 16 * 40
    assert [e["budget_point"] for e in t.store.evals()][:3] == [0, 1000, 2000]


def test_crash_then_resume_equals_uninterrupted(tmp_path, monkeypatch):
    full = Trainer(tiny_run_config(tmp_path, "name=full", "train.checkpoint_every=2"), progress=False)
    full.run()

    crashing = Trainer(tiny_run_config(tmp_path, "name=resumed", "train.checkpoint_every=2"), progress=False)
    crash_at_step(crashing, 3, monkeypatch)  # after the step-2 checkpoint, with a step-3 row already written
    with pytest.raises(KeyboardInterrupt):
        crashing.run()
    assert crashing.store.summary()["status"] == "failed"

    resumed = Trainer(tiny_run_config(tmp_path, "name=resumed", "train.checkpoint_every=2"), progress=False)
    assert resumed.run()["status"] == "complete"
    assert learning(resumed.store.metrics()) == learning(full.store.metrics())
    assert learning(resumed.store.evals()) == learning(full.store.evals())
    # a finished run is not run again
    assert Trainer(tiny_run_config(tmp_path, "name=resumed", "train.checkpoint_every=2"), progress=False).run()["status"] == "complete"


def test_sigkill_then_rerun_completes_without_duplicates(tmp_path):
    args = [sys.executable, "-m", "harness.cli", "run", "-q", *TINY, "policy.warm_start=false", f"out_dir={tmp_path}",
            "name=k", "threads=1", "train.prompts_per_step=4", "train.group_size=4", "budget.amount=2000",
            "budget.eval_every=1000", "budget.eval_prompts=8", "budget.eval_samples=2", "wandb.mode=disabled",
            "train.checkpoint_every=3", "task_args.train_size=200", "task_args.eval_size=16"]
    metrics = tmp_path / "k" / "metrics.jsonl"
    proc = subprocess.Popen(args, cwd=Path(__file__).parent.parent)
    deadline = time.time() + 60
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 20):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert subprocess.run(args, cwd=Path(__file__).parent.parent, capture_output=True).returncode == 0
    steps = [json.loads(x)["step"] for x in metrics.read_text().splitlines()]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) == 2000 // 16 + (2000 % 16 > 0)


def test_wrong_config_for_existing_run_is_refused(tmp_path):
    Trainer(tiny_run_config(tmp_path, "name=x"), progress=False).run()
    with pytest.raises(Exception, match="different config"):
        Trainer(tiny_run_config(tmp_path, "name=x", "train.lr=0.5"), progress=False).run()


def test_wandb_offline_mirror(tmp_path):
    cfg = tiny_run_config(tmp_path, "wandb.mode=offline")
    Trainer(cfg, progress=False).run()
    root = tmp_path / cfg.run_name
    assert (root / "wandb_id").exists()
    assert list((root / "wandb-files").rglob("*.wandb")), "offline run file written"


def test_wandb_run_held_by_a_dead_service_continues_in_a_new_run_with_the_store_replayed(tmp_path, monkeypatch):
    """A SIGKILLed worker's W&B service outlives it and keeps its run id in use: the resumed run must not fail."""
    import wandb

    cfg = tiny_run_config(tmp_path, "wandb.mode=offline")
    Trainer(cfg, progress=False).run()
    root = tmp_path / cfg.run_name
    old_id = (root / "wandb_id").read_text()
    (root / "summary.json").write_text('{"status": "failed"}')  # as if it had died: the rerun resumes it
    real_init, logged = wandb.init, []

    def init(**kw):
        if kw["id"] == old_id:
            raise RuntimeError(f"ServerResponseError: run ID {old_id} is in use in 0 s")
        run = real_init(**kw)
        monkeypatch.setattr(run, "log", lambda row, **_: logged.append(row))
        return run

    monkeypatch.setattr(wandb, "init", init)
    Trainer(cfg, progress=False).run()
    assert (root / "wandb_id").read_text() != old_id
    replayed = [r["rollouts"] for r in logged if "train/loss" in r or "eval/accuracy" in r]
    assert len(replayed) >= len(Trainer(cfg, progress=False).store.metrics()) and replayed == sorted(replayed)


def test_nan_loss_raises_and_is_recorded(tmp_path, monkeypatch):
    t = Trainer(tiny_run_config(tmp_path), progress=False)
    monkeypatch.setattr(t.algo, "advantages", lambda ctx, batch: torch.full((len(batch),), float("nan")))
    with pytest.raises(FloatingPointError):
        t.run()
    assert t.store.summary()["status"] == "failed" and "FloatingPointError" in t.store.summary()["error"]


def test_pass_at_k_estimator():
    c = torch.tensor([0, 1, 2, 4])
    assert torch.allclose(pass_at_k(4, c, 1), c.double() / 4)
    assert torch.allclose(pass_at_k(4, c, 4), torch.tensor([0.0, 1.0, 1.0, 1.0], dtype=torch.float64))
    assert pass_at_k(4, torch.tensor([1]), 2).item() == pytest.approx(1 - 3 / 6)


@pytest.mark.slow
def test_warm_start_then_grpo_learns(tmp_path, monkeypatch):
    """1-digit addition, a 64-wide model: the cached warm start lands in the band, then GRPO learns within 32k
    rollouts (~60 s)."""
    monkeypatch.setenv("RLVR_CACHE", str(tmp_path / "cache"))
    cfg = load_config(None, [
        "policy.hidden_size=64", "policy.num_layers=2", "policy.num_heads=2", "policy.num_kv_heads=1",
        "policy.intermediate_size=128", f"out_dir={tmp_path}", "threads=2", "wandb.mode=disabled",
        "task=arithmetic", "task_args.min_digits=1", "task_args.max_digits=1", "task_args.operators=+", "task_args.train_size=80",
        "task_args.eval_size=12", "budget.eval_prompts=12", "budget.eval_samples=16", "budget.amount=32000",
        "budget.eval_every=8000", "train.prompts_per_step=16", "train.group_size=8", "train.lr=5e-4",
        "pretrain.steps=1000", "pretrain.batch_size=32", "pretrain.check_every=25", "pretrain.min_steps=25",
        "pretrain.band=[0.15,0.5]", "pretrain.check_prompts=12",
    ])
    report = warm_start_report(warm_start(cfg, progress=False))
    assert report["in_band"] and report["chosen"]["mixed_frac"] > 0.3, report["history"]
    t = Trainer(cfg, progress=False)
    s = t.run()
    assert s["initial_accuracy"] == pytest.approx(report["chosen"]["pass@1"], abs=0.15)  # the cached weights are what RL starts from
    # the training reward, averaged over thousands of rollouts, rises by >= 10 points (measured 0.29 -> 0.45 from
    # the first to the last quarter); held-out accuracy, 12 prompts x 16 samples (SE ~0.03), by >= 5 at its best
    reward = np.array([m["train/reward_mean"] for m in t.store.metrics()])
    q = len(reward) // 4
    assert reward[-q:].mean() >= reward[:q].mean() + 0.10, reward[::25]
    evals = [e["eval/accuracy"] for e in t.store.evals()]
    assert max(evals[1:]) >= evals[0] + 0.05, evals
    env = json.loads((t.store.root / "env.json").read_text())
    assert env["warm_start"]["mixed_frac"] == report["chosen"]["mixed_frac"]


def test_dropping_rollouts_without_saying_why_is_an_error(tmp_path, monkeypatch):
    """Equal footing: an algorithm that trains on fewer rollouts than it generated must tag the rest."""
    t = Trainer(tiny_run_config(tmp_path), progress=False)
    monkeypatch.setattr(t.algo, "select", lambda ctx, batch: batch.index(torch.arange(len(batch) // 2)))
    with pytest.raises(RuntimeError, match="generated 16 rollouts but accounted for 8"):
        t.run()

    t = Trainer(tiny_run_config(tmp_path, "name=tagged"), progress=False)

    def select_half(ctx, batch):
        ctx.discard(batch.index(torch.arange(len(batch) // 2, len(batch))), "discarded")
        return batch.index(torch.arange(len(batch) // 2))

    monkeypatch.setattr(t.algo, "select", select_half)
    t.run()
    assert t.ledger.rollouts_by_purpose == {"train": 48, "discarded": 48}
    assert t.ledger.rows_trained == 48 and t.ledger.rollouts_generated == 96


def test_stream_offset_redraws_samples_not_prompts_and_reproduces(tmp_path):
    """The A/A control's knob: another stream at the same seed samples differently from the same prompts."""
    seen = {}
    for name, stream in (("s0", 0), ("s1", 1), ("s1b", 1)):
        t = Trainer(tiny_run_config(tmp_path, f"name={name}", f"stream={stream}"), progress=False)
        ctx_batches = []
        real = t.rollout
        t.rollout = lambda idx, sizes, step, r=0, _real=real, _acc=ctx_batches: _acc.append(_real(idx, sizes, step, r)) or _acc[-1]
        t.run()
        seen[name] = (ctx_batches[0].problem_idx, ctx_batches[0].completion_ids, learning(t.store.metrics()))
    assert torch.equal(seen["s0"][0], seen["s1"][0])  # the same prompts
    assert not torch.equal(seen["s0"][1], seen["s1"][1])  # other samples
    assert seen["s1"][2] == seen["s1b"][2] and seen["s0"][2] != seen["s1"][2]


def test_handicap_charges_and_discards_the_surplus_and_equals_grpo_without_it(tmp_path):
    t = Trainer(tiny_run_config(tmp_path, "name=h", "algo=grpo_handicap", "algo_args.waste=1.5"), progress=False)
    t.run()
    led = t.ledger
    assert led.rollouts_by_purpose["discarded"] * 2 == led.rollouts_by_purpose["train"] == led.rows_trained  # 6 groups, 4 trained
    assert all(r["train/rollouts_trained"] == 16 for r in t.store.metrics())
    runs = {}
    for name, algo in (("g", "algo=grpo"), ("h1", "algo=grpo_handicap")):
        extra = ["algo_args.waste=1"] if name == "h1" else []
        t = Trainer(tiny_run_config(tmp_path, f"name={name}", algo, *extra), progress=False)
        t.run()
        runs[name] = (learning(t.store.metrics()), learning(t.store.evals()))
    assert runs["g"] == runs["h1"]  # waste = 1 keeps every group: exactly a GRPO step


def test_charged_seconds_are_cpu_time_and_wall_clock_is_kept_beside(monkeypatch):
    import time

    from harness.core.ledger import Ledger

    led = Ledger(flops_per_token=1.0, clock="cpu")
    with led.phase("generate"):
        time.sleep(0.3)  # waiting (another process has the core) costs wall-clock, not CPU
    with led.phase("update"):
        t = time.process_time()
        while time.process_time() - t < 0.2:
            pass
    m = led.metrics()
    assert m["time/generate"] < 0.05 and m["wall/generate"] >= 0.3
    assert m["time/update"] >= 0.2 and m["wall/update"] >= 0.2
    assert led.spent("seconds") == pytest.approx(m["time/charged"])
    wall = Ledger(flops_per_token=1.0, clock="wall")
    with wall.phase("generate"):
        time.sleep(0.1)
    assert wall.spent("seconds") >= 0.1
    assert Ledger.from_state(led.state_dict()).metrics() == m


def test_early_evaluations_and_configs_written_before_a_field_existed(tmp_path):
    from harness.config import changed_fields
    from harness.core.evaluation import next_eval_point
    from harness.registry import resolved_config

    points, p = [], 0.0
    while p <= 20000:
        points.append(p)
        p = next_eval_point(p, 5000.0, 3)
    assert points == [0.0, 625.0, 1250.0, 2500.0, 5000.0, 10000.0, 15000.0, 20000.0]
    t = Trainer(tiny_run_config(tmp_path, "name=early", "budget.eval_early=2"), progress=False)
    t.run()
    assert [e["budget_point"] for e in t.store.evals()] == [0.0, 12.0, 24.0, 48.0, 96.0]
    # a stored config without a newer field is the same run when that field sits at its default
    cfg = tiny_run_config(tmp_path)
    stored = resolved_config(cfg)
    del stored["budget"]["eval_early"]
    assert changed_fields(stored, resolved_config(cfg)) == []
    assert changed_fields(stored, resolved_config(tiny_run_config(tmp_path, "budget.eval_early=1"))) == ["budget.eval_early"]
    # the same for a field added to a task's or an algorithm's own config (task_args.answer, policy.dtype came later)
    for algo, task in (("grpo", "arithmetic"), ("pods", "countdown")):
        current = resolved_config(tiny_run_config(tmp_path, f"algo={algo}", f"task={task}"))
        older = copy.deepcopy(current)
        del older["task_args"]["answer"], older["policy"]["dtype"]
        assert changed_fields(older, current) == []
        hashed = resolved_config(tiny_run_config(tmp_path, f"algo={algo}", f"task={task}", "task_args.answer=hash"))
        assert changed_fields(older, hashed) == ["task_args.answer"]
