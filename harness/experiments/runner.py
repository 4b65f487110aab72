"""Running a sweep: the jobs an executor runs (cells and the warm starts they share), their progress line,
and the loop that runs, retries and resumes them (`rlvr sweep`). The sweep file itself: harness/experiments/sweep.py."""
from __future__ import annotations

import fnmatch
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness.config import changed_fields
from harness.core.ledger import SPENT_METRIC
from harness.core.store import RunStore, append_jsonl, atomic_write, read_last_jsonl
from harness.experiments.sweep import Cell, Sweep
from harness.plain import (
    ConfigError,
)

# ----------------------------------------------------------------------------------------------------------------
# Jobs: what an executor runs (a cell, or a warm start several cells share)


@dataclass
class Job:
    name: str
    kind: Literal["run", "pretrain"]
    config: dict  # plain RunConfig data
    plugins: list[str]
    log: Path
    needs: str | None = None  # name of a job that must finish first (the cell's warm start)
    cell: Cell | None = None
    slots: int = 1  # executor slots (of `executor.threads` threads each) the job runs on
    attempts: int = 0
    status: str = "pending"  # pending | running | done | failed
    error: str = ""
    started: float = 0.0

    def argv(self) -> list[str]:
        """The worker's arguments: one JSON spec, with the folders the sweep imported its plugins from."""
        return [json.dumps({"kind": self.kind, "config": self.config, "plugins": self.plugins, "paths": plugin_paths(self.plugins)})]

    def command(self) -> list[str]:
        """`python -P -m harness.experiments.worker <spec>`: -P keeps the working directory off the import path (a stray
        tasks.py there would shadow ours)."""
        return [sys.executable, "-P", "-m", "harness.experiments.worker", *self.argv()]


def plugin_paths(modules: list[str]) -> list[str]:
    """The sys.path entries this process imported each plugin module from (namespace packages included):
    the module's file, up one folder per dotted part."""
    out = []
    for module in modules:
        origin = getattr(sys.modules.get(module), "__file__", None)
        if origin:
            path = Path(origin).resolve()
            path = path.parent if path.name == "__init__.py" else path
            out.append(str(path.parents[len(module.split(".")) - 1]))
    return list(dict.fromkeys(out))


def cell_state(cell: Cell) -> tuple[str, str]:
    """(status, detail) of a cell's directory: new | complete | resumable | failed | conflict | corrupt (its
    config.yaml is unreadable: skipped, never overwritten). An unreadable summary.json is resumable."""
    from harness.registry import resolved_config

    store = RunStore(cell.root)
    try:
        stored = store.stored_config()
    except ValueError as e:
        return "corrupt", str(e)
    if stored is None:
        return "new", ""
    changed = changed_fields(stored, resolved_config(cell.config))
    if changed:
        return "conflict", f"holds a run with a different config ({', '.join(changed[:4])} changed); use another out_dir or remove it"
    summary = store.summary()
    status = summary.get("status", "running")
    if status == "complete":
        return "complete", ""
    if status == "failed":
        return "failed", summary.get("error", "")
    return "resumable", summary.get("error", "") if status == "corrupt" else ""


def warm_start_slots(free: int, ready: int) -> int:
    """Slots a warm-start job takes when it starts: its own and every free one that no other ready job can use
    (cells waiting on it would leave them idle). Warm starts are keyed without the thread count and build the
    same weights on any count (bench/README.md), so this changes only how soon they are ready."""
    return max(1, free - ready)


def plan_jobs(sweep: Sweep, cells: list[Cell]) -> list[Job]:
    """A job per cell, preceded by one warm-start job per distinct warm start that is not cached yet (so two
    workers never wait on the same one, and different tasks' warm starts build in parallel)."""
    from harness.experiments.pretrain import warm_start_dir
    from harness.registry import resolved_config

    jobs: list[Job] = []
    warm: dict[Path, Job] = {}
    logs = sweep.out_dir / "logs"
    for cell in cells:
        cfg = cell.config
        needs = None
        if cfg.policy.path is None and cfg.policy.warm_start:
            wdir = warm_start_dir(cfg)
            if not (wdir / "meta.json").exists():
                if wdir not in warm:
                    warm[wdir] = Job(f"warm-start {wdir.name}", "pretrain", resolved_config(cfg), sweep.plugins, logs / f"warm-start-{wdir.name}.log")
                needs = warm[wdir].name
        jobs.append(Job(cell.name, "run", resolved_config(cfg), sweep.plugins, logs / f"{cell.name}.log", needs, cell))
    return list(warm.values()) + jobs


# ----------------------------------------------------------------------------------------------------------------
# Progress


