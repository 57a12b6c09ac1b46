"""Training losses for binary lesion segmentation: soft Dice, and soft Dice plus binary cross-entropy.

Lesions cover a small part of an ultrasound image, so plain BCE is dominated by background pixels
and a network can score well by predicting "no lesion" everywhere. Soft Dice scores the overlap
per image, whatever the lesion's size; BCE adds a well-behaved per-pixel gradient early in
training, when the soft Dice of a near-zero prediction is flat. The sum of the two is the usual
default for medical segmentation (nnU-Net trains with it).

Soft Dice is computed per image and then averaged over the batch (as the metrics are), with a
smoothing constant in numerator and denominator: an image without a lesion (a BUSI "normal")
scores Dice 1 when the network predicts background there, instead of 0/0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _pair(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 logits and target, both (N, 1, H, W); (N, H, W) inputs gain the channel."""
    if logits.dim() == 3:
        logits = logits.unsqueeze(1)
    if target.dim() == 3:
        target = target.unsqueeze(1)
    if logits.dim() != 4 or logits.shape[1] != 1 or logits.shape != target.shape:
        raise ValueError(f"logits and target must both be (N, H, W) or (N, 1, H, W), got "
                         f"{tuple(logits.shape)} and {tuple(target.shape)}")
    # float32 even under autocast: sums over a 256 x 256 image overflow float16's precision.
    return logits.float(), target.to(device=logits.device, dtype=torch.float32)


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - mean over images of (2 sum(p t) + smooth) / (sum p + sum t + smooth), p = sigmoid(logits).

    ``logits``: (N, 1, H, W) or (N, H, W) raw network outputs; ``target``: the same shape, bool or
    0/1. Returns a scalar in [0, 1): 0 for a perfect prediction.
    """
    x, t = _pair(logits, target)
    p = torch.sigmoid(x).flatten(1)
    t = t.flatten(1)
    dice = (2.0 * (p * t).sum(1) + smooth) / (p.sum(1) + t.sum(1) + smooth)
    return 1.0 - dice.mean()


def dice_bce_loss(logits: torch.Tensor, target: torch.Tensor, dice_weight: float = 1.0,
                  smooth: float = 1.0) -> torch.Tensor:
    """Mean per-pixel binary cross-entropy (from logits) + ``dice_weight`` x :func:`soft_dice_loss`."""
    x, t = _pair(logits, target)
    bce = F.binary_cross_entropy_with_logits(x, t)
    if dice_weight == 0:
        return bce
    return bce + dice_weight * soft_dice_loss(x, t, smooth=smooth)
