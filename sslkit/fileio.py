"""Atomic file replacement, shared by checkpoints, metrics, configs and encoder exports.

Every file sslkit writes that a later step reads back goes through a temporary file in the same
folder (``.NAME.XXXX.tmp``), flushed to disk, then :func:`os.replace` (atomic on POSIX and
Windows): a run killed mid-write leaves the previous file intact, never half of one. A SIGKILL
can still leave the temporary behind; :func:`remove_stale_temporaries` clears them when a run
starts or resumes (under the run-directory lock, so no live writer owns them).

A write that fails for lack of space or permission raises :class:`OSError` naming the target
file, also when the writer (``torch.save``) wrapped it in a ``RuntimeError``.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import IO, Any, Callable

from sslkit.errors import os_error_in

TMP_SUFFIX = ".tmp"


def _umask() -> int:
    """The process's umask, read without changing it where Linux shows it (setting and restoring
    it, the only portable way, briefly affects files other threads create meanwhile)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a newly created file gets under the current umask (0644 under 022)."""
    return 0o666 & ~_umask()


def atomic_write_path(path: str | Path, fill: Callable[[str], Any]) -> Path:
    """Call ``fill(tmp_path)`` to write a temporary file, then rename it over ``path``.

    For writers that want a file name (e.g. ``safetensors.torch.save_model``). Permissions are
    set after ``fill``, because some writers recreate the file (mkstemp's and safetensors' 0600
    would otherwise stay, and colleagues on a shared file system could not read the file).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    try:
        fill(tmp)
        os.chmod(tmp, file_mode())
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        os_error = os_error_in(error) if isinstance(error, Exception) else None
        if os_error is not None and not isinstance(error, OSError):
            # e.g. torch: "RuntimeError: [enforce fail at inline_container.cc] ... No space left on device"
            raise OSError(os_error.errno, os_error.strerror, str(path)) from error
        if isinstance(error, OSError) and error.filename is None:
            raise OSError(error.errno, error.strerror, str(path)) from error
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


#: the temporary safetensors itself writes first (Rust's ``tempfile``: ``.tmp`` + random letters),
#: left behind when a SIGKILL lands mid-export (a 19.7 MB ``encoder/.tmpXXXXXX``, mode 0600)
_LIBRARY_TEMPORARY = re.compile(r"\.tmp[A-Za-z0-9_]{4,12}")


def stale_temporaries(folder: str | Path) -> list[Path]:
    """The temporaries :func:`atomic_write_path` (or a library writing inside it) leaves in
    ``folder`` when killed mid-write."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and (
        (p.name.startswith(".") and p.name.endswith(TMP_SUFFIX)) or _LIBRARY_TEMPORARY.fullmatch(p.name)))


def remove_stale_temporaries(*folders: str | Path) -> int:
    """Delete the leftover temporaries in ``folders``; returns the bytes freed. Call it only while
    no other process writes there (sslkit holds the run-directory lock when it does)."""
    freed = 0
    for folder in folders:
        for tmp in stale_temporaries(folder):
            try:
                size = tmp.stat().st_size
                tmp.unlink()
                freed += size
            except FileNotFoundError:
                pass
    return freed
