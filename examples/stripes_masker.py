"""A single-file drop-in masking plugin: hide horizontal stripes.

No packaging needed::

    sslkit --plugin examples/stripes_masker.py list maskers
    sslkit --plugin examples/stripes_masker.py pretrain --masker stripes --masker-opt count=2
    SSLKIT_PLUGINS=examples/stripes_masker.py sslkit list maskers
"""

from __future__ import annotations

import torch

from sslkit.hookspecs import hookimpl
from sslkit.masking import MaskerBase, StepInfo, boxes_to_masks


class StripesMasker(MaskerBase):
    """Hides ``count`` full-width horizontal stripes, each ``height`` of the image tall."""

    def __init__(self, count: int = 1, height: float = 0.2):
        if not 0 < float(height) <= 1:
            raise ValueError("height must be a fraction of the image in (0, 1]")
        self.count = int(count)
        self.height = float(height)

    def propose(self, images: torch.Tensor, step: StepInfo) -> torch.Tensor:
        b, _, h, w = images.shape
        stripe = max(1, round(self.height * h))
        top = (self.rand(b, self.count) * (h - stripe + 1)).long()
        left = torch.zeros_like(top)
        return boxes_to_masks(top, left, stripe, w, (h, w))


@hookimpl
def register_maskers(register):
    register(
        "stripes",
        StripesMasker,
        "Hide full-width horizontal stripes at random heights (a drop-in example).",
        options={"count": "stripes per image", "height": "stripe height as a fraction of the image"},
    )
