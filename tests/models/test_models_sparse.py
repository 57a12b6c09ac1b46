"""Sparse masked encoding (``--encoding sparse``): the invariants that make it sparse, and that the
dense network, its weights and its exports are untouched.

The perturbation test is the one that could fail: noise is written into the *masked* positions of
every convolution's output (the values a dense network computes there from the visible
neighbours and passes on); under sparse encoding no visible output of any feature level may move,
while the same noise moves them in the dense network.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sslkit.errors import UserError
from sslkit.masking import cells_to_masks
from sslkit.models import build_predictor, load_encoder, save_encoder
from sslkit.models.encoder import Encoder
from sslkit.models.sparse import encoder_cell_grid, install_sparse_encoding

# One of each kind the issue names: ResNet (tiered stem, avg-pool shortcut), ConvNeXt (LayerNorm,
# NHWC MLP), MobileNetV3 (depthwise convs, squeeze-excite, BatchNormAct2d), the paper's U-Net.
BACKBONES = [("resnet10t", {}), ("convnext_atto", {}), ("mobilenetv3_small_050", {}), ("paper-unet", {}),
             ("resnet10t", {"output_stride": 8})]
SIZE = 64


def _cells(grid: tuple[int, int], batch: int = 2, seed: int = 0) -> torch.Tensor:
    """(B, gh, gw) visible cells, about half hidden, never all of an image."""
    g = torch.Generator().manual_seed(seed)
    visible = torch.rand(batch, *grid, generator=g) < 0.5
    visible[:, 0, 0] = True
    visible[:, -1, -1] = False
    return visible


def _perturb_masked_conv_outputs(encoder: nn.Module, state, on: dict) -> None:
    """Forward hooks (registered before the sparse ones, so they run first) adding noise at the
    masked positions of every convolution's output while ``on['noise']`` is set."""

    def hook(module, inputs, output):
        if not on["noise"] or output.dim() != 4:
            return None
        visible = state.visible_at(output.shape[2], output.shape[3])
        if visible is None:
            return None
        noise = torch.randn(output.shape, generator=on["generator"]) * 3.0
        return output + noise * (~visible).to(output.dtype)

    for module in encoder.modules():
        if isinstance(module, nn.Conv2d):
            module.register_forward_hook(hook)


@pytest.mark.parametrize("name,options", BACKBONES, ids=lambda v: str(v))
def test_masked_positions_cannot_change_any_visible_output(name, options):
    predictor = build_predictor(name, in_chans=1, **options)
    encoder = predictor.encoder
    grid = encoder_cell_grid(encoder, (SIZE, SIZE), 1)
    on = {"noise": False, "generator": torch.Generator().manual_seed(1)}
    from sslkit.models.sparse import SparseEncoding

    dense_state = SparseEncoding(grid)  # only to compute masks for the dense control below
    state_box: dict = {}

    class _Proxy:  # the perturbation reads whichever state is active
        def visible_at(self, h, w):
            return (state_box.get("state") or dense_state).visible_at(h, w)

    _perturb_masked_conv_outputs(encoder, _Proxy(), on)
    encoder.train()
    x = torch.randn(2, 1, SIZE, SIZE)
    visible_cells = _cells(grid)
    snapshot = {k: v.clone() for k, v in encoder.state_dict().items()}

    def encode(sparse: bool, noise: bool) -> list[torch.Tensor]:
        encoder.load_state_dict(snapshot)  # BatchNorm running statistics start equal
        on["noise"] = noise
        hidden_pixels = cells_to_masks(~visible_cells, (SIZE, SIZE))
        inputs = x.masked_fill(hidden_pixels, 0.0)
        if sparse:
            with state_box["state"].active(visible_cells):
                return [f.detach() for f in encoder(inputs)]
        with dense_state.active(visible_cells):  # hooks of the dense control need the masks too
            return [f.detach() for f in encoder(inputs)]

    # Dense control first (nothing installed yet): the noise at masked positions reaches visible ones.
    clean, noisy = encode(False, False), encode(False, True)
    with dense_state.active(visible_cells):
        dense_visible = [dense_state.visible_at(*f.shape[-2:]) for f in clean]
    assert any(not torch.allclose(a * v, b * v) for a, b, v in zip(clean, noisy, dense_visible))

    state_box["state"] = install_sparse_encoding(encoder, grid, sample_size=(SIZE, SIZE))
    clean, noisy = encode(True, False), encode(True, True)
    for level, (a, b) in enumerate(zip(clean, noisy)):
        with state_box["state"].active(visible_cells):
            visible = state_box["state"].visible_at(*a.shape[-2:])
        assert torch.equal(a * visible, b * visible), f"{name}: level {level} moved at a visible position"
        assert torch.count_nonzero(a * ~visible) == 0, f"{name}: level {level} is not zero at masked positions"
        assert torch.count_nonzero(a * visible) > 0


