"""Name -> plugin registries for algorithms, tasks and rollout engines.

Built-ins register with a decorator when their module is imported; third-party packages add plugins
through the entry-point groups `rlvr_harness.algorithms` and `rlvr_harness.tasks` (the entry point
loads a module or object whose import registers it), without editing this repository.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any, Callable

from harness.plain import ConfigError, did_you_mean, from_dict, to_dict


@dataclass(frozen=True)
class Entry:
    name: str
    obj: Any  # the class or factory
    config: Any  # preset config instance (a dataclass) or None
    description: str
    paper: str = ""


class Registry:
    def __init__(self, kind: str, entry_point_group: str | None, builtin_modules: list[str]):
        self.kind = kind
        self.group = entry_point_group
        self.builtin_modules = builtin_modules
        self._entries: dict[str, Entry] = {}
        self._loaded = False

    def register(self, name: str, *, config: Any = None, description: str = "", paper: str = "") -> Callable:
        def deco(obj: Any) -> Any:
            if name in self._entries and self._entries[name].obj is not obj:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = Entry(name, obj, config, description or (obj.__doc__ or "").strip().split("\n")[0], paper)
            return obj

        return deco

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for mod in self.builtin_modules:
            import_module(mod)
        if self.group:
            for ep in entry_points(group=self.group):
                ep.load()

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def get(self, name: str) -> Entry:
        self._load()
        if name not in self._entries:
            raise ConfigError(f"unknown {self.kind} '{name}'{did_you_mean(name, self.names())}; known: {', '.join(self.names())}")
        return self._entries[name]

    def build_config(self, name: str, overrides: dict, where: str) -> Any:
        """The preset's config with `overrides` applied (unknown keys and wrong types named as `where.key`)."""
        entry = self.get(name)
        if entry.config is None:
            if overrides:
                raise ConfigError(f"{where}: {self.kind} '{name}' takes no options")
            return None
        merged = {**dataclasses.asdict(entry.config), **overrides}
        cfg = from_dict(type(entry.config), merged, where)
        if hasattr(cfg, "validate"):
            cfg.validate()
        return cfg


ALGORITHMS = Registry("algorithm", "rlvr_harness.algorithms", ["algorithms"])
TASKS = Registry("task", "rlvr_harness.tasks", ["tasks"])
ENGINES = Registry("engine", None, ["harness.engines.sampler", "harness.engines.vllm_engine"])


def resolve_plugins(cfg: Any) -> tuple[Any, Any]:
    """Validate the plugin names and sections of a RunConfig; returns (algo config, task config)."""
    algo_cfg = ALGORITHMS.build_config(cfg.algo, cfg.algo_args, "algo_args")
    task_cfg = TASKS.build_config(cfg.task, cfg.task_args, "task_args")
    ENGINES.get(cfg.sampler.engine)
    if hasattr(algo_cfg, "check_run"):  # switches that only make sense with some train/budget settings
        algo_cfg.check_run(cfg)
    return algo_cfg, task_cfg


def resolved_config(cfg: Any) -> dict:
    """Plain-data RunConfig with the plugin sections expanded to every switch: what a run directory stores."""
    algo_cfg, task_cfg = resolve_plugins(cfg)
    return {**to_dict(cfg), "algo_args": to_dict(algo_cfg), "task_args": to_dict(task_cfg)}
