"""The agent's Q-networks: from the unmasked image to a G x G map of predicted reconstruction loss.

``Q[b, 0, i, j]`` is the share of image ``b``'s reward that masking cell ``(i, j)`` is predicted to
cause; the masker sums it over the cells of a block (see :mod:`.geometry`). Two networks:

* :class:`PaperQNetwork` — the authors' agent: six blocks conv-BN-ReLU-conv (channels 1-16-32-64-64-128-128,
  2 x 2 max-pools between them), a depthwise conv (the authors' kernel rule for the image size) and a
  1 x 1 conv to one channel, no activation;
  about 0.67 M parameters. Its grid follows from the image size and the number of pools: five
  pools give G = 9 for 300 px images, as in the paper. For smaller images fewer pools are used so
  the map still has at least G x G cells (the six blocks, and so the parameters, stay the same).
* :class:`LightQNetwork` — the default (about 60 k parameters): the image resized to a small side
  (``downsample`` px), four convs (two strided), adaptive average pooling to G x G. It costs a few per cent of a ResNet-18
  predictor's step, so learned masking is nearly as cheap as random masking.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sslkit.models.flops import count_parameters  # noqa: F401  (re-exported for the tests)
from sslkit.models.paper_unet import PaperBlock, paper_bottleneck_kernel

from sslkit.models.paper_unet import PAPER_CHANNELS  # noqa: E402  (one definition, shared with the U-Net)
PAPER_POOLS = 5


def conv_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.ReLU(inplace=True))




def pooled_size(size: int, pools: int) -> int:
    """Side after ``pools`` 2 x 2 max-pools (floor each time, as ``nn.MaxPool2d(2)`` does)."""
    for _ in range(pools):
        size //= 2
    return size


def paper_pools_for(image_size: tuple[int, int], grid: int | None) -> int:
    """The paper's five pools, or fewer when the image is too small to keep a ``grid``-cell map."""
    if grid is None:
        return PAPER_POOLS
    side = min(image_size)
    pools = PAPER_POOLS
    while pools > 0 and pooled_size(side, pools) < grid:
        pools -= 1
    return pools


class PaperQNetwork(nn.Module):
    """The authors' Q-network (see module docstring); ``grid=None`` keeps its natural grid."""

    def __init__(self, in_chans: int = 1, pools: int = PAPER_POOLS, grid: int | None = None, bottleneck_kernel: int = 5):
        super().__init__()
        if not 0 <= pools <= len(PAPER_CHANNELS) - 1:
            raise ValueError(f"pools must be in 0..{len(PAPER_CHANNELS) - 1}, got {pools}")
        self.pools = pools
        self.grid = grid
        channels = (in_chans, *PAPER_CHANNELS)
        self.blocks = nn.ModuleList(PaperBlock(a, b) for a, b in zip(channels[:-1], channels[1:]))
        last = PAPER_CHANNELS[-1]
        k = int(bottleneck_kernel)
        self.depthwise = nn.Conv2d(last, last, k, padding=k // 2, groups=last)
        self.head = nn.Conv2d(last, 1, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index < self.pools:
                x = F.max_pool2d(x, 2)
        q = self.head(self.depthwise(x))
        if self.grid is not None and tuple(q.shape[-2:]) != (self.grid, self.grid):
            q = F.adaptive_avg_pool2d(q, self.grid)
        return q


class LightQNetwork(nn.Module):
    """A small CNN on a downsampled copy of the image, pooled to the G x G grid.

    The input is resized to ``max(downsample, 4 * grid)`` px so that the stride-4 feature map has
    at least one position per cell; its receptive field (17 px of the resized image) sees a cell
    and its neighbourhood, which is what the difficulty of reconstructing that cell depends on.
    No batch normalisation: an image's Q map must not depend on the other images of its batch
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


def build_qnetwork(
    network: str, *, in_chans: int, image_size: tuple[int, int], grid: int, downsample: int = 32
) -> nn.Module:
    """The Q-network named by the masker's ``network`` option, producing a ``grid`` x ``grid`` map."""
    if network == "paper":
        return PaperQNetwork(in_chans, pools=paper_pools_for(image_size, grid), grid=grid,
                             bottleneck_kernel=paper_bottleneck_kernel(min(image_size)))
    if network == "light":
        return LightQNetwork(in_chans, grid=grid, downsample=downsample)
    raise ValueError(f"unknown Q-network '{network}'")

