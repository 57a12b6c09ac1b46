"""What ``sslkit data audit`` reports: near-duplicate groups, the splits they cross, the labels they
disagree on, and a contact sheet of the worst groups (see :mod:`sslkit.data.duplicates`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sslkit.data.duplicates import DuplicateGroups, find_duplicates
from sslkit.data.records import DatasetSplits
from sslkit.choices import SPLIT_NAMES

#: The other thresholds the report counts pairs at, so a user sees how sensitive the figures are.
SWEEP = (0.90, 0.93, 0.95, 0.97, 0.99)


@dataclass
class AuditGroup:
    members: list[int]
    sources: list[str]
    splits: list[str]
    labels: list[str]
    min_correlation: float

    @property
    def crosses_splits(self) -> bool:
        return len(set(self.splits)) > 1

    @property
    def labels_disagree(self) -> bool:
        return len(set(self.labels)) > 1

    def to_json(self) -> dict[str, Any]:
        return {"images": [{"source": s, "split": sp, "label": lab}
                           for s, sp, lab in zip(self.sources, self.splits, self.labels)],
                "crosses_splits": self.crosses_splits, "labels_disagree": self.labels_disagree,
                "min_correlation": round(self.min_correlation, 5)}


@dataclass
class AuditReport:
    name: str
    images: int
    threshold: float
    signature_size: int
    groups: list[AuditGroup]
    pairs: int
    exact_pairs: int
    crossing_pairs: int
    test_pairs: int
    """Pairs joining a test image to a train or val image."""
    label_pairs: int
    """Pairs whose two images carry different labels."""
    test_with_twin: int
    test_images: int
    sweep: dict[float, int] = field(default_factory=dict)
    seconds: float = 0.0
    unreadable: int = 0

    @property
    def images_in_groups(self) -> int:
        return sum(len(g.members) for g in self.groups)

    def worst(self, count: int) -> list[AuditGroup]:
        """Label-disagreeing groups first, then those crossing splits, then the largest."""
        return sorted(self.groups, key=lambda g: (not g.labels_disagree, not g.crosses_splits,
                                                  -len(g.members)))[:count]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "images": self.images, "threshold": self.threshold,
            "signature_size": self.signature_size, "pairs": self.pairs, "exact_pairs": self.exact_pairs,
            "groups": len(self.groups), "images_in_groups": self.images_in_groups,
            "pairs_crossing_splits": self.crossing_pairs, "pairs_test_to_train_or_val": self.test_pairs,
            "pairs_with_different_labels": self.label_pairs,
            "groups_crossing_splits": sum(g.crosses_splits for g in self.groups),
            "groups_with_different_labels": sum(g.labels_disagree for g in self.groups),
            "test_images_with_twin_in_train_or_val": self.test_with_twin, "test_images": self.test_images,
            "pairs_at_threshold": {str(k): v for k, v in self.sweep.items()},
            "unreadable": self.unreadable, "seconds": round(self.seconds, 3),
            "duplicate_groups": [g.to_json() for g in self.groups],
        }


def audit_dataset(ds: DatasetSplits, *, threshold: float, size: int) -> AuditReport:
    """Find the duplicates of every record of ``ds`` and describe them against its splits."""
    import time

    from sslkit.data.duplicates import compute_signatures, similar_pairs

    tick = time.perf_counter()
    records, split_of = [], []
    for split in SPLIT_NAMES:
        for record in ds.splits.get(split, []):
            records.append(record)
            split_of.append(split)
    signatures = compute_signatures(records, size=size)
    found: DuplicateGroups = find_duplicates(records, threshold=threshold, size=size, signatures=signatures)
    sweep = {t: int(len(similar_pairs(signatures.vectors, t)[0])) for t in SWEEP}
    label = [ds.label_name(r.label) for r in records]
    lowest: dict[int, float] = {}
    for a, _, corr, _ in found.pairs:
        g = int(found.group[a])
        lowest[g] = min(lowest.get(g, 1.0), corr)
    groups = [AuditGroup(m, [records[i].source for i in m], [split_of[i] for i in m], [label[i] for i in m],
                         lowest.get(int(found.group[m[0]]), 1.0)) for m in found.members()]
    crossing = sum(split_of[a] != split_of[b] for a, b, _, _ in found.pairs)
    to_test = sum((split_of[a] == "test") != (split_of[b] == "test") for a, b, _, _ in found.pairs)
    labels_differ = sum(label[a] != label[b] for a, b, _, _ in found.pairs)
    outside_test = {int(found.group[i]) for i, s in enumerate(split_of) if s != "test"}
    tests = [i for i, s in enumerate(split_of) if s == "test"]
    twins = sum(int(found.group[i]) in outside_test for i in tests)
    return AuditReport(ds.name, len(records), float(threshold), size, groups, len(found.pairs),
                       sum(p[3] for p in found.pairs), crossing, to_test, labels_differ, twins, len(tests), sweep,
                       time.perf_counter() - tick, len(found.unreadable))


def write_contact_sheet(path: str | Path, ds: DatasetSplits, report: AuditReport, *, groups: int = 12,
                        per_group: int = 6, thumb: int = 96) -> Path:
    """A PNG with one row per group (the worst first): each image with its split and label."""
    from PIL import Image, ImageDraw

    from sslkit.data.reading import BadImage

    chosen = report.worst(groups)
    records = [r for split in SPLIT_NAMES for r in ds.splits.get(split, [])]
    caption = 14
    width = max(1, per_group) * (thumb + 4) + 4
    height = max(1, len(chosen)) * (thumb + caption + 6) + 4
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    if not chosen:
        draw.text((6, 6), "no duplicates found", fill="black")
    for row, group in enumerate(chosen):
        top = 4 + row * (thumb + caption + 6)
        for col, (i, split, label) in enumerate(zip(group.members[:per_group], group.splits, group.labels)):
            left = 4 + col * (thumb + 4)
            try:
                pixels = records[i].load_image()
            except BadImage:
                continue
            tile = Image.fromarray(_to_uint8(pixels)).convert("RGB").resize((thumb, thumb))
            sheet.paste(tile, (left, top))
            colour = "red" if group.labels_disagree else "darkorange" if group.crosses_splits else "black"
            draw.text((left, top + thumb + 1), f"{split} {label}"[:16], fill=colour)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def _to_uint8(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.dtype == np.uint8:
        return image
    low, high = float(image.min()), float(image.max())
    scaled = (image.astype(np.float32) - low) / (high - low if high > low else 1.0)
    return (scaled * 255).clip(0, 255).astype(np.uint8)
