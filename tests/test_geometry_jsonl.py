"""Image-question JSONL files in Geometry3K's shape: round trip through real PNG files, answers given as
letters or option texts, and errors that name the file and line for every kind of bad input."""
import json

import numpy as np
import pytest
from PIL import Image

from harness.config import from_dict
from tasks.base import DataError
from tasks.geometry import Geometry, GeometryConfig
from tasks.geometry_jsonl import GeometryJsonl, GeometryJsonlConfig


def write_dataset(root, n=12, choices=True):
    """Render n geometry problems to PNGs plus a JSONL file; returns (path, the source problems)."""
    src = Geometry(from_dict(GeometryConfig, {"train_size": n, "eval_size": 2, "choices": 4 if choices else 0})).problems("train")
    (root / "imgs").mkdir(parents=True, exist_ok=True)
    lines = []
    for i, p in enumerate(src):
        Image.fromarray(p.image).save(root / "imgs" / f"{i}.png")
        row = {"image": f"imgs/{i}.png", "question": p.prompt.split(" A)")[0].strip() if choices else p.prompt.strip()}
        if choices:
            # alternate the two accepted answer forms: the letter, or the option's text
            row.update(choices=p.meta["options"], answer=p.answer if i % 2 else p.meta["value"])
        else:
            row["answer"] = p.answer
        lines.append(json.dumps(row))
    path = root / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path, src


def load(path, **kw):
    cfg = from_dict(GeometryJsonlConfig, {"train_path": str(path), "eval_size": 2, **kw})
    cfg.validate()
    return GeometryJsonl(cfg)


def test_round_trip_images_letters_and_scoring(tmp_path):
    path, src = write_dataset(tmp_path)
    other = tmp_path / "other.jsonl"  # a training file sharing no problem with the held-out one
    other.write_text(json.dumps({"image": "imgs/0.png", "question": "Another question?", "answer": "3"}) + "\n")
    task = load(other, eval_path=str(path))  # every line of the held-out file present in order
    assert task.images
    got = task.problems("eval")
    assert len(got) == len(src)
    for p, s in zip(got, src):
        assert np.array_equal(p.image, s.image)  # PNG is lossless
        assert p.answer == s.answer  # the letter, whichever form the file used
        assert p.prompt.endswith(" ".join(f"{'ABCD'[i]}) {o}" for i, o in enumerate(s.meta["options"])) + " ")
        assert task.score(p, p.answer) == task.score(p, f"({p.answer})") == task.score(p, s.meta["value"]) == 1.0
        wrong = next(letter for letter in "ABCD"[: len(s.meta["options"])] if letter != p.answer)
        assert task.score(p, wrong) == 0.0


def test_free_answers_use_math_verify_and_held_out_split(tmp_path):
    path, src = write_dataset(tmp_path, n=10, choices=False)
    task = load(path)
    assert len(task.problems("train")) == 8 and len(task.problems("eval")) == 2
    numeric = next(p for p in task.problems("train") + task.problems("eval") if p.answer.isdigit())
    assert task.score(numeric, numeric.answer) == task.score(numeric, f"{numeric.answer}.0") == 1.0
    assert task.score(numeric, "nonsense") == 0.0


def test_image_list_root_and_downscaling(tmp_path):
    Image.new("RGB", (600, 300), (10, 20, 30)).save(tmp_path / "big.png")
    (tmp_path / "data").mkdir()
    path = tmp_path / "data" / "d.jsonl"
    path.write_text("\n".join(json.dumps({"images": ["big.png"], "question": f"q{i}", "answer": "1"}) for i in range(3)))
    task = load(path, image_root=str(tmp_path), image_field="images", eval_size=1, max_image_side=100)
    assert task.problems("train")[0].image.shape == (50, 100, 3)


@pytest.mark.parametrize("line,msg", [
    ('{"image": "imgs/0.png", "question": "q", "answer": "1"', "not valid JSON"),
    ('["imgs/0.png", "q"]', "expected a JSON object"),
    ('{"image": "imgs/missing.png", "question": "q", "answer": "1"}', "image not found: .*imgs/missing.png"),
    ('{"image": "notes.txt", "question": "q", "answer": "1"}', "cannot read image .*notes.txt"),
    ('{"image": 3, "question": "q", "answer": "1"}', "field 'image' must be an image path"),
    ('{"image": "imgs/0.png", "answer": "1"}', "missing field 'question'"),
    ('{"image": "imgs/0.png", "question": "q", "choices": "A,B", "answer": "A"}', "field 'choices' must be a list"),
    ('{"image": "imgs/0.png", "question": "q", "choices": ["3", "4"], "answer": "C"}', "answer 'C' is neither a letter A-B nor one of the choices"),
])
def test_bad_lines_name_file_and_line(tmp_path, line, msg):
    path, _ = write_dataset(tmp_path, n=3)
    (tmp_path / "notes.txt").write_text("not an image")
    good = path.read_text().splitlines()
    path.write_text("\n".join(good[:2] + [line] + good[2:]) + "\n")
    with pytest.raises(DataError, match=f"{path}:3: {msg}"):
        load(path)


def test_missing_or_empty_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="no problems"):
        load(tmp_path / "empty.jsonl")
