"""The ``center`` masker: the same central block for every image."""

from __future__ import annotations

import pytest
import torch

from sslkit.errors import UserError
from sslkit.masking import MaskerContext, StepInfo, validate_masks
from sslkit.plugins import get_plugins

STEP = StepInfo(step=0, epoch=0, total_steps=1)


def make(image=(32, 32), **options):
    masker = get_plugins().maskers.create("center", **options)
    masker.setup(MaskerContext(image_size=image, in_chans=1, device=torch.device("cpu"), total_steps=1,
                               steps_per_epoch=1, epochs=1))
    return masker


@pytest.mark.parametrize("h, w, options, box", [
    (32, 32, {}, (0, 0, 16, 16)),  # default: half the side, a quarter of the area
    (32, 32, {"size": 0.25}, (12, 12, 8, 8)),
    (31, 28, {"size": 10}, (10, 9, 10, 10)),  # odd margins round towards the top-left
    (32, 32, {"size": [0.5, 0.25]}, (8, 12, 16, 8)),
])
def test_central_block_equals_reference(h, w, options, box):
    masks = make(image=(h, w), **options).propose(torch.zeros(3, 1, h, w), STEP)
    validate_masks(masks, torch.zeros(3, 1, h, w))
    top, left, bh, bw = box
    if not options:
        top, left = (h - bh) // 2, (w - bw) // 2
    expected = torch.zeros(3, 1, h, w, dtype=torch.bool)
    for i in range(3):
        expected[i, 0, top : top + bh, left : left + bw] = True
    assert torch.equal(masks, expected)


def test_bad_size():
    with pytest.raises(UserError, match="size must be > 0"):
        make(size=-1)
