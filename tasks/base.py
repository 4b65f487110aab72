"""What every task plugin provides: deterministic problems by split and index, an oracle answer, a verifier."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from harness.config import ConfigError, doc, require_positive
from tasks.answers import FORMATS, extract, instruction, written


class DataError(ValueError):
    """Bad input data; the message names the file and line."""


@dataclass(frozen=True)
class Problem:
    prompt: str  # text the policy continues
    answer: str  # one oracle completion (the supervised warm-start target); scores 1.0
    difficulty: dict  # the knobs that produced this problem, recorded per prompt
    meta: dict = field(default_factory=dict)  # whatever the verifier needs (numbers, target, gold answer)
    image: np.ndarray | None = field(default=None, compare=False, repr=False)  # uint8 RGB [H, W, 3] for image tasks

    @property
    def key(self) -> str:
        """Identity for de-duplication and the train/eval split: the prompt, plus the image's hash if any."""
        if self.image is None:
            return self.prompt
        return self.prompt + "\x00" + hashlib.blake2b(self.image.tobytes(), digest_size=16).hexdigest()


@dataclass
class SplitConfig:
    """Mixed into every task config: dataset sizes and the data seed (independent of the run seed)."""

    train_size: int = doc("Distinct training problems.", 4000)
    eval_size: int = doc("Distinct held-out problems (disjoint from train by construction).", 256)
    data_seed: int = doc("Seed of the problem generator; the same data for every run seed.", 0)
    answer: str = doc(
        "Where the answer sits in a completion (tasks/answers.py): whole (the embedded model's plain format), boxed, "
        "hash (after ####), last_number, last_line; any but whole appends its instruction to every prompt. "
        "Checkpoints that explain before answering need one of those.", "whole")

    def validate(self) -> None:
        require_positive(self, "task_args.", "train_size", "eval_size")


