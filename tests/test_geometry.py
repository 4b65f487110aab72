"""The geometry task: answers recovered from the rendered pixels alone (an oracle independent of the
generator's bookkeeping), choice mode, determinism down to the bytes, verifier robustness, config errors."""
import hashlib
import subprocess
import sys

import numpy as np
import pytest
from scipy import ndimage

from harness.config import ConfigError, from_dict
from tasks.geometry import BLUE, GREEN, KINDS, MAGENTA, RED, Geometry, GeometryConfig


def make(**kw):
    cfg = from_dict(GeometryConfig, {"train_size": 150, "eval_size": 20, **kw})
    cfg.validate()
    return Geometry(cfg)


def is_colour(img, rgb):
    return (img == np.array(rgb, dtype=np.uint8)).all(-1)


def oracle(p, cell: int) -> str:
    """Read the answer off the image: connected components, pixel areas, extents and dot centroids."""
    img, kind = p.image, p.meta["kind"]
    if kind == "count":
        black = (img == 0).all(-1)
        return str(ndimage.label(black, structure=np.ones((3, 3)))[1])
    if kind == "area":
        return str(int(is_colour(img, BLUE).sum()) // (cell * cell))
    if kind == "length":
        ys, xs = np.nonzero((img == 0).all(-1))
        extent = max(xs.max() - xs.min(), ys.max() - ys.min())  # segment plus a 1-px dot beyond each end
        return str(round((extent - 2) / cell))
    if kind == "compare":
        return "red" if is_colour(img, RED).sum() > is_colour(img, BLUE).sum() else "blue"
    if kind == "right_angle":
        v = np.argwhere(is_colour(img, GREEN)).mean(0)
        lab, n = ndimage.label(is_colour(img, MAGENTA))
        assert n == 2
        e1, e2 = (np.argwhere(lab == i).mean(0) - v for i in (1, 2))
        cos = e1 @ e2 / np.linalg.norm(e1) / np.linalg.norm(e2)
        return "yes" if abs(cos) < 1e-6 else "no"
    raise AssertionError(kind)


@pytest.mark.parametrize("grid,size,extra", [(8, 64, {}), (6, 48, {"max_side": 3, "max_count": 9}), (8, 96, {"distractors": 3})])
def test_pixels_alone_give_the_answer(grid, size, extra):
    task = make(grid=grid, image_size=size, **extra)
    seen = set()
    for p in task.problems("train") + task.problems("eval"):
        assert p.image.shape == (size, size, 3) and p.image.dtype == np.uint8
        assert oracle(p, size // grid) == p.answer, (p.prompt, p.difficulty)
        assert task.score(p, p.answer) == 1.0
        seen.add(p.meta["kind"])
    assert seen == set(KINDS)


def test_each_kind_alone_and_difficulty_knobs_bound_the_answers():
    for kind in KINDS:
        task = make(kinds=kind, max_side=2, max_count=3, train_size=60, eval_size=8)
        kinds = {p.meta["kind"] for p in task.problems("train")}
        assert kinds == {kind}
        values = {p.answer for p in task.problems("train")}
        bound = {"count": {"1", "2", "3"}, "area": {"1", "2", "4"}, "length": {"1", "2"}, "compare": {"red", "blue"}, "right_angle": {"yes", "no"}}
        assert values <= bound[kind] and len(values) >= 2


def test_choice_mode_letters_point_at_the_true_value():
    task = make(choices=4)
    for p in task.problems("train"):
        opts = p.meta["options"]
        assert len(set(opts)) == len(opts) == (2 if p.meta["kind"] in ("compare", "right_angle") else min(4, len(opts)))
        letter = p.answer
        assert opts["ABCD".index(letter)] == p.meta["value"] == oracle(p, 8)
        assert f"{letter}){p.meta['value']}" in p.prompt
        assert task.score(p, letter) == task.score(p, f" {letter.lower()})") == 1.0
        assert task.score(p, p.meta["value"]) == 0.0  # the letter is the answer in choice mode


def test_rendering_is_deterministic_to_the_byte_and_seeded():
    def digest(task):
        h = hashlib.sha256()
        for p in task.problems("train") + task.problems("eval"):
            h.update(p.prompt.encode() + p.image.tobytes())
        return h.hexdigest()

    a, b, c = digest(make()), digest(make()), digest(make(data_seed=1))
    assert a == b != c
    code = ("from harness.config import from_dict; from tasks.geometry import *; import hashlib; h = hashlib.sha256()\n"
            "t = Geometry(from_dict(GeometryConfig, {'train_size': 150, 'eval_size': 20}))\n"
            "[h.update(p.prompt.encode() + p.image.tobytes()) for p in t.problems('train') + t.problems('eval')]\nprint(h.hexdigest())")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == a


def test_splits_are_disjoint_and_duplicate_free():
    task = make(train_size=400, eval_size=50)
    train, held = ({p.key for p in task.problems(s)} for s in ("train", "eval"))
    assert len(train) == 400 and len(held) == 50 and not train & held
    # the same question text with different pictures are different problems
    assert len({p.prompt for p in task.problems("train")}) == len(KINDS)


def test_verifier_never_raises_and_accepts_only_the_answer():
    task = make(kinds="count,compare")
    p = next(x for x in task.problems("train") if x.meta["kind"] == "count")
    assert task.score(p, f" {p.answer} ") == task.score(p, "0" + p.answer) == 1.0
    q = next(x for x in task.problems("train") if x.meta["kind"] == "compare")
    assert task.score(q, q.answer.upper()) == 1.0
    rng = np.random.default_rng(0)
    junk = ["", " ", "1e3", "-0", "yes no", "9" * 50, "\x00", "é", "(", "))"] + ["".join(map(chr, rng.integers(32, 127, 6))) for _ in range(200)]
    for text in junk:
        for prob in (p, q):
            assert task.score(prob, text) in (0.0, 1.0)
    assert task.score(p, str(int(p.answer) + 1)) == 0.0


@pytest.mark.parametrize("field,value,msg", [
    ("kinds", "count,circles", "task_args.kinds"),
    ("grid", 7, "task_args.grid"),
    ("max_side", 7, "task_args.max_side"),
    ("choices", 1, "task_args.choices"),
    ("max_count", 0, "task_args.max_count"),
])
def test_bad_knobs_name_the_field(field, value, msg):
    cfg = from_dict(GeometryConfig, {field: value})
    with pytest.raises(ConfigError, match=msg):
        cfg.validate()
