"""sslkit: plugin-based self-supervised pretraining for medical imaging.

The core orchestrates; every concrete masker, backbone and dataset adapter is a plugin
(see :mod:`sslkit.hookspecs`). From Python (see :mod:`sslkit.api`)::

    import sslkit
    run = sslkit.pretrain(masker="random", epochs=1, out="runs/quick")
    result = sslkit.finetune(encoder=run.run_dir, labels=100)
    encoder = sslkit.load_encoder(run.run_dir)

Those names are imported on first use, so ``import sslkit`` stays cheap (no torch).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

#: public name -> module it lives in (imported on first access: PEP 562)
_LAZY = {
    "pretrain": "sslkit.api",
    "finetune": "sslkit.api",
    "compare": "sslkit.api",
    "load_encoder": "sslkit.api",
    "PretrainResult": "sslkit.api",
    "PretrainConfig": "sslkit.pretraining.config",
    "FinetuneConfig": "sslkit.finetuning.config",
    "FinetuneResult": "sslkit.finetuning.run",
    "CompareConfig": "sslkit.comparison.config",
    "CompareResult": "sslkit.comparison.run",
    "UserError": "sslkit.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sslkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