def jsonl_objects(path: str | Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-blank line of a JSONL file; DataError naming file:line otherwise
    (invalid UTF-8, invalid or too deeply nested JSON, integers too long to read, a non-object line)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{lineno}: not UTF-8 text (byte {e.start + 1}); JSONL must be UTF-8") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
            except RecursionError:
                raise DataError(f"{path}:{lineno}: JSON nested too deeply") from None
            except ValueError as e:  # e.g. an integer past Python's digit limit
                raise DataError(f"{path}:{lineno}: unreadable JSON value ({e})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj


def unique_problems(problems: list[Problem], path: str | Path) -> list[Problem]:
    """problems without repeats (same Problem.key: prompt and image), first occurrence kept, a warning counting
    the repeats; DataError if a repeat carries another answer. meta['source'] ('file:line') names lines."""
    first: dict[str, Problem] = {}
    for p in problems:
        seen = first.setdefault(p.key, p)
        if seen is not p and (seen.answer, seen.meta.get("gold")) != (p.answer, p.meta.get("gold")):
            raise DataError(f"{p.meta.get('source', path)}: the same problem as {seen.meta.get('source', path)} with another answer")
    if len(first) < len(problems):
        warnings.warn(f"{path}: {len(problems) - len(first)} repeated problems dropped ({len(first)} distinct)", stacklevel=2)
    return list(first.values())


def file_splits(read: Callable[[str], list[Problem]], cfg: Any) -> dict[str, list[Problem]]:
    """Splits of a bring-your-own-data task: read(path) -> problems, de-duplicated before splitting.
    cfg.eval_path's problems are the eval split (a file other than train_path, sharing no problem with it),
    or, without one, eval_size problems of cfg.train_path are held out after a shuffle seeded by cfg.data_seed."""
    train = unique_problems(read(cfg.train_path), cfg.train_path)
    if cfg.eval_path:
        if Path(cfg.eval_path).resolve() == Path(cfg.train_path).resolve():
            raise ConfigError("task_args.eval_path: the same file as train_path; leave it unset to hold out eval_size problems")
        evals = unique_problems(read(cfg.eval_path), cfg.eval_path)
        train_keys = {p.key for p in train}
        shared = [p for p in evals if p.key in train_keys]
        if shared:
            raise DataError(f"{cfg.eval_path}: {len(shared)} of {len(evals)} problems are also in {cfg.train_path} "
                            f"(first: {shared[0].meta.get('source', '?')}); held-out problems must not be trained on")
        return {"train": train, "eval": evals}
    train = train[:]
    random.Random(cfg.data_seed).shuffle(train)
    if len(train) <= cfg.eval_size:
        raise DataError(f"{cfg.train_path}: {len(train)} distinct problems cannot hold out eval_size={cfg.eval_size}")
    return {"train": train[cfg.eval_size :], "eval": train[: cfg.eval_size]}


def _is_eval(key: str) -> bool:
    """Stable 1-in-8 hash split: a problem belongs to exactly one split whatever the sizes or seeds."""
    return hashlib.blake2b(key.encode(), digest_size=8).digest()[0] % 8 == 0


class Task:
    """Base class. Subclasses set `name`, `max_new_tokens` and implement `generate(rng)` and `score`."""

    name = "task"
    max_new_tokens = 16  # completion cap in the plain format (task_args.answer: whole), the embedded model's
    explained_max_new_tokens = 256  # in any other format: a real model explains before it answers
    answer_formats: tuple[str, ...] = ("whole", "boxed", "hash", "last_line")  # task_args.answer values that make sense
    images = False  # True when problems carry an image (the embedded policy then gets its image encoder)
    max_attempts_per_item = 200  # generator draws allowed per requested problem before we call the space exhausted
    timeouts = 0  # running count of verifications that overran their bound and scored 0 (by tasks whose verifier can stall)

    def __init__(self, cfg: Any):
        self.cfg = cfg
        if self.answer_format not in self.answer_formats:
            raise ConfigError(f"task_args.answer: {self.answer_format!r} is not one of {', '.join(self.answer_formats)} for task {self.name}")
        self.splits = self._build_splits()

    @property
    def answer_format(self) -> str:
        return getattr(self.cfg, "answer", "whole")

    @property
    def completion_cap(self) -> int:
        """Default max_new_tokens: a few tokens for the plain format, room to explain for the others."""
        return self.max_new_tokens if self.answer_format == "whole" else self.explained_max_new_tokens

    def oracle_completion(self, problem: Problem) -> str:
        """The oracle answer written in task_args.answer's format (what the embedded warm start imitates)."""
        return written(self.answer_format, problem.answer) if self.answer_format in FORMATS else problem.answer

    def answer_of(self, completion: str) -> str:
        """The part of a completion the checker reads (task_args.answer); '' when the completion holds none."""
        found = extract(self.answer_format, completion)
        return "" if found is None else found

    def generate(self, rng: random.Random) -> Problem:
        raise NotImplementedError

    def score(self, problem: Problem, completion: str) -> float:
        """Reward of one completion in [0, 1]; must never raise, whatever the text."""
        raise NotImplementedError

    def score_batch(self, problems: list[Problem], completions: list[str]) -> list[float]:
        """score(problems[i], completions[i]) for every i; tasks with slow verifiers override it to bound and
        parallelise the checks."""
        return [self.score(p, c) for p, c in zip(problems, completions)]

    def _build_splits(self) -> dict[str, list[Problem]]:
        want = {"train": self.cfg.train_size, "eval": self.cfg.eval_size}
        out: dict[str, list[Problem]] = {"train": [], "eval": []}
        seen: set[str] = set()
        index = 0
        limit = self.max_attempts_per_item * (want["train"] + want["eval"])
        while any(len(out[s]) < want[s] for s in out):
            if index >= limit:
                raise ConfigError(
                    f"task_args: only {len(out['train'])} train / {len(out['eval'])} eval distinct problems exist "
                    f"for these difficulty knobs; lower train_size/eval_size or widen the knobs"
                )
            p = self.generate(random.Random(self.cfg.data_seed * 1_000_003 + index))  # Random(seed + index)
            index += 1
            if p.key in seen:
                continue
            seen.add(p.key)
            split = "eval" if _is_eval(p.key) else "train"
            if len(out[split]) < want[split]:  # the instruction is added after the split: the same problems in each format
                out[split].append(dataclasses.replace(p, prompt=p.prompt + instruction(self.answer_format)))
        return out

    def problems(self, split: str) -> list[Problem]:
        return self.splits[split]
