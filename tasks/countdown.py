"""Countdown (planning): reach a target with + - * / over given numbers, each used at most once.

The verifier parses the completion with Python's `ast` and walks a whitelist (integer literals, + - * /,
parentheses); it never evaluates text. Arithmetic is exact (fractions) and every division must be exact.
"""
from __future__ import annotations

import ast
import random
import warnings
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

from harness.config import ConfigError, doc
from harness.registry import TASKS
from tasks.base import Problem, SplitConfig, Task

_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}
MAX_CHARS = 200  # longer expressions (spaces around them aside) are wrong by construction and never parsed


@dataclass
class CountdownConfig(SplitConfig):
    # defaults calibrated for headroom (README): GRPO on the preset model gains ~16 points in 120k rollouts
    min_numbers: int = doc("Fewest given numbers.", 3)
    max_numbers: int = doc("Most given numbers.", 3)
    max_number: int = doc("Given numbers are drawn from 1..max_number.", 9)
    operators: str = doc("Operators the oracle expression may use, from '+-*/'.", "+-*")
    max_target: int = doc("Targets are positive integers up to this.", 99)

    def validate(self) -> None:
        super().validate()
        if not 2 <= self.min_numbers <= self.max_numbers <= 6:
            raise ConfigError(f"task_args.min_numbers/max_numbers: need 2 <= min <= max <= 6, got {self.min_numbers}, {self.max_numbers}")
        if self.max_number < 2:
            raise ConfigError(f"task_args.max_number: need >= 2, got {self.max_number}")
        if not self.operators or set(self.operators) - set("+-*/"):
            raise ConfigError(f"task_args.operators: use characters from '+-*/', got {self.operators!r}")


def check_expression(text: str, numbers: list[int], target: int) -> bool:
    """True iff `text` is an arithmetic expression over a sub-multiset of `numbers` equal to `target`."""
    text = text.strip()  # before the length cap: padding does not make a right answer wrong
    if len(text) > MAX_CHARS:
        return False
    try:
        with warnings.catch_warnings():  # odd escapes in string literals warn while parsing; they score 0 anyway
            warnings.simplefilter("ignore")
            tree = ast.parse(text, mode="eval")
        used: Counter = Counter()
        value = _value(tree.body, used)
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError, MemoryError, TypeError):
        return False
    return value == target and not (used - Counter(numbers))


def _value(node: ast.AST, used: Counter) -> Fraction:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        used[node.value] += 1
        return Fraction(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        a, b = _value(node.left, used), _value(node.right, used)
        op = _OPS[type(node.op)]
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        q = a / b  # ZeroDivisionError -> invalid
        if q.denominator != 1:
            raise ValueError("inexact division")
        return q
    raise ValueError(f"disallowed syntax: {type(node).__name__}")


def render(tree: tuple | int, parent: str | None = None, right: bool = False) -> str:
    """Minimal-parentheses text of an expression tree ((op, left, right) tuples, int leaves)."""
    if isinstance(tree, int):
        return str(tree)
    op, left, right_t = tree
    text = render(left, op) + op + render(right_t, op, right=True)
    if parent and (_PREC[op] < _PREC[parent] or (right and _PREC[op] == _PREC[parent] and parent in "-/")):
        return f"({text})"
    return text


@TASKS.register("countdown", config=CountdownConfig(), description="Countdown (planning): numbers + target -> expression; AST verifier, no eval")
class Countdown(Task):
    name = "countdown"
    max_new_tokens = 20

    def __init__(self, cfg: CountdownConfig):
        self.max_new_tokens = 6 * cfg.max_numbers
        super().__init__(cfg)

    def generate(self, rng: random.Random) -> Problem:
        c = self.cfg
        while True:
            n = rng.randint(c.min_numbers, c.max_numbers)
            numbers = [rng.randint(1, c.max_number) for _ in range(n)]
            tree, value = self._random_tree(rng, list(numbers))
            if value is not None and value.denominator == 1 and 1 <= value <= c.max_target:
                break
        target = int(value)
        expr = render(tree)
        prompt = " ".join(map(str, numbers)) + f"|{target}:"
        return Problem(prompt, expr, {"numbers": n, "max_number": c.max_number}, {"numbers": numbers, "target": target})

    def _random_tree(self, rng: random.Random, leaves: list[int]) -> tuple[tuple | int, Fraction | None]:
        """Random binary tree over all leaves (shuffled) with random operators; value None if a division is inexact."""
        rng.shuffle(leaves)
        nodes: list[tuple[tuple | int, Fraction]] = [(x, Fraction(x)) for x in leaves]
        while len(nodes) > 1:
            i = rng.randrange(len(nodes) - 1)
            (lt, lv), (rt, rv) = nodes[i], nodes[i + 1]
            op = rng.choice(self.cfg.operators)
            if op == "/" and (rv == 0 or (lv / rv).denominator != 1):
                return lt, None
            v = {"+": lv + rv, "-": lv - rv, "*": lv * rv, "/": lv / rv if rv else Fraction(0)}[op]
            nodes[i : i + 2] = [((op, lt, rt), v)]
        return nodes[0]

    def score(self, problem: Problem, completion: str) -> float:
        return float(check_expression(self.answer_of(completion), problem.meta["numbers"], problem.meta["target"]))
