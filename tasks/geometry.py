"""Visual geometry: procedural diagrams on a grid, rendered with Pillow, with questions about what is drawn.

Every quantity is coarse and visual (counts, areas and lengths in grid cells, a comparison, a right-angle
test), so a tiny patch-encoder policy can learn it in minutes on a CPU; reading rendered digits is not. With the defaults, a 64x64 picture has an 8x8 grid of 8-pixel cells: one cell per
image patch of the embedded vision policy.

Question kinds (the `kinds` knob):
    count        "How many shapes?"            black squares/circles/triangles, one per cell (grey ones are distractors)
    area         "Rectangle area in cells?"    one filled axis-aligned rectangle, w x h cells
    length       "Segment length in cells?"    one horizontal or vertical segment between grid points
    compare      "Larger area: red or blue?"   two disjoint rectangles of different areas
    right_angle  "Right angle: yes or no?"     two rays along compass directions from a green vertex to magenta
                                               endpoints on grid points: 90 degrees apart, or 45 / 135

Rendering is a pure function of the problem's random draws: the same data seed gives the same bytes.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from harness.config import ConfigError, doc, require_positive
from harness.registry import TASKS
from tasks.base import Problem, SplitConfig, Task

KINDS = ("count", "area", "length", "compare", "right_angle")
QUESTIONS = {
    "count": "How many shapes?",
    "area": "Rectangle area in cells?",
    "length": "Segment length in cells?",
    "compare": "Larger area: red or blue?",
    "right_angle": "Right angle: yes or no?",
}
WHITE, GRID, BLACK, GREY = (255, 255, 255), (215, 215, 215), (0, 0, 0), (150, 150, 150)
RED, BLUE, GREEN, MAGENTA = (220, 40, 40), (40, 90, 220), (0, 160, 0), (200, 0, 200)
LETTERS = "ABCDEFGH"
_INT = re.compile(r"\d{1,4}")


@dataclass
class GeometryConfig(SplitConfig):
    kinds: str = doc("Question kinds drawn uniformly, comma-separated from: " + ", ".join(KINDS) + ".", ",".join(KINDS))
    image_size: int = doc("Rendered image side in pixels.", 64)
    grid: int = doc("Grid cells per side; image_size must be a multiple of it.", 8)
    max_count: int = doc("count: most black shapes in one picture.", 5)
    max_side: int = doc("area, length, compare, right_angle: longest rectangle side, segment or ray, in cells.", 3)
    distractors: int = doc("count: most grey shapes drawn besides the counted black ones (the question then says 'black').", 0)
    choices: int = doc("0 = free answer (a number or word); k >= 2 = k lettered options in the prompt, answer the letter.", 0)

    def validate(self) -> None:
        super().validate()
        require_positive(self, "task_args.", "image_size", "grid", "max_count", "max_side")
        kinds = self.kind_list
        if not kinds or set(kinds) - set(KINDS):
            raise ConfigError(f"task_args.kinds: choose from {', '.join(KINDS)}; got {self.kinds!r}")
        if self.image_size % self.grid or self.image_size // self.grid < 4:
            raise ConfigError(f"task_args.grid: image_size={self.image_size} must be a multiple of grid={self.grid} with cells >= 4 px")
        if self.max_side > self.grid - 2:
            raise ConfigError(f"task_args.max_side: at most grid - 2 = {self.grid - 2}, got {self.max_side}")
        if self.max_count + self.distractors > self.grid * self.grid:
            raise ConfigError(f"task_args.max_count: {self.max_count} + distractors {self.distractors} shapes do not fit {self.grid}x{self.grid} cells")
        if self.choices == 1 or not 0 <= self.choices <= len(LETTERS):
            raise ConfigError(f"task_args.choices: 0 (free answer) or 2..{len(LETTERS)}, got {self.choices}")

    @property
    def kind_list(self) -> list[str]:
        return [k.strip() for k in self.kinds.split(",") if k.strip()]


# ----------------------------------------------------------------------------------------------------------------
# Pure drawing helpers (cell coordinates -> pixels)


def blank(cfg: GeometryConfig) -> tuple[Image.Image, ImageDraw.ImageDraw, int]:
    """A white canvas with light grid lines; returns (image, draw, cell size in pixels)."""
    img = Image.new("RGB", (cfg.image_size, cfg.image_size), WHITE)
    draw = ImageDraw.Draw(img)
    cell = cfg.image_size // cfg.grid
    for j in range(1, cfg.grid):
        draw.line([(j * cell, 0), (j * cell, cfg.image_size - 1)], fill=GRID)
        draw.line([(0, j * cell), (cfg.image_size - 1, j * cell)], fill=GRID)
    return img, draw, cell


def fill_cells(draw: ImageDraw.ImageDraw, cell: int, col: int, row: int, w: int, h: int, colour) -> None:
    """Fill the w x h block of cells whose top-left cell is (col, row), grid lines included."""
    draw.rectangle([col * cell, row * cell, (col + w) * cell - 1, (row + h) * cell - 1], fill=colour)


def shape_in_cell(draw: ImageDraw.ImageDraw, cell: int, col: int, row: int, kind: int, colour) -> None:
    """A square (0), disc (1) or triangle (2) inset 1 px in one cell, so shapes in neighbouring cells never touch."""
    x0, y0, x1, y1 = col * cell + 1, row * cell + 1, (col + 1) * cell - 2, (row + 1) * cell - 2
    if kind == 0:
        draw.rectangle([x0, y0, x1, y1], fill=colour)
    elif kind == 1:
        draw.ellipse([x0, y0, x1, y1], fill=colour)
    else:
        draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=colour)


def dot(draw: ImageDraw.ImageDraw, x: int, y: int, colour) -> None:
    draw.rectangle([x - 1, y - 1, x + 1, y + 1], fill=colour)


# ----------------------------------------------------------------------------------------------------------------
# One generator per question kind: rng -> (image, answer, difficulty size, options for choice mode)


def _count(cfg, rng):
    img, draw, cell = blank(cfg)
    k = rng.randint(1, cfg.max_count)
    n_grey = rng.randint(0, cfg.distractors)
    cells = rng.sample(range(cfg.grid * cfg.grid), k + n_grey)
    for i, c in enumerate(cells):
        shape_in_cell(draw, cell, c % cfg.grid, c // cfg.grid, rng.randrange(3), BLACK if i < k else GREY)
    return img, str(k), k, [str(v) for v in range(1, cfg.max_count + 1)]


def _rect(cfg, rng):
    w, h = rng.randint(1, cfg.max_side), rng.randint(1, cfg.max_side)
    return rng.randint(0, cfg.grid - w), rng.randint(0, cfg.grid - h), w, h


def _area(cfg, rng):
    img, draw, cell = blank(cfg)
    col, row, w, h = _rect(cfg, rng)
    fill_cells(draw, cell, col, row, w, h, BLUE)
    areas = sorted({a * b for a in range(1, cfg.max_side + 1) for b in range(1, cfg.max_side + 1)})
    return img, str(w * h), w * h, [str(a) for a in areas]


def _length(cfg, rng):
    img, draw, cell = blank(cfg)
    n = rng.randint(1, cfg.max_side)
    a, b = rng.randint(1, cfg.grid - 1 - n), rng.randint(1, cfg.grid - 1)  # grid points strictly inside the picture
    p, q = ((a, b), (a + n, b)) if rng.random() < 0.5 else ((b, a), (b, a + n))
    (x0, y0), (x1, y1) = (p[0] * cell, p[1] * cell), (q[0] * cell, q[1] * cell)
    draw.line([(x0, y0), (x1, y1)], fill=BLACK, width=1)
    dot(draw, x0, y0, BLACK)
    dot(draw, x1, y1, BLACK)
    return img, str(n), n, [str(v) for v in range(1, cfg.max_side + 1)]


def _compare(cfg, rng):
    img, draw, cell = blank(cfg)
    while True:  # two disjoint rectangles (a gap of one cell at least) of different areas
        r, b = _rect(cfg, rng), _rect(cfg, rng)
        apart = r[0] + r[2] < b[0] or b[0] + b[2] < r[0] or r[1] + r[3] < b[1] or b[1] + b[3] < r[1]
        if apart and r[2] * r[3] != b[2] * b[3]:
            break
    fill_cells(draw, cell, *r, RED)
    fill_cells(draw, cell, *b, BLUE)
    return img, "red" if r[2] * r[3] > b[2] * b[3] else "blue", abs(r[2] * r[3] - b[2] * b[3]), ["red", "blue"]


COMPASS = [(1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1)]  # 45 degrees apart


def _right_angle(cfg, rng):
    img, draw, cell = blank(cfg)
    lo, hi = 1, cfg.grid - 1  # grid points strictly inside the picture
    right = rng.random() < 0.5
    while True:  # rays along compass directions: 90 degrees apart, or 45 / 135 (clearly not right, not straight)
        v = (rng.randint(lo, hi), rng.randint(lo, hi))
        i = rng.randrange(8)
        j = (i + rng.choice([2, -2] if right else [1, -1, 3, -3])) % 8
        ends = [(v[0] + COMPASS[k][0] * n, v[1] + COMPASS[k][1] * n) for k, n in ((i, rng.randint(1, cfg.max_side)), (j, rng.randint(1, cfg.max_side)))]
        if all(lo <= x <= hi and lo <= y <= hi for x, y in ends):
            break
    px = lambda p: (p[0] * cell, p[1] * cell)  # noqa: E731
    for e in ends:
        draw.line([px(v), px(e)], fill=BLACK, width=1)
    for e in ends:
        dot(draw, *px(e), MAGENTA)
    dot(draw, *px(v), GREEN)
    return img, "yes" if right else "no", 45 * min((i - j) % 8, (j - i) % 8), ["yes", "no"]


GENERATORS = {"count": _count, "area": _area, "length": _length, "compare": _compare, "right_angle": _right_angle}


def choice_options(answer: str, pool: list[str], k: int, rng: random.Random) -> list[str]:
    """k options (all of `pool` if smaller) including the answer, in random order."""
    others = [x for x in pool if x != answer]
    opts = [answer] + rng.sample(others, min(k, len(pool)) - 1)
    rng.shuffle(opts)
    return opts


@TASKS.register("geometry", config=GeometryConfig(), description="Visual geometry on rendered grid diagrams (image + question); knobs: kinds, grid, sizes, distractors, choices")
class Geometry(Task):
    name = "geometry"
    images = True
    answer_formats = ("whole", "boxed", "hash", "last_number", "last_line", "letter")

    def __init__(self, cfg: GeometryConfig):
        self.max_new_tokens = 6
        super().__init__(cfg)

    def generate(self, rng: random.Random) -> Problem:
        c = self.cfg
        kind = rng.choice(c.kind_list)
        img, answer, size, pool = GENERATORS[kind](c, rng)
        question = QUESTIONS[kind]
        if kind == "count" and c.distractors:
            question = "How many black shapes?"
        difficulty = {"kind": kind, "grid": c.grid, "size": size}
        meta = {"kind": kind, "value": answer}
        if c.choices:
            opts = choice_options(answer, pool, c.choices, rng)
            letter = LETTERS[opts.index(answer)]
            question += " " + " ".join(f"{LETTERS[i]}){o}" for i, o in enumerate(opts))
            meta.update(options=opts, letter=letter)
            answer = letter
        return Problem(prompt=question + " ", answer=answer, difficulty=difficulty, meta=meta, image=np.asarray(img))

    def score(self, problem: Problem, completion: str) -> float:
        return float(normalise_answer(self.answer_of(completion), "letter" in problem.meta) == problem.answer.lower())


def normalise_answer(text: str, letter: bool) -> str:
    """The comparable form of a completion: a lowercase letter ('b' from 'B' or 'B)'), an integer without
    leading zeros, or a lowercase word; anything else comes back as is and matches nothing."""
    t = text.strip().lower().rstrip(".")
    if letter:
        return t.rstrip(")")
    return str(int(t)) if _INT.fullmatch(t) else t
