"""Running sums of one epoch, turned into the epoch's row of metrics.csv.

They are kept in mid-epoch checkpoints, so an epoch's averages are the same whether or not the
run was interrupted inside it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class EpochStats:
    loss: float = 0.0
    batches: int = 0
    images: int = 0
    seconds: float = 0.0
    area: float = 0.0
    hit_sum: float = 0.0
    hit_batches: int = 0
    masker_sums: dict[str, float] = field(default_factory=dict)
    masker_counts: dict[str, int] = field(default_factory=dict)

    def add(self, *, loss: float, images: int, seconds: float, area: float, hit: float | None,
            masker_scalars: dict[str, float]) -> None:
        self.loss += loss
        self.batches += 1
        self.images += images
        self.seconds += seconds
        self.area += area
        if hit is not None:
            self.hit_sum += hit
            self.hit_batches += 1
        for k, v in masker_scalars.items():
            self.masker_sums[k] = self.masker_sums.get(k, 0.0) + float(v)
            self.masker_counts[k] = self.masker_counts.get(k, 0) + 1

    def row(self, epoch: int, step: int, lr: float) -> dict[str, Any]:
        """The epoch's metrics: means over its batches (lesion hit rate over batches with lesions)."""
        n = max(1, self.batches)
        row: dict[str, Any] = {
            "epoch": epoch,
            "step": step,
            "loss": self.loss / n,
            "lr": lr,
            "images_per_s": self.images / self.seconds if self.seconds > 0 else 0.0,
            "seconds": self.seconds,
            "mask/area_fraction": self.area / n,
        }
        if self.hit_batches:
            row["mask/lesion_hit_rate"] = self.hit_sum / self.hit_batches
        for k, total in self.masker_sums.items():
            row[f"masker/{k}"] = total / self.masker_counts[k]
        return row

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)
