"""Built-in masker ``center``: the central block (Pathak et al.'s context encoder "center region").

The method lives in :mod:`sslkit_plugins.maskers.center.masker`; this module only registers it by
reference, so listing maskers imports no torch.
"""

from __future__ import annotations

from sslkit.hookspecs import hookimpl


@hookimpl
def register_maskers(register):
    register(
        "center",
        "sslkit_plugins.maskers.center.masker:CenterMasker",
        "context encoder: the central block of every image",
        options={"size": "block side: fraction of the image side (<= 1) or pixels (> 1); a pair like [0.5, 0.25] is "
                         "height, width (--encoding sparse: rounded to whole cells of the encoder's grid)"},
    )
