"""What the learned maskers share: ``hpm``, ``saliency`` and ``adios`` (the grid maskers) all of
it, ``dqn`` the network handling and :func:`to_host`.

* option checks that end in one sentence (:class:`Checks`);
* choosing hidden cells: the top-scored ones plus random others, vectorised (:func:`choose_cells`);
* per-cell means of a pixel map on the same cell split the masks use (:func:`cell_means`);
* the lesion-hit rate random placement would give on the same batch, in closed form, for random
  cells (:func:`random_cell_hit_counts`) and for a mask of any shape at a random position
  (:func:`random_shift_hit_counts`);
* networks built from the run seed, placed and run the way the run runs its predictor
  (:func:`seeded`, :func:`place`, :func:`own_autocast`) and host scalars in one transfer
  (:func:`to_host`).

Their checkpoint state is :mod:`._learned_state`'s, their TensorBoard pictures :mod:`._heat_map`'s.

Everything per batch is tensor code on the images' device: no per-sample Python loop and no host
synchronisation until :func:`to_host`.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn

from sslkit.masking import cell_fractions, cells_to_masks
from sslkit.options import OptionChecks


class Checks(OptionChecks):
    """Option checks for one masker (:class:`sslkit.options.OptionChecks`: each failure is one
    sentence naming the masker and option), plus the grid rule the learned maskers share."""

    def grid_fits(self, grid: int, image_size: tuple[int, int]) -> None:
        if grid > min(image_size):
            raise self.fail(f"grid ({grid}) is finer than the images ({image_size[0]} x {image_size[1]} px)")


def hidden_count(ratio: float, grid: int) -> int:
    """Cells hidden per image: ``round(ratio * grid**2)``, at least one."""
    return max(1, round(ratio * grid * grid))


def choose_cells(scores: torch.Tensor, hidden: int, top: int, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Hide ``hidden`` cells per image: the ``top`` best-scored, then random others.

    ``scores`` and ``keys`` (uniform [0, 1) draws) are (B, N). Returns ((B, N) bool hidden cells,
    (B, N) bool the ones chosen by score). The scored cells get keys above 1, so one top-k over
    the keys takes them first and fills the rest uniformly at random among the other cells."""
    top = max(0, min(int(top), hidden))
    by_score = torch.zeros_like(keys, dtype=torch.bool)
    if top:
        by_score.scatter_(1, scores.topk(top, dim=1).indices, True)
    chosen = (keys + by_score.to(keys.dtype) * 2.0).topk(hidden, dim=1).indices
    cells = torch.zeros_like(by_score).scatter_(1, chosen, True)
    return cells, by_score


def cells_to_pixel_masks(cells: torch.Tensor, grid: int, size: tuple[int, int]) -> torch.Tensor:
    """(B, G * G) bool -> (B, 1, H, W) bool masks on the exact integer cell split."""
    return cells_to_masks(cells.view(-1, grid, grid), size)


def cell_means(maps: torch.Tensor, grid: int) -> torch.Tensor:
    """(B, 1, H, W) -> (B, G * G): each cell's mean over exactly the pixels its mask hides."""
    return cell_fractions(maps, (grid, grid)).flatten(1)


def random_cell_hit_counts(lesions: torch.Tensor, grid: int, hidden: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Expected hits of ``hidden`` uniformly random cells of N = G * G, summed over the images with
    a lesion, and the number of those images (device scalars, no host sync).

    An image whose lesion touches ``h`` cells is missed with probability C(N - h, n) / C(N, n)
    (hypergeometric, no hit among n draws without replacement), here through log-gamma so that it
    is one vectorised expression; it is the block = 1 case of ``dqn``'s product formula."""
    lesions = lesions.bool()
    has_lesion = lesions.flatten(1).any(dim=1)
    exact = torch.float32 if lesions.device.type == "mps" else torch.float64  # MPS has no float64
    touched = (cell_means(lesions.float(), grid) > 0).sum(dim=1).to(exact)  # B
    n_cells = float(grid * grid)
    n = float(hidden)
    free = n_cells - touched
    log_miss = (torch.lgamma(free + 1) - torch.lgamma((free - n).clamp(min=0) + 1)
                - math.lgamma(n_cells + 1) + math.lgamma(n_cells - n + 1))
    miss = torch.where(free >= n, log_miss.exp(), torch.zeros_like(log_miss))
    return ((1.0 - miss) * has_lesion).sum().float(), has_lesion.sum().float()


def random_shift_hit_counts(masks: torch.Tensor, lesions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Expected hits when each image's own mask is moved to a uniformly random (cyclic) position,
    summed over the images with a lesion, and their number (device scalars).

    The share of the H * W shifts at which mask and lesion overlap is the share of positive
    entries of their circular cross-correlation, computed for the whole batch with one FFT: the
    random baseline for masks of any shape (same shape and area, random place)."""
    m = masks[:, 0].float()
    les = lesions[:, 0].float()
    has_lesion = les.flatten(1).amax(dim=1) > 0
    overlap = torch.fft.irfft2(torch.fft.rfft2(les) * torch.fft.rfft2(m).conj(), s=m.shape[-2:])
    rate = (overlap > 0.5).float().flatten(1).mean(dim=1)  # overlaps are whole pixel counts
    return (rate * has_lesion).sum(), has_lesion.sum().float()


def seeded(seed: int, build: Callable[[], nn.Module]) -> nn.Module:
    """A network whose initial weights come from the run seed, not the global random state, so
    every process and every rerun starts from the same one."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return build()


def place(module: nn.Module, context: Any) -> nn.Module:
    """On the run's device, in the images' memory layout (convolutions run fastest in it)."""
    return module.to(context.device, memory_format=getattr(context, "memory_format", torch.contiguous_format))


def autocast_dtype(context: Any) -> torch.dtype | None:
    """bf16 when the run uses it (fp32's range, no gradient scaler needed); else fp32 (None):
    under fp16 a masker's own network would need a gradient scaler of its own."""
    return torch.bfloat16 if getattr(context, "precision", "fp32") == "bf16" else None


def own_autocast(device: torch.device, dtype: torch.dtype | None):
    """The context a masker's own network runs in: ``dtype`` autocast, or none (fp32) even inside
    the engine's autocast."""
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def to_host(values: dict[str, torch.Tensor], plain: dict[str, float] | None = None) -> dict[str, float]:
    """Device scalars -> floats in one transfer; NaN (an undefined figure) is left out."""
    out: dict[str, float] = {}
    if values:
        names = list(values)
        device = next(iter(values.values())).device
        numbers = torch.stack([v.detach().float().reshape(()).to(device) for v in values.values()]).tolist()
        out = {n: x for n, x in zip(names, numbers) if x == x}
    return {**out, **(plain or {})}


def lesion_scalars(hits: torch.Tensor, with_lesion: torch.Tensor, random_hits: torch.Tensor) -> dict[str, torch.Tensor]:
    """``lesion_hit_rate`` and ``lesion_hit_rate_random`` (NaN, hence dropped, without a lesion)."""
    return {"lesion_hit_rate": hits / with_lesion, "lesion_hit_rate_random": random_hits / with_lesion}
