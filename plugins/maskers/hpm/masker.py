"""Built-in masker ``hpm``: Hard Patches Mining (Wang et al., CVPR 2023) for context prediction.

A small loss predictor (the light per-cell CNN ``dqn`` also uses, on a downsampled copy of the
*unmasked* image) scores every cell of a G x G grid by how hard it will be to reconstruct. Each image hides
``round(ratio * G**2)`` cells: a share ``alpha`` of them are the cells predicted hardest and the
rest are drawn at random; ``alpha`` grows linearly from ``alpha_start`` to ``alpha_end`` over
training (HPM's easy-to-hard schedule: early predictions are poor, so mostly random at first).

The predictor is trained with HPM's *relative* objective: for every pair of hidden cells of an
image whose realised losses differ, a binary cross-entropy on ``sigmoid(pred_i - pred_j)`` with
target "cell i was harder than cell j". Ranking, not regression: which cells are harder is all the
selection uses, and it does not drift as the reconstruction loss falls during training. Only
hidden cells are compared, since only their loss says how hard they are to infer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sslkit.masking import (
    MaskerContext,
    MaskFeedback,
    StepInfo,
    average_gradients,
    grid_on_cells,
    lesion_hit_counts,
)
from sslkit.optimizers import build_optimizer
from sslkit_plugins.maskers._cell_network import LightCellNetwork
from sslkit_plugins.maskers._heat_map import heat_map
from sslkit_plugins.maskers._learned import (
    Checks,
    cell_means,
    cells_to_pixel_masks,
    choose_cells,
    hidden_count,
    autocast_dtype,
    lesion_scalars,
    own_autocast,
    place,
    random_cell_hit_counts,
    seeded,
    to_host,
)
from sslkit_plugins.maskers._learned_state import LearnedMaskerBase

WHAT = "masker 'hpm'"


@dataclass
class _Pending:
    """What :meth:`HPMMasker.propose` leaves for :meth:`HPMMasker.feedback` (one batch)."""

    predicted: torch.Tensor
    """(B, N) predicted cell difficulty; with the predictor's graph when training."""
    cells: torch.Tensor
    """(B, N) bool hidden cells."""
    by_score: torch.Tensor
    """(B, N) bool the hidden cells chosen as predicted hardest."""
    alpha: float
    training: bool


