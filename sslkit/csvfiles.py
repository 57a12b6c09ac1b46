"""Every CSV file sslkit writes: one NaN rule, one float format rule, always written atomically.

A metric that cannot be computed (AUROC with one class present) is NaN in memory and an empty
cell on disk, so spreadsheets and ``csv.DictReader`` users see "no value" rather than the text
``nan``; readers turn empty cells back into NaN. Files are replaced atomically
(:func:`sslkit.fileio.atomic_write_text`), so a run killed mid-write never leaves half a table
that a later ``--stats-only`` or resume would read.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence


def csv_value(value: Any, float_format: str | None = None) -> Any:
    """The cell for ``value``: NaN and None -> empty; floats in ``float_format`` (``".6f"``) if given."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return format(value, float_format) if float_format else value
    return value


def csv_text(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], float_format: str | None = None) -> str:
    """The CSV text of ``rows`` under ``columns`` (keys outside ``columns`` are left out)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: csv_value(value, float_format) for key, value in row.items()})
    return buffer.getvalue()


def write_csv(path: str | Path, rows: Iterable[Mapping[str, Any]], columns: Sequence[str],
              float_format: str | None = None) -> Path:
    """Write ``rows`` as ``path`` atomically (parent folders created); returns the path.

    UTF-8, except that a file name which is not UTF-8 (Python holds its bytes as surrogates,
    e.g. ``img\udcff.png``) is written back as its own bytes, so the row names the very file."""
    from sslkit.fileio import atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = csv_text(rows, columns, float_format).encode("utf-8", "surrogateescape")
    atomic_write(path, lambda handle: handle.write(data))
    return path
