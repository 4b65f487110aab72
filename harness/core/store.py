"""Local results store: one directory per run, the source of truth for reports.

    <out_dir>/<run>/config.yaml     resolved config (plugin sections expanded)
                   env.json        git commit, package versions, seed, threads, host, start time
                   metrics.jsonl   one line per training step
                   evals.jsonl     one line per evaluation point
                   summary.json    status (running/complete/failed), final numbers
                   checkpoint/     state.pt (+ the policy weights) of the last checkpoint

Whole files are written atomically (temp file + rename). JSONL files are append-only; a checkpoint records
how many rows each had, and a resume cuts them back to those counts (a torn last line from a kill is dropped),
so no row is lost or duplicated wherever the process died.
"""
from __future__ import annotations

import fcntl
import json
import os
import platform
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
import yaml

PACKAGES = ("torch", "transformers", "tokenizers", "numpy", "wandb", "math-verify", "pandas", "rlvr-harness")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def _replacing(path: Path):
    """A temp file beside `path` (yielded as (fd, name)) that replaces `path` when the block succeeds, with the
    permissions a plain open() would give (mkstemp's are owner-only); removed if the block fails (e.g. a full
    disk), so no partial file is left behind and `path` keeps its old content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        yield fd, tmp
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: Path, data: bytes | str) -> None:
    with _replacing(path) as (fd, _), os.fdopen(fd, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())


def atomic_torch_save(obj: Any, path: Path) -> None:
    with _replacing(path) as (fd, tmp):
        os.close(fd)
        torch.save(obj, tmp)


@contextmanager
def exclusive(path: Path, what: str):
    """Hold an exclusive lock on `path` for the block, waiting (with a message) while another process holds it.
    The OS drops the lock when its holder dies, so a killed process never leaves a stale lock behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another process to finish {what} ({path})", file=sys.stderr, flush=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        yield


def cache_root() -> Path:
    """RLVR_CACHE, else the user cache directory (XDG_CACHE_HOME, default ~/.cache)/rlvr-harness: never a folder
    inside the installed package."""
    if os.environ.get("RLVR_CACHE"):
        return Path(os.environ["RLVR_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rlvr-harness"


def learning_rows(rows: list[dict]) -> list[dict]:
    """Metric or eval rows without their clock fields (time/*, wall/*, seconds, wall_seconds): what the same
    config and seed must reproduce bit for bit on the CPU backend."""
    return [{k: v for k, v in r.items() if not k.startswith(("time/", "wall/")) and k not in ("seconds", "wall_seconds")} for r in rows]


def complete_runs(root: Path) -> list[Path]:
    """The run directories directly under `root` (a sweep's results store) whose summary says complete, sorted."""
    return [d for d in sorted(root.iterdir()) if d.is_dir() and RunStore(d).summary().get("status") == "complete"]


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSONL file; a torn (unterminated or unparsable) last line is ignored."""
    if not path.exists():
        return []
    rows = []
    lines = path.read_text().split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i >= len(lines) - 2:  # only the last line can be torn by a kill
                break
            raise ValueError(f"{path}:{i + 1}: corrupt row") from None
    return rows


def read_last_jsonl(path: Path, tail_bytes: int = 65536) -> dict | None:
    """The last complete row of a JSONL file (cheap: reads only its tail), or None."""
    try:
        with path.open("rb") as f:
            start = max(0, f.seek(0, os.SEEK_END) - tail_bytes)
            f.seek(start)
            lines = f.read().split(b"\n")
    except FileNotFoundError:
        return None
    for line in reversed(lines[1:] if start else lines):  # a line cut by the seek is not a row
        try:
            return json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
    return None


def append_jsonl(path: Path, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(row, default=float) + "\n")
        f.flush()


def git_commit() -> dict:
    root = Path(__file__).resolve().parents[2]  # the repository: harness/core/store.py
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=5).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", False
    return {"commit": commit or None, "dirty": dirty}


def environment(seed: int, threads: int) -> dict:
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "git": git_commit(),
        "packages": versions,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": platform.node(),
        "seed": seed,
        "threads": threads,
        "argv": sys.argv,
    }


class RunStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.metrics_path = self.root / "metrics.jsonl"
        self.evals_path = self.root / "evals.jsonl"
        self.ckpt_dir = self.root / "checkpoint"
        self.jsonl_files = {"metrics": self.metrics_path, "evals": self.evals_path}

    # -- lifecycle -----------------------------------------------------------------------------------------------
    def summary(self) -> dict:
        """summary.json; an unreadable one reads as status 'corrupt' with the file named in 'error' (the run is
        then redone from its checkpoint, and sweeps, status and reports go on with the other runs)."""
        p = self.root / "summary.json"
        try:
            data = json.loads(p.read_text()) if p.exists() else {}
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            return data
        except (ValueError, UnicodeDecodeError) as e:
            return {"status": "corrupt", "error": f"{p}: unreadable ({e})"}

    def write_summary(self, **fields: Any) -> None:
        old = self.summary()
        old = {} if old.get("status") == "corrupt" else old
        atomic_write(self.root / "summary.json", json.dumps({**old, **fields}, indent=2, default=float))

    def stored_config(self) -> dict | None:
        p = self.root / "config.yaml"
        try:
            data = yaml.safe_load(p.read_text()) if p.exists() else None
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise ValueError(f"{p}: unreadable ({type(e).__name__}); remove the run directory to redo it") from None
        if data is not None and not isinstance(data, dict):
            raise ValueError(f"{p}: not a config mapping; remove the run directory to redo it")
        return data

    def start(self, config: dict, env: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write(self.root / "config.yaml", yaml.safe_dump(config, sort_keys=False))
        atomic_write(self.root / "env.json", json.dumps(env, indent=2))
        self.write_summary(status="running")

    # -- rows ----------------------------------------------------------------------------------------------------
    def log_step(self, row: dict) -> None:
        append_jsonl(self.metrics_path, row)

    def log_eval(self, row: dict) -> None:
        append_jsonl(self.evals_path, row)

    def row_counts(self) -> dict[str, int]:
        """Complete rows in each JSONL file (resume cut any torn line, so every newline ends a row)."""
        return {key: path.read_bytes().count(b"\n") if path.exists() else 0 for key, path in self.jsonl_files.items()}

    def truncate_to(self, counts: dict[str, int] | None) -> None:
        """Keep the first counts[...] rows of each JSONL file (None: none); later rows will be recomputed."""
        counts = counts or {"metrics": 0, "evals": 0}
        for key, path in self.jsonl_files.items():
            rows = read_jsonl(path)[: counts[key]]
            atomic_write(path, "".join(json.dumps(r, default=float) + "\n" for r in rows))

    def metrics(self) -> list[dict]:
        return read_jsonl(self.metrics_path)

    def evals(self) -> list[dict]:
        return read_jsonl(self.evals_path)

    # -- checkpoints ---------------------------------------------------------------------------------------------
    def save_checkpoint(self, state: dict) -> None:
        atomic_torch_save(state, self.ckpt_dir / "state.pt")

    def load_checkpoint(self) -> dict | None:
        """The last checkpoint, or None. Loaded with weights_only (tensors and plain data: a crafted file cannot
        run code); ValueError naming the file if it is unreadable."""
        p = self.ckpt_dir / "state.pt"
        if not p.exists():
            return None
        try:
            return torch.load(p, weights_only=True, map_location="cpu")
        except Exception as e:  # truncated zip, foreign pickle, anything torch.load refuses
            raise ValueError(f"{p}: unreadable checkpoint ({type(e).__name__}: {str(e)[:200]}); delete it to redo this run from step 0") from None
