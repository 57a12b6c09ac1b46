"""The U-Net of the Intelligent Masking paper (Bahrami et al., MLMI 2022), as the authors built it.

Encoder: six blocks conv3x3-BN-ReLU-conv3x3-BN-ReLU with 16-32-64-64-128-128 channels and a 2x2
max-pool between blocks; decoder: a 2x2 transposed convolution per level, concatenation with the
skip, the same double conv, and a 1x1 convolution to the image channels (about 1.5 M parameters
in all, ~0.66 M of them in the encoder). See ``../shared/docs/intelligent-masking.md``.

It lives in the library rather than inside the ``paper-unet`` plugin because the paper's
Q-network (the ``dqn`` masker) reuses the same six-block encoder; :class:`PaperUNetFeatures` is
that shared piece.

One deliberate change: pooling uses ``ceil_mode=True`` by default so any input size works (28 px
would otherwise shrink to nothing after five pools); for sizes divisible by 32 (64, 256 px) this
is identical to the authors' floor pooling. Decoder levels crop/pad the upsampled map to the
skip's actual size.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sslkit.models.decoder import DoubleConv
from sslkit.models.encoder import Encoder

PAPER_CHANNELS = (16, 32, 64, 64, 128, 128)


class PaperUNetFeatures(nn.Module):
    """Six double-conv blocks with a 2x2 max-pool between them; returns every block's output.

    Reductions are 1, 2, 4, ..., 32 (the first map is at input resolution, U-Net style).
    ``ceil_mode=False`` reproduces the authors' floor pooling (their Q-network's 9 x 9 grid at
    300 px), at the cost of needing inputs of at least 32 px.
    """

    def __init__(self, in_chans: int, channels: Sequence[int] = PAPER_CHANNELS, *, ceil_mode: bool = True):
        super().__init__()
        self.channels = [int(c) for c in channels]
        widths = [int(in_chans), *self.channels]
        self.blocks = nn.ModuleList(DoubleConv(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.pool = nn.MaxPool2d(2, ceil_mode=ceil_mode)

    @property
    def reductions(self) -> list[int]:
        return [2**i for i in range(len(self.channels))]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for i, block in enumerate(self.blocks):
            x = block(x if i == 0 else self.pool(x))
            features.append(x)
        return features


def fit_to(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Crop (or zero-pad) the bottom/right of ``x`` to ``size``: transposed convs double exactly,
    so after ceil-mode pooling they can overshoot an odd-sized skip by one pixel."""
    dh, dw = int(size[0]) - x.shape[-2], int(size[1]) - x.shape[-1]
    return x if dh == 0 and dw == 0 else F.pad(x, (0, dw, 0, dh))


class PaperUNetDecoder(nn.Module):
    """The paper's decoder: per level ConvTranspose2d(2, stride 2) -> concat skip -> double conv."""

    def __init__(self, feature_channels: Sequence[int], out_chans: int):
        super().__init__()
        chans = [int(c) for c in feature_channels]
        self.ups = nn.ModuleList()
        self.stages = nn.ModuleList()
        below = chans[-1]
        for skip in reversed(chans[:-1]):
            self.ups.append(nn.ConvTranspose2d(below, skip, 2, stride=2))
            self.stages.append(DoubleConv(2 * skip, skip))
            below = skip
        self.out = nn.Conv2d(below, out_chans, 1)

    def forward(self, features: Sequence[torch.Tensor], output_size: Sequence[int]) -> torch.Tensor:
        x = features[-1]
        for up, stage, skip in zip(self.ups, self.stages, reversed(features[:-1])):
            x = stage(torch.cat([fit_to(up(x), skip.shape[-2:]), skip], dim=1))
        x = self.out(x)
        if tuple(x.shape[-2:]) != tuple(output_size):  # only if the first map is not full-size
            x = F.interpolate(x, size=tuple(output_size), mode="bilinear", align_corners=False)
        return x


class PaperUNetEncoder(Encoder):
    """The paper's encoder as an :class:`Encoder`, offering the paper's own decoder."""

    def __init__(self, in_chans: int, spec: dict[str, Any] | None = None, *, ceil_mode: bool = True):
        body = PaperUNetFeatures(in_chans, ceil_mode=ceil_mode)
        super().__init__(body, body.channels, body.reductions, spec)

    def make_decoder(self, out_chans: int) -> PaperUNetDecoder:
        return PaperUNetDecoder(self.feature_channels, out_chans)


def paper_unet_encoder(*, in_chans: int = 1, weights: str | None = None) -> PaperUNetEncoder:
    """The ``paper-unet`` backbone; ``weights`` = a local file holding this encoder's tensors
    (an sslkit export, or the bare six-block state dict)."""
    from sslkit.models.weights import load_state_strict, read_state_file

    encoder = PaperUNetEncoder(int(in_chans))
    if weights is not None:
        state = read_state_file(weights, "weights file")
        if not all(k.startswith("body.") for k in state):
            state = {f"body.{k}": v for k, v in state.items()}
        load_state_strict(encoder, state, f"weights file '{weights}'")
    return encoder
