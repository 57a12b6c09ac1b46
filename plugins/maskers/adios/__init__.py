"""Built-in masker ``adios``: adversarial occlusion (Shi et al., ICML 2022).

An occlusion network learns, against the predictor, where hiding hurts the reconstruction most.
The method lives in this package's modules (``occluder``: the network; ``masker``: the contract);
this module only registers it by reference, so listing maskers imports no torch.
"""

from __future__ import annotations

from sslkit.hookspecs import hookimpl

DESCRIPTION = (
    "ADIOS (ICML 2022): an occlusion U-Net trained adversarially against the predictor hides the "
    "share of the image whose loss it can raise most"
)

OPTIONS = {
    "ratio": "share of each image hidden, in (0, 1); also the target of the occluder's share penalty "
             "(--encoding sparse: the share of the encoder's cells, those with the highest mean soft mask)",
    "penalty": "weight of the penalty (mean soft mask - ratio)^2 that keeps the occluder from hiding everything",
    "adversary_share": "share of each batch's images the occluder's adversarial step uses, in (0, 1]",
    "every": "the occluder takes its adversarial step every this many training steps (cost / every)",
    "lr": "the occluder's Adam learning rate",
    "downsample": "side in px of the image copy the occluder sees (its mask is resized back)",
    "width": "channels of the occluder's first layer (doubled at each down-sampling)",
    "temperature": "softness of the mask's rim: sigmoid((standardised logit - threshold) / temperature)",
    "straight_through": "the adversarial loss sees the binary mask (its gradient taken through the soft one); "
                        "false: the soft mask itself, which the occluder can exploit by half-hiding pixels",
}


@hookimpl
def register_maskers(register):
    register("adios", "sslkit_plugins.maskers.adios.masker:ADIOSMasker", DESCRIPTION, options=OPTIONS)
