"""Built-in backbone ``paper-unet``: the Intelligent Masking paper's U-Net (encoder + its decoder).

The architecture lives in :mod:`sslkit.models.paper_unet` (the ``dqn`` masker's Q-network reuses
its encoder); this module only registers it by reference, so listing imports no torch.
"""

from sslkit.hookspecs import hookimpl


@hookimpl
def register_backbones(register):
    register(
        "paper-unet",
        "sslkit.models.paper_unet:paper_unet_encoder",
        "U-Net of Bahrami et al. (MLMI 2022) as the authors built it: 6 blocks 16-128 ch, depthwise bottleneck, transposed-conv decoder, ~1.5 M params",
        options={
            "weights": "local file (.safetensors/.pt) with this encoder's weights, e.g. an sslkit export",
            "bottleneck_kernel": "depthwise bottleneck kernel; the authors' rule 2*(1+S//128)-1 for image side S: "
                                 "1 (default, 64-127 px), 3 (128-255 px), 5 (256-383 px); 0 = none",
            "block": "paper (default: conv-BN-ReLU-conv, the authors' block) or double (conv-BN-ReLU twice)",
        },
    )
