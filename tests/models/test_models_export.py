"""Encoder export (safetensors + JSON) and user weight files: round trips and clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from sslkit.errors import UserError
from sslkit.models import build_encoder, load_encoder, read_encoder_spec, save_encoder


@pytest.fixture(scope="module")
def trained_resnet(tmp_path_factory):
    """A resnet18 encoder with non-default weights and BN statistics, exported once."""
    torch.manual_seed(0)
    encoder = build_encoder("resnet18", in_chans=1, drop_path_rate=0.0)
    encoder.train()
    with torch.no_grad():
        encoder(torch.randn(4, 1, 32, 32) * 3 + 1)  # moves BN running stats away from defaults
    directory = tmp_path_factory.mktemp("export")
    save_encoder(encoder, directory)
    return encoder, directory


def _same_features(a, b, in_chans=1):
    x = torch.randn(2, in_chans, 32, 32)
    a.eval(), b.eval()
    with torch.no_grad():
        return all(torch.equal(fa, fb) for fa, fb in zip(a(x), b(x)))


def test_round_trip_gives_identical_features(trained_resnet):
    encoder, directory = trained_resnet
    for where in (directory, directory / "encoder.json", directory / "encoder.safetensors"):
        loaded = load_encoder(where)
        assert loaded.spec == encoder.spec
        assert _same_features(encoder, loaded)


def test_round_trip_paper_unet_3_channels(tmp_path):
    torch.manual_seed(2)
    encoder = build_encoder("paper-unet", in_chans=3)
    loaded = load_encoder(save_encoder(encoder, tmp_path / "e"))
    assert _same_features(encoder, loaded, in_chans=3)


def test_description_names_the_model(trained_resnet):
    _, directory = trained_resnet
    meta = json.loads((directory / "encoder.json").read_text())
    assert meta["backbone"] == "resnet18" and meta["timm_model"] == "resnet18"
    assert meta["in_chans"] == 1 and meta["options"] == {"drop_path_rate": 0.0}
    assert meta["feature_channels"] == [64, 64, 128, 256, 512]
    assert meta["sslkit_version"] and meta["format"] == "sslkit-encoder"
    assert read_encoder_spec(directory) == meta


def test_missing_files_are_named(tmp_path, trained_resnet):
    with pytest.raises(UserError, match="encoder.json' does not exist"):
        load_encoder(tmp_path)
    _, directory = trained_resnet
    (tmp_path / "encoder.json").write_text((directory / "encoder.json").read_text())
    with pytest.raises(UserError, match="encoder.safetensors' do not exist"):
        load_encoder(tmp_path)
    with pytest.raises(UserError, match="not an exported encoder"):
        load_encoder(tmp_path / "weights.bin")


def test_corrupt_files_are_named(tmp_path, trained_resnet):
    _, directory = trained_resnet
    (tmp_path / "encoder.json").write_text("{not json")
    with pytest.raises(UserError, match="encoder.json' is not valid JSON"):
        load_encoder(tmp_path)
    (tmp_path / "encoder.json").write_text('{"in_chans": 1}')
    with pytest.raises(UserError, match="lacks the backbone"):
        load_encoder(tmp_path)
    (tmp_path / "encoder.json").write_text((directory / "encoder.json").read_text())
    (tmp_path / "encoder.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(UserError, match="encoder.safetensors' cannot be read"):
        load_encoder(tmp_path)


def test_weights_of_another_model_are_a_user_error(tmp_path, trained_resnet):
    _, directory = trained_resnet
    meta = json.loads((directory / "encoder.json").read_text())
    meta.update(backbone="resnet10t", timm_model="resnet10t")
    (tmp_path / "encoder.json").write_text(json.dumps(meta))
    (tmp_path / "encoder.safetensors").write_bytes((directory / "encoder.safetensors").read_bytes())
    with pytest.raises(UserError, match="does not fit this model"):
        load_encoder(tmp_path)


def test_timm_checkpoint_as_weights(tmp_path):
    """A full timm checkpoint (with classifier) initialises the encoder; timm adapts the first
    conv to one channel by summing over RGB."""
    import timm

    torch.manual_seed(3)
    full = timm.create_model("resnet18", pretrained=False).eval()
    save_file({k: v.contiguous() for k, v in full.state_dict().items()}, tmp_path / "r18.safetensors")
    torch.save({"state_dict": full.state_dict()}, tmp_path / "r18.pth")
    for name in ("r18.safetensors", "r18.pth"):
        rgb = build_encoder("resnet18", in_chans=3, weights=str(tmp_path / name)).eval()
        x = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            assert torch.allclose(rgb(x)[-1], full.forward_features(x), atol=1e-5)
        gray = build_encoder("resnet18", in_chans=1, weights=str(tmp_path / name))
        expected = full.conv1.weight.sum(dim=1, keepdim=True)
        assert torch.allclose(gray.body.conv1.weight, expected, atol=1e-6)
        assert "weights" not in gray.spec["options"]


def test_timm_weights_from_an_export(trained_resnet):
    encoder, directory = trained_resnet
    again = build_encoder("resnet18", in_chans=1, weights=str(directory / "encoder.safetensors"))
    assert _same_features(encoder, again)


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    (b"this is not a checkpoint", "cannot be read"),
])
def test_bad_weights_file_is_a_user_error_naming_it(tmp_path, content, message):
    path = tmp_path / "w.pth"
    if content is not None:
        path.write_bytes(content)
    for backbone in ("resnet18", "paper-unet"):
        with pytest.raises(UserError, match=f"w.pth' {message}"):
            build_encoder(backbone, in_chans=1, weights=str(path))


def test_weights_of_another_architecture_are_rejected(tmp_path):
    import timm

    torch.save(timm.create_model("resnet10t", pretrained=False).state_dict(), tmp_path / "r10t.pth")
    with pytest.raises(UserError, match="r10t.pth' does not fit timm model 'resnet18'"):
        build_encoder("resnet18", in_chans=1, weights=str(tmp_path / "r10t.pth"))
    torch.save({"step": torch.tensor(1)}, tmp_path / "tiny.pth")
    with pytest.raises(UserError, match="tiny.pth' does not fit"):
        build_encoder("resnet18", in_chans=1, weights=str(tmp_path / "tiny.pth"))
