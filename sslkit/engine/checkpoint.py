"""Checkpoints that survive a kill at any moment, and the random states exact resume needs.

Writes go to a temporary file in the same folder, are flushed to disk, then renamed over the
target with :func:`os.replace` (atomic on POSIX and Windows): a run killed mid-write leaves the
previous checkpoint intact, never a truncated one. Loading turns a missing or unreadable file into
one sentence naming it.

Checkpoints are pickles (``torch.save``) because masker plugins may keep arbitrary picklable
state; load only checkpoints you trust (your own runs). The encoder meant for sharing is exported
separately as safetensors (:func:`sslkit.models.save_encoder`).
"""

from __future__ import annotations

import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sslkit.errors import UserError, first_line
from sslkit.fileio import atomic_write, atomic_write_text  # noqa: F401  (re-exported)

FORMAT = "sslkit-pretrain-checkpoint"
FORMAT_VERSION = 1


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to ``path`` atomically (temp file in the same folder, then rename)."""
    return atomic_write(path, lambda handle: torch.save(obj, handle))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`atomic_save`; missing or corrupt -> one-sentence UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint '{path}' does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as error:
        first = first_line(error)
        raise UserError(f"checkpoint '{path}' is unreadable (truncated or corrupt: {first})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"checkpoint '{path}' is not an sslkit pretraining checkpoint")
    if int(state.get("format_version", 0)) > FORMAT_VERSION:
        raise UserError(
            f"checkpoint '{path}' was written by a newer sslkit (format {state['format_version']}); upgrade sslkit to resume it"
        )
    return state


def capture_rng_states() -> dict[str, Any]:
    """Every global random state a training step may draw from (python, numpy, torch, cuda, mps)."""
    np_state = np.random.get_state()
    states: dict[str, Any] = {
        "python": random.getstate(),
        # numpy's state as plain values, so the checkpoint holds no numpy objects
        "numpy": (np_state[0], torch.from_numpy(np_state[1].copy()), int(np_state[2]), int(np_state[3]), float(np_state[4])),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    if hasattr(torch, "mps") and torch.backends.mps.is_available():
        states["mps"] = torch.mps.get_rng_state()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_states` (device states only where the device exists)."""
    random.setstate(_as_python_state(states["python"]))
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"].cpu())
    if "cuda" in states and torch.cuda.is_available():
        cuda_states = states["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states])
    if "mps" in states and hasattr(torch, "mps") and torch.backends.mps.is_available():
        torch.mps.set_rng_state(states["mps"].cpu())


def _as_python_state(state: Any) -> tuple:
    """``random.setstate`` needs tuples; a round trip through some serialisers yields lists."""
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
