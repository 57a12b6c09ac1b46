"""Grid geometry of the dqn masker: blocks of k x k cells that always lie inside the image.

An action is the top-left cell ("corner") of a k x k block on the G x G grid. Only the
``M = G - k + 1`` corners per axis whose whole block fits are valid, so a mask is never cut at the
border (the authors' code let the argmax fall on the last rows/columns and truncated the block).

Q is defined per *cell*; the value of a block is the sum of its cells' values (a stride-1 k x k sum
pool), which gives exactly one value per valid corner, keeps the meaning of Q when the validation
block differs from the training block (k = 3 vs 2 in the paper), and extends to several blocks per
image: the value of an action is the sum over the union of its cells (overlaps counted once).

Everything here is batched tensor code: no per-sample loop, no ``nonzero``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from sslkit.masking import boxes_to_masks, cell_fractions, cells_to_masks


def block_values(q: torch.Tensor, block: int) -> torch.Tensor:
    """(B, 1, G, G) cell values -> (B, M * M) block values, one per valid corner (row-major)."""
    summed = F.avg_pool2d(q, block, stride=1) * (block * block)
    return summed.flatten(1)


def corners_to_cells(corners: torch.Tensor, grid: int, block: int) -> torch.Tensor:
    """(B, n) flat corner indices over the valid corners -> (B, G, G) bool cells (union of blocks)."""
    per_axis = grid - block + 1
    rows = torch.div(corners, per_axis, rounding_mode="floor")
    cols = corners - rows * per_axis
    return boxes_to_masks(rows, cols, block, block, (grid, grid))[:, 0]


def corners_to_masks(corners: torch.Tensor, grid: int, block: int, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, n) corners -> ((B, G, G) bool cells, (B, 1, H, W) bool pixel masks)."""
    cells = corners_to_cells(corners, grid, block)
    return cells, cells_to_masks(cells, size)


def cells_touched(pixels: torch.Tensor, grid: int) -> torch.Tensor:
    """(B, 1, H, W) bool pixels -> (B, G, G) bool: does the cell contain any True pixel."""
    return cell_fractions(pixels, (grid, grid)) > 0


def expected_random_hit_rate(lesions: torch.Tensor, grid: int, block: int, blocks_per_image: int = 1) -> torch.Tensor | None:
    """Exact expected lesion-hit rate of uniformly random valid corners on this batch.

    For each image, ``h`` of the ``N = M * M`` valid blocks overlap its lesion (a k x k max pool of
    the per-cell lesion map). Drawing ``n`` distinct corners uniformly, the masks miss the lesion
    with probability C(N - h, n) / C(N, n). Averaged over the images that have a lesion, as
    :func:`sslkit.masking.lesion_hit_rate` does for the actual masks; None when none has one.
    """
    expected_hits, with_lesion = expected_random_hit_counts(lesions, grid, block, blocks_per_image)
    if not bool(with_lesion > 0):
        return None
    return expected_hits / with_lesion


def expected_random_hit_counts(
    lesions: torch.Tensor, grid: int, block: int, blocks_per_image: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """(expected hits summed over images with a lesion, images with a lesion) as device scalars,
    with no host sync, like :func:`sslkit.masking.lesion_hit_counts`."""
    lesions = lesions.bool()
    has_lesion = lesions.flatten(1).any(dim=1)
    cells = cells_touched(lesions, grid).float()[:, None]  # B,1,G,G
    hitting = F.max_pool2d(cells, block, stride=1).flatten(1).sum(dim=1)  # B
    total = float((grid - block + 1) ** 2)
    miss = torch.ones_like(hitting)
    for t in range(min(blocks_per_image, int(total))):  # n terms, not a loop over samples
        miss = miss * ((total - hitting - t).clamp(min=0) / (total - t))
    return ((1.0 - miss) * has_lesion).sum(), has_lesion.sum().float()


def location_entropy(corners: torch.Tensor, corner_count: int) -> torch.Tensor:
    """Entropy of the chosen corners over the batch, normalised to [0, 1].

    1 means every pick went to a different corner (as spread as ``B * n`` picks over
    ``corner_count`` corners can be); 0 means all picks went to one corner.
    """
    picks = corners.numel()
    counts = torch.bincount(corners.flatten(), minlength=corner_count).float()
    p = counts / max(1, picks)
    entropy = -(p * torch.log(p.clamp(min=1e-12))).sum()
    most = math.log(min(picks, corner_count))
    return entropy / most if most > 0 else torch.zeros((), device=corners.device)
