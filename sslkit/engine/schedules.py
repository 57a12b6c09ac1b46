"""Learning-rate schedules, stepped once per optimizer step.

Stepping per step (not per epoch) makes warm-up smooth and lets a run resumed in the middle of an
epoch continue on exactly the same learning rate. Schedules are pure functions of the step, so
resuming only needs the step count (kept in the scheduler's state).

- ``multistep``: the paper's MultiStepLR, lr x gamma at each milestone; milestones are fractions
  of the planned steps (1/3 and 2/3 with gamma 0.33 as published), so a short run decays too.
- ``cosine``: half a cosine from lr to 0 over the steps after warm-up.
- ``constant``: lr throughout.
Any of them may start with a linear warm-up from lr/warmup_steps to lr.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

import torch


@dataclass
class LrFactor:
    """Multiplier of the base learning rate at a step (a callable object so it pickles)."""

    kind: str
    total_steps: int
    warmup_steps: int = 0
    milestone_steps: list[int] = field(default_factory=list)
    gamma: float = 0.33

    def __call__(self, step: int) -> float:
        if self.warmup_steps and step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.kind == "multistep":
            return self.gamma ** bisect.bisect_right(self.milestone_steps, step)
        if self.kind == "cosine":
            span = max(1, self.total_steps - self.warmup_steps)
            progress = min(1.0, (step - self.warmup_steps) / span)
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0


def lr_factor(
    kind: str,
    *,
    total_steps: int,
    warmup_steps: int = 0,
    milestones: list[float] | tuple[float, ...] = (1 / 3, 2 / 3),
    gamma: float = 0.33,
) -> LrFactor:
    """The schedule ``kind`` as a step -> factor function (milestones as fractions of training)."""
    if kind not in ("multistep", "cosine", "constant"):
        raise ValueError(f"unknown schedule {kind!r}")
    steps = [int(round(m * total_steps)) for m in milestones]
    return LrFactor(kind, int(total_steps), int(warmup_steps), steps, float(gamma))


def build_scheduler(optimizer: torch.optim.Optimizer, factor: LrFactor) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR over ``factor``; its state_dict carries the step count for resuming."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=factor)
