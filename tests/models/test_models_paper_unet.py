"""The paper's U-Net: its size, its shape rules and its own decoder."""

from __future__ import annotations

import pytest
import torch

from sslkit.errors import UserError
from sslkit.models import build_encoder, build_predictor, count_parameters, save_encoder
from sslkit.models.paper_unet import PAPER_CHANNELS, PaperUNetEncoder, PaperUNetFeatures, paper_bottleneck_kernel


def test_parameter_count_matches_the_paper():
    model = build_predictor("paper-unet", in_chans=1)
    total, encoder = count_parameters(model), count_parameters(model.encoder)
    assert 1.4e6 < total < 1.6e6  # "about 1.5 M parameters"
    assert 0.6e6 < encoder < 0.7e6  # the six blocks (the Q-network's ~0.67 M minus its 1x1 head)


def test_encoder_layout():
    encoder = build_encoder("paper-unet", in_chans=1)
    assert isinstance(encoder, PaperUNetEncoder)
    assert encoder.feature_channels == list(PAPER_CHANNELS)
    assert encoder.reductions == [1, 2, 4, 8, 16, 32]
    convs = [m for m in encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    # six blocks of two 3x3 convs with bias, then the depthwise bottleneck (1x1 below 128 px)
    assert len(convs) == 13 and all(c.kernel_size == (3, 3) and c.bias is not None for c in convs[:12])
    assert convs[12].groups == 128 and convs[12].kernel_size == (1, 1)
    assert convs[0].in_channels == 1
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in encoder.modules())


def test_block_is_the_authors_conv_bn_relu_conv():
    """No BatchNorm or ReLU after a block's second conv (the authors' models.py); the earlier
    double conv-BN-ReLU stays one option away."""
    encoder = build_encoder("paper-unet", in_chans=1)
    kinds = [type(m).__name__ for m in encoder.body.blocks[0]]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d"]
    double = build_encoder("paper-unet", in_chans=1, block="double")
    assert [type(m).__name__ for m in double.body.blocks[0]] == ["Conv2d", "BatchNorm2d", "ReLU"] * 2


@pytest.mark.parametrize("side, kernel", [(64, 1), (127, 1), (128, 3), (256, 5), (300, 5)])
def test_bottleneck_kernel_follows_the_authors_rule(side, kernel):
    assert paper_bottleneck_kernel(side) == kernel
    encoder = build_encoder("paper-unet", in_chans=1, bottleneck_kernel=kernel)
    assert encoder.body.bottleneck.kernel_size == (kernel, kernel)
    features = encoder(torch.randn(2, 1, 64, 64))
    assert features[-1].shape == (2, 128, 2, 2)  # 'same' padding keeps the deepest map's size


@pytest.mark.parametrize("options", [{"bottleneck_kernel": 2}, {"bottleneck_kernel": -1}, {"block": "triple"}])
def test_bad_options_are_one_sentence(options):
    with pytest.raises(UserError, match="paper-unet option"):
        build_encoder("paper-unet", in_chans=1, **options)


def test_decoder_uses_transposed_convolutions():
    model = build_predictor("paper-unet", in_chans=3)
    ups = [m for m in model.decoder.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(ups) == 5 and all(u.stride == (2, 2) for u in ups)
    assert model.decoder.out.out_channels == 3


def test_ceil_pooling_equals_floor_pooling_when_divisible():
    torch.manual_seed(0)
    ceil_body = PaperUNetFeatures(1).eval()
    floor_body = PaperUNetFeatures(1, ceil_mode=False).eval()
    floor_body.load_state_dict(ceil_body.state_dict())
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        for a, b in zip(ceil_body(x), floor_body(x)):
            assert torch.equal(a, b)
        # the authors' 300 px images give the 9 x 9 grid their Q-network uses with floor pooling
        assert floor_body(torch.zeros(1, 1, 300, 300))[-1].shape[-1] == 9


def test_tiny_inputs_work():
    model = build_predictor("paper-unet", in_chans=1).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 7, 11)).shape == (2, 1, 7, 11)


def test_weights_from_an_export_or_a_bare_state_dict(tmp_path):
    torch.manual_seed(1)
    source = build_encoder("paper-unet", in_chans=1)
    save_encoder(source, tmp_path / "export")
    loaded = build_encoder("paper-unet", in_chans=1, weights=str(tmp_path / "export" / "encoder.safetensors"))
    torch.save(source.body.state_dict(), tmp_path / "bare.pt")
    bare = build_encoder("paper-unet", in_chans=1, weights=str(tmp_path / "bare.pt"))
    for other in (loaded, bare):
        for (k, a), b in zip(source.state_dict().items(), other.state_dict().values()):
            assert torch.equal(a, b), k
    assert "weights" not in loaded.spec["options"]


def test_weights_for_other_in_chans_is_a_user_error(tmp_path):
    save_encoder(build_encoder("paper-unet", in_chans=3), tmp_path)
    with pytest.raises(UserError, match="encoder.safetensors.*does not fit"):
        build_encoder("paper-unet", in_chans=1, weights=str(tmp_path / "encoder.safetensors"))
