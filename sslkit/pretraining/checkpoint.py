"""Checkpoints that survive a kill at any moment, and the random states exact resume needs.

Writes go to a temporary file in the same folder, are flushed to disk, then renamed over the
target with :func:`os.replace` (atomic on POSIX and Windows): a run killed mid-write leaves the
previous checkpoint intact, never a truncated one. Loading turns a missing or unreadable file into
one sentence naming it.

Integrity: a checkpoint is a zip archive (``torch.save``'s format); its SHA-256 (over every byte up
to the archive comment) is stored as the archive comment, ``sslkit-sha256:<hex>``, and checked on
load, so flipped bits are found instead of resumed from. A comment is part of the zip standard, so
the file stays a plain ``torch.load``-able checkpoint. :func:`load_latest_good` falls back to the
newest kept ``epoch_N.pt`` that verifies when ``last.pt`` does not.

Safety: a checkpoint is read with ``torch.load(weights_only=True)``, whose unpickler builds only
tensors and plain Python values (dicts, lists, tuples, numbers, strings) and refuses any other
global, so a received run folder cannot run code when resumed or inspected. A file that needs
anything else is refused in one sentence naming it (:class:`UnsafeCheckpoint`); masker plugins
must keep their state in tensors and plain values, which :func:`check_plain_state` says at the
first save rather than at the resume. (The SHA-256 only finds copy errors: anyone can sign a file.)
The encoder meant for sharing is exported separately as safetensors (:func:`sslkit.models.save_encoder`).
"""

from __future__ import annotations

import hashlib
import pickle
import random
import re
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sslkit.fileio import atomic_write_path
from sslkit.errors import UserError, first_line
from sslkit.safeload import refused_object, safe_load

FORMAT = "sslkit-pretrain-checkpoint"
FORMAT_VERSION = 1


DIGEST_PREFIX = b"sslkit-sha256:"
_EOCD = b"PK\x05\x06"  # zip "end of central directory" record: 22 bytes + comment
_EOCD_SIZE = 22
_CHUNK = 1 << 20


class CorruptCheckpoint(UserError):
    """A checkpoint whose bytes do not match the SHA-256 stored in it (or that cannot be read)."""


class UnsafeCheckpoint(UserError):
    """A checkpoint holding pickled objects other than tensors and plain values: loading it could
    run code, so it is refused (never a fallback to an older file, which would hide the attempt)."""


def check_plain_state(state: Any, what: str) -> None:
    """Raise a UserError when ``state`` could not be read back by :func:`safe_load` (e.g. a masker
    keeping a numpy array or its own class), so a plugin author hears it at the first save, not
    at a resume weeks later. A round trip through memory: the only exact test of the loader."""
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    try:
        safe_load(buffer)
    except pickle.UnpicklingError as error:
        raise UserError(
            f"{what} holds {refused_object(error)}, which a checkpoint cannot hold: checkpoints keep only tensors "
            "and plain Python values (dict, list, tuple, int, float, str, bool, None), so that loading one runs no "
            "code; convert it (e.g. torch.as_tensor for a numpy array)"
        ) from None


def _digest_of(handle, length: int) -> str:
    handle.seek(0)
    digest, left = hashlib.sha256(), length
    while left > 0:
        chunk = handle.read(min(_CHUNK, left))
        if not chunk:
            break
        digest.update(chunk)
        left -= len(chunk)
    return digest.hexdigest()


def _sign(handle) -> None:
    """Append ``sslkit-sha256:<hex of every byte before the comment length>`` as the zip comment
    of the archive ``torch.save`` just wrote to ``handle`` (opened for reading and writing)."""
    handle.flush()
    handle.seek(0, 2)
    size = handle.tell()
    handle.seek(size - _EOCD_SIZE)
    record = handle.read(_EOCD_SIZE)
    if not record.startswith(_EOCD) or record[20:22] != b"\x00\x00":
        raise RuntimeError("torch.save did not end its archive as expected; cannot store a checksum")
    comment = DIGEST_PREFIX + _digest_of(handle, size - 2).encode("ascii")
    handle.seek(size - 2)
    handle.write(struct.pack("<H", len(comment)) + comment)


