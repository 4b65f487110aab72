"""The stage contract between the trainer and an algorithm plugin (docs/design.md has the one-page version).

An algorithm is one class registered in ALGORITHMS. `GRPO` (algorithms/grpo.py) implements every stage; a new
method subclasses it and overrides only what it changes:

    needs()                  -> Needs         what the update must compute for loss() and which ctx calls it makes
    collect(ctx)             -> RolloutBatch  generate and score this step's rollouts (ctx.rollout)
    select(ctx, batch)       -> RolloutBatch  the rows to train on; every other generated row goes to ctx.discard
    advantages(ctx, batch)   -> [B] tensor    one advantage per selected row
    loss(LossInputs)         -> (scalar, {name: scalar tensor})   one mini-batch of the update
    after_step(ctx, batch)   -> None          bookkeeping once the update is done (buffers, curricula)
    state_dict(), load_state_dict(state)      what a resume needs (plain data and tensors)
    diagnostics: {name: Diagnostic}           every metric the algorithm adds to a step's row (ctx.log, loss stats)

The trainer stays behind `StepContext`: a stage sees the step's seed and randomness, the train config, and the
calls below, each of which charges the ledger. Nothing else of the trainer is reachable from a stage.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from harness.core.rollouts import RolloutBatch, cat_batches

if TYPE_CHECKING:
    from harness.config import TrainConfig


@dataclass(frozen=True)
class Needs:
    """What an algorithm asks of the trainer for a run (a function of its config)."""

    ref_model: bool = False  # keep a frozen copy of the initial policy: LossInputs.ref_logp is set
    entropy: bool = False  # per-token entropy of the current policy: LossInputs.entropy is set
    rescoring: bool = False  # ctx.score: extra no-grad forward passes of the current policy (charged)
    replay: bool = False  # select may return rows generated at earlier steps (batch.replayed)


@dataclass(frozen=True)
class Diagnostic:
    """A metric a run adds to its step rows: a label for figures, and whether the report plots it over training."""

    label: str
    plot: bool = False


@dataclass
class LossInputs:
    """Everything the loss of one mini-batch of B rows and L completion positions may read.

    batch:          the mini-batch (RolloutBatch; batch.completion_mask [B, L] marks the tokens)
    advantages:     [B]
    logp:           [B, L] log-probs of the current policy, with gradient
    old_logp:       [B, L] pi_old, frozen before the first update (logp.detach() in a single-pass update)
    ref_logp:       [B, L] the initial policy's log-probs, only when needs().ref_model, else None
    entropy:        [B, L] the current policy's entropy, only when needs().entropy, else None
    engine_weights: [B, L] stop-gradient weights of the policy-gradient term for the rollout engine's mismatch
                    (sampler.correction; 1 on replayed rows), None when the correction is off
    norm_len:       the completion cap, Dr.GRPO's constant length normaliser
    """

    batch: RolloutBatch
    advantages: torch.Tensor
    logp: torch.Tensor
    old_logp: torch.Tensor
    ref_logp: torch.Tensor | None
    entropy: torch.Tensor | None
    engine_weights: torch.Tensor | None
    norm_len: int


@dataclass
class StepContext:
    """What the stages of one step may use. The callables are the trainer's, each charging the ledger."""

    step: int
    seed: int  # the run's seed (for orders that must not depend on the step)
    rng: np.random.Generator  # derived from (seed, step): identical after a resume
    train_cfg: TrainConfig
    num_train_problems: int
    needs: Needs
    pad_id: int
    generate: Callable[[torch.Tensor, list[int], int], RolloutBatch]  # (problem_idx, group_sizes, round_index)
    rescore: Callable[[RolloutBatch], torch.Tensor]
    tag: Callable[[str, int], None]  # (purpose, rollouts) into the ledger
    logged: dict[str, float] = field(default_factory=dict)

    def rollout(self, problem_idx: torch.Tensor, group_sizes: list[int], round_index: int = 0) -> RolloutBatch:
        """Generate and score group_sizes[i] rollouts of train problem problem_idx[i]; charged to the ledger.
        Methods that generate several times in one step (DAPO re-sampling) pass a new round_index each time."""
        return self.generate(problem_idx, group_sizes, round_index)

    def cat(self, batches: list[RolloutBatch]) -> RolloutBatch:
        """One batch from several generation rounds (re-padded, group ids offset)."""
        return cat_batches(batches, self.pad_id)

    def discard(self, batch: RolloutBatch, purpose: str) -> None:
        """Generated rollouts that will not be trained on, tagged with why (discarded, downsampled, ...)."""
        self.tag(purpose, len(batch))

    def score(self, batch: RolloutBatch) -> torch.Tensor:
        """Completion log-probs [B, L] of the current policy, no gradient; charged as a forward pass."""
        if not self.needs.rescoring:
            raise RuntimeError("ctx.score: declare Needs(rescoring=True) in the algorithm's needs()")
        return self.rescore(batch)

    def log(self, **values: float) -> None:
        """Diagnostics of this step, merged into its metrics row (names must be declared in `diagnostics`)."""
        self.logged.update(values)


# the trainer's own row metrics that reports plot over training
TRAINER_DIAGNOSTICS = {
    "train/effective_group_frac": Diagnostic("effective-group fraction (generated)", plot=True),
    "grad/norm": Diagnostic("gradient norm", plot=True),
    "replay/frac": Diagnostic("replayed fraction of the batch", plot=True),
}


def plotted(declared: dict[str, Diagnostic]) -> dict[str, str]:
    """{name: label} of the declared diagnostics that reports plot."""
    return {k: d.label for k, d in declared.items() if d.plot}


def undeclared(names, declared: dict[str, Diagnostic]) -> list[str]:
    """The metric names an algorithm produced without declaring them (sorted)."""
    return sorted(set(names) - set(declared))
