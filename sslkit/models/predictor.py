"""Encoder + decoder = the predictor that reconstructs masked images, and the builders.

``build_encoder`` asks the backbones registry (so unknown names get a "did you mean" error and
third-party backbones work the same way as built-ins); ``build_predictor`` adds the backbone's
own decoder when it has one (``make_decoder``) and the generic U-Net decoder otherwise.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from sslkit.errors import UserError, first_line
from sslkit.models.decoder import AUTO_SKIPS, SKIP_SETTINGS, UNetDecoder
from sslkit.models.encoder import Encoder

#: options that only say where initial weights came from; the exported weights supersede them.
_NOT_REBUILT = ("weights", "checkpoint_path")


class Predictor(nn.Module):
    """``forward(x)`` -> reconstruction of ``x``'s shape (any input size).

    The decoder is called as ``decoder(features, output_size)`` with ``output_size = x.shape[-2:]``.

    After :meth:`enable_sparse_encoding`, ``forward(x, visible_cells)`` encodes sparsely (SparK,
    :mod:`sslkit.models.sparse`): the encoder computes only on the visible cells, and the masked
    positions of every feature map are filled with a learned token per scale before decoding.
    ``forward(x)`` stays the dense network, whose encoder weights and keys are unchanged.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.sparse: Any = None  # the encoder's SparseEncoding state once enabled
        self.mask_tokens: nn.Module | None = None

    def enable_sparse_encoding(self, cell_grid: tuple[int, int], image_size: tuple[int, int] | None = None) -> None:
        """Install sparse encoding on the encoder and add the per-scale mask tokens (in place);
        ``image_size`` lets it skip the zeroing that a following BatchNorm makes redundant."""
        from sslkit.models.sparse import MaskTokens, install_sparse_encoding

        spec = getattr(self.encoder, "spec", {})
        name = f"backbone '{spec.get('backbone', type(self.encoder).__name__)}'"
        self.sparse = install_sparse_encoding(self.encoder, cell_grid, name, sample_size=image_size,
                                              in_chans=int(spec.get("in_chans", 1)))
        if self.mask_tokens is None:
            param = next(self.encoder.parameters(), None)
            tokens = MaskTokens([int(c) for c in getattr(self.encoder, "feature_channels")])
            self.mask_tokens = tokens.to(param.device) if param is not None else tokens

    def forward(self, x: torch.Tensor, visible_cells: torch.Tensor | None = None) -> torch.Tensor:
        if visible_cells is None or self.sparse is None:
            return self.decoder(self.encoder(x), tuple(x.shape[-2:]))
        with self.sparse.active(visible_cells):
            # the masked input never enters the encoder (a copy: the caller's images stay as they are)
            features = self.encoder(self.sparse.zero_masked_(x.clone()))
            assert self.mask_tokens is not None  # made with self.sparse in enable_sparse_encoding
            features = self.mask_tokens(features, self.sparse)
        return self.decoder(features, tuple(x.shape[-2:]))


def _check_encoder(name: str, encoder: Any) -> None:
    if not isinstance(encoder, nn.Module) or not hasattr(encoder, "feature_channels") or not hasattr(encoder, "reductions"):
        raise UserError(
            f"backbone '{name}' did not build an encoder (a module with feature_channels and reductions); "
            f"its factory returned {type(encoder).__name__}"
        )


def build_encoder(name: str, *, in_chans: int, plugins: Any = None, **options: Any) -> Encoder:
    """The encoder registered as backbone ``name``, with ``spec`` set so it can be rebuilt."""
    if plugins is None:
        from sslkit.plugins import get_plugins

        plugins = get_plugins()
    if int(in_chans) < 1:
        raise UserError(f"in_chans must be at least 1, got {in_chans}")
    encoder = plugins.backbones.create(name, in_chans=int(in_chans), **options)
    _check_encoder(name, encoder)
    spec = dict(getattr(encoder, "spec", None) or {})
    spec.update(
        backbone=name,
        in_chans=int(in_chans),
        options={k: v for k, v in options.items() if k not in _NOT_REBUILT},
    )
    encoder.spec = spec
    return encoder


def build_decoder(encoder: Encoder, out_chans: int, skips: str = "all") -> nn.Module:
    """The backbone's own decoder if it offers one, else :class:`UNetDecoder`; ``skips`` says
    which encoder maps it concatenates (see :data:`sslkit.models.decoder.SKIP_SETTINGS`).

    A plugin's ``make_decoder(out_chans)`` that takes no ``skips`` argument is used as its author
    built it under ``auto`` and ``all``; asking it for fewer skips is a one-sentence error."""
    if skips not in SKIP_SETTINGS:
        raise UserError(f"decoder skips '{skips}' is not one of {', '.join(SKIP_SETTINGS)}")
    make = getattr(encoder, "make_decoder", None)
    if callable(make):
        if "skips" in inspect.signature(make).parameters:
            return make(out_chans, skips=AUTO_SKIPS if skips == "auto" else skips)
        if skips in ("auto", "all"):
            return make(out_chans)
        name = getattr(encoder, "spec", {}).get("backbone", type(encoder).__name__)
        raise UserError(f"backbone '{name}' has its own decoder, which cannot drop skip connections "
                        f"(--decoder-skips {skips}); use --decoder-skips auto or all")
    return UNetDecoder(encoder.feature_channels, out_chans, skips=skips)


def check_input_size(encoder: nn.Module, image_size: int | tuple[int, int], in_chans: int | None = None) -> None:
    """Run one tiny forward pass so a backbone that cannot take this input size fails now, with
    one sentence, instead of deep inside the training loop (ViT-style timm models are built for
    a fixed ``img_size`` unless ``dynamic_img_size=true``)."""
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    chans = int(in_chans if in_chans is not None else getattr(encoder, "spec", {}).get("in_chans", 3))
    param = next(encoder.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    name = getattr(encoder, "spec", {}).get("backbone", type(encoder).__name__)
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            encoder(torch.zeros(1, chans, *size, device=device))
    except Exception as error:  # the model's own assertion says why
        text = first_line(error)[:200]
        raise UserError(
            f"backbone '{name}' cannot take {size[0]}x{size[1]} inputs ({text}); "
            f"ViT-style models need the option img_size={size[0]} (or dynamic_img_size=true)"
        ) from None
    finally:
        encoder.train(was_training)


def build_predictor(
    backbone: str, *, in_chans: int, plugins: Any = None, decoder_skips: str = "all", **backbone_options: Any
) -> Predictor:
    """Encoder ``backbone`` plus a decoder reconstructing ``in_chans`` channels."""
    encoder = build_encoder(backbone, in_chans=in_chans, plugins=plugins, **backbone_options)
    return Predictor(encoder, build_decoder(encoder, int(in_chans), decoder_skips))
