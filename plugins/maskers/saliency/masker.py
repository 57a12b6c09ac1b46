"""Built-in masker ``saliency``: AttMask (Kakogeorgiou et al., ECCV 2022) for CNN encoders.

AttMask hides the patches a teacher attends to most, so the student must infer the informative
parts from the rest. A CNN has no attention map; its stand-in here is, per place of the teacher's
feature map, the norm of the features' deviation from the image's mean feature (``contrast``:
what stands out from the rest of the image, as a ViT's class token attends to the object rather
than the background) or their plain channel norm (``norm``: how strongly the network responds,
the attention map of attention transfer), averaged over each cell of a G x G grid. On the tests'
synthetic images ``contrast`` found the hard region far more reliably than ``norm``. The teacher is an exponential moving average of the predictor's encoder (as in
AttMask's self-distillation setting): read through ``MaskerContext.encoder``, copied at setup and
moved towards the encoder after every predictor step (``momentum``), so masks follow what the
encoder has learnt without jumping with every update. Each image hides ``round(ratio * G**2)``
cells: the most salient ones, of which a share ``random_share`` is replaced by random cells.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sslkit.errors import UserError
from sslkit.masking import MaskerContext, MaskFeedback, StepInfo, grid_on_cells, lesion_hit_counts
from sslkit_plugins.maskers._heat_map import heat_map
from sslkit_plugins.maskers._learned import (
    Checks,
    cells_to_pixel_masks,
    choose_cells,
    hidden_count,
    lesion_scalars,
    random_cell_hit_counts,
    autocast_dtype,
    own_autocast,
    to_host,
)
from sslkit_plugins.maskers._learned_state import LearnedMaskerBase

WHAT = "masker 'saliency'"
MEASURES = ("contrast", "norm")


@dataclass
class _Pending:
    saliency: torch.Tensor
    """(B, N) per-cell saliency."""
    cells: torch.Tensor
    """(B, N) bool hidden cells."""
    training: bool


def pick_level(reductions: list[int], image_size: tuple[int, int], grid: int) -> int:
    """The deepest feature level whose map has at least ``grid`` positions per side (else level 0)."""
    side = min(image_size)
    fitting = [i for i, r in enumerate(reductions) if side // max(1, int(r)) >= grid]
    return fitting[-1] if fitting else 0


class SaliencyMasker(LearnedMaskerBase):
    """The ``saliency`` masker; options are described in :data:`sslkit_plugins.maskers.saliency.OPTIONS`."""

    WHAT = WHAT
    STATE_PARTS = ("teacher",)
    SAVED_WITH = "the checkpoint's teacher was used with"

    def __init__(self, grid: int = 8, ratio: float = 0.6, random_share: float = 0.0, momentum: float = 0.99,
                 level: Any = "auto", measure: str = "contrast"):
        check = Checks(WHAT)
        self.own_grid = self.grid = check.whole("grid", grid)
        self.ratio = check.number("ratio", ratio, 0.0, 1.0, open_low=True)
        self.random_share = check.number("random_share", random_share, 0.0, 1.0)
        self.momentum = check.number("momentum", momentum, 0.0, 1.0)
        if level != "auto" and (isinstance(level, bool) or not isinstance(level, int)):
            raise UserError(f"{WHAT}: level must be auto or a whole number (a feature level), got {level!r}")
        self.level_option = level
        self.measure = check.choice("measure", measure, MEASURES)
        self.hidden = hidden_count(self.ratio, self.grid)
        self.by_saliency = self.hidden - round(self.random_share * self.hidden)
        self.teacher: nn.Module | None = None
        self.updates = 0
        self._pending: _Pending | None = None
        self._last_map: tuple[torch.Tensor, tuple[int, int]] | None = None

    # Life cycle ---------------------------------------------------------------------------
    def setup(self, context: MaskerContext) -> None:
        super().setup(context)
        self.grid = grid_on_cells(self.own_grid, context)
        self.hidden = hidden_count(self.ratio, self.grid)
        self.by_saliency = self.hidden - round(self.random_share * self.hidden)
        Checks(WHAT).grid_fits(self.grid, tuple(context.image_size))
        encoder = getattr(context, "encoder", None)
        if encoder is None:
            raise UserError(f"{WHAT} needs the predictor's encoder (MaskerContext.encoder), which this engine did not give")
        levels = len(getattr(encoder, "feature_channels", [None]))
        if self.level_option == "auto":
            reductions = list(getattr(encoder, "reductions", [1] * levels))
            self.level = pick_level(reductions, tuple(context.image_size), self.grid)
        elif not -levels <= self.level_option < levels:
            raise UserError(f"{WHAT}: level {self.level_option} does not exist; the encoder has {levels} feature levels")
        else:
            self.level = self.level_option % levels
        self.teacher = copy.deepcopy(encoder).to(context.device).eval()
        self.teacher.requires_grad_(False)
        self.dtype = autocast_dtype(context)
        self._pairs = list(zip(self.teacher.parameters(), encoder.parameters()))
        self._buffers = list(zip(self.teacher.buffers(), encoder.buffers()))
        self.updates = 0
        self._pending = None

    def saliency(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, N): the teacher's feature contrast (or norm) averaged over each cell."""
        with torch.no_grad():
            with own_autocast(images.device, self.dtype):
                features = self.teacher(images)[self.level]
            features = features.float()
            if self.measure == "contrast":  # how far each place's features are from the image's mean
                features = features - features.mean(dim=(2, 3), keepdim=True)
            norm = features.pow(2).sum(dim=1, keepdim=True).sqrt()  # B, 1, h, w
            if min(norm.shape[-2:]) < self.grid:  # coarser than the grid: smooth upsampling first
                norm = F.interpolate(norm, size=(self.grid, self.grid), mode="bilinear", align_corners=False)
            return F.adaptive_avg_pool2d(norm, self.grid).flatten(1)

    def propose(self, images: torch.Tensor, step: StepInfo) -> torch.Tensor:
        self._network("propose")  # set up first
        saliency = self.saliency(images)
        keys = self.rand(images.shape[0], self.grid * self.grid, device=images.device)
        cells, _ = choose_cells(saliency, self.hidden, self.by_saliency, keys)
        self._pending = _Pending(saliency, cells, bool(step.training))
        size = tuple(images.shape[-2:])
        self._last_map = (saliency.view(-1, 1, self.grid, self.grid), size)
        return cells_to_pixel_masks(cells, self.grid, size)

    def feedback(self, feedback: MaskFeedback) -> dict[str, float]:
        pending, self._pending = self._pending, None
        if pending is None:
            return {}
        if pending.training:
            self._update_teacher()
        hidden = pending.cells.to(pending.saliency.dtype)
        values = {"hidden_saliency_share": (pending.saliency * hidden).sum() / pending.saliency.sum().clamp(min=1e-12)}
        if feedback.lesions is not None:
            hits, with_lesion = lesion_hit_counts(feedback.masks, feedback.lesions)
            random_hits, _ = random_cell_hit_counts(feedback.lesions, self.grid, self.hidden)
            values.update(lesion_scalars(hits, with_lesion, random_hits))
        return to_host(values, {"teacher_momentum": self.momentum})

    @torch.no_grad()
    def _update_teacher(self) -> None:
        """teacher <- momentum * teacher + (1 - momentum) * encoder; buffers (BatchNorm statistics)
        copied. The encoder is the same on every process (DDP), so the teachers stay identical."""
        teacher = [t for t, _ in self._pairs]
        student = [s.detach().to(t.dtype) for t, s in self._pairs]
        if teacher:
            torch._foreach_lerp_(teacher, student, 1.0 - self.momentum)
        for t, s in self._buffers:
            t.copy_(s)
        self.updates += 1

    def log_images(self) -> dict[str, torch.Tensor]:
        """The last batch's per-cell saliency, as a heat map scaled per image."""
        if self._last_map is None:
            return {}
        return {"saliency_map": heat_map(*self._last_map)}

    # Checkpoints --------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        return {"grid": self.grid, "level": self.level}
