"""Tasks: deterministic generation, disjoint splits, oracle answers score 1.0, adversarial completions score 0."""
import json

import pytest

from harness.config import ConfigError, load_config
from harness.registry import TASKS
from tasks.arithmetic import Arithmetic, ArithmeticConfig, parse_int
from tasks.base import DataError
from tasks.countdown import check_expression
from tasks.jsonl_math import JsonlMath, JsonlMathConfig


def build(name, **kw):
    cfg = TASKS.build_config(name, kw, "task_args")
    return TASKS.get(name).obj(cfg)


@pytest.mark.parametrize("name, kw", [
    ("arithmetic", {}),
    ("arithmetic", {"operators": "+-*", "operands": 3, "min_digits": 1, "max_digits": 2}),
    ("countdown", {}),
    ("countdown", {"operators": "+-*/", "min_numbers": 4, "max_numbers": 5}),
    ("shortest_path", {}),
    ("shortest_path", {"min_nodes": 9, "max_nodes": 12, "edge_factor": 1.5, "min_hops": 3, "max_hops": 5}),
])
def test_deterministic_disjoint_and_oracle_scores_one(name, kw):
    a, b = build(name, train_size=500, eval_size=64, **kw), build(name, train_size=500, eval_size=64, **kw)
    for split in ("train", "eval"):
        assert [p.prompt for p in a.problems(split)] == [p.prompt for p in b.problems(split)]
        assert all(a.score(p, p.answer) == 1.0 for p in a.problems(split))
        assert all(p.difficulty for p in a.problems(split))
    train = {p.prompt for p in a.problems("train")}
    assert len(train) == 500 and not train & {p.prompt for p in a.problems("eval")}
    other = build(name, train_size=500, eval_size=64, data_seed=1, **kw)
    assert [p.prompt for p in other.problems("train")] != [p.prompt for p in a.problems("train")]


def test_splits_do_not_depend_on_sizes():
    small, big = build("countdown", train_size=100, eval_size=10), build("countdown", train_size=400, eval_size=40)
    assert [p.prompt for p in big.problems("train")[:100]] == [p.prompt for p in small.problems("train")]


def test_arithmetic_verifier():
    t = build("arithmetic", train_size=10, eval_size=4)
    p = t.problems("train")[0]
    v = p.meta["value"]
    assert t.score(p, f" {v} ") == 1.0
    for bad in [str(v + 1), f"{v}.0", f"{v}{v}", "", "-", "abc", f"{v} {v}", "1e3", "\x00", "9" * 100]:
        assert t.score(p, bad) == 0.0, bad
    assert parse_int("-12") == -12 and parse_int("+12") is None


def test_arithmetic_precedence():
    t = Arithmetic(ArithmeticConfig(operators="*-", operands=3, min_digits=1, max_digits=1, train_size=50, eval_size=8))
    for p in t.problems("train"):
        a, op1, b, op2, c = p.prompt[0], p.prompt[1], p.prompt[2], p.prompt[3], p.prompt[4]
        x, y, z = int(a), int(b), int(c)
        expected = {("*", "*"): x * y * z, ("*", "-"): x * y - z, ("-", "*"): x - y * z, ("-", "-"): x - y - z}[(op1, op2)]
        assert p.meta["value"] == expected


ADVERSARIAL = [
    "__import__('os').system('true')",
    "open('/etc/passwd')",
    "(lambda: 24)()",
    "3**3",
    "24 if 1 else 0",
    "[24][0]",
    "'24'",
    "24.0",
    "0x18",
    "-(-24)",
    "1/0",
    "(" * 500 + "1" + ")" * 500,
    "9" * 5000,
    "3*8; 1",
    "3*8\n",  # fine text but numbers not given
    "\x00",
    "🙂",
    "",
    "3 * 8 = 24",
    "True*24",
]


def test_countdown_verifier_adversarial():
    numbers, target = [3, 8, 5], 24
    assert check_expression("3*8", numbers, target)
    assert check_expression(" (5-3)*8+8 ", numbers + [8], target)
    assert not check_expression("(5-3)*8+8", numbers, target)  # the second 8 is not given
    for text in ADVERSARIAL:
        assert not check_expression(text, [3, 8], 24) or text.strip() == "3*8", text
    assert not check_expression("3*8", [3, 5], 24)  # 8 not given
    assert not check_expression("3*3*8/3", [3, 8], 24)  # 3 used more often than given
    assert not check_expression("7/2*2", [7, 2, 2], 7)  # inexact division
    assert check_expression("8/2*3", [8, 2, 3], 12)  # exact division


