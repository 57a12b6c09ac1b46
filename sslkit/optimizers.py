"""Adam and AdamW in their fastest form on the device at hand, for the engine and for plugins.

PyTorch's default Adam on a CPU updates one parameter tensor after another (about a hundred small
kernels per step for a ResNet-18 U-Net); its *fused* form does the whole update in one pass over
memory, 4-6x faster on this project's reference CPU and free of host synchronisation on CUDA
(``step`` counters stay on the device). Fused kernels exist for CPU and CUDA tensors from torch
2.4; elsewhere (older torch, MPS) the multi-tensor ``foreach`` form is used, and the plain loop is
the last resort. The arithmetic is Adam's either way: the choice changes speed, not what is
learnt, beyond floating-point rounding, and it is fixed per run so that resuming is exact.

Maskers that train networks of their own (``dqn``, ``hpm``, ...) should build their optimizers
here too: it is the documented helper for plugin authors.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch

from sslkit.choices import OPTIMIZERS  # noqa: E402  (one definition, torch-free)


def _implementation(params: list[torch.Tensor]) -> dict[str, Any]:
    """Keyword arguments selecting fused (CPU/CUDA floating tensors) or foreach."""
    devices = {p.device.type for p in params}
    if params and devices <= {"cpu", "cuda"} and all(p.is_floating_point() for p in params):
        return {"fused": True}
    return {"foreach": True} if params else {}


def build_optimizer(
    params: Iterable[torch.Tensor], name: str = "adam", *, lr: float = 1e-3, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """``adam`` or ``adamw`` over ``params`` (already on their device), fused where possible."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer '{name}' is not one of {', '.join(OPTIMIZERS)}")
    params = [p for p in params if p.requires_grad]
    cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    kwargs = _implementation(params)
    try:
        return cls(params, lr=lr, weight_decay=weight_decay, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # a torch without fused kernels for this device
        return cls(params, lr=lr, weight_decay=weight_decay, foreach=bool(params))


def implementation_name(optimizer: torch.optim.Optimizer) -> str:
    """``fused``, ``foreach`` or ``for-loop``: what the run prints and records."""
    group = optimizer.param_groups[0] if optimizer.param_groups else optimizer.defaults
    if group.get("fused"):  # read from the group: a resumed optimizer keeps the form it was saved with
        return "fused"
    if group.get("foreach"):
        return "foreach"
    return "for-loop"
