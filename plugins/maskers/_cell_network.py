"""A small CNN from the unmasked image to one score per cell of a G x G grid.

Shared by ``dqn`` (its default, ``light``, Q-network: the predicted reconstruction loss of masking
each cell) and ``hpm`` (its loss predictor: how hard each cell is to reconstruct). About 60 k
parameters, a few per cent of a ResNet-18 predictor's step, so learned masking stays nearly as
cheap as random masking.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.ReLU(inplace=True))


class LightCellNetwork(nn.Module):
    """A small CNN on a downsampled copy of the image, pooled to the G x G grid: (B, C, H, W) ->
    (B, 1, G, G).

    The input is resized to ``max(downsample, 4 * grid)`` px so that the stride-4 feature map has
    at least one position per cell; its receptive field (17 px of the resized image) sees a cell
    and its neighbourhood, which is what the difficulty of reconstructing that cell depends on.
    No batch normalisation: an image's map must not depend on the other images of its batch
    (nor differ between training and validation mode); it also learned faster without in tests.
    """

    def __init__(self, in_chans: int = 1, grid: int = 8, downsample: int = 32, width: int = 16):
        super().__init__()
        self.grid = grid
        self.side = max(int(downsample), 4 * grid)
        self.features = nn.Sequential(
            conv_relu(in_chans, width),
            conv_relu(width, 2 * width, stride=2),
            conv_relu(2 * width, 4 * width, stride=2),
            conv_relu(4 * width, 4 * width),
        )
        self.head = nn.Conv2d(4 * width, 1, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images
        if tuple(x.shape[-2:]) != (self.side, self.side):
            x = F.interpolate(x, size=(self.side, self.side), mode="bilinear", align_corners=False, antialias=True)
        q = self.head(self.features(x))
        if tuple(q.shape[-2:]) != (self.grid, self.grid):
            q = F.adaptive_avg_pool2d(q, self.grid)
        return q
