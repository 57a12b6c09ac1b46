"""One pretraining epoch, top to bottom.

Per batch, :func:`sslkit.pretraining.step.train_step`: the masker proposes masks, the predictor
reconstructs the masked images, the loss is the squared error over the masked pixels (or the
whole image), the predictor takes one optimizer step and the masker gets detached feedback.
Then the book-keeping every process agrees on (one all-reduce of the step's figures and the
Ctrl-C flag), then the callbacks in their listed order (logging, progress, checkpoints,
stopping; see :mod:`sslkit.pretraining.callbacks`). At the epoch's end the state closes the epoch
and the callbacks run once more.

The loop only reads the run's parts and moves the state's counters; everything else a step
does for the outside world is a callback, so changing the logging cannot change the weights.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import TYPE_CHECKING, Any, Sequence

import torch

from sslkit.pretraining.callbacks import Callback, StepDone
from sslkit.pretraining.step import NonFiniteLoss, StepOutput, train_step
from sslkit.pretraining.train_state import TrainingDiverged, TrainState
from sslkit.masking import StepInfo, lesion_hit_counts

if TYPE_CHECKING:
    from sslkit.pretraining.run_parts import RunParts

#: Test hooks: after global step N, SIGKILL this process / send it SIGINT (Ctrl-C) / send
#: ``N:SIGNAME`` to this process, or with ``N:SIGNAME:launcher`` (rank 0 only) to the process
#: that started it, as a scheduler would. They make the kill-and-resume tests deterministic and
#: do nothing unless set.
KILL_ENV = "SSLKIT_TEST_KILL_AT_STEP"
INTERRUPT_ENV = "SSLKIT_TEST_INTERRUPT_AT_STEP"
SIGNAL_ENV = "SSLKIT_TEST_SIGNAL_AT_STEP"


def train_one_epoch(parts: RunParts, state: TrainState, callbacks: Sequence[Callback],
                    stop: threading.Event) -> None:
    """The rest of epoch ``state.epoch`` from batch ``state.batch``, then the epoch's end."""
    config = parts.config
    parts.loader.set_epoch(state.epoch, state.batch)
    parts.predictor.train()
    for callback in callbacks:
        callback.before_epoch(parts, state)
    step_start = time.perf_counter()
    for batch in parts.loader:
        state.restore_pending_rng()
        images = batch["image"].to(parts.device, non_blocking=True, memory_format=parts.memory_format)
        lesions = batch["lesion"].to(parts.device, non_blocking=True) if parts.has_lesions else None
        info = StepInfo(step=state.step, epoch=state.epoch, total_steps=parts.total_steps)
        try:
            out = train_step(
                images=images,
                lesions=lesions,
                info=info,
                masker=parts.masker,
                forward=parts.forward,
                optimizer=parts.optimizer,
                scheduler=parts.scheduler,
                precision=parts.precision,
                loss_kind=config.loss,
                dist=parts.dist,
                who=f"masker '{config.masker}'",
                predictor=parts.predictor,  # the plain module, for MaskFeedback.soft_mask_loss
                encoding=config.encoding,
                target=config.target,
                cell_grid=parts.cell_grid,
            )
        except NonFiniteLoss as error:  # the divergence guard: the bad step was not applied
            raise TrainingDiverged(state.diverged(str(error), state.step + 1)) from None
        state.step += 1
        state.batch += 1
        _fault_hooks(state.step)
        done = _agree_on_figures(parts, state, images, lesions, out, stop)
        now = time.perf_counter()
        state.stats.add(loss=done.loss, images=done.n_images, seconds=now - step_start, area=done.area,
                        hit=done.hit, masker_scalars=done.masker_scalars)
        state.train_seconds += now - step_start
        done.inside_epoch = state.batch < parts.steps_per_epoch
        for callback in callbacks:
            callback.after_step(parts, state, done)
        step_start = time.perf_counter()
    row = state.end_epoch(parts.optimizer.param_groups[0]["lr"])
    for callback in callbacks:
        callback.after_epoch(parts, state, row)


def _agree_on_figures(parts: RunParts, state: TrainState, images: torch.Tensor, lesions: torch.Tensor | None,
                      out: StepOutput, stop: threading.Event) -> StepDone:
    """One host sync per step for the loss (the NaN guard needed one anyway); with several
    processes, the means over processes and the agreed Ctrl-C flag (``state.stop_agreed``)."""
    figures = torch.stack([out.loss.detach().float().reshape(()), out.masks.float().mean(),
                           *lesion_hit_counts(out.masks, lesions)])
    loss_value, area_value, hits, with_lesion = figures.tolist()  # one transfer for all four
    local: dict[str, Any] = {
        "loss": loss_value,
        "area": area_value,
        "hit": hits / with_lesion if with_lesion else None,
        "images": float(images.shape[0]),
        **{f"masker/{k}": v for k, v in out.masker_scalars.items()},
    }
    assert parts.reducer is not None  # built with the parts
    means, state.stop_agreed = parts.reducer(local, stop.is_set())
    return StepDone(
        images=images,
        out=out,
        loss=means["loss"],
        area=means["area"],
        hit=means.get("hit"),
        n_images=int(round(means["images"] * parts.dist.world_size)),  # every process reports it
        masker_scalars={k[len("masker/"):]: v for k, v in means.items() if k.startswith("masker/")},
    )


def _fault_hooks(step: int) -> None:
    """Deterministic kill/interrupt points for the resume tests (inactive unless the env is set)."""
    if os.environ.get(KILL_ENV) == str(step):
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get(INTERRUPT_ENV) == str(step):
        os.kill(os.getpid(), signal.SIGINT)
    at, _, rest = os.environ.get(SIGNAL_ENV, "").partition(":")
    if at == str(step):
        name, _, target = rest.partition(":")
        if target != "launcher":
            os.kill(os.getpid(), getattr(signal, name))
        elif os.environ.get("RANK", "0") == "0":
            os.kill(os.getppid(), getattr(signal, name))
