"""The masker contract and the one mask type every masker returns.

**Mask type.** A mask batch is a ``torch.bool`` tensor of shape ``(B, 1, H, W)`` at the input
images' resolution and on their device; ``True`` marks a hidden pixel. :func:`apply_mask` hides
those pixels; the predictor reconstructs them.

**Life of a masker** (the engine calls these, in this order)::

    masker.setup(context)                     # once: image size, device, planned steps, rank
    for each batch:
        masks = masker.propose(images, step)  # bool (B,1,H,W), built vectorised on the device
        ... predictor forward, loss, predictor update ...
        scalars = masker.feedback(feedback)   # detached losses/error maps; may train itself
    masker.state_dict() / load_state_dict()   # checkpointed with the run, for exact resume

A masker may own trainable modules with its own optimizer and schedule; it returns them from
:meth:`Masker.modules` so the engine can start every process from rank 0's copy and check they
stay identical. A masker that trains them averages their gradients over processes
(:func:`average_gradients`, a no-op in one process) before its optimizer step, as ``dqn`` does.
It may offer images to log (:meth:`Masker.log_images`).

**Optional extensions** (the engine always fills them; a masker that does not need them ignores
them, so no other masker changes):

* ``context.encoder`` — read access to the predictor's current encoder (the module being trained,
  never to be modified). ``saliency`` keeps its own moving-average teacher copy of it.
* ``feedback.soft_mask_loss(images, soft_masks)`` — the predictor's per-image loss for these
  images hidden by *soft* masks (float ``(b, 1, H, W)`` in [0, 1]; ``images * (1 - soft)``),
  differentiable with respect to the masks, computed with the weights after this step's update
  and leaving the predictor untouched (no gradients on its weights, BatchNorm statistics
  unchanged). ``adios`` trains its occluder to maximise it. The predictor itself always trains on
  the boolean masks from :meth:`Masker.propose`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, runtime_checkable

import torch
from torch import nn

from sslkit.errors import UserError
from sslkit.seeding import derive_seed


@dataclass(frozen=True)
class MaskerContext:
    """What a masker learns once, before the first batch."""

    image_size: tuple[int, int]
    in_chans: int
    device: torch.device
    total_steps: int
    steps_per_epoch: int
    epochs: int
    seed: int = 0
    rank: int = 0
    world_size: int = 1
    encoder: nn.Module | None = None
    """The predictor's encoder, for maskers that look at what it has learnt (read only)."""
    precision: str = "fp32"
    """The run's autocast precision (``fp32``, ``bf16`` or ``fp16``, already resolved from
    ``auto``). A masker with networks of its own may run their forward passes in it (``dqn`` does
    for ``bf16``); under ``fp16`` it would need its own gradient scaler, so fp32 is safer there."""
    memory_format: torch.memory_format = torch.contiguous_format
    """The layout of the images the masker receives (``torch.channels_last`` by default): a
    masker's own convolutional networks run fastest in the same layout (``module.to(memory_format=...)``)."""
    cell_grid: tuple[int, int] | None = None
    """Under ``--encoding sparse``: the (rows, columns) cell grid the encoder can represent (its
    deepest feature map at this image size). Masks must then be unions of these cells (the exact
    integer split of :func:`cell_index`); the engine snaps any that are not (see
    :func:`snap_to_cells`). None under dense encoding: any mask is fine."""


@dataclass(frozen=True)
class StepInfo:
    """Where training is when a mask is asked for (``step`` is global and 0-based)."""

    step: int
    epoch: int
    total_steps: int
    training: bool = True

    @property
    def progress(self) -> float:
        """Fraction of the planned steps done, in [0, 1]."""
        return min(1.0, self.step / max(1, self.total_steps))


@dataclass
class MaskFeedback:
    """What the engine tells a masker after the predictor's step (all detached)."""

    images: torch.Tensor
    """(B, C, H, W) the unmasked inputs."""
    masks: torch.Tensor
    """(B, 1, H, W) bool, the masks this masker proposed."""
    reconstruction: torch.Tensor
    """(B, C, H, W) the predictor's output, computed before its update."""
    error_map: torch.Tensor
    """(B, 1, H, W) squared error per pixel (mean over channels), before the update."""
    per_sample_loss: torch.Tensor
    """(B,) the predictor's training loss per image."""
    step: StepInfo
    lesions: torch.Tensor | None = None
    """(B, 1, H, W) bool lesion masks when the data has them (analysis only, never a target)."""
    extras: dict[str, Any] = field(default_factory=dict)
    soft_mask_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    """``(images, soft_masks) -> (b,)`` loss, differentiable in the masks (see the module docstring)."""


