"""``ADIOSMasker``: adversarial occlusion (Shi et al., ICML 2022) through the masker contract.

The occluder (:mod:`.occluder`) turns each unmasked image into logits; the soft mask ``s`` in
[0, 1] is near 1 on the ``ratio`` share of pixels with the highest logits and near 0 elsewhere,
with a soft rim (:func:`soft_top_share`). The predictor trains, as with every masker, on a boolean
mask: exactly those pixels (binarised, so the predictor never sees half-hidden pixels and every
image hides the same area). After the predictor's update the occluder takes one Adam step *up* the
predictor's loss: through ``MaskFeedback.soft_mask_loss`` (the engine's differentiable path from
a soft mask through the predictor to its loss) it maximises the loss of ``images * (1 - s)``,
weighted by ``s``, minus ``penalty * (mean(s) - ratio)**2``, which keeps the hidden share near
``ratio`` so that it cannot win by hiding everything (ADIOS's sparsity penalty, with a target).
By default that loss is evaluated at the binary mask, with the gradient taken through ``s``
(straight-through): with ``s`` itself, the occluder learnt on BUSI to raise the loss by half-hiding
pixels (dimmed pixels the predictor never trains on; adversary loss 0.99 against a training loss
of 0.13 after two epochs, the mask ever softer) rather than by hiding what is hard to infer.

That step costs an extra predictor forward and an input-gradient backward; it runs on the first
``adversary_share`` of the batch's images (at least two; the batches are shuffled) and every
``every`` steps (2 by default; ADIOS alternates every step, which cost 1.26-1.29x ``random``'s
step on the development CPU, against a target of 1.3), which keeps the masker's cost bounded. The
occluder's forward from :meth:`ADIOSMasker.propose` is reused, with its graph (kept only on the
steps that update it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sslkit.errors import UserError
from sslkit.masking import MaskerContext, MaskFeedback, StepInfo, average_gradients, cell_fractions, cells_to_masks, lesion_hit_counts
from sslkit.optimizers import build_optimizer
from sslkit_plugins.maskers._heat_map import heat_map
from sslkit_plugins.maskers._learned import (
    Checks,
    autocast_dtype,
    lesion_scalars,
    own_autocast,
    place,
    random_shift_hit_counts,
    seeded,
    to_host,
)
from sslkit_plugins.maskers._learned_state import LearnedMaskerBase
from sslkit_plugins.maskers.adios.occluder import Occluder

WHAT = "masker 'adios'"


@dataclass
class _Pending:
    soft: torch.Tensor
    """(B, 1, H, W) soft masks; with the occluder's graph when it is updated at this step."""
    training: bool
    """Whether the occluder takes its adversarial step after this batch."""


def binarise_cells(soft: torch.Tensor, ratio: float, cell_grid: tuple[int, int]) -> torch.Tensor:
    """Sparse encoding: (B, 1, H, W) soft masks -> bool masks hiding the ``round(ratio * cells)``
    cells of the encoder's grid with the highest mean soft mask (at least one)."""
    b = soft.shape[0]
    means = cell_fractions(soft.detach(), cell_grid).flatten(1)
    hidden = max(1, round(ratio * means.shape[1]))
    cells = torch.zeros_like(means, dtype=torch.bool).scatter_(1, means.topk(hidden, dim=1).indices, True)
    return cells_to_masks(cells.view(b, *cell_grid), tuple(soft.shape[-2:]))


def binarise(soft: torch.Tensor, hidden: int) -> torch.Tensor:
    """(B, 1, H, W) soft masks -> bool masks hiding each image's ``hidden`` highest pixels."""
    b, _, h, w = soft.shape
    flat = soft.detach().reshape(b, h * w)
    chosen = flat.topk(hidden, dim=1).indices
    return torch.zeros_like(flat, dtype=torch.bool).scatter_(1, chosen, True).view(b, 1, h, w)


def soft_top_share(logits: torch.Tensor, hidden: int, temperature: float) -> torch.Tensor:
    """(B, 1, H, W) logits -> soft masks near 1 on each image's ``hidden`` highest logits, near 0
    elsewhere, differentiable: ``sigmoid((z - t) / temperature)`` with ``z`` the logits
    standardised per image and ``t`` (not differentiated) the ``hidden``-th highest ``z``.

    A plain sigmoid of the logits is a faint, uniform dimming at first, which the predictor (trained
    on hidden pixels set to zero) simply sees through, so its gradient says little about what
    hiding would cost; this soft mask is the binary mask with a soft rim, and its gradient says
    where moving the rim raises the loss."""
    b = logits.shape[0]
    flat = logits.reshape(b, -1).float()
    z = (flat - flat.mean(dim=1, keepdim=True)) / flat.std(dim=1, keepdim=True).clamp(min=1e-6)
    threshold = z.detach().topk(hidden, dim=1).values[:, -1:]
    return torch.sigmoid((z - threshold) / temperature).view_as(logits)


