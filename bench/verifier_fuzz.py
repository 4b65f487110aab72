"""Fuzz every verifier: >= 10^5 generated completions each, adversarial families included. A verifier must
return 0 or 1, never raise, and stay fast on every input.

    python bench/verifier_fuzz.py [--n 100000] [--seed 0]

Families: random printable text, random text over the task's own alphabet, mutations of the oracle answer
(one character changed, inserted, deleted, duplicated, padded), long strings, deep nesting, huge numbers,
unicode look-alikes, and (math) LaTeX that makes sympy compute for minutes (power towers, factorials,
nested fractions). Prints per verifier: inputs, rewarded share (the oracle answer is 10% of the inputs,
padded ones more), exceptions, total and slowest call time (on a loaded machine the slowest of 10^5 calls is
a preemption, not the verifier); for the bounded math verifier, calls go in batches of 500 (as a training step scores them) and the slowest
single call is timed on the adversarial family one at a time.
"""
from __future__ import annotations

import argparse
import random
import string
import time

from harness.registry import TASKS
from tasks import mathcheck

ADVERSARIAL = [
    " " * 5000, "(" * 5000 + ")" * 5000, "9" * 5000, "-" * 3000 + "1", "1" + "0" * 4400, "١٢٣", "１２", "𝟙𝟚", "\x00", "\ufeff42",
    "1e9999", "nan", "inf", "True", "__import__('os')", "lambda: 1", "[1]*10**9", "2**2**2**2**2", "9**9**9", "1/0",
    "(" * 200 + "1" + ")" * 200, "1+" * 2000 + "1", "AB" * 3000, "A" * 100_000, "\\boxed{" * 300 + "1" + "}" * 300,
]
MATH_BOMBS = ["$10^{10^{10}}$", "$9!!!!$", "$" + "\\frac{1}{" * 200 + "2" + "}" * 200 + "$", "$2^{2^{2^{2^{2^{2}}}}}$",
              "$\\sqrt[" + "9" * 50 + "]{2}$", "$(1+x)^{100000}$", "$\\binom{10^{9}}{10^{5}}$", "$99999999!$",
              "$\\int_0^1 x^{x^{x^{x}}} dx$", "$\\sum_{n=1}^{10^{12}} n$", "$" + "{" * 500 + "1" + "}" * 500 + "$"]


def mutations(rng: random.Random, answer: str, alphabet: str) -> str:
    s = list(answer)
    kind = rng.randrange(6)
    if kind == 0 and s:
        s[rng.randrange(len(s))] = rng.choice(alphabet)
    elif kind == 1:
        s.insert(rng.randrange(len(s) + 1), rng.choice(alphabet))
    elif kind == 2 and s:
        del s[rng.randrange(len(s))]
    elif kind == 3:
        s = s * rng.randint(2, 4)
    elif kind == 4:
        return " " * rng.randint(0, 400) + answer + rng.choice(["", ".", "\n", " " * 300])
    else:
        return answer + rng.choice(alphabet) * rng.randint(1, 50)
    return "".join(s)


def inputs(rng: random.Random, problems: list, n: int, alphabet: str):
    """(problem, text) pairs: a mix of the families; every ADVERSARIAL string once per 1000 inputs."""
    for i in range(n):
        p = problems[i % len(problems)]
        family = i % 10
        if family < 3:
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        elif family < 6:
            text = mutations(rng, p.answer, alphabet)
        elif family < 8:
            text = "".join(rng.choice(string.printable) for _ in range(rng.randint(0, 60)))
        elif family == 8:
            text = p.answer
        else:
            text = ADVERSARIAL[(i // 10) % len(ADVERSARIAL)]
        yield p, text


def fuzz_plain(name: str, n: int, seed: int, alphabet: str, **task_args) -> None:
    task = TASKS.get(name).obj(TASKS.build_config(name, {"train_size": 200, "eval_size": 16, **task_args}, "task_args"))
    problems = task.problems("train")
    rng = random.Random(seed)
    rewarded = errors = 0
    slowest, total, worst = 0.0, 0.0, ""
    for p, text in inputs(rng, problems, n, alphabet):
        t0 = time.perf_counter()
        try:
            r = task.score(p, text)
        except Exception:  # noqa: BLE001  counted: a verifier must never raise
            errors += 1
            continue
        dt = time.perf_counter() - t0
        total += dt
        if dt > slowest:
            slowest, worst = dt, text[:40]
        assert r in (0.0, 1.0), (name, text[:80], r)
        rewarded += r == 1.0
    print(f"{name:<22} {n:>7} inputs  rewarded {rewarded / n:6.1%}  exceptions {errors}  "
          f"total {total:6.2f} s  slowest {1e3 * slowest:7.2f} ms ({worst!r})", flush=True)


def fuzz_math(n: int, seed: int) -> None:
    golds = ["3\\sqrt{3}", "\\frac{3}{4}", "2^{100}", "5\\pi", "(2, 5]", "x^2+1", "42", "-7", "3+4i", "\\{1,2\\}"]
    rng = random.Random(seed)
    alphabet = "0123456789+-*/^(){}[]$\\fracsqrtpi ,.=x"
    pairs = []
    for i in range(n):
        g = golds[i % len(golds)]
        family = i % 10
        if family < 3:
            text = "$" + mutations(rng, g, alphabet) + "$"
        elif family < 6:
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        elif family < 8:
            text = f"The answer is $\\boxed{{{g}}}$." if family == 6 else "".join(rng.choice(string.printable) for _ in range(rng.randint(0, 60)))
        elif family == 8:
            text = MATH_BOMBS[(i // 10) % len(MATH_BOMBS)]
        else:
            text = ADVERSARIAL[(i // 10) % len(ADVERSARIAL)]
        pairs.append((g, text))
    t0 = time.perf_counter()
    ok_total = timeouts = 0
    slowest_batch = 0.0
    for start in range(0, n, 500):
        chunk = pairs[start : start + 500]
        b0 = time.perf_counter()
        ok, t = mathcheck.check_batch([g for g, _ in chunk], [x for _, x in chunk])
        slowest_batch = max(slowest_batch, time.perf_counter() - b0)
        ok_total += sum(ok)
        timeouts += t
    total = time.perf_counter() - t0
    single = []
    for text in MATH_BOMBS + ADVERSARIAL:
        s0 = time.perf_counter()
        mathcheck.check_batch(["5"], [text])
        single.append((time.perf_counter() - s0, text[:30]))
    worst = max(single)
    print(f"{'jsonl_math (bounded)':<22} {n:>7} inputs  rewarded {ok_total / n:6.1%}  exceptions 0  timeouts {timeouts} "
          f"(limit {mathcheck.TIMEOUT_S} s)  total {total:6.1f} s  slowest batch of 500 {slowest_batch:5.2f} s  "
          f"slowest single call {worst[0]:5.2f} s ({worst[1]!r})", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    fuzz_plain("arithmetic", args.n, args.seed, "0123456789- +")
    fuzz_plain("countdown", args.n, args.seed, "0123456789+-*/() ")
    fuzz_plain("shortest_path", args.n, args.seed, "ABCDEFGHIJKL ")
    fuzz_plain("geometry", args.n, args.seed, "ABCDE() .0123456789")
    fuzz_plain("geometry", args.n, args.seed, "0123456789 .-", choices=0)
    fuzz_math(args.n, args.seed)


if __name__ == "__main__":
    main()
