"""Context-prediction pretraining: the run behind ``sslkit pretrain``.

A run is four small parts, each in its own module:

- :func:`~sslkit.pretraining.run_parts.build_run` -> :class:`~sslkit.pretraining.run_parts.RunParts`:
  predictor, masker, optimizer, scheduler, precision, data loader, devices and processes;
- :class:`~sslkit.pretraining.train_state.TrainState`: counters, history, random states; it writes and
  reads the checkpoint, the one object exact resume depends on;
- :func:`~sslkit.pretraining.train_loop.train_one_epoch`: the loop, a plain function;
- :mod:`~sslkit.pretraining.callbacks`: logging, progress, checkpoints, the k-NN probe and Ctrl-C, in
  the order :func:`pretraining_callbacks` lists them.

This module ties them together (:func:`run_pretraining`) and writes checkpoints
(:func:`save_checkpoint`).

The engine knows no concrete masker, backbone or dataset: all three come from the registries.

Exact resume: a checkpoint holds the predictor, optimizer, scheduler (stepped per optimizer step),
gradient scaler, masker state, every random state, the epoch, the batch within it and the step;
data order is a pure function of (seed, epoch), so ``loader.set_epoch(epoch, start_batch)``
replays the rest of an epoch. Checkpoints are atomic and written by rank 0 only. A NaN/inf loss
stops the run before the bad step is applied, and weights that went NaN/inf are never saved, so
the last checkpoint is always a good one. Ctrl-C, SIGTERM and SIGUSR1 (a scheduler's stop and
SLURM's early warning) finish the current step, save and stop (:mod:`sslkit.stop_signals`).

Several processes (``torchrun --nproc-per-node N -m sslkit pretrain``, see
:mod:`sslkit.pretraining.distributed`): ``batch_size`` is the *global* batch, split evenly over the
processes, and each process reads its own shard of the same epoch order, so the union of the
processes' batches at a step is exactly the one-process batch and DDP's averaged gradient is the
one-process gradient (up to BatchNorm on the CPU, which normalises per process). Logged metrics
are means over the processes; only rank 0 logs, shows progress and writes checkpoints, which also
hold every process's masker and random states, so a resumed run continues each process exactly.
A NaN, a Ctrl-C and the weights check are agreed over processes, so all stop at the same step.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
from pathlib import Path
from typing import Any

import torch

from sslkit.pretraining.callbacks import (
    Callback,
    Checkpoints,
    Images,
    KnnProbe,
    MetricsFile,
    Progress,
    Scalars,
    StopOnSignal,
)
from sslkit.pretraining.checkpoint import atomic_save, check_plain_state, load_latest_good
from sslkit.pretraining.config import RESUMABLE_OVERRIDES, PretrainConfig, load_run_config, save_config, validate
from sslkit.engine.device import resolve_device
from sslkit.pretraining.dist_info import DistInfo
from sslkit.pretraining.distributed import barrier, broadcast_object, everywhere, gather_to_main, modules_agree, process_group
from sslkit.pretraining.run_parts import RunParts, build_run, default_run_dir, distribute
from sslkit.pretraining.train_loop import train_one_epoch
from sslkit.pretraining.train_state import (
    CHECKPOINT_DIR,
    LAST,
    TrainingDiverged,
    TrainingInterrupted,
    TrainState,
    checkpoint_path,
)
from sslkit.errors import SystemFault, UserError
from sslkit.optimizers import implementation_name
from sslkit.plugins import plugins_or_default
from sslkit.runtime import cpu_threads, threads_note
from sslkit.stop_signals import StopRequest, stop_requests

__all__ = ["resume_config", "run_pretraining"]

def run_pretraining(
    config: PretrainConfig, plugins: Any = None, *, resume: str | Path | None = None
) -> dict[str, Any]:
    """Train (or, with ``resume``, continue) a run; returns the final metrics.

    Raises :class:`UserError` for bad input, :class:`TrainingDiverged` on a NaN/inf loss and
    :class:`TrainingInterrupted` after saving a checkpoint on Ctrl-C.
    """
    validate(config)
    dist = DistInfo.from_env()
    device = resolve_device(config.device, dist.local_rank)
    with cpu_threads(config.threads), process_group(dist, device):  # several processes under torchrun; else nothing
        from sslkit.engine.run_lock import run_directory

        # The default name holds rank 0's clock: every process must use the same directory.
        run_dir = Path(resume) if resume is not None else Path(
            config.out or broadcast_object(str(default_run_dir(config.masker)), dist))
        # One run per directory (an OS lock), stale temporaries removed, no stub left on failure.
        with run_directory(run_dir, fresh=resume is None, logdir=config.logdir, is_main=dist.is_main,
                           share=lambda refused: broadcast_object(refused, dist),
                           keep=lambda error: isinstance(error, TrainingDiverged),
                           finished_marker=f"{CHECKPOINT_DIR}/{LAST}"):
            config = dataclasses.replace(config, out=str(run_dir))  # names its run dir
            parts, state = _start(config, plugins_or_default(plugins), resuming=resume is not None)
            return _train(parts, state, resuming=resume is not None)


def resume_config(run_dir: str | Path, overrides: dict[str, Any] | None = None) -> PretrainConfig:
    """The saved config of ``run_dir`` with the few overrides that cannot change the result
    (device, workers, threads, logging); anything else is refused, since it would break exact resume."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"cannot resume: '{run_dir}' is not a directory")
    if not checkpoint_path(run_dir).is_file():
        raise UserError(f"cannot resume: '{run_dir}' has no checkpoint ({CHECKPOINT_DIR}/{LAST})")
    config = load_run_config(run_dir)
    for key, value in (overrides or {}).items():
        if key not in RESUMABLE_OVERRIDES:
            allowed = ", ".join(sorted(k.replace("_", "-") for k in RESUMABLE_OVERRIDES))
            raise UserError(
                f"--{key.replace('_', '-')} cannot be changed when resuming (the run continues with its saved "
                f"configuration, {key}={getattr(config, key)!r}); only {allowed} can"
            )
        setattr(config, key, value)
    config.out = str(run_dir)
    return validate(config)


