"""Bring-your-own image questions: JSONL files in Geometry3K's shape (image path, question, choices, answer).

One JSON object per line, e.g.
    {"image": "imgs/0001.png", "question": "Find x.", "choices": ["3", "4", "5", "6"], "answer": "B"}
- `image`: a path (or a list holding one path), relative to `image_root` (default: the JSONL file's folder);
- `choices` (optional): a list of option texts; the answer is then a letter (A, B, ...) or one option's text,
  the prompt lists the options and the oracle completion is the letter;
- without choices the answer is free-form, read as LaTeX and checked with math-verify (bounded, tasks/mathcheck.py).
Any malformed line, missing, unreadable or oversized image, or image path outside `image_root` stops loading with
`file:line: what is wrong`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

import tasks.mathcheck as mathcheck
from harness.config import ConfigError, doc, require_positive
from harness.registry import TASKS
from tasks.base import DataError, Problem, Task, file_splits, jsonl_objects
from tasks.geometry import LETTERS, normalise_answer
from tasks.jsonl_math import math_gold, oracle_answer, score_math, text_field


@dataclass
class GeometryJsonlConfig:
    train_path: str = doc("JSONL file of training problems.", "")
    eval_path: str | None = doc("JSONL file of held-out problems; None = hold out eval_size lines of train_path.", None)
    eval_size: int = doc("Held-out lines taken from train_path when eval_path is None.", 64)
    image_root: str | None = doc("Folder image paths are relative to; None = each JSONL file's own folder.", None)
    image_field: str = doc("JSON key of the image path (a string, or a list of one string).", "image")
    question_field: str = doc("JSON key of the question text.", "question")
    choices_field: str = doc("JSON key of the list of options (absent or empty on a line = free answer).", "choices")
    answer_field: str = doc("JSON key of the answer: a letter or an option's text with choices, else the value.", "answer")
    prompt_template: str = doc("How a line becomes a prompt; {question} and {choices} ('A) 3 B) 4 ' or '') are replaced.", "{question} {choices}")
    max_image_side: int | None = doc("Downscale images on load so the longer side is at most this (None keeps them).", 256)
    max_image_pixels: int = doc("Images with more pixels than this are refused before decoding (decompression bombs).", 16_000_000)
    max_new_tokens: int = doc("Completion length cap.", 16)
    data_seed: int = doc("Seed of the train/eval shuffle when eval_path is None.", 0)
    verify_timeout_s: float = doc("Seconds one free-answer check may take before it scores 0 (counted in score/timeouts).", mathcheck.TIMEOUT_S)
    verify_workers: int = doc("Processes checking a batch of free answers in parallel.", 2)

    def validate(self) -> None:
        if not self.train_path:
            raise ConfigError("task_args.train_path: required for task geometry_jsonl")
        if "{question}" not in self.prompt_template:
            raise ConfigError("task_args.prompt_template: must contain {question}")
        require_positive(self, "task_args.", "max_image_side", "max_image_pixels", "verify_timeout_s", "verify_workers")


def image_path(root: Path, name: str, where: str) -> Path:
    """root / name, refused unless it resolves (symlinks followed) inside root: a data file names images, it
    does not get to read the rest of the disk."""
    path = (root / name).resolve()
    if not path.is_relative_to(root.resolve()):
        raise DataError(f"{where}: image path {name!r} leads outside image_root {root}")
    return path


def load_image(path: Path, where: str, max_side: int | None, max_pixels: int) -> np.ndarray:
    """uint8 RGB [H, W, 3]; DataError naming the JSONL line (`where`) if the file is missing, not an image, or
    larger than max_pixels (checked from the header, before decoding)."""
    if not path.is_file():
        raise DataError(f"{where}: image not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below with the line named
            im = Image.open(path)
        with im:
            if im.width * im.height > max_pixels:
                raise DataError(f"{where}: image {path} is {im.width}x{im.height} pixels; max_image_pixels is {max_pixels}")
            if max_side:
                im.draft("RGB", (max_side, max_side))  # JPEG: decode at reduced size
            im = im.convert("RGB")
            if max_side and max(im.size) > max_side:
                im.thumbnail((max_side, max_side), Image.BILINEAR)
            return np.asarray(im)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise DataError(f"{where}: cannot read image {path}: {e}") from None


def read_image_jsonl(path: str | Path, cfg: GeometryJsonlConfig) -> list[Problem]:
    path = Path(path)
    root = Path(cfg.image_root) if cfg.image_root else path.parent
    problems = []
    for lineno, obj in jsonl_objects(path):
        where = f"{path}:{lineno}"
        image = obj.get(cfg.image_field)
        if isinstance(image, list) and len(image) == 1:
            image = image[0]
        if not isinstance(image, str) or not image:
            raise DataError(f"{where}: field '{cfg.image_field}' must be an image path (or a list of one), got {image!r}")
        question = text_field(path, lineno, obj, cfg.question_field)
        answer = text_field(path, lineno, obj, cfg.answer_field).strip()
        choices = obj.get(cfg.choices_field) or []
        if not isinstance(choices, list) or not all(isinstance(c, (str, int, float)) for c in choices):
            raise DataError(f"{where}: field '{cfg.choices_field}' must be a list of option texts")
        if len(choices) > len(LETTERS):
            raise DataError(f"{where}: {len(choices)} choices; at most {len(LETTERS)} are supported")
        choices = [str(c).strip() for c in choices]
        meta: dict = {}
        listed = ""
        if choices:
            letters = LETTERS[: len(choices)]
            if answer.upper() in letters and len(answer) == 1:
                letter = answer.upper()
            elif answer in choices:
                letter = letters[choices.index(answer)]
            else:
                raise DataError(f"{where}: answer {answer!r} is neither a letter {letters[0]}-{letters[-1]} nor one of the choices {choices}")
            meta = {"letter": letter, "option": choices[letters.index(letter)], "source": where}
            answer = letter
            listed = " ".join(f"{letters[i]}) {c}" for i, c in enumerate(choices)) + " "
        else:
            meta, answer = math_gold(answer, where), oracle_answer(answer)
        img = load_image(image_path(root, image, where), where, cfg.max_image_side, cfg.max_image_pixels)
        prompt = cfg.prompt_template.format(question=question, choices=listed)
        problems.append(Problem(prompt=prompt, answer=answer, difficulty={}, meta=meta, image=img))
    if not problems:
        raise DataError(f"{path}: no problems in file")
    return problems


@TASKS.register("geometry_jsonl", config=GeometryJsonlConfig(train_path="<required>"), description="Image questions from JSONL files in Geometry3K's shape (image, question, choices, answer)")
class GeometryJsonl(Task):
    name = "geometry_jsonl"
    images = True

    def __init__(self, cfg: GeometryJsonlConfig):
        self.cfg = cfg
        self.max_new_tokens = self.explained_max_new_tokens = cfg.max_new_tokens
        self.splits = file_splits(lambda path: read_image_jsonl(path, cfg), cfg)

    def score_batch(self, problems: list[Problem], completions: list[str]) -> list[float]:
        """Letters checked here; free answers together through the bounded math-verify checks."""
        scores = [choice_score(p, c) if "letter" in p.meta else 0.0 for p, c in zip(problems, completions)]
        free = [i for i, p in enumerate(problems) if "letter" not in p.meta]
        if free:
            for i, x in zip(free, score_math(self, self.cfg, [problems[i] for i in free], [completions[i] for i in free])):
                scores[i] = x
        return scores

    def score(self, problem: Problem, completion: str) -> float:
        return self.score_batch([problem], [completion])[0]


def choice_score(problem: Problem, completion: str) -> float:
    """1 for the option's letter, or the option's own text."""
    said = completion.strip().strip("()").rstrip(".").strip()
    return float(normalise_answer(said, letter=True) == problem.meta["letter"].lower() or said.lower() == problem.meta["option"].lower())
