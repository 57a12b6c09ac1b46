"""The backbone registry as the test matrix (a small, fast subset of it)."""

from __future__ import annotations

import pytest
import torch

from sslkit.models import build_predictor, check_input_size, count_parameters
from sslkit.plugins import get_plugins, load_plugins

# name -> options it needs at 32 px (ViTs are built for one size unless told otherwise)
MATRIX = {
    "resnet18": {},
    "paper-unet": {},
    "efficientnet_b0": {},
    "convnext_atto": {},
    "vit_tiny_patch16_224": {"img_size": 32},
    "test_mambaout": {},  # a timm family whose feature maps come out NHWC
}


def _skip_unless_timm_has(name: str) -> None:
    import timm

    if name.startswith("test_") and not timm.list_models(name):
        pytest.skip(f"timm {timm.__version__} has no tiny test model '{name}' (later releases add it)")


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_registered_backbone_builds_a_working_predictor(name):
    _skip_unless_timm_has(name)
    assert name in get_plugins().backbones
    torch.manual_seed(0)
    model = build_predictor(name, in_chans=1, **MATRIX[name])
    check_input_size(model.encoder, 32)
    x = torch.randn(2, 1, 32, 32)
    out = model(x)
    assert out.shape == x.shape
    feats = model.encoder(x)
    assert [f.shape[1] for f in feats] == model.encoder.feature_channels
    out.pow(2).mean().backward()
    assert all(p.grad is not None for p in model.decoder.parameters())
    assert count_parameters(model.encoder) > 0


def test_every_timm_model_is_registered_without_being_built(monkeypatch):
    import timm

    def refuse(*args, **kwargs):
        raise AssertionError("listing backbones must not build models")

    monkeypatch.setattr(timm, "create_model", refuse)
    plugins = load_plugins(include_env=False)
    names = set(plugins.backbones.names())
    assert set(timm.list_models()) <= names and "paper-unet" in names
    entry = plugins.backbones.get("resnet18")
    assert entry.description == "timm resnet18" and "weights" in entry.options
