"""The context-prediction loss: squared reconstruction error over the hidden pixels (or all)."""

from __future__ import annotations

import torch


def masked_reconstruction_loss(
    reconstruction: torch.Tensor, images: torch.Tensor, masks: torch.Tensor, kind: str = "masked"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, per-image loss, error map), all fp32 (autocast outputs are upcast first).

    ``masked`` (the paper's ``loss_on_mask``): the mean squared error over each image's masked
    pixels, then the mean over the images that have any; an image with nothing masked adds no
    loss rather than a division by zero, and does not dilute the others. ``full``: the mean over
    every pixel. The error map (B,1,H,W) is the squared error averaged over channels: what
    maskers receive as feedback. No host synchronisation happens here.
    """
    error_map = (reconstruction.float() - images.float()).pow(2).mean(dim=1, keepdim=True)
    if kind == "full":
        per_image = error_map.flatten(1).mean(dim=1)
        return per_image.mean(), per_image, error_map
    weight = masks.to(error_map.dtype)
    count = weight.flatten(1).sum(dim=1)
    per_image = (error_map * weight).flatten(1).sum(dim=1) / count.clamp_min(1.0)
    has_mask = (count > 0).to(per_image.dtype)
    loss = (per_image * has_mask).sum() / has_mask.sum().clamp_min(1.0)
    return loss, per_image, error_map
