"""Bring-your-own math data: GSM8K/MATH-style JSONL files, answers checked with math-verify.

Each line is a JSON object with a question and a gold answer (field names configurable). Gold answers are read
as LaTeX (MATH style: `3\\sqrt{3}`, `\\dfrac{3}{4}`, `(2, 5]`) or after GSM8K's `####`. A malformed line, or a
gold answer math-verify cannot read, stops loading with `file:line: what is wrong`. Checks are bounded in time
and run in parallel (tasks/mathcheck.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import tasks.mathcheck as mathcheck
from harness.config import ConfigError, doc, require_positive
from harness.registry import TASKS
from tasks.answers import extract, instruction
from tasks.base import DataError, Problem, Task, file_splits, jsonl_objects

ANSWER_FORMATS = ("auto", "boxed", "hash", "last_number", "last_line", "letter")


@dataclass
class JsonlMathConfig:
    train_path: str = doc("JSONL file of training problems.", "")
    eval_path: str | None = doc("JSONL file of held-out problems; None = hold out eval_size lines of train_path.", None)
    eval_size: int = doc("Held-out lines taken from train_path when eval_path is None.", 128)
    question_field: str = doc("JSON key of the question text.", "question")
    answer_field: str = doc("JSON key of the gold answer (GSM8K '#### 42' suffixes are understood).", "answer")
    prompt_template: str = doc("How a question becomes a prompt; {question} is replaced.", "{question}\nAnswer: ")
    max_new_tokens: int = doc("Completion length cap.", 256)
    answer: str = doc(
        "Where the answer sits in a completion: auto (math-verify finds the last boxed/LaTeX/number answer itself), "
        "or a tasks/answers.py format (boxed, hash, last_number, last_line; letter for multiple choice: golds are "
        "option letters), whose instruction is appended to every prompt.", "auto")
    data_seed: int = doc("Seed of the train/eval shuffle when eval_path is None.", 0)
    verify_timeout_s: float = doc("Seconds one answer check may take before it scores 0 (counted in score/timeouts).", mathcheck.TIMEOUT_S)
    verify_workers: int = doc("Processes checking a batch of answers in parallel.", 2)

    def validate(self) -> None:
        if not self.train_path:
            raise ConfigError("task_args.train_path: required for task jsonl_math")
        require_positive(self, "task_args.", "verify_timeout_s", "verify_workers")
        if "{question}" not in self.prompt_template:
            raise ConfigError("task_args.prompt_template: must contain {question}")
        if self.answer not in ANSWER_FORMATS:
            raise ConfigError(f"task_args.answer: {self.answer!r} is not one of {', '.join(ANSWER_FORMATS)}")


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


def read_jsonl(path: str | Path, cfg: JsonlMathConfig) -> list[Problem]:
    problems = []
    for n, obj in jsonl_objects(path):
        question = text_field(path, n, obj, cfg.question_field)
        gold = gold_answer(text_field(path, n, obj, cfg.answer_field))
        if cfg.answer == "letter":
            if not re.fullmatch(r"[A-J]", gold.strip().upper()):
                raise DataError(f"{path}:{n}: gold answer {gold[:80]!r} is not an option letter A-J (task_args.answer: letter)")
            meta, oracle = {"gold": gold.strip().upper(), "source": f"{path}:{n}"}, gold.strip().upper()
        else:
            meta, oracle = math_gold(gold, f"{path}:{n}"), oracle_answer(gold)
        prompt = cfg.prompt_template.format(question=question) + instruction(cfg.answer)
        problems.append(Problem(prompt, oracle, {}, meta))
    if not problems:
        raise DataError(f"{path}: no problems in file")
    return problems


def math_gold(gold: str, where: str) -> dict:
    """Problem.meta of a math-verified answer; DataError naming the line if math-verify cannot read the gold."""
    try:
        parsed = mathcheck.gold_target(gold)
    except Exception as e:  # sympy/latex2sympy errors on malformed LaTeX
        raise DataError(f"{where}: gold answer {gold[:80]!r} is not readable math ({type(e).__name__})") from None
    if not any(not isinstance(x, str) for x in parsed):  # math-verify hands back the bare text when it cannot parse
        raise DataError(f"{where}: gold answer {gold[:80]!r} is not readable math")
    return {"gold": gold, "source": where}


def oracle_answer(gold: str) -> str:
    """The completion the warm start imitates: the gold itself when math-verify reads it bare the same way
    (plain numbers), else in `$...$` (bare, `3\\sqrt{3}` would read as 3)."""
    from math_verify import parse

    return gold if tuple(parse(gold, parsing_timeout=None)) == mathcheck.gold_target(gold) else f"${gold}$"


def score_math(task: Task, cfg, problems: list[Problem], completions: list[str]) -> list[float]:
    """Bounded, parallel math-verify checks of completions against problems' golds; overruns count in task.timeouts.
    With an answer format other than auto, only the extracted answer is checked (letters: compared exactly)."""
    fmt = getattr(cfg, "answer", "auto")
    if fmt == "letter":
        return [float(extract("letter", c) == p.meta["gold"]) for p, c in zip(problems, completions)]
    if fmt != "auto":  # the extracted answer as LaTeX math (bare, `3\\sqrt{3}` would read as 3); none found: ""
        completions = [f"${x}$" if (x := extract(fmt, c)) else "" for c in completions]
    ok, timeouts = mathcheck.check_batch([p.meta["gold"] for p in problems], completions, cfg.verify_timeout_s, cfg.verify_workers)
    task.timeouts += timeouts
    return [float(x) for x in ok]


@TASKS.register("jsonl_math", config=JsonlMathConfig(train_path="<required>"), description="Math problems from JSONL files (GSM8K/MATH style), checked with math-verify")
class JsonlMath(Task):
    name = "jsonl_math"

    def __init__(self, cfg: JsonlMathConfig):
        self.max_new_tokens = self.explained_max_new_tokens = cfg.max_new_tokens
        self.cfg = cfg
        self.splits = file_splits(lambda path: read_jsonl(path, cfg), cfg)

    def score_batch(self, problems: list[Problem], completions: list[str]) -> list[float]:
        return score_math(self, self.cfg, problems, completions)

    def score(self, problem: Problem, completion: str) -> float:
        return self.score_batch([problem], [completion])[0]
