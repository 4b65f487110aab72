"""DAPO dynamic sampling through the real step: re-samples, charges everything, trains at the cap."""
import torch
from conftest import tiny_run_config

from harness.core.rollouts import effective_groups
from harness.core.trainer import Trainer


def test_effective_groups():
    r = torch.tensor([1.0, 1, 0, 0, 0.5, 1, 0.2, 0.2])
    g = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    assert effective_groups(r, g).tolist() == [False, False, True, False]


def run(tmp_path, reward, *args):
    t = Trainer(tiny_run_config(tmp_path, "algo=dapo", *args), progress=False)
    t.task.score = reward
    t.run()
    return t


def test_resamples_until_enough_effective_groups_and_charges_all(tmp_path):
    t = run(tmp_path, lambda p, c: float(len(c) % 2 == 0), "algo_args.max_rounds=8", "budget.amount=400", "budget.eval_every=200")
    led, rows = t.ledger, t.store.metrics()
    assert led.rollouts_generated == sum(led.rollouts_by_purpose.values())
    assert led.rollouts_by_purpose["train"] == led.rows_trained
    assert all(r["train/rollouts_trained"] == 16 for r in rows if not r["dapo/hit_cap"])  # 4 effective groups x 4
    assert led.rollouts_by_purpose.get("discarded", 0) > 0
    assert any(r["dapo/rounds"] > 1 for r in rows)


def test_at_the_cap_it_trains_on_what_it_has_and_never_aborts(tmp_path):
    t = run(tmp_path, lambda p, c: 0.0, "algo_args.max_rounds=2")  # no group ever has signal
    rows = t.store.metrics()
    assert t.store.summary()["status"] == "complete"
    assert all(r["dapo/hit_cap"] == 1.0 and r["dapo/rounds"] == 2 and r["train/rollouts_trained"] == 0 for r in rows)
    assert dict(t.ledger.rollouts_by_purpose) == {"discarded": t.ledger.rollouts_generated, "train": 0}
