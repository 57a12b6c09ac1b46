"""Built-in masker ``random-grid``: a random share of grid patches (MAE / SimMIM style).

The method lives in :mod:`sslkit_plugins.maskers.random_grid.masker`; this module only registers it by
reference, so listing maskers imports no torch.
"""

from __future__ import annotations

from sslkit.hookspecs import hookimpl


@hookimpl
def register_maskers(register):
    register(
        "random-grid",
        "sslkit_plugins.maskers.random_grid.masker:RandomGridMasker",
        "MAE/SimMIM style: a random share of grid cells, the same count in every image",
        options={
            "grid": "cells per side (--encoding sparse: the encoder's grid unless this one nests in it)",
            "ratio": "share of the cells hidden, in (0, 1]",
        },
    )
