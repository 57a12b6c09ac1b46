"""Built-in masker ``adios``: adversarial occlusion (Shi et al., ICML 2022).

An occlusion network learns, against the predictor, where hiding hurts the reconstruction most.
The method lives in this package's modules (``occluder``: the network; ``masker``: the contract);
this module only registers it, importing them when the registry is filled.
"""

from __future__ import annotations

from sslkit.hookspecs import hookimpl


@hookimpl
def register_maskers(register):
    from sslkit_plugins.maskers.adios.masker import DESCRIPTION, OPTIONS, ADIOSMasker

    register("adios", ADIOSMasker, DESCRIPTION, options=OPTIONS)
