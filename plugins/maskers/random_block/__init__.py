"""Built-in masker ``random``: the classic context encoder's random blocks.

The method lives in :mod:`sslkit_plugins.maskers.random_block.masker`; this module only registers it by
reference, so listing maskers imports no torch.
"""

from __future__ import annotations

from sslkit.hookspecs import hookimpl


@hookimpl
def register_maskers(register):
    register(
        "random",
        "sslkit_plugins.maskers.random_block.masker:RandomBlockMasker",
        "context encoder: random rectangles of a fixed size, fully inside the image",
        options={
            "size": "box side: fraction of the image side (<= 1) or pixels (> 1); a pair like [0.2, 0.4] is height, width "
                    "(--encoding sparse: rounded to whole cells of the encoder's grid)",
            "area": "share of the image area per box, in (0, 1]; replaces size when given",
            "count": "boxes per image, 1-256 (their union is hidden)",
        },
    )
