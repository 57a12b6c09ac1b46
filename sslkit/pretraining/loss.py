"""The context-prediction loss: squared reconstruction error over the hidden pixels (or all)."""

from __future__ import annotations

from typing import Any

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


#: MAE's epsilon in ``norm_pix_loss``: keeps flat cells (std 0) finite.
NORM_PIX_EPS = 1e-6


def cell_statistics(images: torch.Tensor, grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, channel and cell of ``grid``: the mean and the standard deviation (unbiased, as
    MAE's ``norm_pix_loss``, with its epsilon), each broadcast back to (B, C, H, W)."""
    from sslkit.masking import cell_index, cell_membership

    _, _, h, w = images.shape
    x = images.float()
    rows = cell_membership(grid[0], h, x.device)  # gh, H
    cols = cell_membership(grid[1], w, x.device)  # gw, W
    counts = rows.sum(1)[:, None] * cols.sum(1)[None, :]  # gh, gw
    sums = rows @ x @ cols.t()
    squares = rows @ (x * x) @ cols.t()
    mean = sums / counts
    variance = ((squares - counts * mean * mean) / (counts - 1).clamp_min(1.0)).clamp_min(0.0)
    std = (variance + NORM_PIX_EPS).sqrt()
    row_of, col_of = cell_index(grid[0], h, x.device), cell_index(grid[1], w, x.device)
    return mean[:, :, row_of][:, :, :, col_of], std[:, :, row_of][:, :, :, col_of]


def reconstruction_target(images: torch.Tensor, target: str, grid: tuple[int, int]) -> tuple[torch.Tensor, Any]:
    """(what the predictor reconstructs, a function from its output back to pixels).

    ``pixels``: the images themselves. ``norm-pixels``: each cell of ``grid`` normalised to zero
    mean and unit variance per channel (MAE's ``norm_pix_loss``); the function undoes it with the
    image's own statistics, for the pictures in TensorBoard and the masker's ``reconstruction``."""
    if target == "pixels":
        return images, lambda reconstruction: reconstruction
    if target != "norm-pixels":
        raise ValueError(f"target '{target}' is not pixels or norm-pixels")
    mean, std = cell_statistics(images, grid)
    return (images.float() - mean) / std, lambda reconstruction: reconstruction.float() * std + mean
