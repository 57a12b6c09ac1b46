"""dqn masker geometry: vectorised masks equal a per-sample reference, blocks never leave the
image and always have the full block area, and the analytic random hit rate is exact."""

from __future__ import annotations

import itertools
from math import comb

import pytest
import torch

from sslkit_plugins.maskers.dqn.geometry import (
    block_values,
    cells_touched,
    corners_to_masks,
    expected_random_hit_rate,
    location_entropy,
)

# (image size, grid, block, blocks per image); sizes where nearest upsampling's float rounding
# agrees with exact integer cell boundaries, so the reference below can use integer arithmetic.
CASES = [((64, 64), 8, 2, 1), ((300, 300), 9, 2, 1), ((300, 300), 9, 3, 2), ((28, 28), 8, 3, 3), ((100, 64), 9, 1, 4), ((50, 96), 7, 4, 2)]


def reference_masks(corners: torch.Tensor, grid: int, block: int, size: tuple[int, int]) -> torch.Tensor:
    """Plain per-sample loops: the definition the vectorised code must match."""
    h, w = size
    per_axis = grid - block + 1
    out = torch.zeros(corners.shape[0], 1, h, w, dtype=torch.bool)
    for b in range(corners.shape[0]):
        for corner in corners[b].tolist():
            r, c = divmod(corner, per_axis)
            for y in range(h):
                for x in range(w):
                    cy, cx = y * grid // h, x * grid // w
                    if r <= cy < r + block and c <= cx < c + block:
                        out[b, 0, y, x] = True
    return out


def block_pixels(start: int, block: int, grid: int, length: int) -> int:
    """Pixels of ``block`` cells from cell ``start`` along one axis (exact integer cell edges)."""
    edge = lambda cell: -(-cell * length // grid)  # first pixel of a cell: ceil(cell * L / G)
    return edge(start + block) - edge(start)


@pytest.mark.parametrize("size,grid,block,n", CASES)
def test_vectorised_masks_equal_per_sample_reference(size, grid, block, n):
    gen = torch.Generator().manual_seed(grid * 31 + block)
    corners_total = (grid - block + 1) ** 2
    corners = torch.stack([torch.randperm(corners_total, generator=gen)[:n] for _ in range(5)])
    cells, masks = corners_to_masks(corners, grid, block, size)
    assert masks.dtype == torch.bool and masks.shape == (5, 1, *size)
    assert torch.equal(masks, reference_masks(corners, grid, block, size))
    assert cells.shape == (5, grid, grid)


@pytest.mark.parametrize("size,grid,block", [((64, 64), 8, 2), ((300, 300), 9, 2), ((300, 300), 9, 3), ((28, 28), 8, 3), ((50, 96), 7, 4)])
def test_every_valid_corner_gives_a_whole_block_inside_the_image(size, grid, block):
    per_axis = grid - block + 1
    corners = torch.arange(per_axis * per_axis)[:, None]
    cells, masks = corners_to_masks(corners, grid, block, size)
    h, w = size
    rows, cols = corners[:, 0] // per_axis, corners[:, 0] % per_axis
    expected = torch.tensor([block_pixels(r, block, grid, h) * block_pixels(c, block, grid, w) for r, c in zip(rows.tolist(), cols.tolist())])
    assert torch.equal(masks.flatten(1).sum(1), expected)
    assert torch.equal(cells.flatten(1).sum(1), torch.full((len(corners),), block * block))
    # The last corner's block ends exactly at the image border: it is whole, not cut.
    last = masks[-1, 0]
    assert last[-1, -1] and last.any(dim=1).sum() == block_pixels(per_axis - 1, block, grid, h)


def test_block_values_sum_the_cells_of_each_valid_block():
    q = torch.randn(3, 1, 6, 6)
    for block in (1, 2, 3, 6):
        values = block_values(q, block)
        per_axis = 6 - block + 1
        assert values.shape == (3, per_axis * per_axis)
        for r, c in itertools.product(range(per_axis), repeat=2):
            expected = q[:, 0, r : r + block, c : c + block].sum(dim=(1, 2))
            torch.testing.assert_close(values[:, r * per_axis + c], expected, rtol=1e-5, atol=1e-5)


def test_cells_touched_matches_the_pixels_of_each_cell():
    gen = torch.Generator().manual_seed(3)
    pixels = torch.rand(4, 1, 100, 64, generator=gen) > 0.995
    touched = cells_touched(pixels, 9)
    for b, i, j in itertools.product(range(4), range(9), range(9)):
        ys = [y for y in range(100) if y * 9 // 100 == i]
        xs = [x for x in range(64) if x * 9 // 64 == j]
        assert bool(touched[b, i, j]) == bool(pixels[b, 0][ys][:, xs].any())


@pytest.mark.parametrize("n", [1, 2, 3])
def test_expected_random_hit_rate_is_exact(n):
    """The analytic rate equals the average over every set of n distinct valid corners."""
    size, grid, block = (32, 32), 4, 2
    lesions = torch.zeros(3, 1, *size, dtype=torch.bool)
    lesions[0, 0, 2:5, 3:6] = True  # one cell
    lesions[1, 0, 14:20, 10:22] = True  # spans cells
    # image 2 has no lesion: excluded, as lesion_hit_rate does
    corners_total = (grid - block + 1) ** 2
    subsets = list(itertools.combinations(range(corners_total), n))
    hit = torch.zeros(2)
    for subset in subsets:
        corners = torch.tensor([subset] * 3)
        _, masks = corners_to_masks(corners, grid, block, size)
        hits = (masks & lesions).flatten(1).any(1)[:2].float()
        hit += hits
    brute = (hit / len(subsets)).mean()
    analytic = expected_random_hit_rate(lesions, grid, block, n)
    torch.testing.assert_close(analytic, brute, rtol=1e-6, atol=1e-6)
    assert comb(corners_total, n) == len(subsets)


def test_expected_random_hit_rate_is_none_without_lesions():
    assert expected_random_hit_rate(torch.zeros(2, 1, 8, 8, dtype=torch.bool), 4, 2) is None


def test_location_entropy_is_normalised():
    assert float(location_entropy(torch.zeros(16, 1, dtype=torch.long), 49)) == 0.0
    assert float(location_entropy(torch.arange(16)[:, None], 49)) == pytest.approx(1.0)
    assert float(location_entropy(torch.arange(49).repeat(2)[:, None], 49)) == pytest.approx(1.0)
    assert 0.0 < float(location_entropy(torch.tensor([[0], [0], [1], [2]]), 49)) < 1.0
