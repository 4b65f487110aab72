"""sGPO: profile difficulty once under the initial policy, filter, size groups by 1/p, train easy to hard.

"Trading Inference FLOPs for Training Efficiency in RLVR" (arXiv 2606.08854). Spec: docs/methods/sgpo.md.

1. Profiling (first step): N samples of every training prompt under pi_0; p(q) = successes / N. Charged
   to the ledger as purpose `profile` (the method's whole point is that this pays for itself).
2. Filtering: drop p > tau_easy (trivial); keep a random fraction alpha of p = 0 (unsolved).
3. Group size: G(q) = clip(2^floor(log2(1/p)), G_min, G_max); unsolved prompts take their phase's size.
4. Curriculum: phases g = G_min, 2 G_min, ..., G_max (easy -> hard). Phase-advance rule (the paper's
   "to convergence" criterion is not recoverable): a phase lasts `phase_epochs` passes over its prompts.
   After the last phase, training continues on all kept prompts at their own group sizes (mixed batches).
Each component is a switch: `filter`, `adaptive_size`, `curriculum`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from algorithms.grpo import GRPO, GRPOConfig
from harness.config import ConfigError, doc
from harness.core.rollouts import RolloutBatch, effective_groups
from harness.core.stages import Diagnostic
from harness.registry import ALGORITHMS


def bucket_size(p_hat: float, g_min: int, g_max: int) -> int:
    """clip(2^floor(log2(1/p)), g_min, g_max); unsolved (p = 0) prompts get g_max."""
    if p_hat <= 0:
        return g_max
    return int(min(g_max, max(g_min, 2 ** math.floor(math.log2(1 / p_hat) + 1e-9))))


@dataclass
class SGPOConfig(GRPOConfig):
    profile_samples: int = doc("N: samples per training prompt in the profiling pass under pi_0.", 8)
    profile_chunk: int = doc("Prompts per generation call while profiling (memory only).", 256)
    tau_easy: float = doc("Prompts with profiled success rate p > tau_easy are dropped as trivial.", 0.75)
    unsolved_keep: float = doc("Fraction alpha of unsolved (p = 0) prompts kept.", 0.10)
    group_min: int = doc("Smallest group size G_min (a power of two).", 2)
    group_max: int = doc("Largest group size G_max (a power of two).", 8)
    filter: bool = doc("Drop trivial prompts and most unsolved ones (off: train on all).", True)
    adaptive_size: bool = doc("Group size from 1/p (off: train.group_size for every prompt).", True)
    curriculum: bool = doc("Easy-to-hard phases by group size (off: mixed group sizes in every batch).", True)
    phase_epochs: float = doc("Passes over a phase's prompts before advancing to the next phase.", 2.0)
    drop_zero_var: bool = doc("Drop zero-variance groups after generation (DAPO-style; not charged as trained).", False)

    def check_run(self, run) -> None:
        if not self.adaptive_size:  # adaptive sizes come from group_min/group_max, not train.group_size
            super().check_run(run)

    def validate(self) -> None:
        super().validate()
        for name in ("group_min", "group_max"):
            v = getattr(self, name)
            if v < 2 or v & (v - 1):
                raise ConfigError(f"algo_args.{name}: need a power of two >= 2, got {v}")
        if self.group_min > self.group_max:
            raise ConfigError(f"algo_args.group_min: {self.group_min} > group_max {self.group_max}")
        if not 0 <= self.tau_easy <= 1 or not 0 <= self.unsolved_keep <= 1:
            raise ConfigError("algo_args.tau_easy / unsolved_keep: need values in [0, 1]")
        if self.profile_samples < 1 or self.phase_epochs <= 0:
            raise ConfigError("algo_args.profile_samples / phase_epochs: must be > 0")


@ALGORITHMS.register(
    "sgpo",
    config=SGPOConfig(),
    description="sGPO: offline difficulty profiling -> filtering, 1/p group sizes, easy-to-hard curriculum",
    paper="arXiv:2606.08854",
)
class SGPO(GRPO):
    cfg: SGPOConfig
    diagnostics = {
        **GRPO.diagnostics,
        **{f"sgpo/{k}_prompts": Diagnostic(f"{k} prompts at profiling") for k in ("profiled", "trivial", "unsolved", "learnable", "kept")},
        "sgpo/phase": Diagnostic("curriculum phase"),
        **{f"sgpo/group_size_{k}": Diagnostic(f"{k} group size this step") for k in ("mean", "min", "max")},
    }

    def __init__(self, cfg: SGPOConfig):
        super().__init__(cfg)
        self.p_hat: torch.Tensor | None = None  # [num train problems] profiled success rates
        self.phases: list[tuple[int, list[int]]] = []  # (group size, problem indices) in training order
        self.phase = 0
        self.cursor = 0  # position in the current phase's shuffled order

    # -- profiling, filtering, allocation ------------------------------------------------------------------------
    def _profile(self, ctx) -> None:
        c, N = self.cfg, self.cfg.profile_samples
        p = torch.zeros(ctx.num_train_problems)
        for r, start in enumerate(range(0, ctx.num_train_problems, c.profile_chunk)):
            idx = torch.arange(start, min(start + c.profile_chunk, ctx.num_train_problems))
            b = ctx.rollout(idx, [N] * len(idx), round_index=1000 + r)  # rounds never collide with training
            ctx.discard(b, "profile")
            solved = (b.rewards >= 1.0).float().view(len(idx), N)
            p[idx] = solved.mean(-1)
        self.p_hat = p
        self.phases = self._build_phases(ctx, p)
        trivial, unsolved = int((p > c.tau_easy).sum()), int((p == 0).sum())
        ctx.log(**{
            "sgpo/profiled_prompts": len(p),
            "sgpo/trivial_prompts": trivial,
            "sgpo/unsolved_prompts": unsolved,
            "sgpo/learnable_prompts": len(p) - trivial - unsolved,
            "sgpo/kept_prompts": len({i for _, ids in self.phases for i in ids}),
        })

    def _build_phases(self, ctx, p: torch.Tensor) -> list[tuple[int, list[int]]]:
        c = self.cfg
        rng = np.random.default_rng(int(ctx.rng.integers(2**62)))
        if c.filter:
            learn = ((p > 0) & (p <= c.tau_easy)).nonzero().squeeze(-1).tolist()
            unsolved = (p == 0).nonzero().squeeze(-1).tolist()
        else:
            learn, unsolved = list(range(len(p))), []
        buckets = [bucket_size(float(x), c.group_min, c.group_max) for x in p]  # difficulty clusters
        n_uns = math.ceil(c.unsolved_keep * len(unsolved))
        if not c.curriculum:  # one mixed phase; unsolved keep G_max (adaptive) or the fixed size
            kept = learn + rng.choice(unsolved, n_uns, replace=False).tolist() if unsolved else learn
            return [(0, kept)]
        phases = []
        g = c.group_min
        while g <= c.group_max:
            cluster = [i for i in learn if buckets[i] == g]
            extra = rng.choice(unsolved, n_uns, replace=False).tolist() if unsolved else []  # fresh subset per phase
            if cluster or extra:
                phases.append((g, cluster + extra))
            g *= 2
        return phases

    # -- plan: the current phase's prompts and their group sizes -------------------------------------------------
    def plan(self, ctx) -> tuple[torch.Tensor, list[int]]:
        c = self.cfg
        if self.p_hat is None:
            self._profile(ctx)
        if not self.phases:
            raise ConfigError("sGPO: profiling kept no prompts (all trivial?); lower algo_args.tau_easy or turn filter off")
        n = ctx.train_cfg.prompts_per_step
        g, ids = self.phases[min(self.phase, len(self.phases) - 1)]
        if self.phase >= len(self.phases):  # curriculum done: all kept prompts at their own sizes
            ids = sorted({i for _, x in self.phases for i in x})
            g = 0
        order = np.random.default_rng([ctx.seed, self.phase]).permutation(ids)
        take = [int(order[(self.cursor + j) % len(order)]) for j in range(min(n, len(order)))]
        self.cursor += len(take)
        idx = torch.tensor(take, dtype=torch.long)
        if g and c.adaptive_size:  # within a phase every prompt (unsolved ones too) uses the phase's size
            sizes = [g] * len(take)
        elif c.adaptive_size:
            sizes = [bucket_size(float(self.p_hat[i]), c.group_min, c.group_max) for i in take]
        else:
            sizes = [ctx.train_cfg.group_size] * len(take)
        ctx.log(**{"sgpo/phase": self.phase, "sgpo/group_size_mean": float(np.mean(sizes)),
                   "sgpo/group_size_min": min(sizes), "sgpo/group_size_max": max(sizes)})
        return idx, sizes

    def select(self, ctx, batch: RolloutBatch) -> RolloutBatch:
        if not self.cfg.drop_zero_var:
            return batch
        keep = effective_groups(batch.rewards, batch.group_ids)[batch.group_ids]
        ctx.discard(batch.index(~keep), "discarded")
        return batch.index(keep)

    def after_step(self, ctx, batch: RolloutBatch) -> None:
        """Advance the phase once it has had `phase_epochs` passes over its prompts."""
        if self.phase < len(self.phases):
            size = len(self.phases[self.phase][1])
            if self.cursor >= self.cfg.phase_epochs * size:
                self.phase += 1
                self.cursor = 0

    def state_dict(self) -> dict:
        return {"p_hat": self.p_hat, "phases": self.phases, "phase": self.phase, "cursor": self.cursor}

    def load_state_dict(self, state: dict) -> None:
        self.p_hat, self.phases = state["p_hat"], state["phases"]
        self.phase, self.cursor = state["phase"], state["cursor"]
