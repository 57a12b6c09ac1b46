"""The predictor's loss as a differentiable function of a soft mask (``MaskFeedback.soft_mask_loss``).

An adversarial masker (``adios``) learns to hide what the predictor reconstructs worst, which
needs the gradient of the predictor's loss with respect to the mask. The engine offers it as a
callable, built here, that runs the *plain* predictor (not the DDP wrapper or the compiled one,
whose hooks expect exactly one backward per step) with:

* its weights detached: no gradient reaches or is computed for them, so the predictor's own
  update is untouched and the extra backward only goes through activations;
* copies of its buffers: BatchNorm in training mode updates the copies, not the running
  statistics the predictor keeps (and checkpoints).

Nothing is computed unless a masker calls it.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from sslkit.engine.device import Precision
from sslkit.pretraining.loss import masked_reconstruction_loss, reconstruction_target


def soft_mask_loss(
    predictor: nn.Module, precision: Precision, loss_kind: str = "masked", target: str = "pixels",
    cell_grid: tuple[int, int] = (1, 1),
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``(images, soft_masks) -> (b,)`` per-image loss with ``images * (1 - soft_masks)`` as input.

    The loss is the engine's own (:func:`masked_reconstruction_loss`, against the run's
    ``target``) with the soft mask as the pixel weights, so a soft mask of zeros and ones gives
    the training loss of a dense step. A soft mask has no visible cells, so even under sparse
    encoding the predictor runs densely here."""

    def loss_of(images: torch.Tensor, soft_masks: torch.Tensor) -> torch.Tensor:
        state = {name: p.detach() for name, p in predictor.named_parameters()}
        state.update({name: b.clone() for name, b in predictor.named_buffers()})
        hidden = images * (1.0 - soft_masks.to(images.dtype))
        with precision.autocast():
            reconstruction = torch.func.functional_call(predictor, state, (hidden,))
        goal, _ = reconstruction_target(images, target, cell_grid)
        _, per_image, _ = masked_reconstruction_loss(reconstruction, goal, soft_masks, loss_kind)
        return per_image

    return loss_of
