"""The agent's reward and its optional normalisation.

Reward (per image, detached, from the predictor's output *before* its update):

* ``image`` — the paper's: sum of squared error over the whole image and all channels.
* ``masked`` — the same sum restricted to the masked pixels. The whole-image reward also counts the
  unmasked pixels, which a U-Net's skips pass through almost unchanged; this option drops them.

Both are sums, so they are additive over cells, which is what the block values assume.

Normalisation keeps the agent's regression target near unit scale whatever the image size and
loss level: rewards are standardised with running (exponential, bias-corrected) estimates of
their mean and variance, like Adam's moments. Q then predicts the standardised reward; the
ranking of blocks — all the policy uses — is unchanged. Without it (the paper), a 1e-3 Adam
needs many steps just to reach the reward's scale (thousands for 300 px images).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from sslkit.masking import MaskFeedback

REWARDS = ("image", "masked")


def compute_reward(feedback: MaskFeedback, kind: str) -> torch.Tensor:
    """(B,) float32 reward from the engine's error map (mean over channels, hence x C)."""
    channels = feedback.images.shape[1]
    error = feedback.error_map.detach().float()
    if kind == "masked":
        error = error * feedback.masks.to(error.dtype)
    elif kind != "image":
        raise ValueError(f"unknown reward '{kind}'")
    return error.flatten(1).sum(dim=1) * channels


def _all_reduce_mean(values: torch.Tensor) -> torch.Tensor:
    """Average a small tensor over processes when training is distributed (else unchanged)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        values = values.clone()
        dist.all_reduce(values)
        values /= dist.get_world_size()
    return values


class RewardNormalizer:
    """Running mean / std of the reward (bias-corrected EMA), checkpointed with the masker."""

    def __init__(self, momentum: float = 0.99):
        self.momentum = momentum
        self.mean_ema = 0.0
        self.square_ema = 0.0
        self.count = 0

    def update(self, rewards: torch.Tensor) -> None:
        moments = torch.stack([rewards.double().mean(), rewards.double().pow(2).mean()])
        batch_mean, batch_square = _all_reduce_mean(moments).tolist()
        m = self.momentum
        self.mean_ema = m * self.mean_ema + (1 - m) * batch_mean
        self.square_ema = m * self.square_ema + (1 - m) * batch_square
        self.count += 1

    @property
    def mean(self) -> float:
        return self.mean_ema / (1 - self.momentum**self.count) if self.count else 0.0

    @property
    def std(self) -> float:
        if not self.count:
            return 1.0
        second = self.square_ema / (1 - self.momentum**self.count)
        variance = max(second - self.mean**2, 0.0)
        # A floor relative to the mean keeps early, near-constant batches from exploding targets.
        return max(math.sqrt(variance), 1e-3 * abs(self.mean), 1e-8)

    def normalize(self, rewards: torch.Tensor) -> torch.Tensor:
        return (rewards - self.mean) / self.std

    def denormalize(self, values: torch.Tensor) -> torch.Tensor:
        return values * self.std + self.mean

    def state_dict(self) -> dict[str, Any]:
        return {"momentum": self.momentum, "mean_ema": self.mean_ema, "square_ema": self.square_ema, "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.momentum = float(state["momentum"])
        self.mean_ema = float(state["mean_ema"])
        self.square_ema = float(state["square_ema"])
        self.count = int(state["count"])
