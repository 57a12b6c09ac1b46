"""Reading PyTorch files that may come from someone else, without running code from them.

``torch.save`` writes pickles, and unpickling may call any function the file names (a received
``last.pt`` could run ``os.system``). Every ``.pt`` file sslkit reads goes through :func:`safe_load`,
``torch.load(weights_only=True)``: its unpickler builds only tensors and plain Python values
(dicts, lists, tuples, numbers, strings, None) and refuses any other global before calling it.
:func:`refused_object` turns that refusal into words for a one-sentence error.

This is safe only on a PyTorch whose restricted unpickler has no known bypass: 2.6.0 fixed
CVE-2025-32434 (code execution through ``weights_only=True``) and 2.10.0 fixed CVE-2026-24747
(memory corruption through it), hence sslkit's floor ``torch>=2.10`` in ``pyproject.toml``.
"""

from __future__ import annotations

import re
from typing import Any

import torch

#: the unpickler's own words for the object it refused, e.g. ``GLOBAL posix.system``
_REFUSED_GLOBAL = re.compile(r"(?:[Uu]nsupported (?:global: )?GLOBAL|unsupported global) ([\w.]+)")


def safe_load(source: Any, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load`` that runs no code from the file: tensors and plain Python values only."""
    return torch.load(source, map_location=map_location, weights_only=True)


def refused_object(error: BaseException) -> str | None:
    """What :func:`safe_load` refused to build (``"a pickled 'posix.system'"``), or None when
    ``error`` is not such a refusal (a truncated or corrupt file instead)."""
    text = str(error)
    if "Weights only load failed" not in text and "weights_only" not in text.lower():
        return None
    found = _REFUSED_GLOBAL.search(text)
    return f"a pickled '{found.group(1)}'" if found else "pickled objects other than tensors and plain values"
