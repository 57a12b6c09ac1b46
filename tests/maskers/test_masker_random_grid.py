"""The ``random-grid`` masker (MAE/SimMIM style): exact counts, reference, randomness."""

from __future__ import annotations

import pytest
import torch

from sslkit.errors import UserError
from sslkit.masking import MaskerContext, StepInfo, validate_masks
from sslkit.plugins import get_plugins

STEP = StepInfo(step=3, epoch=0, total_steps=10)


def make(seed=0, image=(32, 32), **options):
    masker = get_plugins().maskers.create("random-grid", **options)
    masker.setup(MaskerContext(image_size=image, in_chans=1, device=torch.device("cpu"), total_steps=10,
                               steps_per_epoch=10, epochs=1, seed=seed))
    return masker


def reference(generator_state, b, h, w, grid, hidden):
    """Per sample: sort the cells by their random key, hide the lowest ``hidden``; paint pixels."""
    g = torch.Generator()
    g.set_state(generator_state)
    keys = torch.rand(b, grid * grid, generator=g)
    masks = torch.zeros(b, 1, h, w, dtype=torch.bool)
    ch, cw = h // grid, w // grid  # sizes divisible by the grid in these tests
    for i in range(b):
        order = sorted(range(grid * grid), key=lambda c: keys[i, c].item())
        for cell in order[:hidden]:
            r, c = divmod(cell, grid)
            masks[i, 0, r * ch : (r + 1) * ch, c * cw : (c + 1) * cw] = True
    return masks


def test_mask_type():
    x = torch.zeros(3, 2, 32, 32)
    masks = make().propose(x, STEP)
    validate_masks(masks, x)


@pytest.mark.parametrize("grid, ratio, hidden", [(4, 0.6, 10), (8, 0.75, 48), (2, 1.0, 4), (4, 0.01, 1)])
def test_exact_count_per_image(grid, ratio, hidden):
    masks = make(grid=grid, ratio=ratio).propose(torch.zeros(6, 1, 32, 32), STEP)
    share = masks.float().mean(dim=(1, 2, 3))
    assert torch.allclose(share, torch.full_like(share, hidden / grid**2))


@pytest.mark.parametrize("grid, ratio", [(4, 0.5), (8, 0.6)])
def test_equals_per_sample_reference(grid, ratio):
    masker = make(grid=grid, ratio=ratio, image=(32, 64))
    state = masker.generator.get_state()
    masks = masker.propose(torch.zeros(5, 1, 32, 64), STEP)
    assert torch.equal(masks, reference(state, 5, 32, 64, grid, masker.hidden_cells))


def test_sizes_not_divisible_by_the_grid():
    masks = make(grid=7, ratio=0.5).propose(torch.zeros(4, 1, 30, 30), STEP)
    assert masks.shape == (4, 1, 30, 30)
    share = masks.float().mean(dim=(1, 2, 3))
    assert ((share - 25 / 49).abs() < 0.08).all()


def test_every_cell_gets_chosen_and_images_differ():
    masks = make(grid=4, ratio=0.25).propose(torch.zeros(400, 1, 16, 16), STEP)
    per_cell = masks[:, 0, ::4, ::4].float().mean(0)
    assert ((per_cell - 0.25).abs() < 0.08).all()
    assert not torch.equal(masks[0], masks[1])


def test_seeded_and_resumable():
    a, b = make(seed=5), make(seed=6)
    x = torch.zeros(4, 1, 32, 32)
    a.propose(x, STEP)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.propose(x, STEP), b.propose(x, STEP))


@pytest.mark.parametrize("options, message", [
    ({"grid": 0}, "grid must be"),
    ({"grid": 2.5}, "grid must be"),
    ({"ratio": 0}, "ratio must be"),
    ({"ratio": 1.5}, "ratio must be"),
    ({"ration": 0.5}, "did you mean 'ratio'"),
])
def test_bad_options(options, message):
    with pytest.raises(UserError, match=message):
        make(**options)


def test_grid_finer_than_the_image():
    with pytest.raises(UserError, match="at least 64 px"):
        make(grid=64).propose(torch.zeros(2, 1, 32, 32), STEP)
