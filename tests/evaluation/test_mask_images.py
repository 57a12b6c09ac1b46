"""Mask PNGs, the overlay contact sheet and the TensorBoard triptych: files, pixels and shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sslkit.evaluation.mask_images import (
    FILL_ALPHA,
    auto_scale,
    overlay_sheet,
    overlay_tiles,
    safe_png_names,
    save_mask_pngs,
    tensorboard_triptych,
)


def _batch(n: int = 3, size: int = 16):
    """Black images; truth rows 2-9 x cols 2-9, prediction shifted 4 columns (overlap cols 6-9)."""
    images = torch.zeros(n, 1, size, size)
    truth = torch.zeros(n, size, size, dtype=torch.bool)
    truth[:, 2:10, 2:10] = True
    pred = torch.roll(truth, 4, dims=2)
    return images, truth, pred


def test_mask_pngs_hold_0_and_255(tmp_path):
    masks = np.zeros((2, 5, 7), np.uint8)
    masks[0, 1:3, 2:5] = 1
    paths = save_mask_pngs(masks, ["a", "b"], tmp_path / "masks")
    assert [p.name for p in paths] == ["a.png", "b.png"]
    first = np.array(Image.open(paths[0]))
    assert first.dtype == np.uint8 and first.shape == (5, 7)
    np.testing.assert_array_equal(first, masks[0] * 255)
    assert not np.array(Image.open(paths[1])).any()
    with pytest.raises(ValueError, match="2 masks but 1 names"):
        save_mask_pngs(masks, ["a"], tmp_path)


def test_unsafe_and_repeated_names_become_safe_unique_files(tmp_path):
    names = ["../../etc/passwd", "benign (1).png", "benign_1", "BENIGN_1", ".hidden", "", "CON", "a/b\\c:d*?.jpg"]
    got = safe_png_names(names)
    assert got == ["etc_passwd.png", "benign_1.png", "benign_1_2.png", "BENIGN_1_3.png", "hidden.png",
                   "mask.png", "_CON.png", "a_b_c_d.png"]
    masks = torch.zeros(len(names), 4, 4, dtype=torch.bool)
    paths = save_mask_pngs(masks, names, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(got)
    assert all(p.parent == tmp_path for p in paths)


def test_overlay_colours_at_known_pixels():
    images, truth, pred = _batch()
    tiles = overlay_tiles(images, truth, pred)
    assert tiles.shape == (3, 16, 16, 3) and tiles.dtype == np.uint8
    fill = round(255 * FILL_ALPHA)
    # interior pixels (no outline): truth only, both, prediction only; black image underneath
    assert tuple(tiles[0, 5, 4]) == (0, fill, 0)
    assert tuple(tiles[0, 5, 7]) == (fill, fill, 0)
    assert tuple(tiles[0, 5, 11]) == (fill, 0, 0)
    # outlines are solid: truth's left edge green, prediction's right edge red, shared top yellow
    assert tuple(tiles[0, 5, 2]) == (0, 255, 0)
    assert tuple(tiles[0, 5, 13]) == (255, 0, 0)
    assert tuple(tiles[0, 2, 7]) == (255, 255, 0)
    assert tuple(tiles[0, 0, 0]) == (0, 0, 0)  # outside both masks: the image


def test_overlay_scales_and_stretches_any_range():
    images = torch.linspace(-500, 1500, 16 * 16).reshape(1, 1, 16, 16)
    empty = torch.zeros(1, 16, 16, dtype=torch.bool)
    tiles = overlay_tiles(images, empty, empty, scale=2)
    assert tiles.shape == (1, 32, 32, 3)
    assert tiles.min() == 0 and tiles.max() == 255  # min-max per image
    assert (tiles[0, 0, 0] == tiles[0, 1, 1]).all()  # nearest-neighbour block
    assert auto_scale(32, 32) == 4 and auto_scale(64, 48) == 2 and auto_scale(300, 200) == 1


def test_overlay_sheet_is_a_readable_png_with_tiles_in_order(tmp_path):
    images, truth, pred = _batch(n=5)
    images[1] = 1.0  # a uniform image stays black after the stretch, like the others
    pred[4] = False  # the last tile: a missed lesion, shows truth only
    path = overlay_sheet(images, truth, pred, tmp_path / "sheet.png", columns=2, max_images=4, scale=3)
    sheet = np.array(Image.open(path).convert("RGB"))
    # 4 of 5 tiles in 2 rows of 2: header 18 + 2 x (48 + 12 + 4) + 4 high, at least 240 wide
    assert sheet.shape == (18 + 2 * 64 + 4, 240, 3)
    tile = overlay_tiles(images[:1], truth[:1], pred[:1], scale=3)[0]
    np.testing.assert_array_equal(sheet[18:18 + 48, 4:4 + 48], tile)  # first tile, top left
    np.testing.assert_array_equal(sheet[18 + 64:18 + 64 + 48, 4 + 52:4 + 52 + 48], tile)  # 4th, bottom right
    assert (sheet[18 + 48 + 1:18 + 48 + 12] < 128).any()  # a caption under the tiles
    with pytest.raises(ValueError, match="captions"):
        overlay_sheet(images, truth, pred, tmp_path / "x.png", captions=["one"])
    with pytest.raises(ValueError, match="differ in size"):
        overlay_sheet(images, truth[:4], pred, tmp_path / "x.png", max_images=2)
    empty = overlay_sheet(images[:0], truth[:0], pred[:0], tmp_path / "empty.png")
    blank = np.array(Image.open(empty).convert("L"))
    assert blank.shape[1] >= 240 and (blank[18:] < 128).any()  # says "no images" below the legend


def test_triptych_rows_and_columns():
    images, truth, pred = _batch(n=10)
    images[:, :, 0, 0] = 1.0  # +1 -> white in the input panel
    probabilities = pred.float() * 0.5
    grid = tensorboard_triptych(images, truth, probabilities, max_images=8)
    pad, tile = 2, 16 + 4
    assert grid.shape == (3, 8 * tile, 3 * tile)
    assert grid.min() >= 0 and grid.max() <= 1
    row = grid[:, tile:2 * tile]  # second image
    assert torch.allclose(row[:, pad + 0, pad + 0], torch.ones(3))  # input pixel at +1
    assert torch.allclose(row[:, pad + 1, pad + 1], torch.full((3,), 0.5))  # input 0 -> mid grey
    assert torch.allclose(row[:, pad + 5, tile + pad + 5], torch.ones(3))  # truth inside
    assert torch.allclose(row[:, pad + 5, tile + pad + 12], torch.zeros(3))  # truth outside
    assert torch.allclose(row[:, pad + 5, 2 * tile + pad + 12], torch.full((3,), 0.5))  # probability 0.5
    three = tensorboard_triptych(torch.zeros(2, 3, 8, 8), np.ones((2, 1, 8, 8), bool), np.zeros((2, 8, 8)))
    assert three.shape == (3, 2 * 12, 3 * 12)
    with pytest.raises(ValueError, match="differ in size"):
        tensorboard_triptych(images, truth[:, :8], pred)
