"""Bring-your-own math data: GSM8K/MATH-style JSONL files, answers checked with math-verify.

Each line is a JSON object with a question and a gold answer (field names configurable). A malformed line
stops loading with `file:line: what is wrong`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.config import ConfigError, doc
from harness.registry import TASKS
from tasks.base import DataError, Problem, Task, file_splits, jsonl_objects


@dataclass
class JsonlMathConfig:
    train_path: str = doc("JSONL file of training problems.", "")
    eval_path: str | None = doc("JSONL file of held-out problems; None = hold out eval_size lines of train_path.", None)
    eval_size: int = doc("Held-out lines taken from train_path when eval_path is None.", 128)
    question_field: str = doc("JSON key of the question text.", "question")
    answer_field: str = doc("JSON key of the gold answer (GSM8K '#### 42' suffixes are understood).", "answer")
    prompt_template: str = doc("How a question becomes a prompt; {question} is replaced.", "{question}\nAnswer: ")
    max_new_tokens: int = doc("Completion length cap.", 256)
    data_seed: int = doc("Seed of the train/eval shuffle when eval_path is None.", 0)

    def validate(self) -> None:
        if not self.train_path:
            raise ConfigError("task_args.train_path: required for task jsonl_math")
        if "{question}" not in self.prompt_template:
            raise ConfigError("task_args.prompt_template: must contain {question}")


def gold_answer(raw: str) -> str:
    """GSM8K stores the final answer after '####'; MATH stores it as is."""
    return raw.split("####")[-1].strip() if "####" in raw else raw.strip()


def text_field(path: str | Path, lineno: int, obj: dict, key: str) -> str:
    """obj[key] as text; DataError naming file:line if it is missing or not text/number."""
    if key not in obj:
        raise DataError(f"{path}:{lineno}: missing field '{key}' (has: {', '.join(obj)})")
    if not isinstance(obj[key], (str, int, float)) or isinstance(obj[key], bool):
        raise DataError(f"{path}:{lineno}: field '{key}' must be text or a number")
    return str(obj[key])


def read_jsonl(path: str | Path, question_field: str, answer_field: str) -> list[tuple[str, str]]:
    rows = [
        (text_field(path, n, obj, question_field), gold_answer(text_field(path, n, obj, answer_field)))
        for n, obj in jsonl_objects(path)
    ]
    if not rows:
        raise DataError(f"{path}: no problems in file")
    return rows


def math_equal(gold: str, completion: str) -> bool:
    """math-verify's equivalence of the completion's final answer and the gold answer; never raises."""
    from math_verify import parse, verify

    try:
        return bool(verify(parse(gold), parse(completion)))
    except Exception:  # math-verify can raise on odd LaTeX; garbage scores 0
        return False


@TASKS.register("jsonl_math", config=JsonlMathConfig(train_path="<required>"), description="Math problems from JSONL files (GSM8K/MATH style), checked with math-verify")
class JsonlMath(Task):
    name = "jsonl_math"

    def __init__(self, cfg: JsonlMathConfig):
        self.max_new_tokens = cfg.max_new_tokens
        self.cfg = cfg
        splits = file_splits(lambda path: read_jsonl(path, cfg.question_field, cfg.answer_field), cfg)
        self.splits = {name: [self._problem(q, a) for q, a in rows] for name, rows in splits.items()}

    def _problem(self, question: str, answer: str) -> Problem:
        return Problem(self.cfg.prompt_template.format(question=question), answer, {}, {"gold": answer})

    def score(self, problem: Problem, completion: str) -> float:
        return float(math_equal(problem.meta["gold"], completion))
