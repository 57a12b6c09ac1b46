"""Built-in backbones from timm: every name of ``timm.list_models()``, one shared factory.

Registering only names keeps ``sslkit list`` fast (no model is built until one is asked for).
Models are always created with ``pretrained=False``; initial weights only come from a local file
(``weights=FILE``). The factory is :func:`sslkit.models.timm_encoder.timm_encoder`.
"""

from functools import partial

from sslkit.hookspecs import hookimpl

OPTIONS = {
    "weights": "local checkpoint (.safetensors/.pth) of this timm model or an sslkit export; never downloaded, "
               "never unpickled (timm's checkpoint_path= is read the same way)",
    "drop_path_rate": "stochastic depth rate (any other timm.create_model keyword is passed on too)",
    "img_size": "input size for ViT-style models; add dynamic_img_size=true to accept other sizes",
}


@hookimpl
def register_backbones(register):
    import timm

    from sslkit.models.timm_encoder import timm_encoder

    for name in timm.list_models():
        register(name, partial(timm_encoder, name), f"timm {name}", options=OPTIONS)