class ADIOSMasker(LearnedMaskerBase):
    """The ``adios`` masker; options are described in :data:`sslkit_plugins.maskers.adios.OPTIONS`."""

    WHAT = WHAT
    STATE_PARTS = ("occluder", "optimizer")
    SAVED_WITH = "the checkpoint's occluder was built with"

    def __init__(self, ratio: float = 0.25, penalty: float = 10.0, adversary_share: float = 0.25, lr: float = 1e-3,
                 downsample: int = 32, width: int = 16, temperature: float = 0.1, straight_through: bool = True,
                 every: int = 2):
        check = Checks(WHAT)
        self.ratio = check.number("ratio", ratio, 0.0, 1.0, open_low=True)
        if self.ratio >= 1.0:
            raise UserError(f"{WHAT}: ratio must be below 1 (hiding every pixel leaves nothing to learn from), got {ratio!r}")
        self.penalty = check.number("penalty", penalty, 0.0)
        self.adversary_share = check.number("adversary_share", adversary_share, 0.0, 1.0, open_low=True)
        self.lr = check.number("lr", lr, 0.0)
        self.downsample = check.whole("downsample", downsample, 4)
        self.width = check.whole("width", width, 1)
        self.temperature = check.number("temperature", temperature, 0.0, open_low=True)
        if not isinstance(straight_through, bool):
            raise UserError(f"{WHAT}: straight_through must be true or false, got {straight_through!r}")
        self.straight_through = straight_through
        self.every = check.whole("every", every, 1)
        self.occluder: nn.Module | None = None
        self.updates = 0
        self._pending: _Pending | None = None
        self._last_soft: torch.Tensor | None = None

    # Life cycle ---------------------------------------------------------------------------
    def setup(self, context: MaskerContext) -> None:
        super().setup(context)
        occluder = seeded(int(context.seed) * 7 + 3, lambda: Occluder(context.in_chans, self.downsample, self.width))
        self.occluder = place(occluder, context)
        self.optimizer = build_optimizer(self.occluder.parameters(), "adam", lr=self.lr)
        self.dtype = autocast_dtype(context)
        h, w = context.image_size
        self.hidden = max(1, round(self.ratio * h * w))
        self.updates = 0
        self._pending = None

    def propose(self, images: torch.Tensor, step: StepInfo) -> torch.Tensor:
        self._network("propose")  # set up first
        training = bool(step.training)
        self.occluder.train(training)
        h, w = images.shape[-2:]
        hidden = self.hidden if (h, w) == tuple(self.context.image_size) else max(1, round(self.ratio * h * w))
        # the last step of every `every` (from the global step, so resumable); with an even
        # --log-every the steps TensorBoard logs are among them
        updating = training and (step.step + 1) % self.every == 0
        with torch.set_grad_enabled(updating):
            with own_autocast(images.device, self.dtype):
                logits = self.occluder(images.float())
            soft = soft_top_share(logits.float(), hidden, self.temperature)
        self._pending = _Pending(soft, updating)
        self._last_soft = soft.detach()
        if self.cell_grid is not None:  # sparse encoding: whole cells of the encoder's grid
            return binarise_cells(soft, self.ratio, self.cell_grid)
        return binarise(soft, hidden)

    def feedback(self, feedback: MaskFeedback) -> dict[str, float]:
        pending, self._pending = self._pending, None
        if pending is None:
            return {}
        values: dict[str, torch.Tensor] = {
            "soft_share": pending.soft.detach().mean(),
            "sharpness": (2 * pending.soft.detach() - 1).abs().mean(),  # 0: all 0.5, 1: all 0 or 1
        }
        plain: dict[str, float] = {}
        if pending.training:  # i.e. this step updates the occluder
            if feedback.soft_mask_loss is None:
                raise UserError(f"{WHAT} needs the loss of a soft mask (MaskFeedback.soft_mask_loss), which this engine did not give")
            # at least two images: BatchNorm in training mode cannot normalise a single one
            batch = pending.soft.shape[0]
            count = min(batch, max(2, round(self.adversary_share * batch)))
            soft = pending.soft[:count]
            if self.straight_through:  # the binary mask forward, the soft mask's gradient backward
                loss = feedback.soft_mask_loss(feedback.images[:count], feedback.masks[:count].to(soft.dtype) + soft - soft.detach())
            else:
                loss = feedback.soft_mask_loss(feedback.images[:count], soft)
            share_penalty = (soft.flatten(1).mean(dim=1) - self.ratio).pow(2)
            objective = (self.penalty * share_penalty - loss.float()).mean()  # the occluder *raises* the loss
            plain["occluder_lr"] = float(self.optimizer.param_groups[0]["lr"])
            self.optimizer.zero_grad(set_to_none=True)
            objective.backward()
            average_gradients([self.occluder])
            self.optimizer.step()
            self.updates += 1
            values.update(adversary_loss=loss.detach().mean(), share_penalty=share_penalty.detach().mean())
        if feedback.lesions is not None:
            hits, with_lesion = lesion_hit_counts(feedback.masks, feedback.lesions)
            random_hits, _ = random_shift_hit_counts(feedback.masks, feedback.lesions)
            values.update(lesion_scalars(hits, with_lesion, random_hits))
        return to_host(values, plain)

    def log_images(self) -> dict[str, torch.Tensor]:
        """The last batch's soft masks (the occluder's output), as a heat map scaled per image."""
        if self._last_soft is None:
            return {}
        return {"occluder": heat_map(self._last_soft, tuple(self._last_soft.shape[-2:]))}

    # Checkpoints --------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        return {"downsample": self.downsample, "width": self.width}
