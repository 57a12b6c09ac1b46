"""Drop-in plugin for the evaluation tests: a two-stage CNN with BatchNorm, small enough that a
whole fine-tuning run takes well under a second on one CPU core."""

from __future__ import annotations

from torch import nn

from sslkit.hookspecs import hookimpl
from sslkit.models import Encoder


class TinyBody(nn.Module):
    def __init__(self, in_chans: int, width: int):
        super().__init__()
        self.stage1 = nn.Sequential(nn.Conv2d(in_chans, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.stage2 = nn.Sequential(nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU())

    def forward(self, x):
        first = self.stage1(x)
        return [first, self.stage2(first)]


def tiny_cnn(*, in_chans: int = 1, width: int = 4) -> Encoder:
    return Encoder(TinyBody(in_chans, width), [width, 2 * width], [2, 4])


@hookimpl
def register_backbones(register):
    register("eval-tiny-cnn", tiny_cnn, "two conv-BN-ReLU stages (evaluation tests only)",
             options={"width": "channels of the first stage"})
