"""The encoder type every backbone returns: a module giving a feature pyramid.

Decoders, the fine-tuning heads and the exporter only rely on what is here: ``forward`` returns
feature maps from shallow to deep (NCHW), ``feature_channels`` and ``reductions`` describe them,
and ``spec`` says how to rebuild the encoder (backbone name, ``in_chans``, options), so an
exported encoder can be loaded without the run that trained it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Encoder(nn.Module):
    """Wraps a features module (e.g. a timm ``features_only`` model) as a feature pyramid.

    ``body(x)`` must return a list/tuple of feature maps, shallow to deep. ``channels_last_output``
    is for bodies that give NHWC maps (timm's Swin family); they are turned into NCHW here so
    every consumer sees one layout. Backbones with their own decoder subclass this and add
    ``make_decoder(out_chans)``.
    """

    def __init__(
        self,
        body: nn.Module,
        feature_channels: list[int],
        reductions: list[int],
        spec: dict[str, Any] | None = None,
        *,
        channels_last_output: bool = False,
    ):
        super().__init__()
        if len(feature_channels) != len(reductions) or not feature_channels:
            raise ValueError("feature_channels and reductions must be non-empty and of equal length")
        self.body = body
        self.feature_channels = [int(c) for c in feature_channels]
        self.reductions = [int(r) for r in reductions]
        self.spec: dict[str, Any] = dict(spec or {})
        self.channels_last_output = channels_last_output

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = list(self.body(x))
        if self.channels_last_output:
            features = [f.permute(0, 3, 1, 2) for f in features]
        return features

    @property
    def out_channels(self) -> int:
        """Channels of the deepest map (what a classification head pools)."""
        return self.feature_channels[-1]

    def extra_repr(self) -> str:
        return f"feature_channels={self.feature_channels}, reductions={self.reductions}"
