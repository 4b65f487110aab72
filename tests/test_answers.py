"""Answer formats (task_args.answer) on completions written the way real models and public datasets write them."""
import json

import pytest

from harness.config import ConfigError
from harness.registry import TASKS
from tasks.answers import extract
from tasks.jsonl_math import JsonlMath, JsonlMathConfig

GSM8K_SOLUTION = ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
                  "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72")


@pytest.mark.parametrize("fmt, text, want", [
    ("boxed", r"So $x = \boxed{\frac{3}{4}}$.", r"\frac{3}{4}"),
    ("boxed", r"First \boxed{1}, then correcting: \boxed{\sqrt{2}+\frac{1}{2}}", r"\sqrt{2}+\frac{1}{2}"),
    ("boxed", r"The area is \fbox{12}", "12"),
    ("boxed", r"\boxed{\frac{3}{4}", None),  # unclosed: no answer, never a guess
    ("boxed", "The answer is 4", None),
    ("hash", GSM8K_SOLUTION, "72"),
    ("hash", "#### 1,000\nThanks for asking!", "1,000"),
    ("hash", "The answer is ####", None),
    ("last_number", "She pays $1,250.50 in total, after 3 months.", "3"),
    ("last_number", "So the total is -1,250.50", "-1250.50"),
    ("last_number", "x = 12, so 2x equals 24.", "24"),
    ("last_number", "no digits here", None),
    ("last_line", "Let me think.\n\n  aed  \n", "aed"),
    ("last_line", "   \n", None),
    ("letter", "Comparing the options, the answer is (C).", "C"),
    ("letter", "Answer: B", "B"),
    ("letter", "The answer is a bit unclear.\nA", "A"),
    ("letter", "Options A and B fail, so (D)", "D"),
    ("letter", "I think it is 42.", None),
    ("whole", " 432 ", " 432 "),
])
def test_extractors(fmt, text, want):
    assert extract(fmt, text) == want


def build(name, **kw):
    return TASKS.get(name).obj(TASKS.build_config(name, {"train_size": 200, "eval_size": 16, **kw}, "task_args"))


def test_a_format_keeps_the_problems_and_adds_its_instruction():
    plain, hashed = build("arithmetic"), build("arithmetic", answer="hash")
    for a, b in zip(plain.problems("train"), hashed.problems("train")):
        assert b.prompt == a.prompt + "\nWrite the final answer on the last line after ####." and b.answer == a.answer
    p = hashed.problems("eval")[0]
    assert hashed.score(p, f"Adding up: the result is\n#### {p.answer}") == 1.0
    assert hashed.score(p, p.answer) == 0.0  # the plain format is not this format
    assert plain.score(p, p.answer) == 1.0


@pytest.mark.parametrize("name, fmt, completion", [
    ("arithmetic", "last_number", "First 12, and then the sum is {answer}."),
    ("arithmetic", "boxed", r"The value is $\boxed{{{answer}}}$"),
    ("countdown", "boxed", r"Try \boxed{{{answer}}}"),
    ("shortest_path", "last_line", "Searching from the start...\n{answer}"),
])
def test_every_generated_task_scores_its_oracle_in_each_format(name, fmt, completion):
    t = build(name, answer=fmt)
    assert all(t.score(p, completion.format(answer=p.answer)) == 1.0 for p in t.problems("eval"))
    assert all(t.score(p, t.oracle_completion(p)) == 1.0 for p in t.problems("eval"))  # what a warm start imitates


def test_formats_a_task_cannot_read_are_refused():
    with pytest.raises(ConfigError, match="task_args.answer: 'letter' is not one of"):
        build("countdown", answer="letter")
    with pytest.raises(ConfigError, match="task_args.answer"):
        JsonlMathConfig(train_path="x", answer="whole").validate()


def test_jsonl_math_formats(tmp_path):
    f = tmp_path / "gsm.jsonl"
    f.write_text("\n".join(json.dumps({"question": f"What is {i} + {i}?", "answer": f"{i} plus {i} #### {2 * i}"}) for i in range(1, 21)) + "\n")
    t = JsonlMath(JsonlMathConfig(train_path=str(f), eval_size=5, answer="hash"))
    p = t.problems("eval")[0]
    gold = p.meta["gold"]
    assert p.prompt.endswith("\nAnswer: \nWrite the final answer on the last line after ####.")
    assert t.score_batch([p] * 3, [f"It is {gold}.\n#### {gold}", f"#### {int(gold) + 1}\n", gold]) == [1.0, 0.0, 0.0]
    mc = tmp_path / "mc.jsonl"
    mc.write_text('{"question": "2+2? A) 3 B) 4", "answer": "B"}\n{"question": "1+1? A) 2 B) 3", "answer": "A"}\n')
    t = JsonlMath(JsonlMathConfig(train_path=str(mc), eval_size=1, answer="letter"))
    p = t.problems("eval")[0]
    assert t.score_batch([p, p], [f"The answer is ({p.answer}).", "The answer is (J)."]) == [1.0, 0.0]
    mc.write_text('{"question": "2+2?", "answer": "4"}\n')
    with pytest.raises(Exception, match="mc.jsonl:1: gold answer '4' is not an option letter"):
        JsonlMath(JsonlMathConfig(train_path=str(mc), eval_size=0, answer="letter"))