@runtime_checkable
class Masker(Protocol):
    """What the engine needs from a masker; :class:`MaskerBase` implements all of it."""

    def setup(self, context: MaskerContext) -> None: ...

    def propose(self, images: torch.Tensor, step: StepInfo) -> torch.Tensor: ...

    def feedback(self, feedback: MaskFeedback) -> dict[str, float]: ...

    def log_images(self) -> dict[str, torch.Tensor]: ...

    def modules(self) -> list[nn.Module]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class MaskerBase:
    """Defaults for the contract: a seeded device generator, no learning, nothing to log.

    Subclasses implement :meth:`propose` (drawing randomness from ``self.generator`` so that
    resumed runs reproduce the same masks) and override the rest as needed.
    """

    context: MaskerContext
    generator: torch.Generator

    def setup(self, context: MaskerContext) -> None:
        self.context = context
        self.generator = torch.Generator(device=context.device)
        # Each process draws different masks; the seed keeps runs reproducible.
        self.generator.manual_seed(derive_seed(context.seed, context.rank))

    def propose(self, images: torch.Tensor, step: StepInfo) -> torch.Tensor:
        raise NotImplementedError

    def feedback(self, feedback: MaskFeedback) -> dict[str, float]:
        return {}

    def log_images(self) -> dict[str, torch.Tensor]:
        return {}

    def modules(self) -> list[nn.Module]:
        return []

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "generator" in state:
            self.generator.set_state(state["generator"].cpu() if hasattr(state["generator"], "cpu") else state["generator"])

    # Helpers for subclasses -------------------------------------------------------------
    @property
    def cell_grid(self) -> tuple[int, int] | None:
        """The encoder's cell grid masks must be unions of (sparse encoding), else None."""
        return getattr(getattr(self, "context", None), "cell_grid", None)

    def rand(self, *shape: int, device: torch.device | None = None) -> torch.Tensor:
        """Uniform [0, 1) numbers from this masker's generator, on its device."""
        return torch.rand(*shape, generator=self.generator, device=device or self.context.device)


def average_gradients(modules: list[nn.Module]) -> None:
    """Average the gradients of ``modules``' parameters over processes (a no-op in one process).

    A masker that trains its own modules calls it between ``backward`` and its optimizer step, so
    every process takes the same step and the copies stay identical (one all-reduce for all)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return
    grads = [p.grad for m in modules for p in m.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def apply_mask(images: torch.Tensor, masks: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """Hide masked pixels: ``images`` where ``masks`` is False, ``fill`` where it is True."""
    return images.masked_fill(masks.expand_as(images), fill)


def validate_masks(masks: Any, images: torch.Tensor, who: str = "masker") -> torch.Tensor:
    """Check a masker's output is the mask type; a wrong one is a clear error, not a crash later."""
    b, _, h, w = images.shape
    if not isinstance(masks, torch.Tensor):
        raise UserError(f"{who} returned {type(masks).__name__}, not a bool tensor of shape ({b}, 1, {h}, {w})")
    if masks.dtype != torch.bool or tuple(masks.shape) != (b, 1, h, w):
        raise UserError(
            f"{who} returned a {masks.dtype} mask of shape {tuple(masks.shape)}; "
            f"expected torch.bool of shape ({b}, 1, {h}, {w})"
        )
    if masks.device != images.device:
        raise UserError(f"{who} returned a mask on {masks.device}, but the images are on {images.device}")
    return masks


def boxes_to_masks(
    top: torch.Tensor, left: torch.Tensor, height: torch.Tensor | int, width: torch.Tensor | int, size: tuple[int, int]
) -> torch.Tensor:
    """Rectangles -> bool masks, vectorised.

    ``top``/``left`` are integer tensors of shape (B,) or (B, K) (K boxes per image, united);
    ``height``/``width`` broadcast against them. Returns (B, 1, H, W) bool.
    """
    h, w = size
    top = top.long()
    left = left.long()
    if top.dim() == 1:
        top, left = top[:, None], left[:, None]
    # Python ints stay ints: uploading them as tensors would cost a host-device copy per call.
    if isinstance(height, torch.Tensor):
        height = height.to(top.device).long()
    if isinstance(width, torch.Tensor):
        width = width.to(top.device).long()
    rows = torch.arange(h, device=top.device)[None, None, :]  # 1,1,H
    cols = torch.arange(w, device=top.device)[None, None, :]  # 1,1,W
    in_rows = (rows >= top[..., None]) & (rows < (top + height)[..., None])  # B,K,H
    in_cols = (cols >= left[..., None]) & (cols < (left + width)[..., None])  # B,K,W
    masks = (in_rows[..., :, None] & in_cols[..., None, :]).any(dim=1)  # B,H,W
    return masks[:, None]


