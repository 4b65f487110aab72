"""Reading a sweep's results store: runs, their curves on a common budget grid, and per-seed values."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from scipy import stats as sps

from harness.analysis import stats
from harness.core.ledger import GENERATED, RENAMED
from harness.core.stages import TRAINER_DIAGNOSTICS, plotted
from harness.core.store import RunStore, read_jsonl
from harness.plain import ConfigError
from harness.registry import ALGORITHMS

AXES = {"rollouts": "rollouts generated", "flops": "FLOPs (generation, forward, training)", "tokens": "tokens generated",
        "seconds": "charged seconds (process CPU time)", "wall_seconds": "wall-clock seconds"}


PHASES = ("generate", "score", "select", "update", "overhead")


def current_keys(summary: dict) -> dict:
    """A run summary with the ledger's names of this version: runs written before the rename counted rows of the
    update as ledger/rollouts_{trained,replayed} and generated rollouts by purpose as ledger/rollouts_<purpose>."""
    old = {f"ledger/{k}": f"ledger/{v}" for k, v in RENAMED.items()}
    return {old.get(k) or (GENERATED + k.removeprefix("ledger/rollouts_") if k.startswith("ledger/rollouts_") else k): v
            for k, v in summary.items()}


def declared_plots(run: Run) -> dict[str, str]:
    """{metric: label} of the diagnostics a run declared for plotting; for runs written before runs declared
    them, the trainer's and those its registered algorithm declares now."""
    if "diagnostics" in run.summary:
        return run.summary["diagnostics"]
    try:
        declared = ALGORITHMS.get(run.algorithm).obj.diagnostics
    except (ConfigError, AttributeError):  # a plugin not importable here, or not a class with declarations
        declared = {}
    return plotted({**TRAINER_DIAGNOSTICS, **declared})


@dataclass
class Run:
    name: str
    method: str  # the sweep's algo label, with the variant label appended when there is one
    algorithm: str  # the registered algorithm behind the label
    task: str
    seed: int
    evals: list[dict]
    metrics: list[dict]
    summary: dict

    def curve(self, x: str, y: str = "eval/accuracy") -> tuple[np.ndarray, np.ndarray]:
        rows = [r for r in self.evals if y in r]
        return np.array([r[x] for r in rows], dtype=float), np.array([r[y] for r in rows], dtype=float)

    def final(self, y: str = "eval/accuracy") -> float:
        return float(self.evals[-1][y])


@dataclass
class Results:
    name: str
    root: Path
    runs: list[Run]
    skipped: list[str] = field(default_factory=list)  # cells without a complete result, and why
    claim: dict | None = None
    unit: str = "rollouts"
    controls: dict | None = None  # the sweep file's `controls:` (A/A and planted-handicap arms), if any

    @property
    def tasks(self) -> list[str]:
        return list(dict.fromkeys(r.task for r in self.runs))

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(r.method for r in self.runs))

    def group(self, task: str, method: str) -> list[Run]:
        return sorted((r for r in self.runs if r.task == task and r.method == method), key=lambda r: r.seed)

    @property
    def diagnostics(self) -> dict[str, str]:
        """{metric: label} of every diagnostic some run declared for plotting, in the order first declared."""
        return {k: v for run in self.runs for k, v in declared_plots(run).items()}


def load_results(source: str | Path) -> Results:
    """A sweep file (its out_dir) or a results directory -> the complete runs in it, with their axes."""
    from harness.experiments.sweep import load_sweep, sweep_file

    source = sweep_file(source)
    raw: dict = {}
    if source.is_file():
        sweep = load_sweep(source)
        root, name, raw = sweep.out_dir, sweep.name, sweep.raw
    else:
        root, name = source, source.name
        if (root / "sweep.yaml").exists():
            raw = yaml.safe_load((root / "sweep.yaml").read_text()) or {}
    claim, controls = raw.get("claim"), raw.get("controls")
    if not root.is_dir():
        raise ConfigError(f"{root}: no results directory (run the sweep first)")
    manifest = root / "cells.json"
    if manifest.exists():
        cells = json.loads(manifest.read_text())["cells"]
        name = json.loads(manifest.read_text()).get("name", name)
    else:  # any directory of runs: axes from each run's stored config
        cells = []
        for cfg_path in sorted(root.glob("*/config.yaml")):
            cfg = yaml.safe_load(cfg_path.read_text())
            cells.append({"name": cfg_path.parent.name, "algo": cfg["algo"], "task": cfg["task"], "variant": None,
                          "seed": cfg["seed"], "algorithm": cfg["algo"], "unit": cfg["budget"]["unit"]})
    runs, skipped = [], []
    for c in cells:
        run_dir = root / c["name"]
        summary = current_keys(RunStore(run_dir).summary())
        if summary.get("status") != "complete":
            skipped.append(f"{c['name']}: {summary.get('error') if summary.get('status') == 'corrupt' else summary.get('status', 'not run')}")
            continue
        try:
            evals, metrics = read_jsonl(run_dir / "evals.jsonl"), read_jsonl(run_dir / "metrics.jsonl")
        except ValueError as e:  # a corrupt row: this run is left out and named, the rest are reported
            skipped.append(f"{c['name']}: {e}")
            continue
        method = c["algo"] + (f"-{c['variant']}" if c.get("variant") else "")
        runs.append(Run(c["name"], method, c["algorithm"], c["task"], c["seed"], evals, metrics, summary))
    if not runs:
        raise ConfigError(f"{root}: no complete runs to report ({len(skipped)} cells not complete)")
    units = {c.get("unit", "rollouts") for c in cells}
    return Results(name, root, runs, skipped, claim, units.pop() if len(units) == 1 else "rollouts", controls)


def seed_curves(runs: list[Run], x: str, y: str = "eval/accuracy", points: int = 61, xmax: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(grid [points], curves [seeds, points]): each seed's curve interpolated onto a grid from 0 to the
    smallest last x among the seeds (or xmax), so no seed is extrapolated."""
    ends = [run.curve(x, y)[0][-1] for run in runs]
    grid = np.linspace(0.0, min(ends) if xmax is None else xmax, points)
    return grid, np.stack([stats.interpolate(*run.curve(x, y), grid) for run in runs])


def band(curves: np.ndarray, conf: float = stats.CONF) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds and a Student-t band, per grid point. curves [seeds, points]; no band below MIN_SEEDS."""
    mean = curves.mean(0)
    if len(curves) < stats.MIN_SEEDS:
        return mean, mean, mean
    half = sps.t.ppf(0.5 + conf / 2, len(curves) - 1) * curves.std(0, ddof=1) / np.sqrt(len(curves))
    return mean, mean - half, mean + half


def by_seed(runs: list[Run], value) -> dict[int, float]:
    return {r.seed: float(value(r)) for r in runs}


def run_auc(run: Run) -> float:
    from harness.experiments.tune import objective_value

    return objective_value(run.evals, "auc")