def ranking_loss(predicted: torch.Tensor, realised: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """HPM's relative loss and the share of pairs already ordered right (both scalars).

    Over all ordered pairs (i, j) of hidden cells of the same image with different realised
    losses: BCE between ``sigmoid(predicted_i - predicted_j)`` and ``realised_i > realised_j``."""
    difference = predicted[:, :, None] - predicted[:, None, :]  # B, N, N
    harder = realised[:, :, None] > realised[:, None, :]
    pairs = hidden[:, :, None] & hidden[:, None, :] & (realised[:, :, None] != realised[:, None, :])
    weight = pairs.to(difference.dtype)
    count = weight.sum().clamp(min=1.0)
    bce = F.binary_cross_entropy_with_logits(difference, harder.to(difference.dtype), reduction="none")
    accuracy = (((difference > 0) == harder) & pairs).sum() / count
    return (bce * weight).sum() / count, accuracy.detach()


class HPMMasker(LearnedMaskerBase):
    """The ``hpm`` masker; options are described in :data:`sslkit_plugins.maskers.hpm.OPTIONS`."""

    WHAT = WHAT
    STATE_PARTS = ("net", "optimizer")
    SAVED_WITH = "the checkpoint's loss predictor was built with"

    def __init__(
        self,
        grid: int = 8,
        ratio: float = 0.6,
        alpha_start: float = 0.0,
        alpha_end: float = 0.5,
        lr: float = 1e-3,
        downsample: int = 32,
    ):
        check = Checks(WHAT)
        self.own_grid = self.grid = check.whole("grid", grid)
        self.ratio = check.number("ratio", ratio, 0.0, 1.0, open_low=True)
        self.alpha_start = check.number("alpha_start", alpha_start, 0.0, 1.0)
        self.alpha_end = check.number("alpha_end", alpha_end, 0.0, 1.0)
        self.lr = check.number("lr", lr, 0.0)
        self.downsample = check.whole("downsample", downsample, 4)
        self.hidden = hidden_count(self.ratio, self.grid)
        self.net: nn.Module | None = None
        self.updates = 0
        self._pending: _Pending | None = None
        self._last_map: tuple[torch.Tensor, tuple[int, int]] | None = None

    def alpha(self, progress: float) -> float:
        """Share of the hidden cells chosen as predicted hardest at this point of training."""
        return self.alpha_start + (self.alpha_end - self.alpha_start) * min(1.0, max(0.0, progress))

    # Life cycle ---------------------------------------------------------------------------
    def setup(self, context: MaskerContext) -> None:
        super().setup(context)
        self.grid = grid_on_cells(self.own_grid, context)
        self.hidden = hidden_count(self.ratio, self.grid)
        Checks(WHAT).grid_fits(self.grid, tuple(context.image_size))
        net = seeded(int(context.seed) * 7 + 2, lambda: LightCellNetwork(context.in_chans, grid=self.grid, downsample=self.downsample))
        self.net = place(net, context)
        self.optimizer = build_optimizer(self.net.parameters(), "adam", lr=self.lr)
        self.dtype = autocast_dtype(context)
        self.updates = 0
        self._pending = None

    def propose(self, images: torch.Tensor, step: StepInfo) -> torch.Tensor:
        self._network("propose")  # set up first
        training = bool(step.training)
        self.net.train(training)
        # the run's bf16 if it has one, else fp32 even under fp16 (no gradient scaler of its own)
        with torch.set_grad_enabled(training), own_autocast(images.device, self.dtype):
            predicted = self.net(images.float()).float().flatten(1)  # B, N
        alpha = self.alpha(step.progress)
        keys = self.rand(images.shape[0], self.grid * self.grid, device=images.device)
        cells, by_score = choose_cells(predicted.detach(), self.hidden, round(alpha * self.hidden), keys)
        self._pending = _Pending(predicted, cells, by_score, alpha, training)
        size = tuple(images.shape[-2:])
        self._last_map = (predicted.detach().view(-1, 1, self.grid, self.grid), size)
        return cells_to_pixel_masks(cells, self.grid, size)

    def feedback(self, feedback: MaskFeedback) -> dict[str, float]:
        pending, self._pending = self._pending, None
        if pending is None:
            return {}
        realised = cell_means(feedback.error_map.detach(), self.grid)  # B, N
        loss, accuracy = ranking_loss(pending.predicted.float(), realised, pending.cells)
        if pending.training and loss.requires_grad:
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            average_gradients([self.net])
            self.optimizer.step()
            self.updates += 1
        return self._scalars(pending, feedback, realised, loss, accuracy)

    def _scalars(self, pending: _Pending, feedback: MaskFeedback, realised: torch.Tensor, loss: torch.Tensor,
                 accuracy: torch.Tensor) -> dict[str, float]:
        by_score = pending.by_score.to(realised.dtype)
        at_random = (pending.cells & ~pending.by_score).to(realised.dtype)
        values = {
            "ranking_loss": loss.detach(),
            "ranking_accuracy": accuracy,
            # how much harder the cells picked as hardest really were (NaN, dropped, when none)
            "hard_to_random_loss": ((realised * by_score).sum() / by_score.sum())
            / ((realised * at_random).sum() / at_random.sum()),
        }
        if feedback.lesions is not None:
            hits, with_lesion = lesion_hit_counts(feedback.masks, feedback.lesions)
            random_hits, _ = random_cell_hit_counts(feedback.lesions, self.grid, self.hidden)
            values.update(lesion_scalars(hits, with_lesion, random_hits))
        plain = {"hard_share": pending.alpha}
        if pending.training:
            plain["predictor_lr"] = float(self.optimizer.param_groups[0]["lr"])
        return to_host(values, plain)

    def log_images(self) -> dict[str, torch.Tensor]:
        """The last batch's predicted difficulty per cell, as a heat map scaled per image."""
        if self._last_map is None:
            return {}
        return {"loss_map": heat_map(*self._last_map)}

    # Checkpoints --------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        return {"grid": self.grid, "downsample": self.downsample}
