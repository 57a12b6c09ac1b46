"""Laying out image panels as one picture, shared by the pretraining grid
(:mod:`sslkit.pretraining.image_grid`) and the segmentation triptych (:mod:`sslkit.evaluation.mask_images`).

It sits at the top of the package, below both, because evaluation code may not import the engines
(tests/core/test_core_layering.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped (reconstructions may overshoot)."""
    return ((images.float() + 1.0) * 0.5).clamp(0.0, 1.0)


def tile_grid(panels: list[torch.Tensor], pad: int = 2) -> torch.Tensor:
    """Columns of (rows, C, H, W) panels in [0, 1] -> one (C, H', W') image, white between tiles
    (rows beyond the shortest column are dropped)."""
    rows = min(p.shape[0] for p in panels)
    tiles = torch.stack([p[:rows] for p in panels], dim=1)  # rows, cols, C, H, W
    tiles = F.pad(tiles, (pad, pad, pad, pad), value=1.0)
    r, c, ch, h, w = tiles.shape
    return tiles.permute(2, 0, 3, 1, 4).reshape(ch, r * h, c * w)
