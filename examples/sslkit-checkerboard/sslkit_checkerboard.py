"""An installable third-party masking plugin: hide every other square of a checkerboard.

Install with ``pip install ./examples/sslkit-checkerboard``; then ``sslkit list maskers`` shows
``checkerboard`` and ``sslkit pretrain --masker checkerboard --masker-opt cell=8`` uses it.
"""

from __future__ import annotations

import torch

from sslkit.hookspecs import hookimpl
from sslkit.masking import MaskerBase, StepInfo


class CheckerboardMasker(MaskerBase):
    """Hides the squares of one colour of a ``cell``-pixel checkerboard (colour drawn per image)."""

    def __init__(self, cell: int = 8, random_phase: bool = True):
        if int(cell) < 1:
            raise ValueError("cell must be at least 1 pixel")
        self.cell = int(cell)
        self.random_phase = bool(random_phase)

    def propose(self, images: torch.Tensor, step: StepInfo) -> torch.Tensor:
        b, _, h, w = images.shape
        rows = torch.arange(h, device=images.device) // self.cell
        cols = torch.arange(w, device=images.device) // self.cell
        board = ((rows[:, None] + cols[None, :]) % 2).bool()  # H, W
        if self.random_phase:
            flip = self.rand(b) < 0.5  # one colour or the other, per image
        else:
            flip = torch.zeros(b, dtype=torch.bool, device=images.device)
        return (board[None] ^ flip[:, None, None])[:, None]


@hookimpl
def register_maskers(register):
    register(
        "checkerboard",
        CheckerboardMasker,
        "Hide every other square of a checkerboard (half the image, spread evenly).",
        options={"cell": "square side in pixels", "random_phase": "pick the hidden colour at random per image"},
    )
