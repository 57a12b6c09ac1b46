"""What a pretraining run does around its steps: logging, progress, checkpoints, probes, Ctrl-C.

Each callback has three moments, called by :func:`sslkit.pretraining.train_loop.train_one_epoch` in
the order of the list built in :func:`sslkit.pretraining.run.pretraining_callbacks` (the one
place that order is written): ``before_epoch``, ``after_step`` (with the step's
:class:`StepDone`) and ``after_epoch`` (with the epoch's row, already in the history; the
state's counters already point at the next epoch). A callback may add to the row, write files
and raise to stop the run; it must not draw from the random streams training uses (the k-NN
probe forks them), or a run with it would differ from one without.

A plain base class with three empty methods, not a framework: the loop that calls them is
:func:`~sslkit.pretraining.train_loop.train_one_epoch`, short enough to read in one go.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from sslkit.pretraining.train_state import TrainState, checkpoint_path

if TYPE_CHECKING:
    from sslkit.engine.progress import TrainingProgress
    from sslkit.pretraining.run_log import RunLog
    from sslkit.pretraining.run_parts import RunParts
    from sslkit.pretraining.step import StepOutput
    from sslkit.stop_signals import StopRequest

Row = dict[str, Any]


@dataclasses.dataclass
class StepDone:
    """One finished step as the callbacks see it: the figures are means over the processes."""

    images: torch.Tensor
    out: StepOutput
    loss: float
    area: float
    hit: float | None
    n_images: int  # over all processes
    masker_scalars: dict[str, float]
    inside_epoch: bool = True  # whether more batches of this epoch follow


class Callback:
    """Does nothing at every moment; a callback overrides the moments it needs."""

    def before_epoch(self, parts: RunParts, state: TrainState) -> None:
        pass

    def after_step(self, parts: RunParts, state: TrainState, done: StepDone) -> None:
        pass

    def after_epoch(self, parts: RunParts, state: TrainState, row: Row) -> None:
        pass


class KnnProbe(Callback):
    """k-NN scores of the frozen encoder every ``--knn-every`` epochs (rank 0, labelled data),
    added to the epoch's row. Runs before the checkpoint and inside ``fork_rng``, so it draws
    nothing from the random streams training uses: a run with it computes the same weights."""

    def __init__(self, progress: TrainingProgress):
        self.progress = progress
        self.warned = False

    def after_epoch(self, parts: RunParts, state: TrainState, row: Row) -> None:
        every = parts.config.knn_every
        if not every or row["epoch"] % every or not parts.dist.is_main or not self._possible(parts):
            return
        from sslkit.evaluation.knn import knn_on_dataset

        devices = [parts.device] if parts.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            result = knn_on_dataset(
                getattr(parts.predictor, "encoder"), parts.dataset, bank_split="train", query_split="val",
                image_size=parts.config.image_size, in_chans=parts.config.in_chans, device=parts.device,
            )
        row.update({f"knn_{k}": float(v) for k, v in result.metrics.scalars.items()})

    def _possible(self, parts: RunParts) -> bool:
        splits = parts.dataset.splits
        possible = bool(parts.dataset.class_names) and bool(splits.get("train")) and bool(splits.get("val"))
        if not possible and not self.warned:
            self.warned = True
            self.progress.print("note: --knn-every needs labelled train and val splits; this data has none, so it is skipped")
        return possible


class Scalars(Callback):
    """TensorBoard scalars: training means over ``--log-every`` steps, and each epoch's row."""

    def __init__(self, log: RunLog):
        self.log = log
        self._reset()

    def _reset(self) -> None:
        self.loss, self.n, self.images, self.start = 0.0, 0, 0, time.perf_counter()

    def before_epoch(self, parts: RunParts, state: TrainState) -> None:
        self._reset()

    def after_step(self, parts: RunParts, state: TrainState, done: StepDone) -> None:
        self.loss += done.loss
        self.n += 1
        self.images += done.n_images
        if state.step % parts.config.log_every and state.step != parts.total_steps:
            return
        scalars = {
            "train/loss": self.loss / self.n,
            "train/images_per_s": self.images / max(1e-9, time.perf_counter() - self.start),
            "train/epoch": state.epoch + 1,
            "mask/area_fraction": done.area,
            "mask/lesion_hit_rate": done.hit,
        }
        for i, group in enumerate(parts.optimizer.param_groups):
            scalars["train/lr" if i == 0 else f"train/lr_group{i}"] = group["lr"]
        scalars.update({f"masker/{k}": v for k, v in done.masker_scalars.items()})
        self.log.scalars(state.step, scalars)
        self._reset()

    def after_epoch(self, parts: RunParts, state: TrainState, row: Row) -> None:
        self.log.scalars(state.step, {f"epoch/{k}": v for k, v in row.items() if k not in ("epoch", "step")})


