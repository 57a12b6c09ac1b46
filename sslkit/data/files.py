"""Finding image files and checking them cheaply, shared by the file-based adapters."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable

from sslkit.data.reading import IMAGE_EXTENSIONS, quick_check

SPLIT_FOLDER_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val",
                      "validation": "val", "test": "test", "testing": "test"}


def has_extension(name: str, extensions: Iterable[str]) -> bool:
    lowered = name.lower()
    return any(lowered.endswith(ext) for ext in extensions)


def scan_files(root: str | Path, extensions: Iterable[str] = IMAGE_EXTENSIONS, *, recursive: bool = True) -> list[Path]:
    """Files under ``root`` with one of ``extensions`` (case-insensitive), sorted, hidden
    files and folders left out. The order is stable, so seeded splits are reproducible."""
    root = Path(root)
    extensions = tuple(e.lower() for e in extensions)
    if root.is_file():
        return [root] if has_extension(root.name, extensions) else []
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if not recursive:
            dirs[:] = []
        found.extend(Path(folder) / f for f in sorted(files) if not f.startswith(".") and has_extension(f, extensions))
    return sorted(found, key=lambda p: natural_key(str(p.relative_to(root))))


def natural_key(text: str) -> list:
    """'img (10)' after 'img (9)': numbers compare as numbers."""
    import re

    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def check_files(paths: Iterable[Path], check: Callable[[str], str | None] = quick_check) -> dict[Path, str]:
    """``{path: reason}`` for the files ``check`` rejects (by default the cheap signature and
    truncation check, a few bytes per file)."""
    bad: dict[Path, str] = {}
    for path in paths:
        reason = check(str(path))
        if reason is not None:
            bad[path] = reason
    return bad


def split_folders(root: Path) -> dict[str, Path] | None:
    """``{"train": root/train, ...}`` when every sub-folder of ``root`` is a split name
    (train/val/valid/validation/test) and ``train`` is among them; else None."""
    if not root.is_dir():
        return None
    subdirs = [d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")]
    if not subdirs or any(d.name.lower() not in SPLIT_FOLDER_NAMES for d in subdirs):
        return None
    mapping = {SPLIT_FOLDER_NAMES[d.name.lower()]: d for d in subdirs}
    return mapping if "train" in mapping else None
