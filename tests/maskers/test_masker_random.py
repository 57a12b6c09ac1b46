"""The ``random`` masker (context-encoder blocks): mask type, geometry, randomness, reference."""

from __future__ import annotations

import pytest
import torch

from sslkit.errors import UserError
from sslkit.masking import MaskerContext, StepInfo, validate_masks
from sslkit.plugins import get_plugins

STEP = StepInfo(step=0, epoch=0, total_steps=10)


def make(seed=0, image=(32, 32), device="cpu", **options):
    masker = get_plugins().maskers.create("random", **options)
    masker.setup(MaskerContext(image_size=image, in_chans=1, device=torch.device(device), total_steps=10,
                               steps_per_epoch=10, epochs=1, seed=seed))
    return masker


def images(b=4, h=32, w=32, device="cpu"):
    return torch.zeros(b, 1, h, w, device=device)


def reference(generator_state, b, h, w, bh, bw, count):
    """Plain per-sample loops over the same random numbers the masker draws."""
    g = torch.Generator()
    g.set_state(generator_state)
    u = torch.rand(b, count, 2, generator=g)
    masks = torch.zeros(b, 1, h, w, dtype=torch.bool)
    for i in range(b):
        for k in range(count):
            top = min(int(u[i, k, 0] * (h - bh + 1)), h - bh)
            left = min(int(u[i, k, 1] * (w - bw + 1)), w - bw)
            masks[i, 0, top : top + bh, left : left + bw] = True
    return masks


def test_mask_type():
    x = images(3, 32, 40)
    masks = make(image=(32, 40)).propose(x, STEP)
    validate_masks(masks, x)
    assert masks.dtype == torch.bool and masks.shape == (3, 1, 32, 40) and masks.device == x.device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_masks_are_built_on_the_device():
    x = images(device="cuda")
    masks = make(device="cuda").propose(x, STEP)
    assert masks.device == x.device and masks.dtype == torch.bool


@pytest.mark.parametrize("options, box", [
    ({"size": 0.25}, (8, 8)),
    ({"size": 5}, (5, 5)),
    ({"size": [0.25, 0.5]}, (8, 16)),
    ({"area": 0.1}, (10, 10)),  # sqrt(0.1) * 32 = 10.1 -> 10 px
])
def test_one_box_of_the_right_size_fully_inside(options, box):
    masks = make(**options).propose(images(64), STEP)[:, 0]
    assert (masks.flatten(1).sum(1) == box[0] * box[1]).all()  # a clipped box would be smaller
    rows, cols = masks.any(2), masks.any(1)
    assert (rows.sum(1) == box[0]).all() and (cols.sum(1) == box[1]).all()
    # contiguous: the hidden rows/columns form one run
    for r in (rows, cols):
        first = r.float().argmax(1)
        last = r.shape[1] - 1 - r.flip(1).float().argmax(1)
        assert ((last - first + 1) == r.sum(1)).all()


def test_area_fraction_within_tolerance():
    masks = make(area=0.2).propose(images(16, 64, 64), STEP)
    share = masks.float().mean(dim=(1, 2, 3))
    assert torch.allclose(share, torch.full_like(share, 0.2), atol=0.01)


def test_several_boxes_unite():
    masks = make(size=0.25, count=3).propose(images(32), STEP)
    hidden = masks.flatten(1).sum(1)
    assert (hidden >= 64).all() and (hidden <= 3 * 64).all() and (hidden > 64).any()


def test_positions_are_uniform_over_valid_corners():
    masks = make(size=4).propose(images(2600, 16, 16), STEP)[:, 0]
    top = masks.any(2).float().argmax(1)
    left = masks.any(1).float().argmax(1)
    for corner in (top, left):
        counts = torch.bincount(corner, minlength=13)
        assert counts.numel() == 13  # 16 - 4 + 1 valid corners, none outside
        assert counts.min() > 140 and counts.max() < 260  # expected 200 each


@pytest.mark.parametrize("options", [{"size": 0.3}, {"size": 7, "count": 3}, {"area": 0.05, "count": 2}])
def test_equals_per_sample_reference(options):
    masker = make(image=(30, 36), **options)
    state = masker.generator.get_state()
    masks = masker.propose(images(5, 30, 36), STEP)
    bh, bw = masker.box_size((30, 36))
    assert torch.equal(masks, reference(state, 5, 30, 36, bh, bw, options.get("count", 1)))


def test_seeded_and_resumable():
    a, b, c = make(seed=1), make(seed=1), make(seed=2)
    x = images(8)
    first = a.propose(x, STEP)
    assert torch.equal(first, b.propose(x, STEP))
    assert not torch.equal(first, c.propose(x, STEP))
    state = a.state_dict()
    expected = a.propose(x, STEP)
    c.load_state_dict(state)
    assert torch.equal(c.propose(x, STEP), expected)


@pytest.mark.parametrize("options, message", [
    ({"size": 0}, "size must be > 0"),
    ({"size": 2.5}, "whole number"),
    ({"size": "big"}, "size must be > 0"),
    ({"size": [0.1, 0.2, 0.3]}, "pair"),
    ({"area": 1.5}, "area must be"),
    ({"count": 0}, "count must be"),
    ({"cuont": 2}, "did you mean 'count'"),
])
def test_bad_options_are_one_sentence(options, message):
    with pytest.raises(UserError, match=message):
        make(**options)


def test_box_larger_than_image():
    with pytest.raises(UserError, match="40 px does not fit images of 32 px"):
        make(size=40).propose(images(), STEP)
