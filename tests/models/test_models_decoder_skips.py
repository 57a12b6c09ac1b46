"""``--decoder-skips``: which encoder maps the decoder concatenates, for timm and paper backbones."""

from __future__ import annotations

import pytest
import torch

from sslkit.errors import UserError
from sslkit.models import build_predictor


@pytest.mark.parametrize("backbone", ["resnet10t", "paper-unet"])
@pytest.mark.parametrize("skips", ["all", "deepest", "none"])
def test_output_shape_for_every_choice(backbone, skips):
    torch.manual_seed(0)
    model = build_predictor(backbone, in_chans=1, decoder_skips=skips).eval()
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 1, 32, 32)


@pytest.mark.parametrize("backbone", ["resnet10t", "paper-unet"])
@pytest.mark.parametrize("skips, shallow_matters", [("all", True), ("deepest", False), ("none", False)])
def test_the_shallowest_map_reaches_the_output_only_through_an_all_skip_decoder(backbone, skips, shallow_matters):
    """Changing the shallowest feature map changes the reconstruction only when its skip is used:
    without it, every pixel of the output has to come through the deep encoder."""
    torch.manual_seed(0)
    model = build_predictor(backbone, in_chans=1, decoder_skips=skips).eval()
    with torch.no_grad():
        features = model.encoder(torch.randn(2, 1, 32, 32))
        base = model.decoder(features, (32, 32))
        changed = list(features)
        changed[0] = changed[0] + torch.randn_like(changed[0])
        moved = (model.decoder(changed, (32, 32)) - base).abs().max().item()
    assert (moved > 1e-4) == shallow_matters


def test_fewer_skips_mean_fewer_decoder_parameters():
    sizes = {s: sum(p.numel() for p in build_predictor("resnet10t", in_chans=1, decoder_skips=s).decoder.parameters())
             for s in ("all", "deepest", "none")}
    assert sizes["all"] > sizes["deepest"] > sizes["none"]


def test_unknown_choice_is_one_sentence():
    with pytest.raises(UserError, match="decoder skips 'some' is not one of auto, all, deepest, none"):
        build_predictor("resnet10t", in_chans=1, decoder_skips="some")


def test_auto_drops_skips_where_the_decoder_can():
    torch.manual_seed(0)
    auto = build_predictor("resnet10t", in_chans=1, decoder_skips="auto")
    assert auto.decoder.uses_skip == [False] * len(auto.decoder.uses_skip)
    assert build_predictor("paper-unet", in_chans=1, decoder_skips="auto").decoder.uses_skip == [False] * 5


class _OwnDecoderEncoder(torch.nn.Module):
    """A plugin encoder whose ``make_decoder`` knows nothing of skips."""

    feature_channels, reductions, spec = [4], [1], {"backbone": "own"}

    def make_decoder(self, out_chans):
        return torch.nn.Conv2d(4, out_chans, 1)


def test_a_plugin_decoder_without_skips_is_kept_under_auto_and_refused_for_none():
    from sslkit.models import build_decoder

    assert isinstance(build_decoder(_OwnDecoderEncoder(), 1, "auto"), torch.nn.Conv2d)
    assert isinstance(build_decoder(_OwnDecoderEncoder(), 1, "all"), torch.nn.Conv2d)
    with pytest.raises(UserError, match="backbone 'own' has its own decoder, which cannot drop skip connections"):
        build_decoder(_OwnDecoderEncoder(), 1, "none")
