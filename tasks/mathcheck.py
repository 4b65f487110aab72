"""math-verify, bounded: golds parsed as LaTeX, and every check limited in length, time and memory.

math-verify needs math delimiters to read LaTeX: a bare MATH gold such as `3\\sqrt{3}` parses as its leading
number (so `3` would be rewarded), hence `gold_target` wraps golds in `$...$`. A few short strings make sympy
compute for minutes or gigabytes (`$10^{10^{10}}$`, `$9!!!!$`); math-verify's own alarm works only on the main
thread and cannot stop C code, so `check_batch` runs the checks in forked children that are killed at a
per-item deadline (a timed-out item scores 0 and is counted). Children share nothing but a pipe.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import re
import resource
import time
from collections import deque
from functools import lru_cache
from multiprocessing.connection import wait

MAX_COMPLETION_CHARS = 8_000  # longer completions score 0 unparsed (256 tokens of text are ~1-2k chars)
MAX_GOLD_CHARS = 1_000
TIMEOUT_S = 1.0  # per item, parse + verify (a normal check takes milliseconds)
MAX_NESTING = 24  # deeper {}/() nesting than any answer needs
# shapes that make sympy compute without bound: an exponent holding an exponent (towers), chained or large
# factorials, five-digit exponents, binomials of huge numbers. A completion showing one scores 0 unparsed
# (unless the gold shows one too); the time limit catches whatever these miss.
COSTLY = re.compile(r"\^\s*\{[^{}]*\^|\^\s*\([^()]*\^|\*\*\s*\(?[\w.]+\)?\s*\*\*|!\s*!|\d{3,}\s*!|\^\s*\{?\s*-?\d{5,}|\\binom\s*\{\s*(\d{4,}|[^{}]*\^)")
MEMORY_BYTES = 2 << 30  # address space a checking child may add to the parent's

logging.getLogger("math_verify").setLevel(logging.ERROR)  # it warns that we bound time ourselves, and logs failures whole


@lru_cache(maxsize=65_536)
def gold_target(gold: str) -> tuple:
    """Parsed gold answer: LaTeX unless it already carries delimiters ($, \\(, \\[, \\boxed); numbers as numbers."""
    from math_verify import parse

    text = gold.strip()
    if len(text) > MAX_GOLD_CHARS:
        raise ValueError(f"gold answer longer than {MAX_GOLD_CHARS} characters")
    delimited = any(d in text for d in ("$", "\\(", "\\[", "\\boxed"))
    parsed = parse(text if delimited else f"${text}$", parsing_timeout=None)
    return tuple(parsed) if parsed else tuple(parse(text, parsing_timeout=None))


def check(gold: str, completion: str) -> bool:
    """math-verify's equivalence of the completion's final answer and the gold; never raises; unbounded in time
    (call through `check_batch` on untrusted text)."""
    from math_verify import parse, verify

    if len(completion) > MAX_COMPLETION_CHARS or (costly(completion) and not costly(gold)):
        return False
    try:
        target = list(gold_target(gold))
        return bool(target) and bool(verify(target, parse(completion, parsing_timeout=None), timeout_seconds=None))
    except Exception:  # math-verify/sympy raise on odd LaTeX; garbage scores 0
        return False


def costly(text: str) -> bool:
    """Cheap pre-check: nesting deeper than MAX_NESTING or a COSTLY shape (see above)."""
    depth = peak = 0
    for ch in text:
        if ch in "{(":
            depth += 1
            peak = max(peak, depth)
        elif ch in "})":
            depth -= 1
    return peak > MAX_NESTING or COSTLY.search(text) is not None


def _child(pairs: list[tuple[str, str]], todo: list[int], conn, memory: int) -> None:
    """Forked child: check pairs[i] for i in todo, in order, sending (i, ok) after each."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _address_space() + memory
    if hard == resource.RLIM_INFINITY or limit < hard:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    for i in todo:
        try:
            ok = check(*pairs[i])
        except MemoryError:
            ok = False
        conn.send((i, ok))
    conn.close()


def _address_space() -> int:
    """Current virtual memory size of this process in bytes (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


class _Child:
    """A forked checker working through `todo`; todo[0] is its current item, due by `deadline`."""

    def __init__(self, pairs: list[tuple[str, str]], todo: list[int], memory: int, timeout_s: float):
        ctx = mp.get_context("fork")  # fork: children start in milliseconds with the parsed golds cached
        self.conn, send = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_child, args=(pairs, todo, send, memory), daemon=True)
        self.proc.start()
        send.close()
        self.todo, self.deadline = deque(todo), time.monotonic() + timeout_s

    def stop(self) -> None:
        self.proc.kill()
        self.proc.join()
        self.conn.close()


def check_batch(golds: list[str], completions: list[str], timeout_s: float = TIMEOUT_S, workers: int = 2, memory: int = MEMORY_BYTES) -> tuple[list[bool], int]:
    """check(golds[i], completions[i]) for every i, each item bounded by timeout_s seconds and `memory` bytes,
    spread over `workers` children: ([N] results, number of items that overran). An overrunning child is
    killed, its item scores False and a fresh child takes the rest of its share, so one slow item delays the
    batch by at most timeout_s."""
    import math_verify  # noqa: F401  imported once here, not in every child

    for gold in set(golds):
        gold_target(gold)  # parsed in the parent: trusted data, cached for the children
    pairs = list(zip(golds, completions))
    results = [False] * len(pairs)
    timeouts = 0
    running = [_Child(pairs, list(range(w, len(pairs), workers)), memory, timeout_s) for w in range(min(workers, len(pairs)))]
    while running:
        wait([c.conn for c in running], timeout=max(0.0, min(c.deadline for c in running) - time.monotonic()))
        still = []
        for c in running:
            try:
                got = c.conn.recv() if c.conn.poll() else None
            except EOFError:  # the child died (e.g. out of memory) on its current item
                got = False
            if got:
                results[got[0]] = got[1]
                c.todo.popleft()
                c.deadline = time.monotonic() + timeout_s
            if not c.todo:
                c.stop()
            elif got is False or time.monotonic() >= c.deadline:
                c.stop()
                timeouts += 1
                c.todo.popleft()  # the item it was stuck on scores False
                if c.todo:
                    still.append(_Child(pairs, list(c.todo), memory, timeout_s))
            else:
                still.append(c)
        running = still
    return results, timeouts
