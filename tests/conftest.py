import os

import pytest
import torch

from harness.config import PolicyConfig, load_config
from harness.core.store import learning_rows as learning  # noqa: F401  (the tests' name for it)
from harness.engines.policy import embedded_policy

os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_ERROR_REPORTING", "false")

TINY = [
    "policy.hidden_size=32",
    "policy.num_layers=2",
    "policy.num_heads=2",
    "policy.num_kv_heads=1",
    "policy.intermediate_size=64",
]


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


@pytest.fixture
def tiny_policy():
    return embedded_policy(PolicyConfig(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64), seed=0)


def tiny_run_config(tmp_path, *overrides: str):
    """A run that finishes in seconds: tiny model without warm start, small batches, small budget."""
    base = TINY + [
        "policy.warm_start=false",
        f"out_dir={tmp_path}",
        "threads=1",
        "train.prompts_per_step=4",
        "train.group_size=4",
        "train.lr=1e-3",
        "budget.amount=96",
        "budget.eval_every=48",
        "budget.eval_prompts=8",
        "budget.eval_samples=2",
        "wandb.mode=disabled",
        "task_args.train_size=200",
        "task_args.eval_size=16",
    ]
    return load_config(None, base + list(overrides))


def crash_at_step(trainer, step: int, monkeypatch) -> None:
    """Make `trainer.run()` die (KeyboardInterrupt) just before it would run step `step`."""
    real = trainer.train_step

    def step_or_crash():
        if trainer.step == step:
            raise KeyboardInterrupt("simulated crash")
        return real()

    monkeypatch.setattr(trainer, "train_step", step_or_crash)
