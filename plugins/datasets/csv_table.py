"""Dataset adapter ``csv``: a table with ``image_path`` and ``label`` columns (paths relative to
the CSV's folder), optional ``split``, ``group`` (patient) and ``mask_path`` (lesion mask)."""

from __future__ import annotations

from sslkit.data.table import open_csv_table
from sslkit.hookspecs import hookimpl


@hookimpl
def register_datasets(register):
    register(
        "csv",
        open_csv_table,
        "A CSV table: image_path, label [, split, group, mask_path]; paths relative to the CSV.",
        options={
            "image_column": "column with image paths",
            "label_column": "column with labels ('' for unlabelled data)",
            "split_column": "column with train/val/test (optional)",
            "group_column": "column with patient ids (optional)",
            "mask_column": "column with lesion mask paths, ';'-separated (optional)",
        },
    )
