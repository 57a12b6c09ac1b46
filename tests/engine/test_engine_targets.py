"""``--target norm-pixels``: each cell normalised per channel (MAE's norm_pix_loss), loss over the
masked cells only; checked on patches whose statistics are known by hand."""

from __future__ import annotations

import torch

from sslkit.pretraining.loss import NORM_PIX_EPS, masked_reconstruction_loss, reconstruction_target
from sslkit.masking import cells_to_masks


def _known_image() -> torch.Tensor:
    """(1, 2, 4, 4): a 2 x 2 grid of 2 x 2 cells. Channel 0, top-left cell holds 1, 2, 3, 4
    (mean 2.5, unbiased variance 5/3); every other cell of it is flat at 7. Channel 1 is channel 0
    times -2 (mean -5, variance 20/3)."""
    first = torch.full((4, 4), 7.0)
    first[:2, :2] = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    return torch.stack([first, -2 * first])[None]


def test_norm_pixels_normalise_each_cell_and_channel():
    image = _known_image()
    target, to_pixels = reconstruction_target(image, "norm-pixels", (2, 2))
    expected = (torch.tensor([[1.0, 2.0], [3.0, 4.0]]) - 2.5) / (5 / 3 + NORM_PIX_EPS) ** 0.5
    assert torch.allclose(target[0, 0, :2, :2], expected, atol=1e-6)
    assert torch.allclose(target[0, 1, :2, :2], -expected, atol=1e-6)
    assert torch.equal(target[0, :, 2:, :], torch.zeros(2, 2, 4))  # flat cells: (7 - 7) / sqrt(eps)
    assert torch.allclose(to_pixels(target), image, atol=1e-5)  # undone with the image's own statistics


def test_pixels_target_is_the_image_itself():
    image = _known_image()
    target, to_pixels = reconstruction_target(image, "pixels", (2, 2))
    assert target is image and to_pixels(image) is image


def test_loss_counts_the_masked_cells_only():
    image = _known_image()
    target, _ = reconstruction_target(image, "norm-pixels", (2, 2))
    hidden = cells_to_masks(torch.tensor([[[True, False], [False, False]]]), (4, 4))  # the top-left cell
    wrong_outside = target.clone()
    wrong_outside[..., 2:, :] += 5.0  # errors only where nothing is hidden
    loss, _, _ = masked_reconstruction_loss(wrong_outside, target, hidden)
    assert float(loss) == 0.0
    wrong_inside = target.clone()
    wrong_inside[..., :2, :2] += 1.0  # error 1 on every hidden pixel and channel
    loss, _, _ = masked_reconstruction_loss(wrong_inside, target, hidden)
    assert abs(float(loss) - 1.0) < 1e-6
