"""Running a frozen encoder over a loader once, keeping its deepest feature maps.

A frozen encoder in eval mode with no augmentation maps each image to the same features every
epoch, so the frozen protocols and k-NN compute them once and train or vote on the cache: 200
head epochs then cost seconds instead of 200 encoder passes.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn


@torch.no_grad()
def deepest_features(
    encoder: nn.Module, loader: Iterable[dict], device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(maps (N, C, h, w), labels (N,)) of the encoder's deepest stage over ``loader``, on CPU.

    The encoder is put in eval mode for the pass (BatchNorm uses its running statistics and
    never updates them) and its previous mode is restored afterwards.
    """
    was_training = encoder.training
    encoder.eval()
    maps: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    try:
        for batch in loader:
            images = batch["image"].to(device, non_blocking=True)
            maps.append(encoder(images)[-1].float().cpu())
            labels.append(batch["label"].cpu())
    finally:
        encoder.train(was_training)
    if not maps:
        raise ValueError("the loader yielded no batch")
    return torch.cat(maps), torch.cat(labels)


def global_pool(maps: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) -> (N, C) by global average pooling (the standard frozen-feature summary)."""
    return maps.mean(dim=(2, 3)) if maps.ndim == 4 else maps
