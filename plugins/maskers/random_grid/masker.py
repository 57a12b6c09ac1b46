"""Built-in masker ``random-grid``: a random share of grid patches (MAE / SimMIM style).

The image is cut into ``grid`` x ``grid`` cells and exactly ``round(ratio * grid**2)`` cells are
hidden in every image: the cells whose random keys rank lowest (argsort of a (B, grid**2) draw
from the masker's generator), so every image hides the same number of cells. Under
``--encoding sparse`` a grid that does not nest in the encoder's cell grid is replaced by that
grid (:func:`sslkit.masking.grid_on_cells`), so the masks are unions of the encoder's cells.
"""

from __future__ import annotations

import torch

from sslkit.masking import MaskerBase, MaskerContext, StepInfo, cells_to_masks, grid_on_cells
from sslkit.options import OptionChecks


class RandomGridMasker(MaskerBase):
    """Hide a fixed number of randomly chosen grid cells per image."""

    def __init__(self, grid=8, ratio=0.75):
        self.check = OptionChecks("masker 'random-grid'")
        self.own_grid = self.grid = self.check.whole("grid", grid)
        self.ratio = self.check.number("ratio", ratio, 0, 1, open_low=True)  # a share of the cells
        self.hidden_cells = max(1, round(self.ratio * self.grid * self.grid))

    def setup(self, context: MaskerContext) -> None:
        super().setup(context)
        self.grid = grid_on_cells(self.own_grid, context)
        self.hidden_cells = max(1, round(self.ratio * self.grid * self.grid))

    def propose(self, images: torch.Tensor, step: StepInfo) -> torch.Tensor:
        b, _, height, width = images.shape
        g = self.grid
        if g > min(height, width):
            raise self.check.fail(f"a {g} x {g} grid needs images of at least {g} px, got {height} x {width}")
        keys = self.rand(b, g * g).to(images.device)
        chosen = keys.argsort(dim=1)[:, : self.hidden_cells]
        cells = torch.zeros(b, g * g, dtype=torch.bool, device=images.device).scatter_(1, chosen, True)
        return cells_to_masks(cells.view(b, g, g), (height, width))