def test_batchnorm_statistics_come_from_visible_positions_only():
    encoder = build_predictor("resnet10t", in_chans=1).encoder
    grid = encoder_cell_grid(encoder, (SIZE, SIZE), 1)
    state = install_sparse_encoding(encoder, grid, sample_size=(SIZE, SIZE))
    bn = encoder.body.bn1  # after the tiered stem's last conv
    bn.reset_running_stats()
    bn.momentum = 1.0  # running statistics = this batch's
    seen = {}
    encoder.body.conv1[-1].register_forward_hook(lambda m, i, o: seen.update(out=o.detach().clone()))
    encoder.train()
    visible_cells = _cells(grid, batch=4)
    x = torch.randn(4, 1, SIZE, SIZE) * 2 + 1
    with state.active(visible_cells):
        encoder(x.masked_fill(cells_to_masks(~visible_cells, (SIZE, SIZE)), 0.0))
        visible = state.visible_at(*seen["out"].shape[-2:])
    values = seen["out"].permute(1, 0, 2, 3)[:, visible[:, 0]]  # C, N visible positions
    assert torch.allclose(bn.running_mean, values.mean(dim=1), atol=1e-5)
    assert torch.allclose(bn.running_var, values.var(dim=1, unbiased=True), rtol=1e-4, atol=1e-6)
    every = seen["out"].transpose(0, 1).flatten(1)
    assert not torch.allclose(bn.running_mean, every.mean(dim=1), atol=1e-3)  # the holes would have counted


def test_dense_behaviour_weights_and_exports_are_unchanged(tmp_path):
    torch.manual_seed(0)
    plain = build_predictor("resnet10t", in_chans=1).eval()
    sparse = build_predictor("resnet10t", in_chans=1)
    sparse.load_state_dict(plain.state_dict())
    sparse.enable_sparse_encoding(encoder_cell_grid(sparse.encoder, (SIZE, SIZE), 1), (SIZE, SIZE))
    sparse.eval()
    x = torch.randn(2, 1, SIZE, SIZE)
    assert torch.equal(plain(x), sparse(x))  # no visible cells given: the dense network
    assert list(sparse.encoder.state_dict()) == list(plain.encoder.state_dict())
    assert {k for k in sparse.state_dict() if k.startswith("mask_tokens.")}  # the tokens are the predictor's
    save_encoder(sparse.encoder, tmp_path / "encoder")
    loaded = load_encoder(tmp_path / "encoder").eval()
    assert not any(type(m).__name__.startswith("Sparse") for m in loaded.modules())
    for a, b in zip(loaded(x), plain.encoder(x)):
        assert torch.equal(a, b)


def test_sparse_reconstruction_fills_masked_positions_with_tokens():
    predictor = build_predictor("resnet10t", in_chans=1, output_stride=8)
    grid = encoder_cell_grid(predictor.encoder, (SIZE, SIZE), 1)
    predictor.enable_sparse_encoding(grid)
    visible = _cells(grid)
    out = predictor(torch.randn(2, 1, SIZE, SIZE), visible)
    assert out.shape == (2, 1, SIZE, SIZE)
    out.square().mean().backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in predictor.mask_tokens.tokens[-1:])


def test_group_norm_encoders_are_refused_in_one_sentence():
    body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.GroupNorm(2, 4))

    class Body(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = body

        def forward(self, x):
            return [self.net(x)]

    with pytest.raises(UserError, match="GroupNorm layers normalise each image"):
        install_sparse_encoding(Encoder(Body(), [4], [1]), (4, 4), "backbone 'gn'")
