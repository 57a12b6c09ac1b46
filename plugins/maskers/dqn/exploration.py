"""How the agent picks its corners from the block values: exploration schedules.

Every policy turns (B, N) block values into per-corner scores and takes the top ``n`` distinct
corners of each row, so one or several blocks per image are chosen in one batched ``topk``:

* ``paper``   — the authors' code: uniformly random corners for the first ``explore_fraction`` of
  training, then the greedy argmax of Q.
* ``epsilon`` — the commented-out variant of the code: each image is explored (uniform corners)
  with probability epsilon, decaying linearly from ``epsilon_start`` to ``epsilon_end`` over the first
  ``explore_fraction`` of training, then constant.
* ``softmax`` — the paper's figure ("sampling"): corners sampled without replacement from
  softmax(z / temperature) (Gumbel-top-n), where z are the image's block values standardised
  per image, so the temperature means the same whatever the scale of the reward.
* ``greedy``  — validation: the top-n block values.

All randomness comes from the masker's generator and depends only on the step, so a resumed run
draws the same corners.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

EXPLORATIONS = ("paper", "epsilon", "softmax")


@dataclass(frozen=True)
class Choice:
    corners: torch.Tensor
    """(B, n) long, flat indices of the chosen valid corners."""
    random_probability: float | None
    """Scheduled probability of a uniformly random action (None for softmax sampling)."""


def _uniform(shape: tuple[int, int], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=device)


class Policy:
    """Base: greedy top-n."""

    name = "greedy"

    def random_probability(self, progress: float) -> float | None:
        return 0.0

    def scores(self, values: torch.Tensor, progress: float, generator: torch.Generator) -> torch.Tensor:
        return values

    def choose(self, values: torch.Tensor, n: int, progress: float, generator: torch.Generator) -> Choice:
        scores = self.scores(values, progress, generator)
        corners = scores.topk(n, dim=1).indices
        return Choice(corners, self.random_probability(progress))


class PaperSchedule(Policy):
    name = "paper"

    def __init__(self, explore_fraction: float = 0.2):
        self.explore_fraction = float(explore_fraction)

    def random_probability(self, progress: float) -> float:
        return 1.0 if progress < self.explore_fraction else 0.0

    def scores(self, values, progress, generator):
        if self.random_probability(progress) > 0:
            return _uniform(tuple(values.shape), generator, values.device)
        return values


class EpsilonGreedy(Policy):
    name = "epsilon"

    def __init__(self, epsilon_start: float = 1.0, epsilon_end: float = 0.05, explore_fraction: float = 0.2):
        self.start, self.end = float(epsilon_start), float(epsilon_end)
        self.explore_fraction = float(explore_fraction)

    def random_probability(self, progress: float) -> float:
        if self.explore_fraction <= 0:
            return self.end
        done = min(1.0, progress / self.explore_fraction)
        return self.start + (self.end - self.start) * done

    def scores(self, values, progress, generator):
        b, _ = values.shape
        # Always draw both, so the generator advances the same way whatever the coin says.
        coins = _uniform((b, 1), generator, values.device)
        random_scores = _uniform(tuple(values.shape), generator, values.device)
        explore = coins < self.random_probability(progress)
        return torch.where(explore, random_scores, values)


class SoftmaxSampling(Policy):
    name = "softmax"

    def __init__(self, temperature: float = 1.0):
        self.temperature = float(temperature)

    def random_probability(self, progress: float) -> None:
        return None

    def scores(self, values, progress, generator):
        mean = values.mean(dim=1, keepdim=True)
        std = values.std(dim=1, keepdim=True, unbiased=False).clamp(min=1e-8)
        z = (values - mean) / std
        u = _uniform(tuple(values.shape), generator, values.device).clamp(1e-10, 1.0 - 1e-7)
        gumbel = -torch.log(-torch.log(u))
        return z / self.temperature + gumbel


def make_policy(
    exploration: str,
    *,
    explore_fraction: float = 0.2,
    epsilon_start: float = 1.0,
    epsilon_end: float = 0.05,
    temperature: float = 1.0,
) -> Policy:
    if exploration == "paper":
        return PaperSchedule(explore_fraction)
    if exploration == "epsilon":
        return EpsilonGreedy(epsilon_start, epsilon_end, explore_fraction)
    if exploration == "softmax":
        return SoftmaxSampling(temperature)
    if exploration == "greedy":
        return Policy()
    raise ValueError(f"unknown exploration '{exploration}'")
