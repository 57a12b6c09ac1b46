"""Datasets described by a CSV table: one row per image.

Columns: ``image_path`` (relative to the CSV's folder, or absolute) and ``label`` are required
(``label_column=""`` for unlabelled data; an empty cell is an unknown label); ``split``
(train/val/test; also valid/validation/training/testing), ``group`` (patient id) and
``mask_path`` (lesion mask; several separated by ';') are optional. Labels are class names or
integers; class names are sorted (numerically when all are integers).
"""

from __future__ import annotations

import csv
from pathlib import Path

from sslkit.data.files import SPLIT_FOLDER_NAMES, natural_key
from sslkit.data.reading import quick_check
from sslkit.data.records import DatasetSplits, FileImage, LesionMask, Record
from sslkit.choices import SPLIT_NAMES
from sslkit.data.splits import check_fractions, split_records
from sslkit.errors import UserError


def _read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            header = handle.readline()
            handle.seek(0)
            # The header decides the delimiter (cells may contain ';' between mask paths).
            delimiter = max(",;\t", key=lambda d: (header.count(d), d == ","))
            reader = csv.DictReader(handle, delimiter=delimiter)
            rows = list(reader)
            return [c.strip() for c in (reader.fieldnames or [])], rows
    except UnicodeDecodeError:
        raise UserError(f"'{path}' is not a text CSV file") from None
    except OSError as error:
        raise UserError(f"cannot read '{path}': {error.strerror or error}") from None


def open_csv_table(
    location: str | Path,
    *,
    image_column: str = "image_path",
    label_column: str = "label",
    split_column: str = "split",
    group_column: str = "group",
    mask_column: str = "mask_path",
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> DatasetSplits:
    check_fractions(val_fraction, test_fraction)
    path = Path(location).expanduser()
    if not path.is_file():
        raise UserError(f"'{path}' does not exist or is not a file")
    columns, rows = _read_rows(path)
    rows = [{(k or "").strip(): (v or "").strip() if isinstance(v, str) else "" for k, v in row.items()} for row in rows]
    required = [image_column] + ([label_column] if label_column else [])
    missing = [c for c in required if c not in columns]
    if missing:
        found = ", ".join(columns) or "none"
        raise UserError(f"'{path}' has no column '{missing[0]}' (its columns: {found})")
    if not rows:
        raise UserError(f"'{path}' has a header but no rows")

    raw_labels = [row.get(label_column, "") if label_column else "" for row in rows]
    distinct = sorted({v for v in raw_labels if v})
    numeric = bool(distinct) and all(_is_int(v) for v in distinct)
    class_names = sorted(distinct, key=(lambda v: int(v)) if numeric else natural_key) or None
    index_of = {name: i for i, name in enumerate(class_names or [])}

    base = path.parent
    has_split = split_column in columns
    unreadable: list[tuple[str, str]] = []
    by_split: dict[str, list[Record]] = {s: [] for s in SPLIT_NAMES}
    pool: list[Record] = []
    for line, (row, raw_label) in enumerate(zip(rows, raw_labels), start=2):
        cell = row.get(image_column, "")
        if not cell:
            raise UserError(f"'{path}' line {line}: empty '{image_column}'")
        image_path = _resolve(base, cell)
        reason = "file not found" if not image_path.is_file() else quick_check(str(image_path))
        mask_paths = [_resolve(base, m) for m in row.get(mask_column, "").split(";") if m.strip()]
        for mask_path in mask_paths:
            if reason is None:
                mask_reason = "file not found" if not mask_path.is_file() else quick_check(str(mask_path))
                if mask_reason is not None:
                    reason = f"its lesion mask '{mask_path.name}' is unreadable: {mask_reason}"
        if reason is not None:
            unreadable.append((str(image_path), reason))
            continue
        record = Record(
            source=str(image_path),
            image=FileImage(str(image_path)),
            label=index_of[raw_label] if raw_label else None,
            group=row.get(group_column) or None,
            lesion=LesionMask(tuple(FileImage(str(m)) for m in mask_paths)) if mask_paths else None,
        )
        if has_split:
            value = row.get(split_column, "").lower()
            if value not in SPLIT_FOLDER_NAMES:
                raise UserError(f"'{path}' line {line}: split '{row.get(split_column, '')}' is not train, val or test")
            by_split[SPLIT_FOLDER_NAMES[value]].append(record)
        else:
            pool.append(record)

    splits = by_split if has_split else split_records(pool, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    all_records = [r for s in SPLIT_NAMES for r in splits[s]]
    return DatasetSplits(
        name=path.stem,
        splits=splits,
        class_names=class_names,
        has_lesion_masks=any(r.lesion is not None for r in all_records),
        unreadable=unreadable,
    )


def _is_int(text: str) -> bool:
    try:
        int(text)
        return True
    except ValueError:
        return False


def _resolve(base: Path, cell: str) -> Path:
    candidate = Path(cell).expanduser()
    return candidate if candidate.is_absolute() else base / candidate
