"""One pretraining step: masks, reconstruction, loss, predictor update, masker feedback.

Kept apart from the loop (:func:`sslkit.pretraining.train_loop.train_one_epoch`) so that the loop
reads as book-keeping and benchmarks can time exactly the step the engine runs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable

import torch

from sslkit.engine.device import Precision
from sslkit.pretraining.dist_info import DistInfo
from sslkit.pretraining.distributed import all_finite
from sslkit.pretraining.loss import masked_reconstruction_loss, reconstruction_target
from sslkit.pretraining.soft_mask import soft_mask_loss
from sslkit.masking import MaskFeedback, StepInfo, apply_mask, snap_to_cells, validate_masks

#: Maskers (by id) whose first masks were checked against the encoder's cells under sparse encoding.
_CHECKED_ALIGNMENT: set[int] = set()


class NonFiniteLoss(ArithmeticError):
    """The loss is NaN or infinite; raised before the step is applied, so the weights are unharmed."""

    def __init__(self, value: float):
        super().__init__(f"the loss became {value}")
        self.value = value


@dataclass
class StepOutput:
    loss: torch.Tensor
    """Detached scalar (fp32)."""
    masks: torch.Tensor
    masked: torch.Tensor
    reconstruction: torch.Tensor
    """Detached, fp32, from before the update."""
    masker_scalars: dict[str, float]


def _to_float(value: Any) -> float | None:
    try:
        return float(value.detach().float().mean()) if isinstance(value, torch.Tensor) else float(value)
    except (TypeError, ValueError):
        return None


def train_step(
    *,
    images: torch.Tensor,
    lesions: torch.Tensor | None,
    info: StepInfo,
    masker: Any,
    forward: Callable[..., torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    precision: Precision,
    loss_kind: str = "masked",
    dist: DistInfo = DistInfo(),
    who: str = "masker",
    predictor: torch.nn.Module | None = None,
    encoding: str = "dense",
    target: str = "pixels",
    cell_grid: tuple[int, int] | None = None,
) -> StepOutput:
    """Run one step; raises :class:`NonFiniteLoss` (on every rank) before updating on NaN/inf.

    ``predictor`` (the plain module behind ``forward``) lets maskers ask for the loss of a soft
    mask (``MaskFeedback.soft_mask_loss``); without it that field stays None. ``encoding`` sparse
    snaps the masks to ``cell_grid`` (the encoder's cells) and calls ``forward(masked, visible
    cells)``; ``target`` norm-pixels normalises each cell of ``cell_grid`` (see
    :func:`~sslkit.pretraining.loss.reconstruction_target`)."""
    masks = validate_masks(masker.propose(images, info), images, who)
    visible_cells = None
    if encoding == "sparse":
        if cell_grid is None:
            raise ValueError("encoding='sparse' needs the encoder's cell_grid")
        cells, snapped = snap_to_cells(masks, cell_grid)
        _note_unaligned(masks, snapped, masker, who, dist)
        masks, visible_cells = snapped, ~cells
    masked = apply_mask(images, masks)
    with precision.autocast():
        reconstruction = forward(masked) if visible_cells is None else forward(masked, visible_cells)
    if reconstruction.shape != images.shape:
        raise RuntimeError(f"the predictor returned shape {tuple(reconstruction.shape)} for input {tuple(images.shape)}")
    goal, to_pixels = reconstruction_target(images, target, cell_grid or (1, 1))
    loss, per_image, error_map = masked_reconstruction_loss(reconstruction, goal, masks, loss_kind)
    if not all_finite(loss, dist):
        raise NonFiniteLoss(float(loss.detach()))
    optimizer.zero_grad(set_to_none=True)
    precision.backward_and_step(loss, optimizer)  # with DDP, gradients are averaged over processes here
    with warnings.catch_warnings():
        # fp16: when the scaler skips a step whose gradients overflowed, the schedule still
        # advances (it counts steps); PyTorch warns about exactly that order, on every process.
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
        scheduler.step()
    reconstruction = to_pixels(reconstruction.detach().float())
    feedback = MaskFeedback(
        images=images,
        masks=masks,
        reconstruction=reconstruction,
        error_map=error_map.detach(),
        per_sample_loss=per_image.detach(),
        step=info,
        lesions=lesions,
        soft_mask_loss=(soft_mask_loss(predictor, precision, loss_kind, target, cell_grid or (1, 1))
                        if predictor is not None else None),
    )
    scalars = {k: f for k, v in (masker.feedback(feedback) or {}).items() if (f := _to_float(v)) is not None}
    return StepOutput(loss.detach(), masks, masked, reconstruction, scalars)


def _note_unaligned(masks: torch.Tensor, snapped: torch.Tensor, masker: Any, who: str, dist: DistInfo) -> None:
    """Once per masker: say in one sentence when its masks were not unions of the encoder's cells
    (they are snapped; the built-in maskers never need it). One host sync, on the first step only."""
    if id(masker) in _CHECKED_ALIGNMENT:
        return
    _CHECKED_ALIGNMENT.add(id(masker))
    if dist.is_main and not bool(torch.equal(masks, snapped)):
        import click

        click.echo(f"note: {who}'s masks are not unions of the encoder's cells, which --encoding sparse needs; they are "
                   "snapped to them (a cell is hidden when at least half of it is)", err=True)
