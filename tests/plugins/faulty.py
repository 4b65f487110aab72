"""A test-only algorithm that fails on purpose: GRPO whose loss turns NaN at a chosen step.

`fail: once` fails only the first attempt (it leaves a marker file), `always` fails every attempt.
Sweeps import it through their `plugins:` list, so worker processes register it too.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from algorithms.grpo import GRPO, GRPOConfig
from harness.config import doc
from harness.registry import ALGORITHMS


@dataclass
class FaultyConfig(GRPOConfig):
    fail: Literal["once", "always"] = doc("Fail the first attempt only, or every attempt.", "once")
    fail_step: int = doc("Optimizer step at which the loss becomes NaN.", 2)
    marker: str = doc("File that records that the first attempt has failed.", "")


@ALGORITHMS.register("faulty", config=FaultyConfig(), description="test only: GRPO with a NaN loss at fail_step")
class Faulty(GRPO):
    cfg: FaultyConfig
    step = 0

    def collect(self, ctx):
        self.step = ctx.step + 1  # the step being taken, as the trainer counts it after the update
        return super().collect(ctx)

    def loss(self, inp):
        loss, stats = super().loss(inp)
        marker = Path(self.cfg.marker)
        if self.step == self.cfg.fail_step and (self.cfg.fail == "always" or not marker.exists()):
            marker.touch()
            return loss * torch.tensor(float("nan")), stats
        return loss, stats
