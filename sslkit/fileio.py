"""Atomic file replacement, shared by checkpoints, metrics, configs and encoder exports.

Every file sslkit writes that a later step reads back goes through a temporary file in the same
folder, flushed to disk, then :func:`os.replace` (atomic on POSIX and Windows): a run killed
mid-write leaves the previous file intact, never half of one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def atomic_write_path(path: str | Path, fill: Callable[[str], Any]) -> Path:
    """Call ``fill(tmp_path)`` to write a temporary file, then rename it over ``path``.

    For writers that want a file name (e.g. ``safetensors.torch.save_model``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, _FILE_MODE)  # mkstemp makes 0600 files; give the usual permissions
        fill(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(handle)`` on a binary handle of a temporary file, then rename it over ``path``."""

    def fill(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            write(handle)

    return atomic_write_path(path, fill)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Replace a text file atomically (metrics, configs), so readers never see half a file."""
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))