def _start(config: PretrainConfig, plugins: Any, *, resuming: bool) -> tuple[RunParts, TrainState]:
    """The built run and its state: loaded from the run's checkpoint, or new (config.yaml written)."""
    run_dir = Path(str(config.out))  # run_pretraining has named it
    if not resuming and checkpoint_path(run_dir).exists():
        raise UserError(f"'{run_dir}' already holds a run; continue it with --resume {run_dir} or choose another --out")
    parts = build_run(config, plugins)
    state = TrainState(parts.config)
    if resuming:
        # A corrupt last.pt (checksum) falls back to the newest kept epoch_N.pt that verifies.
        checkpoint, used = load_latest_good(checkpoint_path(run_dir), map_location="cpu",
                                            warn=_warn if parts.dist.is_main else None)
        state.restore(parts, checkpoint)
        state.last_good = (used, state.step)
    elif parts.dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(parts.config, run_dir / "config.yaml")
    distribute(parts)  # after the weights are loaded: every process starts from rank 0's copy
    return parts, state


def pretraining_callbacks(parts: RunParts, state: TrainState, log: Any, progress: Any,
                          stop: StopRequest) -> list[Callback]:
    """Everything a run does around its steps, in the order it happens (see
    :mod:`sslkit.pretraining.callbacks`). The divergence guard is not here: a NaN loss is caught inside
    the step, before it is applied, and NaN weights by :func:`save_checkpoint`."""
    save = functools.partial(save_checkpoint, parts, state, progress)
    return [
        KnnProbe(progress),  # first: its scores join the epoch's row before anything records it
        Scalars(log),
        Images(log),
        Checkpoints(save),
        MetricsFile(log),  # after the checkpoint: metrics.csv lists only epochs that were saved
        Progress(progress),
        StopOnSignal(stop, save),  # last: it raises once the step is fully recorded
    ]


def _train(parts: RunParts, state: TrainState, *, resuming: bool) -> dict[str, Any]:
    """The remaining epochs; the final metrics. Turns a second Ctrl-C and a full disk into one
    sentence that says what was kept and how to go on."""
    from sslkit.engine.progress import TrainingProgress
    from sslkit.pretraining.run_log import RunLog

    config = parts.config
    logdir = Path(config.logdir) if config.logdir else state.run_dir / "tensorboard"
    purge = state.step + 1 if resuming else None  # drop events logged after the checkpoint
    log = RunLog(state.run_dir, logdir, enabled=parts.dist.is_main, purge_step=purge)
    progress = TrainingProgress(parts.total_steps, state.step, enabled=parts.dist.is_main and not config.quiet)
    try:
        _announce(parts, state, log, progress, resuming)
        with stop_requests() as stop:  # Ctrl-C, SIGTERM, SIGUSR1: finish the step, save, stop
            callbacks = pretraining_callbacks(parts, state, log, progress, stop)
            while state.epoch < config.epochs:
                train_one_epoch(parts, state, callbacks, stop)
        final = state.final()
        log.write_metrics(state.history, final)
        return final
    except KeyboardInterrupt as error:  # a second stop signal lands anywhere, even mid-save
        if isinstance(error, TrainingInterrupted):
            raise
        raise state.interrupted_again(getattr(error, "signum", None)) from None
    except OSError as error:  # disk full while writing the encoder, metrics or logs: say how to go on
        if error.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise
        raise SystemFault(state.save_failed(error.filename, error, what="file")) from None
    finally:
        progress.close()
        log.close()
        close = getattr(parts.loader, "close", None)
        if callable(close):
            close()  # stop data-loading worker processes now, not at garbage collection


