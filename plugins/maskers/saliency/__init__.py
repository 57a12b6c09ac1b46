"""Built-in masker ``saliency``: AttMask (Kakogeorgiou et al., ECCV 2022) for CNN encoders.

The method lives in :mod:`sslkit_plugins.maskers.saliency.masker`; this module only registers it by
reference, so listing maskers imports no torch.
"""

from __future__ import annotations

from sslkit.hookspecs import hookimpl

DESCRIPTION = (
    "AttMask (ECCV 2022) for CNNs: hide the grid cells whose features, in a moving-average teacher "
    "copy of the encoder, stand out most from the rest of the image"
)

OPTIONS = {
    "grid": "G, the side of the G x G grid of cells (--encoding sparse: the encoder's grid unless G nests in it)",
    "ratio": "share of the cells hidden in every image, in (0, 1]",
    "random_share": "share of the hidden cells drawn at random instead of by saliency (0: AttMask-High)",
    "momentum": "the teacher's moving-average momentum per step (0: the current encoder itself)",
    "level": "encoder feature level the saliency comes from: auto (the deepest with at least G x G "
             "positions) or an index (0 = shallowest, -1 = deepest)",
    "measure": "contrast (norm of each place's features minus the image's mean feature) or norm (plain "
               "channel norm)",
}


@hookimpl
def register_maskers(register):
    register("saliency", "sslkit_plugins.maskers.saliency.masker:SaliencyMasker", DESCRIPTION, options=OPTIONS)
