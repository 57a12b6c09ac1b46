"""Masks on the encoder's cell grid (``--encoding sparse``): every registered masker.

Parametrised over the registry, as the contract test is: under sparse encoding each built-in
masker must itself propose masks that are unions of the encoder's cells (``MaskerContext.cell_grid``)
for a grid coarser than its own (4 x 4, so every grid masker has to change where it hides) and for
one its own grid nests in (16 x 16); a plugin masker's masks are snapped by the engine, which says
so once in one sentence.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from sslkit.engine.device import Precision
from sslkit.pretraining.step import train_step
from sslkit.masking import StepInfo, cell_fractions, snap_to_cells
from sslkit.models.decoder import UNetDecoder
from sslkit.models.encoder import Encoder
from sslkit.models.predictor import Predictor
from sslkit.plugins import load_plugins

sys.path.insert(0, str(Path(__file__).parent))
from noisy_quadrant import SIZE, context, noisy_quadrant_images  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PLUGINS = load_plugins([str(EXAMPLES / "stripes_masker.py"), str(EXAMPLES / "sslkit-checkerboard" / "sslkit_checkerboard.py")],
                       include_env=False)
BUILT_IN = ["random", "random-grid", "center", "dqn", "hpm", "saliency", "adios"]
PLUGIN_ONLY = [n for n in PLUGINS.maskers.names() if n not in BUILT_IN]


class _Body(nn.Module):
    """Two levels (stride 2 and 4): at 32 px the deepest map, hence the cell grid, is 8 x 8."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.deep = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU())

    def forward(self, x):
        shallow = self.stem(x)
        return [shallow, self.deep(shallow)]


def sparse_predictor() -> Predictor:
    encoder = Encoder(_Body(), [8, 16], [2, 4])
    predictor = Predictor(encoder, UNetDecoder(encoder.feature_channels, 1, skips="none"))
    predictor.enable_sparse_encoding((8, 8))
    return predictor


def aligned(masks: torch.Tensor, grid: tuple[int, int]) -> bool:
    fractions = cell_fractions(masks, grid)
    return bool(((fractions == 0) | (fractions == 1)).all())


@pytest.mark.parametrize("cell_grid", [(4, 4), (16, 16)], ids=["coarser", "finer"])
@pytest.mark.parametrize("name", BUILT_IN)
def test_builtin_masker_proposes_unions_of_the_encoders_cells(name, cell_grid):
    torch.manual_seed(0)
    predictor = sparse_predictor()
    masker = PLUGINS.maskers.create(name)
    masker.setup(dataclasses.replace(context(predictor, 4), cell_grid=cell_grid))
    images, _ = noisy_quadrant_images(8, seed=1)
    for step, training in ((0, True), (1, True), (2, False)):
        masks = masker.propose(images, StepInfo(step, 0, 4, training))
        assert masks.dtype == torch.bool and masks.shape == (8, 1, SIZE, SIZE)
        assert masks.flatten(1).any(dim=1).all(), f"{name}: an image hides nothing"
        assert aligned(masks, cell_grid), f"{name}: masks are not unions of the {cell_grid} cells"
        assert torch.equal(snap_to_cells(masks, cell_grid)[1], masks)


def test_grid_maskers_keep_their_ratio_on_the_encoders_grid():
    predictor = sparse_predictor()
    masker = PLUGINS.maskers.create("random-grid", ratio=0.75)
    masker.setup(dataclasses.replace(context(predictor, 4), cell_grid=(4, 4)))
    masks = masker.propose(noisy_quadrant_images(8, seed=1)[0], StepInfo(0, 0, 4, True))
    assert (cell_fractions(masks, (4, 4)).flatten(1).sum(dim=1) == 12).all()  # 0.75 of 16 cells


@pytest.mark.parametrize("name", PLUGIN_ONLY)
def test_plugin_masks_that_do_not_fit_are_snapped_and_said_once(name, capsys):
    torch.manual_seed(0)
    predictor = sparse_predictor()
    masker = PLUGINS.maskers.create(name)
    masker.setup(dataclasses.replace(context(predictor, 2), cell_grid=(8, 8)))
    optimizer = torch.optim.Adam(predictor.parameters(), lr=1e-3)
    images, lesions = noisy_quadrant_images(4, seed=2)

    class _Constant:
        def step(self):
            pass

    for step in range(2):
        out = train_step(images=images, lesions=lesions, info=StepInfo(step, 0, 2, True), masker=masker,
                         forward=predictor, optimizer=optimizer, scheduler=_Constant(),
                         precision=Precision("fp32", torch.device("cpu")), predictor=predictor,
                         encoding="sparse", cell_grid=(8, 8), who=f"masker '{name}'")
        assert aligned(out.masks, (8, 8))
    raw = masker.propose(images, StepInfo(2, 0, 2, True))
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert len(notes) == (0 if aligned(raw, (8, 8)) else 1)
    if notes:
        assert "snapped" in notes[0] and name in notes[0]
