"""The progress display: a rich bar over all planned steps with ETA and the running loss, plus
one summary line per epoch. ``quiet`` (or a non-main process) shows nothing."""

from __future__ import annotations

from typing import Any


class TrainingProgress:
    def __init__(self, total_steps: int, done_steps: int = 0, *, enabled: bool = True, label: str = "pretraining"):
        self.enabled = enabled
        self._progress = None
        self._task = None
        if not enabled:
            return
        from sslkit.console import make_console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = make_console(stderr=True)
        if done_steps >= total_steps:  # a finished run resumed: nothing to show progress of
            return
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(label, total=total_steps, completed=done_steps, loss="-")

    def print(self, *objects: Any) -> None:
        if self.enabled:
            if self._progress is not None:
                self._progress.console.print(*objects, highlight=False)
            else:
                self.console.print(*objects, highlight=False)

    def update(self, *, epoch: int, epochs: int, loss: float | None, advance: int = 1) -> None:
        if self._progress is not None:
            text = f"{loss:.4f}" if loss is not None else "-"
            assert self._task is not None  # set together with _progress
            self._progress.update(self._task, advance=advance, description=f"epoch {epoch}/{epochs}", loss=text)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
