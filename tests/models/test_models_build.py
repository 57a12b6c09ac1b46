"""Predictor/encoder building: shapes at any input size, decoder choice, clear errors."""

from __future__ import annotations

import pytest
import torch

from sslkit.errors import UserError
from sslkit.models import (
    Encoder,
    Predictor,
    UNetDecoder,
    build_encoder,
    build_predictor,
    check_input_size,
    count_flops,
    count_parameters,
)
from sslkit.models.paper_unet import PaperUNetDecoder


@pytest.fixture(scope="module")
def predictors():
    """One predictor per (backbone, in_chans), built once for the module (building is the slow part)."""
    torch.manual_seed(0)
    return {
        (name, c): build_predictor(name, in_chans=c)
        for name in ("resnet18", "paper-unet")
        for c in (1, 3)
    }


@pytest.mark.parametrize("backbone", ["resnet18", "paper-unet"])
@pytest.mark.parametrize("in_chans, size", [(1, 28), (1, 100), (3, 33), (3, 64)])
def test_predictor_reconstructs_at_input_size(predictors, backbone, in_chans, size):
    model = predictors[(backbone, in_chans)].eval()
    with torch.no_grad():
        out = model(torch.randn(2, in_chans, size, size))
    assert out.shape == (2, in_chans, size, size)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_predictor_handles_non_square_inputs(predictors):
    with torch.no_grad():
        out = predictors[("resnet18", 1)].eval()(torch.randn(2, 1, 40, 72))
    assert out.shape == (2, 1, 40, 72)


def test_encoder_describes_its_features(predictors):
    encoder = predictors[("resnet18", 1)].encoder
    assert isinstance(encoder, Encoder)
    assert encoder.feature_channels == [64, 64, 128, 256, 512]
    assert encoder.reductions == [2, 4, 8, 16, 32]
    assert encoder.spec == {"timm_model": "resnet18", "backbone": "resnet18", "in_chans": 1, "options": {}}
    with torch.no_grad():
        feats = encoder.eval()(torch.randn(2, 1, 64, 64))
    assert [f.shape[1] for f in feats] == encoder.feature_channels
    assert [64 // f.shape[-1] for f in feats] == encoder.reductions


def test_decoder_choice(predictors):
    assert isinstance(predictors[("paper-unet", 1)].decoder, PaperUNetDecoder)
    assert isinstance(predictors[("resnet18", 1)].decoder, UNetDecoder)


def test_predictor_trains(predictors):
    """Gradients reach the encoder's first layer (the part users keep)."""
    model = predictors[("paper-unet", 1)].train()
    x = torch.randn(2, 1, 32, 32)
    loss = (model(x) - x).pow(2).mean()
    loss.backward()
    first = next(model.encoder.parameters())
    assert first.grad is not None and first.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)


def test_generic_decoder_with_single_resolution_features():
    """ViT-like pyramids (every map at stride 16) still decode to the input size."""
    decoder = UNetDecoder([8, 8, 8], out_chans=1, head_channels=4)
    feats = [torch.randn(2, 8, 2, 2) for _ in range(3)]
    assert decoder(feats, (32, 32)).shape == (2, 1, 32, 32)


def test_single_map_encoder_still_decodes():
    """timm's out_indices can leave one map; the decoder is then just the full-size head."""
    model = build_predictor("resnet18", in_chans=1, out_indices=(2,)).eval()
    assert model.encoder.reductions == [8]
    with torch.no_grad():
        assert model(torch.randn(2, 1, 30, 30)).shape == (2, 1, 30, 30)


def test_encoder_rejects_inconsistent_description():
    with pytest.raises(ValueError):
        Encoder(torch.nn.Identity(), [1, 2], [1])


def test_unknown_backbone_suggests_the_closest():
    with pytest.raises(UserError, match="did you mean 'resnet18'"):
        build_encoder("resnet81", in_chans=1)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"pretrained": True}, "weights=FILE"),
        ({"features_only": False}, "features_only"),
        ({"not_an_option": 1}, "rejected an option"),
    ],
)
def test_bad_timm_options_are_user_errors(options, message):
    with pytest.raises(UserError, match=message):
        build_encoder("resnet18", in_chans=1, **options)


def test_model_without_feature_support_is_a_clear_error():
    with pytest.raises(UserError, match="cannot be used as an encoder"):
        build_encoder("inception_v3", in_chans=1, aux_logits=True)


def test_paper_unet_rejects_unknown_option():
    with pytest.raises(UserError, match="has no option 'chanels'"):
        build_encoder("paper-unet", in_chans=1, chanels=3)


def test_bad_in_chans():
    with pytest.raises(UserError, match="in_chans"):
        build_encoder("paper-unet", in_chans=0)


def test_check_input_size_explains_fixed_size_vits():
    import timm

    if not timm.list_models("test_vit3"):
        pytest.skip(f"timm {timm.__version__} has no tiny test model 'test_vit3' (later releases add it)")
    encoder = build_encoder("test_vit3", in_chans=1)  # built for 160 px only
    with pytest.raises(UserError, match="img_size=32"):
        check_input_size(encoder, 32)
    check_input_size(build_encoder("test_vit3", in_chans=1, img_size=32), 32)
    check_input_size(build_encoder("test_vit3", in_chans=1, dynamic_img_size=True), (48, 32))


def test_count_parameters_and_flops():
    conv = torch.nn.Conv2d(3, 4, 3, padding=1, bias=False)
    assert count_parameters(conv) == 3 * 4 * 9
    x = torch.randn(2, 3, 8, 8)
    assert count_flops(lambda: conv(x)) == 2 * 2 * 4 * 8 * 8 * 3 * 9
    # forward + backward of a conv: forward, grad wrt input and grad wrt weight
    x.requires_grad_(True)
    assert count_flops(lambda: conv(x).sum().backward()) == 3 * 2 * 2 * 4 * 8 * 8 * 3 * 9


@pytest.mark.parametrize("groups", [1, 4, 16])
def test_backward_flops_respect_groups(groups):
    """torch's own formula ignores groups in the backward pass (depthwise convs over-counted)."""
    conv = torch.nn.Conv2d(16, 16, 3, padding=1, groups=groups, bias=False)
    x = torch.randn(2, 16, 8, 8, requires_grad=True)
    forward = count_flops(lambda: conv(x))
    assert forward == 2 * 2 * 16 * 8 * 8 * (16 // groups) * 9
    assert count_flops(lambda: conv(x).sum().backward()) == 3 * forward


def test_predictor_module_is_plain_torch():
    model = Predictor(Encoder(_Pyramid(), [2, 4], [1, 2]), UNetDecoder([2, 4], 1, head_channels=2))
    assert model(torch.randn(2, 1, 9, 9)).shape == (2, 1, 9, 9)


class _Pyramid(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Conv2d(1, 2, 3, padding=1)
        self.b = torch.nn.Conv2d(2, 4, 3, stride=2, padding=1)

    def forward(self, x):
        first = self.a(x)
        return [first, self.b(first)]
