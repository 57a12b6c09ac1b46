"""Soft Dice and Dice + BCE: values at the extremes and a tiny network that learns toy masks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sslkit.evaluation.segmentation_loss import dice_bce_loss, soft_dice_loss


def _toy_masks(n: int = 8, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Bright squares on noise; the mask is the square (the last two images have none)."""
    g = torch.Generator().manual_seed(0)
    images = torch.randn(n, 1, size, size, generator=g) * 0.3
    masks = torch.zeros(n, 1, size, size, dtype=torch.bool)
    for i in range(n - 2):
        top, left = int(torch.randint(0, size - 6, (1,), generator=g)), int(torch.randint(0, size - 6, (1,), generator=g))
        masks[i, :, top:top + 6, left:left + 6] = True
    images = images + masks.float()
    return images, masks


def test_perfect_prediction_gives_near_zero_dice_loss():
    _, masks = _toy_masks()
    logits = (masks.float() * 2 - 1) * 30.0
    assert float(soft_dice_loss(logits, masks)) < 1e-6
    assert float(dice_bce_loss(logits, masks)) < 1e-6
    # an empty target predicted empty is perfect too (the smoothing term), not 0/0
    empty = torch.zeros(2, 1, 8, 8)
    assert float(soft_dice_loss(torch.full_like(empty, -30.0), empty)) < 1e-6


def test_wrong_prediction_gives_high_loss_and_shapes_are_accepted():
    _, masks = _toy_masks()
    inverted = (1 - masks.float() * 2) * 30.0
    assert float(soft_dice_loss(inverted, masks)) > 0.7
    # (N, H, W) and (N, 1, H, W) mix; bool or float targets
    a = soft_dice_loss(inverted[:, 0], masks)
    b = soft_dice_loss(inverted, masks[:, 0].float())
    assert torch.allclose(a, b)
    with pytest.raises(ValueError, match="logits and target"):
        soft_dice_loss(torch.zeros(2, 2, 8, 8), torch.zeros(2, 2, 8, 8))


def test_dice_bce_is_bce_plus_weighted_dice():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 1, 8, 8, generator=g)
    target = torch.rand(3, 1, 8, 8, generator=g) > 0.5
    bce = F.binary_cross_entropy_with_logits(logits, target.float())
    assert torch.allclose(dice_bce_loss(logits, target, dice_weight=0.0), bce)
    assert torch.allclose(dice_bce_loss(logits, target, dice_weight=2.0), bce + 2.0 * soft_dice_loss(logits, target))


def test_training_a_tiny_conv_net_lowers_the_loss():
    images, masks = _toy_masks()
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 1, 3, padding=1))
    optimiser = torch.optim.Adam(net.parameters(), lr=0.05)
    losses = []
    for _ in range(30):
        loss = dice_bce_loss(net(images), masks)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    with torch.no_grad():
        assert float(soft_dice_loss(net(images), masks)) < 0.3
