"""Built-in backbones from timm: every name of ``timm.list_models()``, one shared factory.

Registered as a family: importing timm and listing its 1,300+ names takes seconds, so it happens
only when a backbone outside the explicit entries is asked for (``--backbone resnet18``) or the
backbones are listed, never for ``sslkit list maskers``, ``sslkit plugins`` or a masker's typo.
Models are always created with ``pretrained=False``; initial weights only come from a local file
(``weights=FILE``). The factory is :func:`sslkit.models.timm_encoder.timm_encoder`.
"""

from __future__ import annotations

from sslkit.hookspecs import hookimpl

OPTIONS = {
    "weights": "local checkpoint (.safetensors/.pth) of this timm model or an sslkit export; never downloaded, "
               "never unpickled (timm's checkpoint_path= is read the same way)",
    "drop_path_rate": "stochastic depth rate (any other timm.create_model keyword is passed on too)",
    "img_size": "input size for ViT-style models; add dynamic_img_size=true to accept other sizes",
}


def timm_model_names() -> list[str]:
    """Every model name timm knows (imports timm: a few seconds)."""
    import timm

    return list(timm.list_models())


@hookimpl
def register_backbones(register_family):
    register_family("timm", timm_model_names, "sslkit.models.timm_encoder:timm_encoder",
                    "every timm.list_models() name (listed on demand: sslkit list backbones)", options=OPTIONS)
