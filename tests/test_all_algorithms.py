"""Every registered algorithm runs on every built-in generated task (text and image) through the trainer, and its diagnostics reach store and W&B."""
import pytest
from conftest import tiny_run_config

from harness.core import wandb_log
from harness.core.stages import TRAINER_DIAGNOSTICS
from harness.core.trainer import Trainer
from harness.registry import ALGORITHMS

DIAGNOSTIC_PREFIX = {"pods": "pods/", "maxpo": "maxpo/", "dapo": "dapo/", "popo": "replay/groups", "sgpo": "sgpo/"}


@pytest.mark.parametrize("task", ["arithmetic", "countdown", "shortest_path", "geometry"])
@pytest.mark.parametrize("algo", ALGORITHMS.names())
def test_algorithm_runs_and_logs_diagnostics(tmp_path, monkeypatch, algo, task):
    logged = []
    monkeypatch.setattr(wandb_log.WandbMirror, "log", lambda self, row: logged.append(row))
    extra = ["algo_args.generate_per_prompt=8"] if algo == "pods" else []
    extra += ["algo_args.k=2"] if algo == "maxpo" else []
    cfg = tiny_run_config(tmp_path, f"algo={algo}", f"task={task}", "task_args.train_size=64", *extra)
    t = Trainer(cfg, progress=False)
    t.task.score = lambda p, c: float(len(c) % 2 == 0)  # mixed groups for an untrained policy
    assert t.run()["status"] == "complete"
    rows = t.store.metrics()
    for key in ("train/effective_group_frac", "train/all_correct_group_frac", "train/all_wrong_group_frac", "replay/frac", "clip/frac", "grad/norm"):
        assert all(key in r for r in rows if r["train/rollouts_trained"]), key
    prefix = DIAGNOSTIC_PREFIX.get(algo)
    if prefix:
        assert any(k.startswith(prefix) for r in rows for k in r)
        assert any(k.startswith(prefix) for r in logged for k in r)
    assert t.ledger.rollouts_generated == sum(t.ledger.rollouts_by_purpose.values())
    plotted = t.store.summary()["diagnostics"]  # what the report will draw for this run
    assert set(TRAINER_DIAGNOSTICS) <= set(plotted) and all(k in t.algo.diagnostics or k in TRAINER_DIAGNOSTICS for k in plotted)
