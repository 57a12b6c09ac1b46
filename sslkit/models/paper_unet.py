"""The U-Net of the Intelligent Masking paper (Bahrami et al., MLMI 2022), as the authors built it.

Encoder: six blocks with 16-32-64-64-128-128 channels and a 2x2 max-pool between them; each block
is the authors' conv3x3 (with bias) - BatchNorm - ReLU - conv3x3 (with bias), with *no*
BatchNorm or ReLU after the second conv. On the deepest map a depthwise conv (groups = 128,
kernel ``k = 2 * (1 + floor(S / 128)) - 1`` for image side S: 1 at 64-127 px, 3 at 128-255 px,
5 at 300 px) gives the embedding used downstream. Decoder: per level a 2x2 stride-2 transposed
conv, concatenation with the skip, one block, and a 1x1 conv to the image channels (about 1.5 M
parameters in all). See ``../shared/docs/intelligent-masking.md``.

Options keep sslkit's earlier variant selectable: ``block=double`` is conv-BN-ReLU twice (a
BatchNorm and ReLU more per block, about 8-10 % slower, and a bounded, non-negative feature map
for the frozen heads), ``bottleneck_kernel=0`` drops the depthwise conv.

It lives in the library rather than inside the ``paper-unet`` plugin because the paper's
Q-network (the ``dqn`` masker) reuses the same blocks; :class:`PaperUNetFeatures` is the shared
piece.

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

from sslkit.models.decoder import DoubleConv, used_skips
from sslkit.models.encoder import Encoder

PAPER_CHANNELS = (16, 32, 64, 64, 128, 128)
BLOCKS = ("paper", "double")


def paper_bottleneck_kernel(image_side: int) -> int:
    """The authors' depthwise kernel for square images of side ``image_side``: 2 (1 + S // 128) - 1."""
    return 2 * (1 + int(image_side) // 2**7) - 1


class PaperBlock(nn.Sequential):
    """The authors' block: conv3x3 (bias) - BatchNorm - ReLU - conv3x3 (bias), nothing after."""

    def __init__(self, in_chans: int, out_chans: int):
        super().__init__(
            nn.Conv2d(in_chans, out_chans, 3, padding=1),
            nn.BatchNorm2d(out_chans),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_chans, out_chans, 3, padding=1),
        )


def make_block(kind: str, in_chans: int, out_chans: int) -> nn.Module:
    """``paper`` (the authors' block) or ``double`` (conv-BN-ReLU twice, sslkit's earlier variant)."""
    if kind == "paper":
        return PaperBlock(in_chans, out_chans)
    if kind == "double":
        return DoubleConv(in_chans, out_chans)
    raise ValueError(f"block '{kind}' is not one of {', '.join(BLOCKS)}")


