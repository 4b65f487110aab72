"""Compute ledger: every rollout, token, FLOP and second a run spends, so algorithms compare on equal footing.

FLOP formula (Kaplan et al. 2020, attention term dropped): with N = non-embedding parameters,
    a token generated or forwarded without gradient costs 2N FLOPs,
    a token trained on (forward + backward) costs 6N FLOPs.
Generation charges prompt + completion tokens per rollout (each rollout re-reads its prompt). The trainer
charges every completion token it forwards: no-grad passes (old / reference log-probs) at 2N, trained
passes at 6N. At the embedded sizes (context <= 64, d=128) the dropped attention term is < 3%.

Evaluation is recorded under `eval_*` but never charged to the budget.

Seconds are kept on two clocks per phase: the run process's CPU time (`time/*`, charged by default: other
processes on a loaded machine barely move it) and wall-clock (`wall/*`). `clock` picks which one is charged
(`budget.clock`); on a GPU the CPU idles while kernels run, so charge wall there.
"""
from __future__ import annotations

import os
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field, fields

PHASES = ("generate", "score", "select", "update", "eval", "overhead")


GENERATED = "ledger/generated/"  # + purpose: the rollouts generated for it (train, discarded, replaced, profile, ...)
RENAMED = {"rollouts_trained": "rows_trained", "rollouts_replayed": "rows_replayed"}  # fields (and ledger/ keys) written before

# the metrics-row key that holds the budget spent in each unit (what `Ledger.spent(unit)` returns)
SPENT_METRIC = {"rollouts": "ledger/rollouts", "tokens": "ledger/tokens_generated", "flops": "ledger/flops", "seconds": "time/charged"}


@dataclass
class Ledger:
    flops_per_token: float  # 2N
    rollouts_generated: int = 0
    rollouts_by_purpose: dict = field(default_factory=lambda: defaultdict(int))  # train, discarded, profile, ...
    rows_trained: int = 0  # rows of the update batches: fresh (purpose train) + replayed
    rows_replayed: int = 0  # rows replayed from an earlier step's rollouts (generated, and charged, back then)
    prompt_tokens_generated: int = 0
    completion_tokens_generated: int = 0
    tokens_forwarded: int = 0  # trainer no-grad passes
    tokens_trained: int = 0  # trainer forward+backward
    flops: float = 0.0
    seconds: dict = field(default_factory=lambda: defaultdict(float))  # by phase, on the charged clock
    wall: dict = field(default_factory=lambda: defaultdict(float))  # by phase, wall-clock
    clock: str = "cpu"  # what `seconds` counts: cpu (process CPU time) or wall
    eval_rollouts: int = 0
    eval_tokens: int = 0
    eval_flops: float = 0.0

    # -- charging ------------------------------------------------------------------------------------------------
    def charge_generation(self, rollouts: int, prompt_tokens: int, completion_tokens: int) -> None:
        self.rollouts_generated += rollouts
        self.prompt_tokens_generated += prompt_tokens
        self.completion_tokens_generated += completion_tokens
        self.flops += self.flops_per_token * (prompt_tokens + completion_tokens)

    def tag(self, purpose: str, rollouts: int) -> None:
        """Say what generated rollouts were used for; the tags of a step add up to what it generated."""
        self.rollouts_by_purpose[purpose] += rollouts

    def charge_forward(self, tokens: int) -> None:
        self.tokens_forwarded += tokens
        self.flops += self.flops_per_token * tokens

    def charge_training(self, tokens: int) -> None:
        self.tokens_trained += tokens
        self.flops += 3 * self.flops_per_token * tokens

    def record_eval(self, rollouts: int, tokens: int) -> None:
        self.eval_rollouts += rollouts
        self.eval_tokens += tokens
        self.eval_flops += self.flops_per_token * tokens

    def now(self) -> tuple[float, float]:
        """(charged clock, wall clock) readings. The CPU clock includes finished child processes (the bounded
        math verifier checks answers in forked children), so their work is charged too."""
        wall = time.perf_counter()
        if self.clock != "cpu":
            return wall, wall
        children = os.times()
        return time.process_time() + children.children_user + children.children_system, wall

    def timed(self) -> tuple[float, float]:
        """Seconds accounted to phases so far, on each clock."""
        return sum(self.seconds.values()), sum(self.wall.values())

    @contextmanager
    def phase(self, name: str):
        t = self.now()
        try:
            yield
        finally:
            t1 = self.now()
            self.seconds[name] += t1[0] - t[0]
            self.wall[name] += t1[1] - t[1]

    def add_overhead(self, start: tuple[float, float], timed_at_start: tuple[float, float]) -> None:
        """Charge what elapsed since `start` outside the timed phases (stage logic, bookkeeping) as overhead."""
        end, timed = self.now(), self.timed()
        for i, book in enumerate((self.seconds, self.wall)):
            book["overhead"] += max(0.0, (end[i] - start[i]) - (timed[i] - timed_at_start[i]))

    # -- reading -------------------------------------------------------------------------------------------------
    @property
    def tokens_generated(self) -> int:
        return self.prompt_tokens_generated + self.completion_tokens_generated

    @property
    def charged_seconds(self) -> float:
        return sum(v for k, v in self.seconds.items() if k != "eval")

    @property
    def wall_seconds(self) -> float:
        """Wall-clock of the charged phases (evaluation excluded), beside charged_seconds."""
        return sum(v for k, v in self.wall.items() if k != "eval")

    def spent(self, unit: str) -> float:
        """Budget consumed in `unit` (rollouts, tokens, flops or seconds); evaluation excluded."""
        return self.metrics()[SPENT_METRIC[unit]]

    def metrics(self) -> dict[str, float]:
        out = {
            "ledger/rollouts": self.rollouts_generated,
            "ledger/rows_trained": self.rows_trained,
            "ledger/rows_replayed": self.rows_replayed,
            "ledger/prompt_tokens": self.prompt_tokens_generated,
            "ledger/completion_tokens": self.completion_tokens_generated,
            "ledger/tokens_generated": self.tokens_generated,
            "ledger/tokens_forwarded": self.tokens_forwarded,
            "ledger/tokens_trained": self.tokens_trained,
            "ledger/flops": self.flops,
            "ledger/eval_rollouts": self.eval_rollouts,
            "ledger/eval_flops": self.eval_flops,
        }
        out.update({f"{GENERATED}{k}": v for k, v in sorted(self.rollouts_by_purpose.items())})
        out.update({f"time/{k}": self.seconds.get(k, 0.0) for k in PHASES})
        out["time/charged"] = self.charged_seconds
        out.update({f"wall/{k}": self.wall.get(k, 0.0) for k in PHASES})
        out["wall/charged"] = self.wall_seconds
        return out

    def state_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**d, "rollouts_by_purpose": dict(self.rollouts_by_purpose), "seconds": dict(self.seconds), "wall": dict(self.wall)}

    @classmethod
    def from_state(cls, state: dict) -> Ledger:
        books = ("rollouts_by_purpose", "seconds", "wall")
        state = {RENAMED.get(k, k): v for k, v in state.items()}
        led = cls(**{k: v for k, v in state.items() if k not in books})
        for book in books:
            getattr(led, book).update(state.get(book, {}))
        return led