def cell_progress(cell: Cell) -> tuple[float, float | None]:
    """(fraction of the budget spent, latest eval accuracy) from the tails of the cell's JSONL files."""
    b = cell.config.budget
    row = read_last_jsonl(cell.root / "metrics.jsonl")
    spent = row.get(SPENT_METRIC[b.unit], 0.0) if row else 0.0
    ev = read_last_jsonl(cell.root / "evals.jsonl")
    return min(1.0, spent / b.amount), (ev or {}).get("eval/accuracy")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class Progress:
    """The live table: one header line (counts, elapsed, ETA) and a line per running or failed job.
    On a terminal it redraws in place; otherwise it prints events as they happen and the header every minute."""

    def __init__(self, sweep: Sweep, jobs: list[Job], out=None, every: float = 60.0):
        self.sweep, self.jobs = sweep, jobs
        self.out = out or sys.stdout
        self.tty = getattr(self.out, "isatty", lambda: False)()
        self.every = every
        self.t0 = time.monotonic()
        self.last_header = 0.0
        self.drawn = 0
        self.progress = {j.name: cell_progress(j.cell) for j in jobs if j.cell is not None and j.status == "pending"}
        self.work0 = sum(self._work(j) for j in jobs)  # budget fractions already done when this session began

    def _work(self, job: Job) -> float:
        if job.kind != "run":
            return 0.0
        if job.status == "done":
            return 1.0
        return self.progress.get(job.name, (0.0, None))[0]

    def header(self) -> str:
        count = {s: sum(j.status == s for j in self.jobs if j.kind == "run") for s in ("done", "running", "pending", "failed")}
        warm = sum(j.kind == "pretrain" and j.status == "running" for j in self.jobs)
        runs = [j for j in self.jobs if j.kind == "run"]
        elapsed = time.monotonic() - self.t0
        work = sum(self._work(j) for j in runs)
        rate = (work - self.work0) / elapsed if elapsed > 0 else 0.0
        remaining = sum(1.0 - self._work(j) for j in runs if j.status != "failed")
        eta = _duration(remaining / rate) if rate > 0 else "?"
        extra = f" + {warm} warm start(s) building" if warm else ""
        return (f"sweep {self.sweep.name}: {len(runs)} cells | done {count['done']} | running {count['running']}{extra} | "
                f"pending {count['pending']} | failed {count['failed']} | elapsed {_duration(elapsed)} | ETA {eta}")

    def lines(self) -> list[str]:
        out = [self.header()]
        for j in self.jobs:
            if j.status == "running" and j.kind == "run":
                frac, acc = self.progress.get(j.name, (0.0, None))
                acc_s = f"  eval/accuracy {acc:.3f}" if acc is not None else ""
                out.append(f"  running  {j.name:<36} {100 * frac:5.1f}%{acc_s}")
            elif j.status == "running":
                out.append(f"  running  {j.name}")
            elif j.status == "failed":
                out.append(f"  FAILED   {j.name:<36} {j.error[:100]}")
        return out

    def update(self) -> None:
        for j in self.jobs:
            if j.status == "running" and j.cell is not None:
                self.progress[j.name] = cell_progress(j.cell)
        now = time.monotonic()
        if self.tty:
            text = self.lines()
            self.out.write((f"\x1b[{self.drawn}F\x1b[J" if self.drawn else "") + "\n".join(text) + "\n")
            self.drawn = len(text)
        elif now - self.last_header >= self.every:
            print(self.header(), file=self.out)
            self.last_header = now
        self.out.flush()

    def event(self, text: str) -> None:
        if self.tty and self.drawn:
            self.out.write(f"\x1b[{self.drawn}F\x1b[J")
            self.drawn = 0
        print(text, file=self.out, flush=True)


# ----------------------------------------------------------------------------------------------------------------
# Running


def _error_of(job: Job, rc: int) -> str:
    """The run's recorded error, else the last line of its log that looks like one."""
    summary = RunStore(job.cell.root).summary() if job.cell is not None else {}
    if summary.get("status") == "failed" and summary.get("error"):
        return summary["error"]
    tail = job.log.read_text(errors="replace").strip().splitlines()[-20:] if job.log.exists() else []
    for line in reversed(tail):
        if re.match(r"^[\w.]*(Error|Exception|Interrupt)\b", line) or line.startswith("rlvr: error"):
            return line
    return f"exit code {rc}" + (f" (killed by signal {-rc})" if rc < 0 else "")


def write_manifest(sweep: Sweep) -> None:
    """out_dir/sweep.yaml (the file as run) and cells.json (each cell's axes), which reports group by."""
    import yaml

    cells = [{"name": c.name, "algo": c.algo, "task": c.task, "variant": c.variant, "seed": c.seed,
              "algorithm": c.config.algo, "unit": c.config.budget.unit} for c in sweep.cells]
    atomic_write(sweep.out_dir / "sweep.yaml", yaml.safe_dump(sweep.raw, sort_keys=False))
    atomic_write(sweep.out_dir / "cells.json", json.dumps({"name": sweep.name, "cells": cells}, indent=1))


def select_cells(sweep: Sweep, only: list[str] | None) -> list[Cell]:
    if not only:
        return sweep.cells
    cells = [c for c in sweep.cells if any(fnmatch.fnmatch(c.name, pat) for pat in only)]
    if not cells:
        raise ConfigError(f"--only {' '.join(only)}: matches none of the {len(sweep.cells)} cells (e.g. {sweep.cells[0].name})")
    return cells


