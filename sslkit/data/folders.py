"""Datasets that are trees of image files: the machinery behind the folder-like adapters.

One function, :func:`open_image_tree`, covers the layouts the built-in adapters need:

- optional split folders at the top (``train/``, ``val/``, ``test/``) are used as the splits;
- labels from class sub-folders (``labels="folders"``), none (``"none"``, files found
  recursively), or guessed (``"auto"``: class folders unless images lie directly at the top);
- lesion masks as sibling files recognised by ``mask_regex`` on the file stem (several masks of
  one image are merged), optionally also the label (``label_from_mask``: 1 when any pixel is set);
- groups (patients) from each file's folder (``groups="parent"``), for leak-free splits;
- ``expand`` turns one file into one or more 2-D images (DICOM frames, NIfTI slices).

Every file gets the cheap check of :func:`sslkit.data.reading.quick_check` (or the adapter's
own); failures go to ``DatasetSplits.unreadable`` instead of into a split.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable

from sslkit.data.files import natural_key, scan_files, split_folders
from sslkit.data.reading import IMAGE_EXTENSIONS, quick_check
from sslkit.data.records import DatasetSplits, FileImage, LesionMask, Record
from sslkit.data.reading import BadImage
from sslkit.choices import SPLIT_NAMES
from sslkit.data.splits import check_fractions, split_records
from sslkit.errors import UserError

log = logging.getLogger("sslkit.data")
LABEL_MODES = ("auto", "folders", "none")


def _single_file(path: Path) -> list:
    return [FileImage(str(path))]


def open_image_tree(
    root: str | Path,
    *,
    name: str | None = None,
    labels: str = "auto",
    mask_regex: str | None = None,
    label_from_mask: bool = False,
    mask_class_names: tuple[str, str] = ("no lesion", "lesion"),
    groups: str | None = None,
    extensions: Iterable[str] = IMAGE_EXTENSIONS,
    expand: Callable[[Path], list] = _single_file,
    check: Callable[[str], str | None] | None = quick_check,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> DatasetSplits:
    """Open a tree of image files; see the module docstring for the options."""
    check_fractions(val_fraction, test_fraction)
    root = Path(root).expanduser()
    if not root.exists():
        raise UserError(f"'{root}' does not exist")
    if labels not in LABEL_MODES:
        raise UserError(f"labels must be one of {', '.join(LABEL_MODES)}, got '{labels}'")
    if groups not in (None, "parent", "none"):
        raise UserError(f"groups must be 'parent' or 'none', got '{groups}'")
    extensions = tuple(extensions)
    mask_pattern = re.compile(mask_regex) if mask_regex else None
    notes: list[str] = []
    found = split_folders(root)
    parts: dict[str | None, Path] = {k: v for k, v in found.items()} if found else {None: root}

    if label_from_mask:
        labels = "none"
    elif labels == "auto":
        first = next(iter(parts.values()))
        top_level = [p for p in scan_files(first, extensions, recursive=False) if not _is_mask(p, mask_pattern)]
        labels = "none" if (first.is_file() or top_level) else "folders"

    # (split or None, class name or None, files) for every folder that holds samples
    sources: list[tuple[str | None, str | None, list[Path]]] = []
    for split, folder in parts.items():
        if labels == "folders":
            class_dirs = sorted((d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")),
                                key=lambda d: natural_key(d.name))
            loose = scan_files(folder, extensions, recursive=False)
            if loose:
                notes.append(f"{len(loose)} image file(s) directly in '{folder}' ignored (not in a class folder)")
            for class_dir in class_dirs:
                sources.append((split, class_dir.name, scan_files(class_dir, extensions)))
        else:
            sources.append((split, None, scan_files(folder, extensions)))

    if not any(files for _, _, files in sources):
        kinds = ", ".join(extensions)
        raise UserError(f"no image files ({kinds}) found under '{root}'")

    empty_classes = sorted({c for _, c, files in sources if c is not None and not files}
                           - {c for _, c, files in sources if c is not None and files})
    for empty in empty_classes:
        notes.append(f"class folder '{empty}' has no images and is left out")
    class_names = sorted({c for _, c, files in sources if c is not None and files}, key=natural_key) or None
    if label_from_mask:
        class_names = list(mask_class_names)
    class_index = {c: i for i, c in enumerate(class_names or [])}

    unreadable: list[tuple[str, str]] = []
    per_split: dict[str | None, list[Record]] = defaultdict(list)
    orphan_masks = 0
    for split, class_name, files in sources:
        images, masks = _pair_masks(files, mask_pattern)
        orphan_masks += sum(1 for key in masks if key not in images)
        for key, path in images.items():
            record = _make_records(path, masks.get(key, []), root, class_index.get(class_name) if class_name else None,
                                   groups, expand, check, label_from_mask, unreadable)
            per_split[split].extend(record)
    if orphan_masks:
        notes.append(f"{orphan_masks} mask file(s) without a matching image ignored")
    for note in notes:
        log.warning("%s: %s", name or root.name, note)

    if None in per_split:
        splits = split_records(per_split[None], val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    else:
        splits = {s: per_split.get(s, []) for s in SPLIT_NAMES}
        if not splits["val"] and val_fraction > 0 and splits["train"]:
            # Own train/test folders but no validation folder: carve validation out of train.
            carved = split_records(splits["train"], val_fraction=val_fraction, test_fraction=0.0, seed=seed)
            splits["train"], splits["val"] = carved["train"], carved["val"]
    all_records = [r for s in SPLIT_NAMES for r in splits[s]]
    return DatasetSplits(
        name=name or root.name,
        splits=splits,
        class_names=class_names if (class_names and all_records) else None,
        has_lesion_masks=any(r.lesion is not None for r in all_records),
        unreadable=unreadable,
        notes=notes,
    )


def _is_mask(path: Path, pattern: re.Pattern | None) -> bool:
    return bool(pattern and pattern.match(_stem(path)))


def _stem(path: Path) -> str:
    name = path.name
    for ext in (".nii.gz",):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return path.stem


def _pair_masks(files: list[Path], pattern: re.Pattern | None) -> tuple[dict, dict]:
    """Split ``files`` into images and masks: ``({(folder, stem): path}, {(folder, stem): [mask paths]})``."""
    images: dict[tuple[Path, str], Path] = {}
    masks: dict[tuple[Path, str], list[Path]] = defaultdict(list)
    for path in files:
        match = pattern.match(_stem(path)) if pattern else None
        if match:
            masks[(path.parent, match.group("image"))].append(path)
        else:
            images[(path.parent, _stem(path))] = path
    return images, masks


def _make_records(path, mask_paths, root, label, groups, expand, check, label_from_mask, unreadable) -> list[Record]:
    for candidate in [path, *mask_paths]:
        reason = check(str(candidate)) if check else None
        if reason is not None:
            prefix = "" if candidate == path else f"its lesion mask '{candidate.name}' is unreadable: "
            unreadable.append((str(path), prefix + reason))
            return []
    try:
        refs = expand(path)
        mask_refs = [expand(m) for m in mask_paths]
    except BadImage as error:
        unreadable.append((str(path), str(error)))
        return []
    for m, parts in zip(mask_paths, mask_refs):
        if len(parts) != len(refs):
            unreadable.append((str(path), f"its lesion mask '{m.name}' has {len(parts)} slices for {len(refs)}"))
            return []
    group = None
    if groups == "parent":
        parent = path.parent
        group = str(parent.relative_to(root)) if parent != root and root in parent.parents else parent.name
    records = []
    for i, ref in enumerate(refs):
        lesion = LesionMask(tuple(parts[i] for parts in mask_refs)) if mask_refs else None
        this_label = label
        if label_from_mask:
            if lesion is None:
                this_label = None
            else:
                try:
                    this_label = int(bool(lesion.load().any()))
                except BadImage as error:
                    unreadable.append((str(path), f"its lesion mask is unreadable: {error}"))
                    continue
        source = str(path) if len(refs) == 1 else f"{path}[{i}]"
        # Group: the folder (groups="parent"), else the file's own (DICOM PatientID), else the
        # file itself when it holds several slices, so one volume never spans two splits.
        this_group = group or getattr(ref, "group", None) or (str(path) if len(refs) > 1 else None)
        records.append(Record(source=source, image=ref, label=this_label, group=this_group, lesion=lesion))
    return records