def stored_digest(path: str | Path) -> tuple[str | None, str | None]:
    """(stored SHA-256, SHA-256 of the file's bytes) of a checkpoint; (None, None) for one written
    before checksums existed (no sslkit comment)."""
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        tail_len = min(size, _EOCD_SIZE + len(DIGEST_PREFIX) + 64)
        handle.seek(size - tail_len)
        tail = handle.read(tail_len)
        match = re.search(re.escape(DIGEST_PREFIX) + rb"([0-9a-f]{64})$", tail)
        if match is None:
            return None, None
        comment_len = len(match.group(0))
        return match.group(1).decode("ascii"), _digest_of(handle, size - comment_len - 2)


def verify_checkpoint(path: str | Path) -> None:
    """Raise :class:`CorruptCheckpoint` naming ``path`` when its bytes differ from its checksum."""
    stored, actual = stored_digest(path)
    if stored is not None and stored != actual:
        raise CorruptCheckpoint(
            f"checkpoint '{path}' is corrupt: its SHA-256 does not match the one stored when it was written "
            "(a disk or copy error changed it)"
        )


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to ``path`` atomically (temp file in the same folder, then rename), with its
    SHA-256 stored inside (see the module docstring)."""

    def fill(tmp: str) -> None:
        with open(tmp, "w+b") as handle:
            torch.save(obj, handle)
            _sign(handle)

    return atomic_write_path(path, fill)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`atomic_save`; missing, corrupt (checksum) or unreadable
    -> one-sentence UserError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint '{path}' does not exist")
    try:
        verify_checkpoint(path)
    except OSError as error:
        raise CorruptCheckpoint(f"checkpoint '{path}' is unreadable ({error.strerror or first_line(error)})") from None
    if not zipfile.is_zipfile(path):  # sslkit writes torch's zip format; anything else is never unpickled
        raise CorruptCheckpoint(
            f"checkpoint '{path}' is unreadable: not a PyTorch zip archive (truncated, or another kind of file)"
        )
    try:
        state = safe_load(path, map_location)
    except pickle.UnpicklingError as error:
        refused = refused_object(error)
        if refused is not None:
            raise UnsafeCheckpoint(
                f"checkpoint '{path}' holds {refused}, which sslkit refuses to load because unpickling it could run "
                "code; resume only run folders sslkit wrote, or ask their sender for the exported encoder (safetensors)"
            ) from None
        raise CorruptCheckpoint(f"checkpoint '{path}' is unreadable (truncated or corrupt: {first_line(error)})") from None
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError, KeyError, IndexError) as error:
        first = first_line(error)
        raise CorruptCheckpoint(f"checkpoint '{path}' is unreadable (truncated or corrupt: {first})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"checkpoint '{path}' is not an sslkit pretraining checkpoint")
    if int(state.get("format_version", 0)) > FORMAT_VERSION:
        raise UserError(
            f"checkpoint '{path}' was written by a newer sslkit (format {state['format_version']}); upgrade sslkit to resume it"
        )
    return state


def _epoch_number(path: Path) -> int:
    match = re.fullmatch(r"epoch_(\d+)\.pt", path.name)
    return int(match.group(1)) if match else -1


def load_latest_good(
    last: str | Path, map_location: str | torch.device = "cpu", warn: Any = None
) -> tuple[dict[str, Any], Path]:
    """``last`` if it verifies, else the newest ``epoch_N.pt`` beside it that does, with ``warn``
    (a callable taking one sentence) told which file was bad and which one is used instead.
    No good file at all -> the error of ``last``."""
    last = Path(last)
    try:
        return load_checkpoint(last, map_location), last
    except CorruptCheckpoint as error:
        kept = sorted(last.parent.glob("epoch_*.pt"), key=_epoch_number, reverse=True)
        for candidate in kept:
            try:
                state = load_checkpoint(candidate, map_location)
            except CorruptCheckpoint:
                continue
            if warn is not None:
                warn(f"{error.message}; resuming from the previous good checkpoint '{candidate}' "
                     f"(step {state.get('step')}) instead")
            return state, candidate
        raise


def capture_rng_states() -> dict[str, Any]:
    """Every global random state a training step may draw from (python, numpy, torch, cuda, mps)."""
    np_state: Any = np.random.get_state()  # the legacy tuple form
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
