"""Fingerprint of every learning metric of 12 short runs, to show a refactor changed no number.

    python bench/learning_hash.py > after.json      # on this commit
    git stash / git checkout OLD; python bench/learning_hash.py > before.json; diff before.json after.json

Six algorithms (grpo, dapo, popo, pods, maxpo, sgpo) x two tasks (arithmetic, countdown) on the preset model
(64 wide, 2 blocks, cached warm start), 2000 rollouts each; each run's metrics and evaluations, wall-clock
fields left out, hashed. Same commit and seed on the CPU backend must print the same hashes.
"""
from __future__ import annotations

import hashlib
import json
import tempfile

from trainer import PRESET_MODEL  # bench/trainer.py (this script's folder is first on sys.path)

from harness.config import load_config
from harness.core.store import learning_rows
from harness.core.trainer import Trainer

PRESET = [*PRESET_MODEL, "task_args.train_size=2000"]


def fingerprint(algo: str, task: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        extra = ["algo_args.generate_per_prompt=16"] if algo == "pods" else []
        cfg = load_config(None, [f"task={task}", f"algo={algo}", *PRESET, f"out_dir={tmp}", "threads=1", "budget.amount=2000",
                                 "budget.eval_every=1000", "wandb.mode=disabled", *extra])
        t = Trainer(cfg, progress=False)
        t.run()
        return learning_hash(t.store.metrics() + t.store.evals())


def learning_hash(rows: list[dict]) -> str:
    """Hash of metric/eval rows with every clock field left out: equal exactly when the learning numbers are."""
    rows = learning_rows(rows)
    return f"{hashlib.sha1(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:12]} ({len(rows)} rows)"


def main() -> None:
    print(json.dumps({f"{a}-{t}": fingerprint(a, t) for t in ("arithmetic", "countdown")
                      for a in ("grpo", "dapo", "popo", "pods", "maxpo", "sgpo")}, indent=1))


if __name__ == "__main__":
    main()
