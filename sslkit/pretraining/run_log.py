"""What a run records: TensorBoard events and a metrics table (CSV + JSON) per epoch.

Only the main process writes (``enabled=False`` elsewhere makes every call a no-op). A resumed
run purges TensorBoard events logged after its checkpoint (``purge_step``), and the metrics files
are rewritten from the history kept in the checkpoint, so steps redone after a kill never appear
twice.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Mapping

import torch

from sslkit.fileio import atomic_write_text

FIRST_COLUMNS = ["epoch", "step", "loss", "lr", "images_per_s", "seconds"]


def _hparam_value(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)):
        return value
    if value is None:
        return "none"
    return json.dumps(value, sort_keys=True, default=str)


class RunLog:
    """TensorBoard writer plus metrics.csv/metrics.json in the run directory."""

    def __init__(self, run_dir: Path, logdir: Path, *, enabled: bool = True, purge_step: int | None = None):
        self.run_dir = Path(run_dir)
        self.logdir = Path(logdir)
        self.enabled = enabled
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.logdir.mkdir(parents=True, exist_ok=True)
            self.writer = SummaryWriter(str(self.logdir), purge_step=purge_step)

    def scalars(self, step: int, values: Mapping[str, float | None]) -> None:
        if self.writer is None:
            return
        for tag, value in values.items():
            if value is not None and math.isfinite(float(value)):
                self.writer.add_scalar(tag, float(value), step)

    def image(self, tag: str, step: int, image: torch.Tensor) -> None:
        if self.writer is not None:
            self.writer.add_image(tag, image, step, dataformats="CHW")

    def text(self, tag: str, text: str, step: int = 0) -> None:
        if self.writer is not None:
            self.writer.add_text(tag, text, step)

    def hparams(self, config: Mapping[str, Any], metric_names: list[str]) -> None:
        """Declare the run's hyper-parameters in the same event file (the HPARAMS tab); the
        metrics named here are ordinary scalars logged under those tags."""
        if self.writer is None:
            return
        from torch.utils.tensorboard.summary import hparams

        flat = {k: _hparam_value(v) for k, v in config.items()}
        experiment, start, end = hparams(flat, {name: 0.0 for name in metric_names})
        file_writer = self.writer.file_writer  # the run's own event file (add_hparams would start another run)
        if file_writer is None:  # closed
            return
        for summary in (experiment, start, end):
            file_writer.add_summary(summary)

    def write_metrics(self, history: list[dict[str, Any]], final: Mapping[str, Any] | None = None) -> None:
        """metrics.csv (one row per epoch) and metrics.json (rows and final figures)."""
        if not self.enabled:
            return
        extra = sorted({k for row in history for k in row} - set(FIRST_COLUMNS))
        columns = FIRST_COLUMNS + extra
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in history:
            writer.writerow({k: row.get(k, "") for k in columns})
        atomic_write_text(self.run_dir / "metrics.csv", buffer.getvalue())
        payload = {"epochs": history, "final": dict(final or {})}
        atomic_write_text(self.run_dir / "metrics.json", json.dumps(payload, indent=2, default=float) + "\n")

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
