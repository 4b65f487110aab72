"""Writes easy_gsm.jsonl beside this file: 300 one-step word problems in GSM8K's format (question; answer with
the worked step and `#### n`), easy enough that a 135M instruct model solves some at the start of RL.

    python sweeps/data/easy_gsm.py
"""
import json
import random
from pathlib import Path

TEMPLATES = [
    ("{name} has {a} apples. {pron} buys {b} more apples. How many apples does {name} have now?", lambda a, b: (a + b, f"{a} + {b} = <<{a}+{b}={a + b}>>{a + b}")),
    ("A box holds {s} pencils. {b} pencils are taken out. How many pencils are left in the box?", lambda a, b: (a, f"{a + b} - {b} = <<{a + b}-{b}={a}>>{a}")),
    ("Each bag has {a} marbles. How many marbles are in {b} bags?", lambda a, b: (a * b, f"{a} * {b} = <<{a}*{b}={a * b}>>{a * b}")),
    ("{name} reads {a} pages every day. How many pages does {name} read in {b} days?", lambda a, b: (a * b, f"{a} * {b} = <<{a}*{b}={a * b}>>{a * b}")),
    ("{b} children share {p} stickers equally. How many stickers does each child get?", lambda a, b: (a, f"{a * b} / {b} = <<{a * b}/{b}={a}>>{a}")),
    ("{name} had {s} dollars and spent {b} dollars on lunch. How many dollars does {name} have left?", lambda a, b: (a, f"{a + b} - {b} = <<{a + b}-{b}={a}>>{a}")),
]
NAMES = [("Tom", "He"), ("Sara", "She"), ("Ali", "He"), ("Mia", "She"), ("Ben", "He"), ("Lena", "She")]


def main() -> None:
    rng = random.Random(0)
    rows, seen = [], set()
    while len(rows) < 300:
        template, solve = rng.choice(TEMPLATES)
        (name, pron), a, b = rng.choice(NAMES), rng.randint(2, 12), rng.randint(2, 9)
        question = template.format(name=name, pron=pron, a=a, b=b, s=a + b, p=a * b)
        if question in seen:
            continue
        seen.add(question)
        value, work = solve(a, b)
        rows.append({"question": question, "answer": f"{work}.\n#### {value}"})
    out = Path(__file__).with_name("easy_gsm.jsonl")
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{out}: {len(rows)} problems")


if __name__ == "__main__":
    main()
