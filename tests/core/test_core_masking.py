"""Mask helpers shared by every masker: geometry, validation, option parsing."""

import pytest
import torch

from sslkit.errors import UserError
from sslkit.options import parse_options
from sslkit.masking import MaskerBase, MaskerContext, apply_mask, boxes_to_masks, cells_to_masks, lesion_hit_rate, validate_masks


def test_boxes_to_masks_matches_slicing_reference():
    top = torch.tensor([0, 3, 5])
    left = torch.tensor([1, 0, 4])
    masks = boxes_to_masks(top, left, 3, 4, (8, 8))
    assert masks.shape == (3, 1, 8, 8) and masks.dtype == torch.bool
    for i in range(3):
        ref = torch.zeros(8, 8, dtype=torch.bool)
        ref[top[i] : top[i] + 3, left[i] : left[i] + 4] = True
        assert torch.equal(masks[i, 0], ref)


def test_boxes_to_masks_unites_several_boxes_per_image():
    masks = boxes_to_masks(torch.tensor([[0, 4]]), torch.tensor([[0, 4]]), 2, 2, (6, 6))
    assert int(masks.sum()) == 8


def test_cells_to_masks_upsamples_nearest():
    cells = torch.zeros(1, 2, 2, dtype=torch.bool)
    cells[0, 1, 0] = True
    masks = cells_to_masks(cells, (4, 4))
    assert masks[0, 0, 2:, :2].all() and int(masks.sum()) == 4


def test_apply_mask_fills_hidden_pixels_only():
    images = torch.ones(2, 3, 4, 4)
    masks = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    masks[:, :, :2] = True
    out = apply_mask(images, masks, fill=0.0)
    assert out[:, :, :2].abs().sum() == 0 and out[:, :, 2:].eq(1).all()


def test_validate_masks_rejects_wrong_type_shape():
    images = torch.zeros(2, 1, 8, 8)
    validate_masks(torch.zeros(2, 1, 8, 8, dtype=torch.bool), images)
    with pytest.raises(UserError, match="expected torch.bool of shape"):
        validate_masks(torch.zeros(2, 1, 8, 8), images, "masker 'x'")
    with pytest.raises(UserError, match="not a bool tensor"):
        validate_masks([1, 2], images)


def test_lesion_hit_rate_counts_only_images_with_lesions():
    masks = torch.zeros(3, 1, 4, 4, dtype=torch.bool)
    masks[:, :, 0, 0] = True
    lesions = torch.zeros(3, 1, 4, 4, dtype=torch.bool)
    lesions[0, 0, 0, 0] = True  # hit
    lesions[1, 0, 3, 3] = True  # miss; image 2 has no lesion
    assert lesion_hit_rate(masks, lesions).item() == pytest.approx(0.5)
    assert lesion_hit_rate(masks, torch.zeros_like(lesions)) is None


def test_parse_options_types_and_errors():
    assert parse_options(["size=0.25", "count=2", "flag=true", "name=paper", "sizes=[1, 2]"]) == {
        "size": 0.25, "count": 2, "flag": True, "name": "paper", "sizes": [1, 2]}
    assert parse_options(["explore-fraction=0.2"]) == {"explore_fraction": 0.2}
    with pytest.raises(UserError, match="not of the form key=value"):
        parse_options(["size"])


def test_masker_base_generator_state_round_trip():
    masker = MaskerBase()
    masker.setup(MaskerContext((8, 8), 1, torch.device("cpu"), 10, 5, 2, seed=3))
    state = masker.state_dict()
    first = masker.rand(4)
    masker.load_state_dict(state)
    assert torch.equal(first, masker.rand(4))
