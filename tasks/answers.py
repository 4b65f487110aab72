"""Where the answer sits in a completion: the formats real models write, declared per task (`task_args.answer`).

    whole        the whole completion: the embedded model's plain format (`47+385=` -> `432`)
    boxed        the last \\boxed{...} (MATH style; nested braces allowed)
    hash         after the last `####`, to the end of that line (GSM8K style)
    last_number  the last number, thousands commas dropped (`... so she pays $1,250.` -> `1250`)
    last_line    the last non-empty line
    letter       the option letter of a multiple-choice answer (`The answer is (C).` -> `C`)

Each returns the answer text, or None when the completion holds none (scored 0, never guessed). Every format
but `whole` also has an instruction that tasks append to their prompts, so a model knows what to write.
Pure text functions: no model output is ever evaluated.
"""
from __future__ import annotations

import re
from typing import Callable, NamedTuple

_NUMBER = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?")
_LETTER_PATTERNS = [
    re.compile(r"[Aa]nswer\s*(?:is|:)?\s*\(?([A-J])\b"),  # "The answer is (C)", "Answer: C" (capitals: "is a" is no option)
    re.compile(r"\(([A-J])\)"),  # the last "(C)"
    re.compile(r"\b([A-J])\)"),  # the last "C)"
    re.compile(r"^[ \t]*([A-J])[.)]?[ \t]*$", re.MULTILINE),  # the letter alone (a stray "I" or "A" in prose is no option)
]


def whole(text: str) -> str | None:
    return text  # the task's checker decides about surrounding spaces


def boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}), braces balanced; None if there is none or it is unclosed."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth, begin = 1, i
    while i < len(text):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[begin:i].strip()
        i += 1
    return None


def hash_answer(text: str) -> str | None:
    if "####" not in text:
        return None
    answer = text.rsplit("####", 1)[1].strip().split("\n", 1)[0].strip()
    return answer or None


def last_number(text: str) -> str | None:
    found = _NUMBER.findall(text)
    return found[-1].replace(",", "") if found else None


def last_line(text: str) -> str | None:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else None


def letter(text: str) -> str | None:
    for pattern in _LETTER_PATTERNS:
        found = pattern.findall(text)
        if found:
            return found[-1].upper()
    return None


class AnswerFormat(NamedTuple):
    extract: Callable[[str], str | None]  # the answer in a completion, or None
    instruction: str  # appended to every prompt
    written: str  # the shortest completion holding answer {} (what a warm start imitates)


FORMATS: dict[str, AnswerFormat] = {
    "whole": AnswerFormat(whole, "", "{}"),
    "boxed": AnswerFormat(boxed, "\nPut the final answer within \\boxed{}.", "\\boxed{{{}}}"),
    "hash": AnswerFormat(hash_answer, "\nWrite the final answer on the last line after ####.", "#### {}"),
    "last_number": AnswerFormat(last_number, "\nEnd with the final answer as a number.", "{}"),
    "last_line": AnswerFormat(last_line, "\nWrite the final answer alone on the last line.", "{}"),
    "letter": AnswerFormat(letter, "\nAnswer with the letter of the correct option.", "{}"),
}


def instruction(fmt: str) -> str:
    """What a prompt gets appended in format `fmt` ('' for formats this module does not define, e.g. auto)."""
    return FORMATS[fmt].instruction if fmt in FORMATS else ""


def written(fmt: str, answer: str) -> str:
    """An answer as the shortest completion in format `fmt` (what a warm start imitates)."""
    return FORMATS[fmt].written.format(answer)


def extract(fmt: str, text: str) -> str | None:
    """The answer of `text` in format `fmt` (one of FORMATS), or None."""
    return FORMATS[fmt].extract(text)
