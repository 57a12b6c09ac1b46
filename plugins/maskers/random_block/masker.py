"""Built-in masker ``random``: the classic context encoder's random blocks.

``count`` rectangles per image, each of one fixed size (``size``: fraction of the side or pixels;
or ``area``: share of the image), at uniformly random positions fully inside the image; the union
is hidden. Vectorised: one draw of (B, count, 2) uniforms from the masker's generator gives all
corners (first number -> top, second -> left). Under ``--encoding sparse`` the boxes are drawn
in whole cells of the encoder's grid (size rounded to the nearest number of cells, corners on
cell boundaries), so the masks are unions of its cells.
"""

from __future__ import annotations

import torch

from sslkit.masking import MaskerBase, StepInfo, boxes_to_masks, cells_to_masks
from sslkit.options import OptionChecks
from sslkit_plugins.maskers._box_size import box_in_cells, box_pixels, check_area, check_size

DEFAULT_SIZE = 0.25


#: more boxes than this hide the whole image anyway, and memory grows with the count
MAX_COUNT = 256


class RandomBlockMasker(MaskerBase):
    """Random rectangles of a fixed size, fully inside the image."""

    def __init__(self, size=DEFAULT_SIZE, area=None, count=1):
        what = "masker 'random'"
        # the masks are built as (batch, count, H, W) at once: a million boxes asked for 32 GB
        count = OptionChecks(what).whole("count", count, maximum=MAX_COUNT)
        self.what = what
        self.area = check_area(area, what) if area is not None else None
        self.size = check_size(size, what) if self.area is None else None  # area, when given, wins
        self.count = count

    def box_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        return box_pixels(self.size, self.area, image_size, self.what)

    def propose(self, images: torch.Tensor, step: StepInfo) -> torch.Tensor:
        b, _, height, width = images.shape
        box = self.box_size((height, width))
        cell_grid = self.cell_grid
        if cell_grid is not None:  # sparse encoding: whole cells of the encoder's grid
            box = box_in_cells(box, (height, width), cell_grid)
        rows, cols = cell_grid or (height, width)
        bh, bw = box
        u = self.rand(b, self.count, 2).to(images.device)
        # floor(u * (n + 1)) is uniform over the n + 1 valid corners; the clamp guards float rounding.
        top = (u[..., 0] * (rows - bh + 1)).long().clamp_(max=rows - bh)
        left = (u[..., 1] * (cols - bw + 1)).long().clamp_(max=cols - bw)
        masks = boxes_to_masks(top, left, bh, bw, (rows, cols))
        return masks if cell_grid is None else cells_to_masks(masks[:, 0], (height, width))