def save_checkpoint(parts: RunParts, state: TrainState, progress: Any, name: str = LAST) -> Path:
    """Write a checkpoint (rank 0), unless the weights went bad: then stop, keeping the last.
    Every process takes part (their masker and random states are gathered into the file)."""
    dist = parts.dist
    if not _parameters_finite(parts.predictor, dist):
        raise TrainingDiverged(state.diverged("the weights became NaN/inf", state.step))
    own = TrainState.rank_state(parts)
    if not state.plain_state_checked:  # once: a masker whose state a safe loader cannot read back
        check_plain_state(own["masker"], f"the state of masker '{parts.config.masker}'")
        state.plain_state_checked = True
    ranks = gather_to_main(own, dist) if dist.distributed else None
    _check_masker_sync(parts, state, progress)
    path = checkpoint_path(state.run_dir, name)
    if dist.is_main:
        try:
            atomic_save(state.checkpoint(parts, ranks), path)
        except OSError as error:  # disk full, quota, read-only: the previous file is intact
            raise SystemFault(state.save_failed(path, error)) from None
    barrier(dist)
    if name == LAST:
        state.last_good = (path, state.step)
    return path


def _parameters_finite(module: torch.nn.Module, dist: DistInfo = DistInfo()) -> bool:
    """Whether every weight is finite, on every process."""
    flags = [torch.isfinite(p.detach()).all() for p in module.parameters()]
    return everywhere(torch.stack(flags).all() if flags else True, dist)


def _check_masker_sync(parts: RunParts, state: TrainState, progress: Any) -> None:
    """A masker that trains modules must average their gradients over processes (``dqn``
    does); say so once if its copies drifted apart."""
    modules = parts.masker.modules() if parts.dist.distributed else []
    if modules and not modules_agree(modules, parts.dist) and not state.masker_drift_reported:
        state.masker_drift_reported = True
        progress.print(
            f"warning: masker '{parts.config.masker}' has different weights in different processes; it should "
            "average its modules' gradients over processes (torch.distributed.all_reduce) before its optimizer step"
        )


def _announce(parts: RunParts, state: TrainState, log: Any, progress: Any, resuming: bool) -> None:
    config, dist = parts.config, parts.dist
    if config.precision == "fp16" and parts.device.type == "cpu":
        progress.print("note: fp16 on the CPU is emulated and very slow; --precision bf16 is the CPU's fast choice")
    if resuming:
        if state.epoch >= config.epochs:  # said even with --quiet: otherwise nothing at all is printed
            if dist.is_main:
                _say(f"{state.run_dir} already finished its {config.epochs} epoch(s) (step {state.step}); nothing to "
                     f"do: its encoder is {state.run_dir / 'encoder'}; to train longer, start a new run")
        else:
            progress.print(f"Resuming {state.run_dir} at epoch {state.epoch + 1}, batch {state.batch + 1} (step {state.step}; "
                           f"{threads_note(parts.config.threads)}).")
        return
    from sslkit.models import count_parameters

    n_params = count_parameters(parts.predictor)
    log.hparams(config.to_dict(), ["epoch/loss"])
    log.text("config", "```\n" + "\n".join(f"{k}: {v}" for k, v in config.to_dict().items()) + "\n```")
    processes = (f", {dist.world_size} processes ({torch.distributed.get_backend()}), global batch "
                 f"{config.batch_size} = {dist.world_size} x {parts.local_batch}") if dist.distributed else ""
    progress.print(
        f"Pretraining masker '{config.masker}' with backbone '{config.backbone}' ({n_params / 1e6:.2f} M parameters) "
        f"on {parts.n_images} images ({'+'.join(parts.splits)}) of {getattr(parts.dataset, 'name', config.data)}: "
        f"{config.epochs} epoch(s) x {parts.steps_per_epoch} steps on {parts.device} ({_speed_settings(parts)}){processes} "
        f"-> {state.run_dir}"
    )


def _speed_settings(parts: RunParts) -> str:
    """What decides the speed, as the run uses it: e.g. ``bf16, channels_last, fused adam``."""
    config = parts.config
    layout = "channels_last" if config.channels_last else "contiguous"
    compiled = ", compiled" if config.compile else ""
    return (f"{config.precision}, {layout}, {implementation_name(parts.optimizer)} {config.optimizer}{compiled}, "
            f"{threads_note(config.threads)}")


def _warn(message: str) -> None:
    """A warning on stderr before the progress display exists (e.g. a corrupt checkpoint)."""
    _say(f"warning: {message}")


def _say(message: str) -> None:
    import click

    click.echo(message, err=True)