def run_sweep(sweep: Sweep, only: list[str] | None = None, out=None, poll: float = 0.5, every: float = 60.0) -> list[Job]:
    """Run every cell not complete yet; returns the jobs with their final status. Never raises for a failed
    cell: failures are recorded (summary.json, the sweep's events.jsonl) and the rest of the sweep goes on."""
    from harness.experiments.executors import make_executor

    cells = select_cells(sweep, only)
    states = {c.name: cell_state(c) for c in cells}
    conflicts = [f"{c.root}: {states[c.name][1]}" for c in cells if states[c.name][0] == "conflict"]
    if conflicts:
        raise ConfigError(conflicts[0] + (f" (and {len(conflicts) - 1} more cells)" if len(conflicts) > 1 else ""))
    write_manifest(sweep)
    todo = [c for c in cells if states[c.name][0] not in ("complete", "corrupt")]
    jobs = plan_jobs(sweep, todo)
    done = [Job(c.name, "run", {}, [], Path(), None, c, status="done") for c in cells if states[c.name][0] == "complete"]
    progress = Progress(sweep, done + jobs, out, every)
    events = sweep.out_dir / "events.jsonl"
    progress.event(f"sweep {sweep.name}: {len(cells)} cells, {len(done)} complete, {len(todo)} to run "
                   f"({sum(states[c.name][0] == 'resumable' or states[c.name][0] == 'failed' for c in todo)} resuming) -> {sweep.out_dir}")
    for c in cells:
        if states[c.name][0] == "corrupt":
            progress.event(f"skipped  {c.name}: {states[c.name][1]}")
    if not jobs:
        return done
    by_name = {j.name: j for j in jobs}
    executor = make_executor(sweep.executor)
    progress.event(f"executor: {executor.describe()}")

    def ready(job: Job) -> bool:
        return job.status == "pending" and (job.needs is None or by_name[job.needs].status == "done")

    try:
        while any(j.status in ("pending", "running") for j in jobs):
            for job in jobs:
                if executor.free_slots() <= 0:
                    break
                if job.status == "pending" and job.needs and by_name[job.needs].status == "failed":
                    job.status, job.error = "failed", f"its warm start failed: {by_name[job.needs].error}"
                if not ready(job):
                    continue
                if job.kind == "pretrain":
                    others = sum(ready(j) for j in jobs if j is not job)
                    job.slots = min(executor.max_slots, warm_start_slots(executor.free_slots(), others))
                    job.config = {**job.config, "threads": sweep.executor.threads * job.slots}
                job.status, job.attempts, job.started = "running", job.attempts + 1, time.time()
                job.log.parent.mkdir(parents=True, exist_ok=True)
                executor.submit(job)
                append_jsonl(events, {"time": job.started, "job": job.name, "attempt": job.attempts, "event": "start",
                                      "threads": job.config["threads"]})
            for job, rc in executor.wait(poll):
                ok = rc == 0 and (job.cell is None or RunStore(job.cell.root).summary().get("status") == "complete")
                seconds = time.time() - job.started
                row = {"time": time.time(), "job": job.name, "attempt": job.attempts, "seconds": round(seconds, 2), "rc": rc}
                if ok:
                    job.status, job.error = "done", ""
                    append_jsonl(events, {**row, "event": "done"})
                    frac, acc = cell_progress(job.cell) if job.cell else (1.0, None)
                    tail = f", eval/accuracy {acc:.3f}" if acc is not None else ""
                    progress.event(f"done     {job.name} in {_duration(seconds)}{tail}")
                    continue
                job.error = _error_of(job, rc)
                retry = job.attempts <= sweep.executor.retries
                job.status = "pending" if retry else "failed"
                append_jsonl(events, {**row, "event": "retry" if retry else "failed", "error": job.error})
                again = f"; retrying ({job.attempts}/{sweep.executor.retries + 1} attempts used)" if retry else f"; log: {job.log}"
                progress.event(f"failed   {job.name}: {job.error}{again}")
            progress.update()
    finally:
        executor.shutdown()
    progress.update()
    failed = [j for j in jobs if j.status == "failed"]
    progress.event(f"sweep {sweep.name}: {sum(j.status == 'done' for j in done + jobs if j.kind == 'run')}/{len(cells)} cells complete"
                   + (f", {len(failed)} failed (rerun the same command to retry them)" if failed else ""))
    return done + jobs


def status_table(sweep: Sweep, only: list[str] | None = None) -> str:
    """One line per cell: state, budget spent, latest accuracy (what `rlvr sweep --status` prints)."""
    out = []
    for cell in select_cells(sweep, only):
        state, detail = cell_state(cell)
        frac, acc = cell_progress(cell)
        acc_s = f"{acc:.3f}" if acc is not None else "-"
        detail = detail.replace(f"{cell.root}/", "")  # files in the cell's own directory, named by the cell
        out.append(f"{cell.name:<40} {state:<10} {100 * frac:5.1f}%  acc {acc_s:>5}  {detail[:80]}")
    return "\n".join(out)
