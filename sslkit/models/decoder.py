"""A generic U-Net style decoder over any encoder's feature pyramid.

It only needs ``feature_channels``, so it fits every timm backbone (ResNets, EfficientNets,
ConvNeXts, ViTs whose maps share one resolution). Each stage upsamples to the *actual* size of
the next shallower map (so odd sizes such as 28 or 100 px work without cropping rules), concatenates
it and fuses with two 3x3 convolutions; a last stage interpolates to the input size, because most
backbones start at stride 2 or 4 and reconstruction is judged per pixel.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: Which encoder maps the decoder may concatenate (``--decoder-skips``). ``all`` is the U-Net;
#: ``deepest`` keeps only the skip from the map just above the bottleneck; ``none`` makes the
#: decoder reconstruct from the deepest map alone. With every skip, a decoder can inpaint a small
#: hole from the shallow maps around it, so the deep encoder layers (the ones fine-tuning uses) may
#: learn little; fewer skips force the reconstruction through them. ``auto`` (the default) is
#: ``none`` for every decoder that can drop its skips (sslkit's, and a plugin's whose
#: ``make_decoder`` takes ``skips``) and leaves any other plugin decoder as its author built it.
from sslkit.choices import AUTO_SKIPS, SKIP_CHOICES, SKIP_SETTINGS  # noqa: E402  (one definition, torch-free)


def used_skips(count: int, skips: str) -> list[bool]:
    """For ``count`` skips listed deep to shallow, whether each is concatenated."""
    if skips == "auto":
        skips = AUTO_SKIPS
    if skips not in SKIP_CHOICES:
        raise ValueError(f"decoder skips '{skips}' is not one of {', '.join(SKIP_SETTINGS)}")
    if skips == "all":
        return [True] * count
    if skips == "deepest":
        return [i == 0 for i in range(count)]
    return [False] * count


def conv_bn_relu(in_chans: int, out_chans: int) -> list[nn.Module]:
    """conv3x3 (no bias, BN follows) - BatchNorm - ReLU."""
    return [nn.Conv2d(in_chans, out_chans, 3, padding=1, bias=False), nn.BatchNorm2d(out_chans), nn.ReLU(inplace=True)]


class DoubleConv(nn.Sequential):
    """Two conv3x3-BN-ReLU layers, the U-Net building block."""

    def __init__(self, in_chans: int, out_chans: int):
        super().__init__(*conv_bn_relu(in_chans, out_chans), *conv_bn_relu(out_chans, out_chans))


class UNetDecoder(nn.Module):
    """Reconstructs an image at ``output_size`` from feature maps (shallow to deep).

    ``decoder_channels[i]`` is the width of the stage that fuses skip ``i`` (default: the skip's
    own channels capped at 256, halved for the shallowest skip); ``head_channels`` is the width of
    the single conv at full resolution. The defaults keep the decoder's FLOPs about equal to a
    ResNet-18 encoder's (at full and half resolution, width is what costs). The output is
    linear (inputs are normalised to [-1, 1]).
    """

    def __init__(
        self,
        feature_channels: Sequence[int],
        out_chans: int,
        *,
        decoder_channels: Sequence[int] | None = None,
        head_channels: int = 16,
        upsample_mode: str = "bilinear",
        skips: str = "all",
    ):
        super().__init__()
        chans = [int(c) for c in feature_channels]
        if decoder_channels is None:
            widths = [max(16, chans[0] // 2)] + [min(c, 256) for c in chans[1:-1]]
            decoder_channels = widths[: len(chans) - 1]  # none when there is a single map
        if len(decoder_channels) != len(chans) - 1:
            raise ValueError(f"need {len(chans) - 1} decoder_channels, got {len(decoder_channels)}")
        self.upsample_mode = upsample_mode
        self.uses_skip = used_skips(len(chans) - 1, skips)
        self.stages = nn.ModuleList()
        below = chans[-1]
        for skip, width, used in zip(reversed(chans[:-1]), reversed(list(decoder_channels)), self.uses_skip):
            self.stages.append(DoubleConv(below + (skip if used else 0), width))
            below = width
        self.head = nn.Sequential(*conv_bn_relu(below, head_channels), nn.Conv2d(head_channels, out_chans, 1))

    def _resize(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        if tuple(x.shape[-2:]) == tuple(size):
            return x
        if self.upsample_mode == "nearest":
            return F.interpolate(x, size=tuple(size), mode="nearest")
        return F.interpolate(x, size=tuple(size), mode=self.upsample_mode, align_corners=False)

    def forward(self, features: Sequence[torch.Tensor], output_size: Sequence[int]) -> torch.Tensor:
        x = features[-1]
        for stage, skip, used in zip(self.stages, reversed(features[:-1]), self.uses_skip):
            x = self._resize(x, skip.shape[-2:])
            x = stage(torch.cat([x, skip], dim=1) if used else x)
        return self.head(self._resize(x, output_size))
