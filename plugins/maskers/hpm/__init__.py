"""Built-in masker ``hpm``: Hard Patches Mining (Wang et al., CVPR 2023) for context prediction.

The method lives in :mod:`sslkit_plugins.maskers.hpm.masker`; this module only registers it by
reference, so listing maskers imports no torch.
"""

from __future__ import annotations

from sslkit.hookspecs import hookimpl

DESCRIPTION = (
    "Hard Patches Mining (CVPR 2023): a small network predicts which grid cells are hardest to "
    "reconstruct (trained to rank pairs of cells) and a growing share of the hidden cells are those"
)

OPTIONS = {
    "grid": "G, the side of the G x G grid of cells (--encoding sparse: the encoder's grid unless G nests in it)",
    "ratio": "share of the cells hidden in every image, in (0, 1] (HPM with MAE: 0.75)",
    "alpha_start": "share of the hidden cells chosen as predicted hardest at the start (the rest random)",
    "alpha_end": "that share at the end of training (linear in between; HPM: 0 -> 0.5)",
    "lr": "the loss predictor's Adam learning rate",
    "downsample": "side in px of the image copy the loss predictor sees",
}


@hookimpl
def register_maskers(register):
    register("hpm", "sslkit_plugins.maskers.hpm.masker:HPMMasker", DESCRIPTION, options=OPTIONS)
