"""An encoder with a task's part on top (a classifier's head, a segmenter's decoder), under a protocol.

"Frozen" means more than ``requires_grad=False``: the encoder also stays in eval mode whatever
``.train()`` is called with, so BatchNorm neither uses batch statistics nor updates its running
statistics (the authors' code left them in training mode, silently changing the "frozen"
encoder), and its forward pass keeps no graph. Every task's model shares this one rule.
"""

from __future__ import annotations

import torch
from torch import nn

from sslkit.finetuning.protocols import get_protocol


class DownstreamModel(nn.Module):
    """``encoder`` under ``protocol``; subclasses add their part and call :meth:`features`."""

    def __init__(self, encoder: nn.Module, protocol: str):
        super().__init__()
        get_protocol(protocol)  # an unknown name is one sentence
        self.encoder = encoder
        self.protocol = protocol
        if self.frozen:  # for good: a subclass's own parts never share the encoder's modules
            self.encoder.requires_grad_(False)
            self.encoder.eval()

    @property
    def frozen(self) -> bool:
        return get_protocol(self.protocol).frozen

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.encoder.eval()  # BatchNorm running statistics stay exactly as pretrained
        return self

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's feature maps, shallow to deep (without a graph when frozen)."""
        if self.frozen:
            with torch.no_grad():
                return self.encoder(images)
        return self.encoder(images)
