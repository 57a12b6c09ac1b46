"""A drop-in backbone plugin (``--plugin`` this file) for the multi-process tests, and its check.

``plain``: a two-level conv encoder and a small decoder with no normalisation layers at all.
PyTorch's SyncBatchNorm does not run on the CPU, so with BatchNorm two gloo processes normalise
halves of the batch and cannot match one process; without it they must match to rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sslkit.hookspecs import hookimpl
from sslkit.models.encoder import Encoder


class _PlainBody(nn.Module):
    def __init__(self, in_chans: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, 8, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)

    def forward(self, x):
        a = torch.relu(self.conv1(x))
        return [a, torch.relu(self.conv2(a))]


class _PlainDecoder(nn.Module):
    def __init__(self, feature_channels, out_chans: int):
        super().__init__()
        shallow, deep = feature_channels
        self.fuse = nn.Conv2d(shallow + deep, 8, 3, padding=1)
        self.out = nn.Conv2d(8, out_chans, 3, padding=1)

    def forward(self, features, output_size):
        a, b = features
        x = torch.relu(self.fuse(torch.cat([a, F.interpolate(b, size=a.shape[-2:], mode="nearest")], dim=1)))
        return self.out(F.interpolate(x, size=tuple(output_size), mode="bilinear", align_corners=False))


class PlainEncoder(Encoder):
    def __init__(self, in_chans: int = 1):
        super().__init__(_PlainBody(in_chans), [8, 16], [2, 4])

    def make_decoder(self, out_chans: int) -> nn.Module:
        return _PlainDecoder(self.feature_channels, out_chans)


@hookimpl
def register_backbones(register):
    register("plain", PlainEncoder, "test backbone without normalisation layers (multi-process equivalence)")


def test_plain_backbone_has_no_normalisation_and_reconstructs_any_size():
    from sslkit.models import build_predictor
    from sslkit.plugins import load_plugins

    plugins = load_plugins(extra_plugins=[("plain-test", __import__(__name__))], include_env=False)
    predictor = build_predictor("plain", in_chans=1, plugins=plugins)
    assert not any(isinstance(m, nn.modules.batchnorm._NormBase) for m in predictor.modules())
    assert predictor(torch.zeros(2, 1, 30, 30)).shape == (2, 1, 30, 30)
