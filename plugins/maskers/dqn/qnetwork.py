"""The agent's Q-networks: from the unmasked image to a G x G map of predicted reconstruction loss.

``Q[b, 0, i, j]`` is the share of image ``b``'s reward that masking cell ``(i, j)`` is predicted to
cause; the masker sums it over the cells of a block (see :mod:`.geometry`). Two networks:

* :class:`PaperQNetwork` — the authors' agent: six blocks conv-BN-ReLU-conv (channels 1-16-32-64-64-128-128,
  2 x 2 max-pools between them), a depthwise conv (the authors' kernel rule for the image size) and a
  1 x 1 conv to one channel, no activation;
  about 0.66 M parameters. Its grid follows from the image size and the number of pools: five
  pools give G = 9 for 300 px images, as in the paper. For smaller images fewer pools are used so
  the map still has at least G x G cells (the six blocks, and so the parameters, stay the same).
* ``light`` — the default (about 60 k parameters):
  :class:`sslkit_plugins.maskers._cell_network.LightCellNetwork`, shared with ``hpm``'s loss
  predictor: the image resized to a small side (``downsample`` px), four convs (two strided),
  adaptive average pooling to G x G.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sslkit.models.paper_unet import PAPER_CHANNELS, PaperBlock, paper_bottleneck_kernel
from sslkit_plugins.maskers._cell_network import LightCellNetwork

PAPER_POOLS = 5


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


def build_qnetwork(
    network: str, *, in_chans: int, image_size: tuple[int, int], grid: int, downsample: int = 32
) -> nn.Module:
    """The Q-network named by the masker's ``network`` option, producing a ``grid`` x ``grid`` map."""
    if network == "paper":
        return PaperQNetwork(in_chans, pools=paper_pools_for(image_size, grid), grid=grid,
                             bottleneck_kernel=paper_bottleneck_kernel(min(image_size)))
    if network == "light":
        return LightCellNetwork(in_chans, grid=grid, downsample=downsample)
    raise ValueError(f"unknown Q-network '{network}'")

