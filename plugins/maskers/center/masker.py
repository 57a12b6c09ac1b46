"""Built-in masker ``center``: the central block (Pathak et al.'s context encoder "center region").

Deterministic: every image hides the same block, ``size`` as a fraction of the side or pixels,
centred (rounded towards the top-left when the margin is odd). Under ``--encoding sparse`` the
block is whole cells of the encoder's grid (the nearest number per side, centred the same way).
"""

from __future__ import annotations

import torch

from sslkit.masking import MaskerBase, StepInfo, boxes_to_masks, cells_to_masks
from sslkit_plugins.maskers._box_size import box_in_cells, box_pixels, check_size


class CenterMasker(MaskerBase):
    """Hide the central ``size`` block of every image."""

    def __init__(self, size=0.5):
        self.what = "masker 'center'"
        self.size = check_size(size, self.what)

    def propose(self, images: torch.Tensor, step: StepInfo) -> torch.Tensor:
        b, _, height, width = images.shape
        box = box_pixels(self.size, None, (height, width), self.what)
        cell_grid = self.cell_grid
        if cell_grid:  # sparse encoding: whole cells of the encoder's grid
            box = box_in_cells(box, (height, width), cell_grid)
        rows, cols = cell_grid or (height, width)
        bh, bw = box
        top = torch.full((b,), (rows - bh) // 2, device=images.device)
        left = torch.full((b,), (cols - bw) // 2, device=images.device)
        masks = boxes_to_masks(top, left, bh, bw, (rows, cols))
        return cells_to_masks(masks[:, 0], (height, width)) if cell_grid else masks