class Images(Callback):
    """Image grids (input, mask, masked, reconstruction, the masker's own) every
    ``--log-images-every`` steps, on the first and on the last step (rank 0)."""

    def __init__(self, log: RunLog):
        self.log = log

    def after_step(self, parts: RunParts, state: TrainState, done: StepDone) -> None:
        every, step = parts.config.log_images_every, state.step
        if every and parts.dist.is_main and (step == 1 or step % every == 0 or step == parts.total_steps):
            from sslkit.pretraining.image_grid import step_grid

            out = done.out
            grid, columns = step_grid(done.images, out.masks, out.masked, out.reconstruction, parts.masker.log_images())
            self.log.image("reconstruction/" + "|".join(columns), step, grid)


class Checkpoints(Callback):
    """``last.pt`` every ``--checkpoint-every-steps`` steps and after every epoch, ``epoch_N.pt``
    every ``--checkpoint-every`` epochs, and the encoder after every epoch (so an interrupted run
    still has one). ``save(name)`` writes one checkpoint on every process's behalf."""

    def __init__(self, save: Callable[..., Path]):
        self.save = save

    def after_step(self, parts: RunParts, state: TrainState, done: StepDone) -> None:
        every = parts.config.checkpoint_every_steps
        if done.inside_epoch and every and state.step % every == 0:
            self.save()

    def after_epoch(self, parts: RunParts, state: TrainState, row: Row) -> None:
        self.save()
        every = parts.config.checkpoint_every
        if every and state.epoch % every == 0:
            self.save(f"epoch_{state.epoch}.pt")
        if parts.dist.is_main:
            from sslkit.models import save_encoder
            from sslkit.models.decoder_export import RUN_DECODER_DIR, save_decoder

            save_encoder(getattr(parts.predictor, "encoder"), parts.run_dir / "encoder")
            # the decoder too: a segmentation can start from both (--decoder pretrained)
            save_decoder(getattr(parts.predictor, "decoder"), parts.run_dir / RUN_DECODER_DIR,
                         skips=parts.config.decoder_skips, out_chans=int(parts.config.in_chans))


class MetricsFile(Callback):
    """``metrics.csv`` rewritten after every epoch (after the checkpoint), logs flushed."""

    def __init__(self, log: RunLog):
        self.log = log

    def after_epoch(self, parts: RunParts, state: TrainState, row: Row) -> None:
        self.log.write_metrics(state.history)
        self.log.flush()


class Progress(Callback):
    """The progress bar per step and one line per epoch."""

    def __init__(self, progress: TrainingProgress):
        self.progress = progress

    def after_step(self, parts: RunParts, state: TrainState, done: StepDone) -> None:
        self.progress.update(epoch=state.epoch + 1, epochs=parts.config.epochs, loss=done.loss)

    def after_epoch(self, parts: RunParts, state: TrainState, row: Row) -> None:
        self.progress.print(
            f"epoch {state.epoch}/{parts.config.epochs}: loss {row['loss']:.5f}, {row['images_per_s']:.1f} images/s, "
            f"{row['seconds']:.1f} s"
        )


class StopOnSignal(Callback):
    """After Ctrl-C, SIGTERM or SIGUSR1 (:func:`sslkit.stop_signals.stop_requests`): save and
    stop at the end of the current step, or after the epoch's own checkpoint at an epoch's end.
    With several processes the flag is the one agreed at this step's all-reduce, so all stop at
    the same step and one checkpoint is written; the signal (for the exit status) is agreed too."""

    def __init__(self, stop: StopRequest, save: Callable[..., Path]):
        self.stop = stop
        self.save = save

    def _requested(self, parts: RunParts, state: TrainState) -> bool:
        return state.stop_agreed if parts.dist.distributed else self.stop.is_set()

    def _signum(self, parts: RunParts) -> int | None:
        """The signal that stopped the run; with several processes the highest number any of
        them received (a process the launcher did not signal yet still reports the same)."""
        from sslkit.pretraining.distributed import max_over_processes

        return max_over_processes(self.stop.signum or 0, parts.dist) or None

    def after_step(self, parts: RunParts, state: TrainState, done: StepDone) -> None:
        if self._requested(parts, state) and done.inside_epoch:
            path = self.save()
            raise state.interrupted(path, self._signum(parts))

    def after_epoch(self, parts: RunParts, state: TrainState, row: Row) -> None:
        if self._requested(parts, state):
            raise state.interrupted(checkpoint_path(state.run_dir), self._signum(parts))
