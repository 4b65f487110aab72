"""Weights & Biases mirror of the results store (offline by default; the store stays the source of truth).

Every chart's x-axis is `rollouts` (generated, charged); runs are grouped by algorithm x task, one run per
seed, tagged with the git commit. A resumed run continues the same W&B run id.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any


def quiet_wandb_env(run_dir: Path, mode: str) -> None:
    """Settings that keep offline W&B on this machine: no error reporting, files under the run directory."""
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
    os.environ["WANDB_MODE"] = mode
    for var, sub in (("WANDB_DIR", ""), ("WANDB_CACHE_DIR", "cache"), ("WANDB_DATA_DIR", "data"), ("WANDB_CONFIG_DIR", "config")):
        path = run_dir / "wandb-files" / sub
        path.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault(var, str(path))


class WandbMirror:
    def __init__(self, cfg: Any, run_dir: Path, config: dict, env: dict):
        self.run = None
        if cfg.mode == "disabled":
            return
        quiet_wandb_env(run_dir, cfg.mode)
        import wandb

        id_file = run_dir / "wandb_id"
        run_id = id_file.read_text().strip() if id_file.exists() else uuid.uuid4().hex[:12]
        id_file.write_text(run_id)
        commit = (env.get("git") or {}).get("commit")
        self.run = wandb.init(
            project=cfg.project,
            entity=cfg.entity,
            id=run_id,
            resume="allow",
            name=run_dir.name,
            group=f"{config['algo']}-{config['task']}",
            tags=[t for t in (config["algo"], config["task"], commit and commit[:10]) if t],
            config=config,
            dir=str(run_dir / "wandb-files"),
        )
        self.run.define_metric("rollouts")
        self.run.define_metric("*", step_metric="rollouts")

    def log(self, row: dict) -> None:
        if self.run is not None:
            self.run.log({k: v for k, v in row.items() if isinstance(v, (int, float))})

    def finish(self, summary: dict | None = None) -> None:
        if self.run is not None:
            if summary:
                self.run.summary.update({k: v for k, v in summary.items() if isinstance(v, (int, float, str))})
            self.run.finish()
            self.run = None
