"""Weights & Biases mirror of the results store (offline by default; the store stays the source of truth).

Every chart's x-axis is `rollouts` (generated, charged); runs are grouped by algorithm x task, one run per
seed, tagged with the git commit. A resumed run continues the same W&B run id.
"""
from __future__ import annotations

import netrc
import os
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from harness.core.store import read_jsonl
from harness.plain import ConfigError


def quiet_wandb_env(run_dir: Path, mode: str) -> None:
    """Settings that keep offline W&B on this machine: no error reporting, files under the run directory
    (a user's own WANDB_* settings stay as they are)."""
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
    os.environ["WANDB_MODE"] = mode
    for var, sub in (("WANDB_DIR", ""), ("WANDB_CACHE_DIR", "cache"), ("WANDB_DATA_DIR", "data"), ("WANDB_CONFIG_DIR", "config")):
        path = run_dir / "wandb-files" / sub
        path.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault(var, str(path))


def wandb_mode(configured: str) -> str:
    """The W&B mode to use: WANDB_MODE when the user set it (W&B's own convention), else the config's."""
    mode = os.environ.get("WANDB_MODE", "").strip().lower() or configured
    if mode not in ("offline", "online", "disabled", "dryrun", "run"):
        raise ConfigError(f"WANDB_MODE: expected offline, online or disabled, got {mode!r}")
    return {"dryrun": "offline", "run": "online"}.get(mode, mode)


def has_wandb_key() -> bool:
    """An API key in WANDB_API_KEY or ~/.netrc (where `wandb login` puts it)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


class WandbMirror:
    def __init__(self, cfg: Any, run_dir: Path, config: dict, env: dict):
        self.run = None
        mode = wandb_mode(cfg.mode)
        if mode == "disabled":
            return
        if mode == "online" and not has_wandb_key():
            raise ConfigError("wandb.mode: online needs a W&B API key (WANDB_API_KEY or `wandb login`); "
                              "or run offline (the default) and `wandb sync` the run's wandb-files later")
        quiet_wandb_env(run_dir, mode)
        import wandb

        id_file = run_dir / "wandb_id"
        run_id = id_file.read_text().strip() if id_file.exists() else uuid.uuid4().hex[:12]
        commit = (env.get("git") or {}).get("commit")

        def init(run_id: str):
            id_file.write_text(run_id)
            return wandb.init(
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

        try:
            self.run = init(run_id)
        except Exception as e:  # wandb's ServerResponseError; its class lives in a private module
            if "in use" not in str(e):
                raise
            # The W&B service of a killed process outlives it and holds the run id: continue in a new W&B run and
            # replay what the results store already holds, so the mirror is whole again.
            self.run = init(uuid.uuid4().hex[:12])
            print(f"W&B run {run_id} is still held by a dead process's W&B service; mirroring {run_dir.name} to new W&B run "
                  f"{self.run.id} (the results store's rows replayed)", file=sys.stderr, flush=True)
            self._define_metrics()
            for row in sorted(read_jsonl(run_dir / "metrics.jsonl") + read_jsonl(run_dir / "evals.jsonl"), key=lambda r: r.get("rollouts", 0)):
                self.log(row)
            return
        self._define_metrics()

    def _define_metrics(self) -> None:
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