def test_countdown_garbage_model_output_never_raises():
    t = build("countdown", train_size=20, eval_size=8)
    p = t.problems("train")[0]
    import random

    rng = random.Random(0)
    alphabet = "0123456789+-*/() .,|:=abc\\\"'x_[]{}"
    for _ in range(3000):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        assert t.score(p, s) in (0.0, 1.0)


def test_exhausted_knobs_are_a_clear_error():
    with pytest.raises(ConfigError, match="distinct problems exist"):
        Arithmetic(ArithmeticConfig(min_digits=1, max_digits=1, train_size=500, eval_size=10))


def test_jsonl_math_loads_and_verifies(tmp_path):
    f = tmp_path / "gsm.jsonl"
    rows = [{"question": f"What is {i} + {i}?", "answer": f"{i} plus {i} #### {2 * i}"} for i in range(20)]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    t = JsonlMath(JsonlMathConfig(train_path=str(f), eval_size=5))
    assert len(t.problems("train")) == 15 and len(t.problems("eval")) == 5
    p = t.problems("eval")[0]
    gold = p.meta["gold"]
    assert t.score(p, gold) == 1.0
    assert t.score(p, f"The answer is $\\boxed{{{gold}}}$") == 1.0
    assert t.score(p, "no idea") == 0.0
    assert t.score(p, "\\frac{") == 0.0
    assert p.prompt.endswith("\nAnswer: ")


@pytest.mark.parametrize("content, message", [
    ('{"question": "a", "answer": "1"}\n{"question": "b", "answer": \n', "bad.jsonl:2: not valid JSON"),
    ('{"question": "a", "answer": "1"}\n\n[1, 2]\n', "bad.jsonl:3: expected a JSON object"),
    ('{"question": "a"}\n', "bad.jsonl:1: missing field 'answer'"),
    ('{"question": {"x": 1}, "answer": "1"}\n', "bad.jsonl:1: field 'question' must be text"),
    ("", "bad.jsonl: no problems"),
])
def test_jsonl_malformed_lines_name_file_and_line(tmp_path, content, message):
    f = tmp_path / "bad.jsonl"
    f.write_text(content)
    with pytest.raises(DataError, match=message.replace("[", r"\[")):
        JsonlMath(JsonlMathConfig(train_path=str(f), eval_size=0))


def test_jsonl_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        JsonlMath(JsonlMathConfig(train_path=str(tmp_path / "nope.jsonl")))
    with pytest.raises(ConfigError, match="task_args.train_path: required"):
        load_config(None, ["task=jsonl_math", "task_args.train_path="])


def test_shortest_path_verifier_against_brute_force_path_enumeration():
    """Score 1 iff the text is a start-to-goal walk along edges no longer than every other such walk,
    checked against every string over the graph's letters up to the path length + 1 (and some noise)."""
    import itertools
    import random

    from tasks.shortest_path import hops

    t = build("shortest_path", train_size=40, eval_size=8)
    rng = random.Random(0)
    for p in t.problems("train")[:12]:
        m = p.meta
        edges = {frozenset(e) for e in m["edges"]}
        letters = sorted({c for e in m["edges"] for c in e})
        assert hops(edges, m["start"])[m["goal"]] == m["hops"] == len(p.answer) - 1
        shortest = set()
        for k in range(1, m["hops"] + 3):
            for walk in itertools.product(letters, repeat=k):
                ok = walk[0] == m["start"] and walk[-1] == m["goal"] and all(frozenset(ab) in edges for ab in zip(walk, walk[1:]) if ab[0] != ab[1]) \
                    and all(a != b for a, b in zip(walk, walk[1:]))
                if ok and not shortest or ok and len(walk) == len(next(iter(shortest))):
                    shortest.add("".join(walk))
                text = "".join(walk)
                assert t.score(p, text) == float(text in shortest), (p.prompt, text)
        assert p.answer in shortest and len(shortest) >= 1
        for bad in ["", " ", p.answer + p.answer[-1], p.answer[::-1], p.answer.upper(), p.answer + "\n" + p.answer, "\x00" * 5,
                    " ".join(p.answer), "".join(rng.choice("abc>|: ") for _ in range(rng.randint(0, 30)))]:
            assert t.score(p, bad) == float(bad.strip() in shortest), bad
        assert t.score(p, f"  {p.answer} ") == 1.0


def test_shortest_path_knobs_are_checked():
    with pytest.raises(ConfigError, match="task_args.min_hops/max_hops"):
        TASKS.build_config("shortest_path", {"min_hops": 2, "max_hops": 9}, "task_args")
    with pytest.raises(ConfigError, match="task_args.edge_factor"):
        TASKS.build_config("shortest_path", {"edge_factor": 5.0}, "task_args")