class PaperUNetFeatures(nn.Module):
    """Six double-conv blocks with a 2x2 max-pool between them; returns every block's output.

    Reductions are 1, 2, 4, ..., 32 (the first map is at input resolution, U-Net style).
    ``ceil_mode=False`` reproduces the authors' floor pooling (their Q-network's 9 x 9 grid at
    300 px), at the cost of needing inputs of at least 32 px.
    """

    def __init__(
        self,
        in_chans: int,
        channels: Sequence[int] = PAPER_CHANNELS,
        *,
        ceil_mode: bool = True,
        block: str = "paper",
        bottleneck_kernel: int = 1,
    ):
        super().__init__()
        self.channels = [int(c) for c in channels]
        widths = [int(in_chans), *self.channels]
        self.blocks = nn.ModuleList(make_block(block, a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.pool = nn.MaxPool2d(2, ceil_mode=ceil_mode)
        last = self.channels[-1]
        k = int(bottleneck_kernel)
        # The depthwise bottleneck: the deepest map the decoder starts from and the heads pool.
        self.bottleneck = nn.Conv2d(last, last, k, padding=k // 2, groups=last) if k > 0 else nn.Identity()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He initialisation (fan-out, ReLU gain) of the blocks' convolutions, zero biases, as
        torchvision's ResNet does. PyTorch's default (uniform with a = sqrt(5)) shrinks the signal
        about threefold per convolution; twelve of them later, with BatchNorm at its initial running
        statistics, a random encoder's deepest features varied by 3e-6 across BUSI images (He: 0.01),
        so a from-scratch baseline under a frozen protocol saw nearly the same features for every
        image and predicted one class. The depthwise bottleneck keeps its own default."""
        for module in self.blocks.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    @property
    def reductions(self) -> list[int]:
        return [2**i for i in range(len(self.channels))]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for i, block in enumerate(self.blocks):
            x = block(x if i == 0 else self.pool(x))
            features.append(x)
        features[-1] = self.bottleneck(features[-1])
        return features


def fit_to(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Crop (or zero-pad) the bottom/right of ``x`` to ``size``: transposed convs double exactly,
    so after ceil-mode pooling they can overshoot an odd-sized skip by one pixel."""
    dh, dw = int(size[0]) - x.shape[-2], int(size[1]) - x.shape[-1]
    return x if dh == 0 and dw == 0 else F.pad(x, (0, dw, 0, dh))


class PaperUNetDecoder(nn.Module):
    """The paper's decoder: per level ConvTranspose2d(2, stride 2) -> concat skip -> double conv."""

    def __init__(self, feature_channels: Sequence[int], out_chans: int, *, block: str = "paper", skips: str = "all"):
        super().__init__()
        chans = [int(c) for c in feature_channels]
        self.uses_skip = used_skips(len(chans) - 1, skips)
        self.ups = nn.ModuleList()
        self.stages = nn.ModuleList()
        below = chans[-1]
        for skip, used in zip(reversed(chans[:-1]), self.uses_skip):
            self.ups.append(nn.ConvTranspose2d(below, skip, 2, stride=2))
            self.stages.append(make_block(block, 2 * skip if used else skip, skip))
            below = skip
        self.out = nn.Conv2d(below, out_chans, 1)

    def forward(self, features: Sequence[torch.Tensor], output_size: Sequence[int]) -> torch.Tensor:
        x = features[-1]
        for up, stage, skip, used in zip(self.ups, self.stages, reversed(features[:-1]), self.uses_skip):
            x = fit_to(up(x), skip.shape[-2:])
            x = stage(torch.cat([x, skip], dim=1) if used else x)
        x = self.out(x)
        if tuple(x.shape[-2:]) != tuple(output_size):  # only if the first map is not full-size
            x = F.interpolate(x, size=tuple(output_size), mode="bilinear", align_corners=False)
        return x


class PaperUNetEncoder(Encoder):
    """The paper's encoder as an :class:`Encoder`, offering the paper's own decoder."""

    def __init__(
        self,
        in_chans: int,
        spec: dict[str, Any] | None = None,
        *,
        ceil_mode: bool = True,
        block: str = "paper",
        bottleneck_kernel: int = 1,
    ):
        body = PaperUNetFeatures(in_chans, ceil_mode=ceil_mode, block=block, bottleneck_kernel=bottleneck_kernel)
        super().__init__(body, body.channels, body.reductions, spec)
        self.block = block

    def make_decoder(self, out_chans: int, skips: str = "all") -> PaperUNetDecoder:
        return PaperUNetDecoder(self.feature_channels, out_chans, block=self.block, skips=skips)


def paper_unet_encoder(
    *, in_chans: int = 1, weights: str | None = None, block: str = "paper", bottleneck_kernel: int = 1
) -> PaperUNetEncoder:
    """The ``paper-unet`` backbone; ``weights`` = a local file holding this encoder's tensors
    (an sslkit export, or the bare six-block state dict). ``bottleneck_kernel`` follows the
    authors' rule for the image size (:func:`paper_bottleneck_kernel`: 1 below 128 px, 3 at 128,
    5 at 256-383 px); 0 drops the depthwise conv. ``block``: ``paper`` or ``double``."""
    from sslkit.errors import UserError
    from sslkit.models.weights import load_state_strict, read_state_file

    if block not in BLOCKS:
        raise UserError(f"paper-unet option block='{block}' is not one of {', '.join(BLOCKS)}")
    kernel = bottleneck_kernel
    if isinstance(kernel, bool) or not isinstance(kernel, int) and not str(kernel).isdigit():
        raise UserError(f"paper-unet option bottleneck_kernel must be 0 (none) or an odd whole number, got {kernel!r}")
    kernel = int(kernel)
    if kernel < 0 or (kernel > 0 and kernel % 2 == 0):
        raise UserError(f"paper-unet option bottleneck_kernel must be 0 (none) or an odd whole number, got {kernel}")
    encoder = PaperUNetEncoder(int(in_chans), block=block, bottleneck_kernel=kernel)
    if weights is not None:
        state = read_state_file(weights, "weights file")
        if not all(k.startswith("body.") for k in state):
            state = {f"body.{k}": v for k, v in state.items()}
        load_state_strict(encoder, state, f"weights file '{weights}'")
    return encoder
