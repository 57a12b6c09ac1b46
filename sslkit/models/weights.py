"""Reading weight files a user names (``weights=FILE``), with errors that name the file.

Weights only ever come from a local file: sslkit never downloads. ``.safetensors`` files are
read with safetensors; anything else with :func:`sslkit.safeload.safe_load` (no pickled code is
run). Common checkpoint wrappers (``state_dict``, ``model``, EMA copies, a ``module.`` prefix from
DataParallel) are unwrapped so a plain PyTorch or timm checkpoint works as is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from sslkit.errors import UserError, first_line
from sslkit.safeload import refused_object, safe_load

_WRAPPER_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model")


def read_state_file(path: str | Path, what: str = "weights file") -> dict[str, torch.Tensor]:
    """The tensors in ``path`` as a flat state dict; missing/unreadable/empty -> UserError."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"{what} '{path}' does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            raw: Any = load_file(str(path), device="cpu")
        else:
            raw = safe_load(str(path))
    except Exception as error:  # corrupt, truncated, not a checkpoint at all, or pickled code
        refused = refused_object(error)
        if refused is not None:
            raise UserError(f"{what} '{path}' holds {refused}, which sslkit refuses to load because unpickling it "
                            "could run code; use a .safetensors file or a plain state dict of tensors") from None
        first = first_line(error)
        raise UserError(f"{what} '{path}' cannot be read as PyTorch/safetensors weights ({first})") from None
    if isinstance(raw, dict):
        for key in _WRAPPER_KEYS:
            if isinstance(raw.get(key), dict):
                raw = raw[key]
                break
    if not isinstance(raw, dict):
        raise UserError(f"{what} '{path}' holds a {type(raw).__name__}, not a dictionary of tensors")
    state = {k.removeprefix("module."): v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise UserError(f"{what} '{path}' holds no tensors")
    return state


def load_state_strict(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``module.load_state_dict(state)`` with a one-sentence UserError when they do not match."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. '{missing[0]}')")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. '{unexpected[0]}')")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} of another shape (e.g. '{k}': {tuple(state[k].shape)} vs {tuple(own[k].shape)})")
        raise UserError(f"{source} does not fit this model: tensors {', '.join(parts)}")
    module.load_state_dict(state, strict=True)
