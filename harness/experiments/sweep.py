"""Sweeps: algorithms x tasks x seeds x variants from one YAML file, run by an executor, resumable.

    rlvr sweep sweeps/quickstart.yaml               # run (or resume) every cell
    rlvr sweep sweeps/quickstart.yaml --status      # what is done, pending, failed; runs nothing
    rlvr sweep sweeps/quickstart.yaml --executor ray --address auto

A sweep file:

    name: quickstart                  # results go to out_dir (default runs/<name>), one directory per cell
    budget: {unit: rollouts, amount: 40000, eval_every: 5000}   # shorthand for base.budget
    base: {policy: {hidden_size: 64}}                # RunConfig fields shared by every cell
    algos: [grpo, {label: popo-noreplay, algo: popo, algo_args: {replay: false}}]   # or: all (every registered one)
    tasks: [arithmetic, {task: countdown, task_args: {max_target: 50}}]
    seeds: [0, 1]                     # or a count: 5 -> 0..4
    variants: [{label: lr1e-3, train.lr: 1.0e-3}]    # optional extra axis of named override sets
    executor: {kind: local, workers: 2, threads: 1, retries: 1}
    plugins: [my_package.my_algorithm]  # modules to import so their plugins register (also in workers)
    tune: {...}                       # search spaces for `rlvr tune` (harness/experiments/tune.py)
    claim: {...}                      # the claim `rlvr report` decides (harness/analysis/report/statistics.py)

Each cell is a RunConfig: base <- algo entry <- task entry <- variant entry, named
`<algo>-<task>[-<variant>]-s<seed>`. Idempotent by construction: a cell's directory holds at most one run
(its own lock file guards it), a complete cell is skipped, an interrupted one resumes from its checkpoint.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any, Literal

from harness.config import RunConfig, build_run_config
from harness.plain import (
    ConfigError,
    deep_merge,
    did_you_mean,
    doc,
    flat_keys,
    from_dict,
    locate,
    located,
    read_yaml,
    require_positive,
    section_line,
    set_dotted,
)

LABEL = re.compile(r"^[A-Za-z0-9_.+=]+(?:-[A-Za-z0-9_.+=]+)*$")


@dataclass
class ExecutorConfig:
    kind: Literal["local", "ray"] = doc("local: a pool of worker processes on this machine; ray: tasks on a Ray cluster.", "local")
    workers: int | None = doc("Cells run at once; None = CPU cores // threads (for Ray: the cluster's CPUs // threads).", None)
    threads: int = doc("torch threads per cell (sets every cell's `threads`; results are bit-identical at a fixed count).", 1)
    retries: int = doc("Extra attempts for a cell that fails (each resumes from its last checkpoint).", 1)
    address: str | None = doc("Ray cluster address (e.g. auto or ray://head:10001); None = start a local Ray instance.", None)

    def validate(self) -> None:
        require_positive(self, "executor.", "workers", "threads")
        if self.retries < 0:
            raise ConfigError(f"executor.retries: must be >= 0, got {self.retries}")

    def worker_count(self) -> int:
        return self.workers or max(1, (os.cpu_count() or 1) // self.threads)


@dataclass
class Cell:
    name: str
    algo: str  # labels of the axes this cell sits on (reports group by them)
    task: str
    variant: str | None
    seed: int
    config: RunConfig

    @property
    def root(self) -> Path:
        return Path(self.config.out_dir) / self.config.run_name


@dataclass
class Sweep:
    name: str
    path: Path | None
    out_dir: Path
    cells: list[Cell]
    executor: ExecutorConfig
    plugins: list[str] = field(default_factory=list)
    tune: Any = None  # harness.experiments.tune.TuneConfig, or None when the file has no `tune:` section
    raw: dict = field(default_factory=dict)  # the file's data, for the tuner to build trial configs

    def cell(self, algo: str, task: str, seed: int, variant: str | None = None) -> Cell:
        for c in self.cells:
            if (c.algo, c.task, c.seed, c.variant) == (algo, task, seed, variant):
                return c
        raise KeyError(f"no cell {algo}/{task}/{variant}/s{seed}")


# ----------------------------------------------------------------------------------------------------------------
# Loading: the file -> validated cells, every error naming file:line


def expand_dotted(data: dict) -> dict:
    """{"train.lr": 1e-3, "budget": {"amount": 5}} -> {"train": {"lr": 1e-3}, "budget": {"amount": 5}}."""
    out: dict = {}
    for key, value in data.items():
        value = expand_dotted(value) if isinstance(value, dict) else value
        nested: dict = {}
        set_dotted(nested, str(key), value)
        out = deep_merge(out, nested)
    return out


def _axis(entries: Any, key: str, where: str) -> list[tuple[str, dict, str]]:
    """An axis of the grid: [(label, overrides, yaml prefix)]. Entries are names or mappings with `key`/`label`."""
    if entries is None:
        return []
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{where}: expected a non-empty list")
    out = []
    for i, entry in enumerate(entries):
        prefix = f"{where}.{i}."
        if isinstance(entry, str) and key:
            out.append((entry, {key: entry}, prefix))
            continue
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}.{i}: expected a name or a mapping, got {entry!r}")
        entry = dict(entry)
        label = entry.pop("label", None) or (entry.get(key) if key else None)
        if not label:
            need = f"'{key}' or 'label'" if key else "'label'"
            raise ConfigError(f"{where}.{i}: needs {need}")
        if not LABEL.match(str(label)):
            raise ConfigError(f"{where}.{i}.label: {label!r} must be letters, digits, . _ + = joined by single '-'")
        out.append((str(label), expand_dotted(entry), prefix))
    labels = [label for label, _, _ in out]
    dup = next((x for x in labels if labels.count(x) > 1), None)
    if dup:
        raise ConfigError(f"{where}: label {dup!r} appears twice (give entries distinct `label`s)")
    return out


def _source_lines(sources: list[tuple[str, dict]], lines: dict[str, int]) -> dict[str, int]:
    """The file line of each key of a cell's override sources, keyed as the cell's config names it (a later
    source overrides an earlier one, as in the merge)."""
    return {key: lines[f"{prefix}{key}"] for prefix, data in sources for key in flat_keys(data) if f"{prefix}{key}" in lines}


SWEEP_KEYS = ("name", "out_dir", "budget", "base", "algos", "tasks", "seeds", "variants", "executor", "plugins", "tune", "claim", "controls")


def parse_sweep(data: dict, lines: dict[str, int] | None = None, path: str | Path | None = None) -> Sweep:
    """Plain data of a sweep file -> Sweep with every cell's RunConfig validated (plugins resolved)."""
    lines = lines or {}
    where = str(path) if path else "sweep"

    def err(msg: str, key: str | None = None) -> ConfigError:
        return located(where, lines.get(key) if key else None, msg)

    for key in data:
        if key not in SWEEP_KEYS:
            raise err(f"unknown sweep field '{key}'" + (did_you_mean(key, list(SWEEP_KEYS)) or f" (known: {', '.join(SWEEP_KEYS)})"), key)
    name = data.get("name") or (Path(path).stem if path else None)
    if not name or not LABEL.match(str(name)):
        raise err(f"name: need a label (letters, digits, . _ + =, '-'), got {name!r}", "name")
    out_dir = Path(data.get("out_dir") or f"runs/{name}")
    plugins = data.get("plugins") or []
    if not isinstance(plugins, list):
        raise err("plugins: expected a list of module names", "plugins")
    for module in plugins:
        try:
            import_module(module)
        except ImportError as e:
            raise err(f"plugins: cannot import {module!r}: {e}", "plugins") from None
    try:
        executor = from_dict(ExecutorConfig, data.get("executor") or {}, "executor")
        executor.validate()
    except ConfigError as e:
        raise located(where, section_line(str(e), lines, "executor"), str(e)) from None
    base = expand_dotted(data.get("base") or {})
    if "threads" in base:
        raise err("base.threads: set executor.threads (torch threads per cell) instead", "base.threads")
    for reserved in ("algo", "task", "seed", "name", "out_dir"):
        if reserved in base:
            raise err(f"base.{reserved}: set by the sweep's axes and out_dir, not in base", f"base.{reserved}")
    if data.get("budget") is not None:
        if not isinstance(data["budget"], dict):
            raise err("budget: expected a mapping (unit, amount, eval_every, ...)", "budget")
        base = deep_merge(base, {"budget": expand_dotted(data["budget"])})
    if data.get("algos") == "all":  # every registered algorithm, plugins included
        from harness.registry import ALGORITHMS

        data = {**data, "algos": [n for n in ALGORITHMS.names() if not ALGORITHMS.get(n).description.startswith(("test only", "control"))]}
    algos = _axis(data.get("algos"), "algo", "algos")
    tasks = _axis(data.get("tasks"), "task", "tasks")
    if not algos or not tasks:
        raise err("algos and tasks: both axes need at least one entry", "algos" if not algos else "tasks")
    variants = _axis(data.get("variants"), "", "variants") or [(None, {}, "")]
    seeds = data.get("seeds", [0])
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = list(range(seeds))
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds) or len(set(seeds)) != len(seeds):
        raise err(f"seeds: expected a count or a list of distinct integers, got {seeds!r}", "seeds")
    by_name: dict[str, Cell] = {}
    for a_label, a_over, a_pre in algos:
        for t_label, t_over, t_pre in tasks:
            for v_label, v_over, v_pre in variants:
                for seed in seeds:
                    cell_name = "-".join(x for x in (a_label, t_label, v_label) if x) + f"-s{seed}"
                    merged = deep_merge(deep_merge(deep_merge(base, a_over), t_over), v_over)
                    merged.update(seed=seed, out_dir=str(out_dir), name=cell_name, threads=executor.threads)
                    try:
                        cfg = build_run_config(merged)
                    except ConfigError as e:
                        sources = [("base.", base), (a_pre, a_over), (t_pre, t_over), (v_pre, v_over)]
                        if data.get("budget"):
                            sources.append(("", {"budget": data["budget"]}))
                        raise located(where, locate(str(e), _source_lines(sources, lines)), f"cell {cell_name}: {e}") from None
                    clash = by_name.get(cell_name)
                    if clash is not None:  # labels with '-' can join to one name: 'a-b' x 'c' and 'a' x 'b-c'
                        raise ConfigError(f"{where}: cells ({clash.algo}, {clash.task}, {clash.variant or '-'}) and ({a_label}, {t_label}, "
                                          f"{v_label or '-'}) would share the directory {cell_name}; rename a label")
                    by_name[cell_name] = Cell(cell_name, a_label, t_label, v_label, seed, cfg)
    cells = list(by_name.values())
    tune = None
    if data.get("tune") is not None:
        from harness.experiments.tune import parse_tune

        tune = parse_tune(data["tune"], lines, where)
    return Sweep(str(name), Path(path) if path else None, out_dir, cells, executor, list(plugins), tune, data)


def sweep_file(path: str | Path) -> Path:
    """`path` when it exists, else the preset of that name shipped in the package ('quickstart' or
    'sweeps/quickstart.yaml'), so the presets work from a non-editable install and any folder."""
    p = Path(path)
    if p.exists() or len(p.parts) > 2 or (len(p.parts) == 2 and p.parts[0] != "sweeps"):
        return p
    from importlib.resources import files

    packaged = files("sweeps") / (p.name if p.suffix in (".yaml", ".yml") else f"{p.name}.yaml")
    return Path(str(packaged)) if packaged.is_file() else p


def load_sweep(path: str | Path, overrides: dict | None = None) -> Sweep:
    """Read and validate a sweep file (or a packaged preset, see sweep_file); `overrides` (e.g.
    {"executor": {"workers": 2}}) are merged on top."""
    path = sweep_file(path)
    data, lines = read_yaml(path)
    return parse_sweep(deep_merge(data, overrides or {}), lines, path)
