"""Built-in masker ``center``: the central block (Pathak et al.'s context encoder "center region").

Deterministic: every image hides the same block, ``size`` as a fraction of the side or pixels,
centred (rounded towards the top-left when the margin is odd).
"""

from __future__ import annotations

import torch

from sslkit.masking import MaskerBase, StepInfo, boxes_to_masks
from sslkit_plugins.maskers._box_size import box_pixels, check_size


class CenterMasker(MaskerBase):
    """Hide the central ``size`` block of every image."""

    def __init__(self, size=0.5):
        self.what = "masker 'center'"
        self.size = check_size(size, self.what)

    def propose(self, images: torch.Tensor, step: StepInfo) -> torch.Tensor:
        b, _, height, width = images.shape
        bh, bw = box_pixels(self.size, None, (height, width), self.what)
        top = torch.full((b,), (height - bh) // 2, device=images.device)
        left = torch.full((b,), (width - bw) // 2, device=images.device)
        return boxes_to_masks(top, left, bh, bw, (height, width))