def cell_index(cells: int, pixels: int, device: torch.device | None = None) -> torch.Tensor:
    """For each of ``pixels`` positions, the cell (of ``cells``) it falls in: exact integer split."""
    return torch.div(torch.arange(pixels, device=device) * cells, pixels, rounding_mode="floor")


def cells_to_masks(cells: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A (B, G, G') bool grid of cells -> (B, 1, H, W) bool masks.

    Pixel row ``r`` belongs to cell ``r * G // H`` (an exact integer split; float nearest
    upsampling would shift some cell edges by a pixel when G does not divide H)."""
    rows = cell_index(cells.shape[1], size[0], cells.device)
    cols = cell_index(cells.shape[2], size[1], cells.device)
    return cells[:, rows][:, :, cols][:, None]


def cell_membership(cells: int, pixels: int, device: torch.device | None = None) -> torch.Tensor:
    """(cells, pixels) float one-hot: which pixel rows (or columns) belong to each cell row, on
    the split :func:`cells_to_masks` uses."""
    index = cell_index(cells, pixels, device)
    return (torch.arange(cells, device=device)[:, None] == index[None, :]).float()


def cell_fractions(masks: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(B, 1, H, W) bool masks -> (B, gh, gw): the share of each cell's pixels that is hidden (for a
    float map: each cell's mean)."""
    _, _, h, w = masks.shape
    rows = cell_membership(grid[0], h, masks.device)  # gh, H
    cols = cell_membership(grid[1], w, masks.device)  # gw, W
    sums = rows @ masks[:, 0].float() @ cols.t()
    return sums / (rows.sum(1)[:, None] * cols.sum(1)[None, :])


def snap_cells(masks: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(B, 1, H, W) bool masks -> (B, gh, gw) bool hidden cells: a cell is hidden when at least half
    of it is; an image that hid something keeps at least its most hidden cell. A mask that is
    already a union of cells gives exactly those cells."""
    fractions = cell_fractions(masks, grid)
    flat = fractions.flatten(1)
    most = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, flat.argmax(dim=1, keepdim=True), True)
    cells = (flat >= 0.5) | (most & (flat > 0))
    return cells.view_as(fractions)


def snap_to_cells(masks: torch.Tensor, grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(hidden cells (B, gh, gw), their pixel masks (B, 1, H, W)): ``masks`` snapped to the grid
    (:func:`snap_cells`); unchanged when they are unions of its cells already."""
    cells = snap_cells(masks, grid)
    return cells, cells_to_masks(cells, (int(masks.shape[-2]), int(masks.shape[-1])))


def grid_on_cells(grid: int, context: MaskerContext) -> int:
    """The grid a grid masker uses: its own, unless the encoder's cell grid (sparse encoding) does
    not refine it; then the encoder's, so that its masks are unions of the encoder's cells.

    A G x G grid nests in an E x E one exactly when E is a multiple of G (the integer split of
    :func:`cell_index` then puts every pixel of an E-cell in one G-cell)."""
    cell_grid = getattr(context, "cell_grid", None)
    if cell_grid is None:
        return grid
    rows, cols = int(cell_grid[0]), int(cell_grid[1])
    if rows == cols and rows % grid == 0:
        return grid
    return rows if rows == cols else min(rows, cols)


def lesion_hit_counts(masks: torch.Tensor, lesions: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(images whose mask overlaps their lesion, images with a lesion), as device scalars.

    No host sync: the hot path reads them together with its other figures in one transfer."""
    if lesions is None:
        zero = torch.zeros((), device=masks.device)
        return zero, zero
    has_lesion = lesions.flatten(1).any(dim=1)
    hits = (masks & lesions.bool()).flatten(1).any(dim=1) & has_lesion
    return hits.sum().float(), has_lesion.sum().float()


def lesion_hit_rate(masks: torch.Tensor, lesions: torch.Tensor | None) -> torch.Tensor | None:
    """Share of images with a lesion whose mask overlaps it (None when no image has one)."""
    if lesions is None:
        return None
    hits, with_lesion = lesion_hit_counts(masks, lesions)
    if not bool(with_lesion > 0):
        return None
    return hits / with_lesion

