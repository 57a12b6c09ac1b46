"""Dice, IoU and HD95 against cases worked out by hand and against a brute-force HD95."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sslkit.evaluation.segmentation_metrics import (
    as_masks,
    dice_iou,
    hd95,
    segmentation_metrics,
    summarise,
)


def _square(size: int = 64, top: int = 20, left: int = 20, side: int = 20) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[top:top + side, left:left + side] = True
    return mask


def _brute_hd95(pred: np.ndarray, truth: np.ndarray, spacing=(1.0, 1.0)) -> float:
    """MONAI's definition written out directly: 4-neighbour surfaces (outside the image counts as
    background), all pairwise distances, np.percentile's default method, the larger direction."""

    def surface(mask):
        padded = np.pad(mask, 1)
        interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
        return np.argwhere(mask & ~interior) * np.asarray(spacing)

    a, b = surface(pred), surface(truth)
    distances = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    return max(np.percentile(distances.min(1), 95), np.percentile(distances.min(0), 95))


@pytest.mark.parametrize("shift", [1, 2, 3, 5])
@pytest.mark.parametrize("axis", [0, 1])
def test_square_shifted_along_one_axis_has_hd95_equal_to_the_shift(shift, axis):
    truth = _square()[None]
    pred = np.roll(truth, shift, axis=1 + axis)
    assert hd95(pred, truth)[0] == pytest.approx(shift)
    assert hd95(truth, pred)[0] == pytest.approx(shift)  # symmetric


def test_spacing_scales_distances_along_its_axis():
    truth = _square()[None]
    down = np.roll(truth, 3, axis=1)  # 3 rows
    right = np.roll(truth, 3, axis=2)  # 3 columns
    assert hd95(down, truth, spacing=(2.0, 0.5))[0] == pytest.approx(6.0)
    assert hd95(right, truth, spacing=(2.0, 0.5))[0] == pytest.approx(1.5)
    assert hd95(right, truth, spacing=0.25)[0] == pytest.approx(0.75)


def test_identical_masks_score_perfectly():
    mask = _square()[None]
    result = segmentation_metrics(mask, mask)
    assert result["dice"][0] == 1.0 and result["iou"][0] == 1.0 and result["hd95"][0] == 0.0


def test_half_overlapping_rectangles():
    truth = np.zeros((1, 32, 40), bool)
    pred = np.zeros_like(truth)
    truth[0, 0:10, 0:20] = True  # 200 px
    pred[0, 0:10, 10:30] = True  # 200 px, 100 shared
    dice, iou = dice_iou(pred, truth)
    assert dice[0] == pytest.approx(2 * 100 / 400)
    assert iou[0] == pytest.approx(100 / 300)


def test_empty_mask_conventions():
    empty = np.zeros((32, 32), bool)
    lesion = _square(32, 8, 8, 10)
    pred = np.stack([empty, lesion, empty, lesion])
    truth = np.stack([empty, empty, lesion, lesion])
    result = segmentation_metrics(pred, truth)
    # both empty: perfect; one empty: Dice/IoU 0, HD95 undefined; same masks: perfect
    np.testing.assert_array_equal(result["dice"], [1.0, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(result["iou"], [1.0, 0.0, 0.0, 1.0])
    assert result["hd95"][0] == 0.0 and result["hd95"][3] == 0.0
    assert np.isnan(result["hd95"][1]) and np.isnan(result["hd95"][2])


def test_matches_brute_force_on_irregular_masks():
    rng = np.random.default_rng(3)
    size = 24
    yy, xx = np.mgrid[0:size, 0:size]
    truth, pred = [], []
    for _ in range(12):
        for masks in (truth, pred):
            cy, cx, r = rng.uniform(4, 20), rng.uniform(4, 20), rng.uniform(2, 9)
            blob = (yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2
            masks.append(blob ^ (rng.random((size, size)) < 0.08))  # holes and specks
    truth_a, pred_a = np.array(truth), np.array(pred)
    truth_a[0, :, :3] = True  # a lesion touching the image border
    got = hd95(pred_a, truth_a, spacing=(1.0, 0.7))
    expected = [_brute_hd95(p, t, (1.0, 0.7)) for p, t in zip(pred_a, truth_a)]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_torch_and_channel_inputs_are_accepted():
    truth = torch.from_numpy(_square(32, 4, 4, 12)[None, None])
    pred = torch.roll(truth, 2, dims=3).float()
    result = segmentation_metrics(pred, truth)
    assert result["hd95"].shape == (1,) and result["hd95"][0] == pytest.approx(2.0)
    assert result["dice"][0] == pytest.approx(2 * 120 / 288)
    assert segmentation_metrics(pred.bfloat16(), truth)["dice"][0] == pytest.approx(2 * 120 / 288)


def test_bad_inputs_are_refused_with_one_sentence():
    mask = np.zeros((2, 8, 8), bool)
    with pytest.raises(ValueError, match="differ in shape"):
        dice_iou(mask, mask[:1])
    with pytest.raises(ValueError, match="threshold probabilities"):
        as_masks(np.full((1, 4, 4), 0.3))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        as_masks(np.zeros((8, 8)))
    with pytest.raises(ValueError, match="spacing"):
        hd95(mask, mask, spacing=(1.0, -1.0))


def test_summarise_ignores_nan_and_counts_it():
    per_image = {"dice": np.array([1.0, 0.0, 0.5]), "hd95": np.array([0.0, np.nan, 3.0])}
    summary = summarise(per_image)
    assert summary["dice"] == pytest.approx(0.5)
    assert summary["hd95"] == pytest.approx(1.5)
    assert summary["hd95_nan"] == 1 and summary["dice_nan"] == 0 and summary["images"] == 3
    only_nan = summarise({"hd95": np.array([np.nan])})
    assert math.isnan(only_nan["hd95"]) and only_nan["hd95_nan"] == 1
    with pytest.raises(ValueError, match="different lengths"):
        summarise({"dice": np.zeros(2), "hd95": np.zeros(3)})
