"""The occluder: a small U-Net from the image to one soft mask, in [0, 1] per pixel.

ADIOS's occluder is a U-Net that outputs masks at the image's resolution. Here it works on a copy
of the image resized to ``side`` px (32 by default: the occluder must stay a few per cent of the
predictor's step) and its logits are resized back bilinearly, so masks are smooth regions rather
than pixel noise. Two 2x down-samplings, two up-samplings with skips; no batch normalisation, so
an image's mask never depends on the other images of its batch (nor on training vs validation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.ReLU(inplace=True))


class Occluder(nn.Module):
    """(B, C, H, W) images -> (B, 1, H, W) mask logits (sigmoid gives the soft mask)."""

    def __init__(self, in_chans: int = 1, side: int = 32, width: int = 16):
        super().__init__()
        self.side = int(side)
        self.inc = _conv(in_chans, width)
        self.down1 = _conv(width, 2 * width, stride=2)
        self.down2 = nn.Sequential(_conv(2 * width, 4 * width, stride=2), _conv(4 * width, 4 * width))
        self.up1 = _conv(4 * width + 2 * width, 2 * width)
        self.up2 = _conv(2 * width + width, width)
        self.head = nn.Conv2d(width, 1, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        size = tuple(images.shape[-2:])
        x = images
        if size != (self.side, self.side):
            x = F.interpolate(x, size=(self.side, self.side), mode="bilinear", align_corners=False, antialias=True)
        a = self.inc(x)
        b = self.down1(a)
        c = self.down2(b)
        u = self.up1(torch.cat([F.interpolate(c, size=b.shape[-2:], mode="nearest"), b], dim=1))
        u = self.up2(torch.cat([F.interpolate(u, size=a.shape[-2:], mode="nearest"), a], dim=1))
        logits = self.head(u)
        if tuple(logits.shape[-2:]) != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits
