"""What ``sslkit data inspect`` reports: counts, image sizes/channels, lesion masks, bad files.

Unlike opening a dataset (cheap checks only), inspecting decodes every image and mask once, so
it also finds files that pass the quick check but do not decode.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from sslkit.data.records import DatasetSplits
from sslkit.data.reading import BadImage
from sslkit.choices import SPLIT_NAMES
from sslkit.errors import UserError


@dataclass
class InspectReport:
    name: str
    class_names: list[str] | None
    counts: dict[str, dict[str, int]]
    sizes: Counter = field(default_factory=Counter)
    """(height, width) -> number of images."""
    channels: Counter = field(default_factory=Counter)
    dtypes: Counter = field(default_factory=Counter)
    has_lesion_masks: bool = False
    with_lesion: int = 0
    empty_masks: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(sum(c.values()) for c in self.counts.values())

    def size_text(self) -> str:
        if not self.sizes:
            return "-"
        if len(self.sizes) <= 3:
            return ", ".join(f"{w}x{h} ({n})" for (h, w), n in self.sizes.most_common())
        heights = [h for h, _ in self.sizes]
        widths = [w for _, w in self.sizes]
        return f"{len(self.sizes)} different sizes, width {min(widths)}-{max(widths)}, height {min(heights)}-{max(heights)}"

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "classes": self.class_names,
            "counts": self.counts,
            "split_sizes": {s: sum(c.values()) for s, c in self.counts.items()},
            "total": self.total,
            "image_sizes": {f"{w}x{h}": n for (h, w), n in self.sizes.most_common()},
            "channels": {str(c): n for c, n in sorted(self.channels.items())},
            "dtypes": dict(self.dtypes),
            "lesion_masks": {"present": self.has_lesion_masks, "with_lesion": self.with_lesion, "empty": self.empty_masks},
            "unreadable": [{"file": f, "reason": r} for f, r in self.unreadable],
            "notes": self.notes,
        }


def inspect_dataset(ds: DatasetSplits, *, on_bad_image: str = "skip",
                    progress: Callable[[int, int], None] | None = None) -> InspectReport:
    """Decode every record of ``ds``; ``on_bad_image="error"`` stops at the first bad file."""
    report = InspectReport(ds.name, ds.class_names, {}, has_lesion_masks=ds.has_lesion_masks,
                           unreadable=list(ds.unreadable), notes=list(ds.notes))
    records = [(split, r) for split in SPLIT_NAMES for r in ds.splits.get(split, [])]
    counts: dict[str, Counter] = {s: Counter() for s in SPLIT_NAMES}
    for done, (split, record) in enumerate(records, start=1):
        try:
            image = record.load_image()
            lesion = record.load_lesion()
        except BadImage as error:
            if on_bad_image == "error":
                raise UserError(f"cannot read image '{record.source}': {error}; use --on-bad-image skip to leave such files out") from None
            report.unreadable.append((record.source, str(error)))
            continue
        counts[split][ds.label_name(record.label)] += 1
        report.sizes[tuple(image.shape[:2])] += 1
        report.channels[1 if image.ndim == 2 else image.shape[2]] += 1
        report.dtypes[str(image.dtype)] += 1
        if lesion is not None:
            if lesion.any():
                report.with_lesion += 1
            else:
                report.empty_masks += 1
        if progress is not None:
            progress(done, len(records))
    report.counts = {s: dict(sorted(counts[s].items())) for s in SPLIT_NAMES}
    return report
