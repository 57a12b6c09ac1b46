"""Context-prediction pretraining: the loop behind ``sslkit pretrain``.

Per batch (:func:`sslkit.engine.step.train_step`): the masker proposes masks, the predictor
reconstructs the masked images, the loss is the squared error over the masked pixels (or the whole
image), the predictor takes one optimizer step and the masker gets detached feedback. The engine
knows no concrete masker, backbone or dataset: all three come from the registries.

Exact resume: a checkpoint holds the predictor, optimizer, scheduler (stepped per optimizer step),
gradient scaler, masker state, every random state, the epoch, the batch within it and the step;
data order is a pure function of (seed, epoch), so ``loader.set_epoch(epoch, start_batch)``
replays the rest of an epoch. Checkpoints are atomic and written by rank 0 only. A NaN/inf loss
stops the run before the bad step is applied, and weights that went NaN/inf are never saved, so
the last checkpoint is always a good one. Ctrl-C finishes the current step, saves and stops.

Several processes (``torchrun --nproc-per-node N -m sslkit pretrain``, see
:mod:`sslkit.engine.distributed`): ``batch_size`` is the *global* batch, split evenly over the
processes, and each process reads its own shard of the same epoch order, so the union of the
processes' batches at a step is exactly the one-process batch and DDP's averaged gradient is the
one-process gradient (up to BatchNorm on the CPU, which normalises per process). Logged metrics
are means over the processes; only rank 0 logs, shows progress and writes checkpoints, which also
hold every process's masker and random states, so a resumed run continues each process exactly.
A NaN, a Ctrl-C and the weights check are agreed over processes, so all stop at the same step.
"""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import threading
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from sslkit.engine.checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    atomic_save,
    capture_rng_states,
    load_checkpoint,
    restore_rng_states,
)
from sslkit.engine.config import (
    RESUMABLE_OVERRIDES,
    PretrainConfig,
    load_run_config,
    parse_splits,
    save_config,
    validate,
)
from sslkit.engine.device import Precision, resolve_device
from sslkit.engine.distributed import (
    DistInfo,
    StepReducer,
    backend_for,
    barrier,
    broadcast_modules,
    broadcast_object,
    check_devices,
    convert_batchnorm,
    everywhere,
    gather_to_main,
    modules_agree,
    process_group,
    process_group_ready,
    wrap_ddp,
)
from sslkit.engine.epoch_stats import EpochStats
from sslkit.engine.loss import masked_reconstruction_loss
from sslkit.engine.schedules import build_scheduler, lr_factor
from sslkit.engine.step import NonFiniteLoss, train_step
from sslkit.errors import UserError
from sslkit.masking import MaskerContext, StepInfo, lesion_hit_counts

__all__ = [
    "PretrainConfig",
    "TrainingDiverged",
    "TrainingInterrupted",
    "masked_reconstruction_loss",
    "resume_config",
    "run_pretraining",
]

CHECKPOINT_DIR = "checkpoints"
LAST = "last.pt"
#: Test hooks: after global step N, SIGKILL this process / send it SIGINT (Ctrl-C). They make
#: the kill-and-resume tests deterministic and do nothing unless set.
KILL_ENV = "SSLKIT_TEST_KILL_AT_STEP"
INTERRUPT_ENV = "SSLKIT_TEST_INTERRUPT_AT_STEP"


class TrainingDiverged(UserError):
    """The loss or the weights became NaN/inf; the last good checkpoint is kept (exit 3)."""

    exit_code = 3


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C: the current step finished and a checkpoint was saved; resume with ``--resume``."""

    def __init__(self, message: str, run_dir: Path, step: int):
        super().__init__(message)
        self.message = message
        self.run_dir = run_dir
        self.step = step


# ------------------------------------------------------------------------------------ helpers
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def default_run_dir(masker: str) -> Path:
    return Path("runs") / f"{masker}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def checkpoint_path(run_dir: Path, name: str = LAST) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / name


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


def _parameters_finite(module: torch.nn.Module, dist: DistInfo = DistInfo()) -> bool:
    """Whether every weight is finite, on every process."""
    flags = [torch.isfinite(p.detach()).all() for p in module.parameters()]
    return everywhere(torch.stack(flags).all() if flags else True, dist)


def local_batch_size(batch_size: int, dist: DistInfo) -> int:
    """Each process's share of the global batch (``--batch-size`` is global)."""
    if batch_size % dist.world_size:
        raise UserError(
            f"batch-size {batch_size} is the global batch and must divide evenly over the {dist.world_size} processes; "
            f"use a multiple of {dist.world_size}, e.g. {max(1, round(batch_size / dist.world_size)) * dist.world_size}"
        )
    return batch_size // dist.world_size


#: Ranks other than 0 draw from their own global random streams (stochastic depth, dropout):
#: rank r reseeds with seed + r * this after the model is built (weights come from rank 0).
RANK_SEED_STRIDE = 1_000_003


def _fault_hooks(step: int) -> None:
    """Deterministic kill/interrupt points for the resume tests (inactive unless the env is set)."""
    if os.environ.get(KILL_ENV) == str(step):
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get(INTERRUPT_ENV) == str(step):
        os.kill(os.getpid(), signal.SIGINT)


@contextmanager
def _stop_on_sigint() -> Iterator[threading.Event]:
    """First Ctrl-C sets a flag the loop checks after each step (a consistent point to save);
    a second Ctrl-C interrupts at once. Only the main thread can install handlers."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):  # noqa: ARG001
        stop.set()
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


# --------------------------------------------------------------------------------- the run
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
    threads_before = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        with process_group(dist, device):  # several processes under torchrun; else nothing
            run = PretrainRun(config, plugins, resume)
            return run.train()
    finally:
        torch.set_num_threads(threads_before)


class PretrainRun:
    """One run's parts and counters; :meth:`train` runs the remaining epochs."""

    def __init__(self, config: PretrainConfig, plugins: Any = None, resume: str | Path | None = None):
        from sslkit.models import build_predictor, check_input_size

        self.dist = DistInfo.from_env()
        if self.dist.distributed and not process_group_ready():
            raise RuntimeError(f"WORLD_SIZE={self.dist.world_size}: join the process group first (run_pretraining does)")
        self.local_batch = local_batch_size(config.batch_size, self.dist)
        if plugins is None:
            from sslkit.plugins import get_plugins

            plugins = get_plugins()
        self.resuming = resume is not None
        # The default name holds rank 0's clock: every process must use the same directory.
        if resume is not None:
            self.run_dir = Path(resume)
        else:
            self.run_dir = Path(config.out or broadcast_object(str(default_run_dir(config.masker)), self.dist))
        self.config = config = dataclasses.replace(config, out=str(self.run_dir))  # names its run dir
        if not self.resuming and checkpoint_path(self.run_dir).exists():
            raise UserError(
                f"'{self.run_dir}' already holds a run; continue it with --resume {self.run_dir} or choose another --out"
            )
        self.device = resolve_device(config.device, self.dist.local_rank)
        if self.dist.distributed:
            backend_for(self.device)  # MPS: one sentence, before anything is built
            check_devices(self.dist, self.device)
        self.precision = Precision(config.precision, self.device)

        # Cheap checks first: unknown masker/backbone names and options fail before data is read.
        seed_everything(config.seed)
        self.masker = plugins.maskers.create(config.masker, **config.masker_options)
        self.predictor = convert_batchnorm(
            build_predictor(config.backbone, in_chans=config.in_chans, plugins=plugins, **config.backbone_options),
            self.device,
            self.dist,
        ).to(self.device)
        # A fixed-size model (a ViT without img_size) fails here in one sentence, not mid-step.
        check_input_size(self.predictor.encoder, config.image_size, config.in_chans)
        self._build_data(plugins)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.masker.setup(
            MaskerContext(
                image_size=(config.image_size, config.image_size),
                in_chans=config.in_chans,
                device=self.device,
                total_steps=self.total_steps,
                steps_per_epoch=self.steps_per_epoch,
                epochs=config.epochs,
                seed=config.seed,
                rank=self.dist.rank,
                world_size=self.dist.world_size,
            )
        )
        optimizer_class = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
        self.optimizer = optimizer_class(self.predictor.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.scheduler = build_scheduler(
            self.optimizer,
            lr_factor(
                config.schedule,
                total_steps=self.total_steps,
                warmup_steps=int(round(config.warmup_epochs * self.steps_per_epoch)),
                milestones=config.milestones,
                gamma=config.gamma,
            ),
        )

        # Counters: `epoch`/`batch` say where the next step starts; `step` counts steps done.
        self.epoch, self.batch, self.step = 0, 0, 0
        self.history: list[dict[str, Any]] = []
        self.stats = EpochStats()
        self.train_seconds = 0.0
        self.pending_rng: dict[str, Any] | None = None
        self.last_good: tuple[Path, int] | None = None
        self.masker_drift_reported = False
        self.stop_agreed = False
        if self.dist.rank > 0:
            seed_everything(config.seed + RANK_SEED_STRIDE * self.dist.rank)
        if self.resuming:
            self._restore(load_checkpoint(checkpoint_path(self.run_dir), map_location="cpu"))
        elif self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(config, self.run_dir / "config.yaml")

        # Several processes: one copy of everything trainable (DDP broadcasts the predictor from
        # rank 0 and averages its gradients; the masker's modules start from rank 0's too).
        broadcast_modules(self.masker.modules(), self.dist)
        sample = torch.zeros(1, config.in_chans, config.image_size, config.image_size, device=self.device)
        self.model = wrap_ddp(self.predictor, self.device, self.dist, sample)
        self.forward = torch.compile(self.model) if config.compile else self.model
        self.reducer = StepReducer(self.dist, self.device)

    def _build_data(self, plugins: Any) -> None:
        from sslkit.data import make_loader, open_dataset

        config = self.config
        self.dataset = open_dataset(
            config.data,
            plugins=plugins,
            on_bad_image=config.on_bad_image,
            seed=config.split_seed,
            options=dict(config.data_options) or None,
        )
        wanted = parse_splits(config.pretrain_splits)
        self.splits = tuple(s for s in (wanted or tuple(self.dataset.splits)) if self.dataset.splits.get(s))
        self.n_images = sum(len(self.dataset.splits[s]) for s in self.splits)
        if self.n_images == 0:
            raise UserError(f"data '{config.data or 'embedded'}' has no images in split(s) {config.pretrain_splits}")
        self.loader = make_loader(
            self.dataset,
            self.splits,
            purpose="pretrain",
            image_size=config.image_size,
            in_chans=config.in_chans,
            batch_size=self.local_batch,  # this process's share of the global batch
            workers=config.workers,
            seed=config.seed,
            shuffle=True,
            # no tiny last batch (noisy BatchNorm statistics), unless the data is smaller than one batch
            drop_last=self.n_images >= config.batch_size,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
            pin_memory=self.device.type == "cuda",
        )
        self.steps_per_epoch = len(self.loader)
        if self.steps_per_epoch == 0:
            raise UserError(f"data '{config.data or 'embedded'}' gives no batches of {config.batch_size} images")
        self.has_lesions = bool(getattr(self.dataset, "has_lesion_masks", False))

    # -- checkpoints -------------------------------------------------------------------------
    def _rank_state(self) -> dict[str, Any]:
        """What differs between processes: the masker's state (its generator is seeded per rank)
        and the global random states."""
        return {"masker": self.masker.state_dict(), "rng": capture_rng_states()}

    def _state(self, ranks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        own = ranks[0] if ranks else self._rank_state()
        state = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "epoch": self.epoch,
            "batch": self.batch,
            "step": self.step,
            "steps_per_epoch": self.steps_per_epoch,
            "model": self.predictor.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.precision.state_dict(),
            "masker": own["masker"],
            "rng": own["rng"],
            "history": self.history,
            "epoch_stats": self.stats.state_dict(),
            "train_seconds": self.train_seconds,
            "config": self.config.to_dict(),
            "world_size": self.dist.world_size,
        }
        if ranks and len(ranks) > 1:
            state["ranks"] = ranks  # rank r resumes from ranks[r]
        return state

    def _restore(self, state: dict[str, Any]) -> None:
        saved_world = int(state.get("world_size", 1))
        if saved_world != self.dist.world_size:
            raise UserError(
                f"cannot resume '{self.run_dir}': it was trained by {saved_world} process(es), this is {self.dist.world_size}; "
                f"resume it with {saved_world} (torchrun --nproc-per-node, or sslkit pretrain --nproc), since each "
                "process's data shard and random state are part of the exact resume"
            )
        if state.get("steps_per_epoch") != self.steps_per_epoch:
            raise UserError(
                f"cannot resume '{self.run_dir}': its data now gives {self.steps_per_epoch} batches per epoch, "
                f"the run had {state.get('steps_per_epoch')} (did the data change?)"
            )
        self.predictor.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.precision.load_state_dict(state.get("scaler") or {})
        own = state["ranks"][self.dist.rank] if "ranks" in state else state
        self.masker.load_state_dict(own["masker"])
        self.pending_rng = own["rng"]  # restored when training starts, see train()
        self.epoch, self.batch, self.step = state["epoch"], state["batch"], state["step"]
        self.history = list(state.get("history", []))
        self.stats = EpochStats(**state.get("epoch_stats", {}))
        self.train_seconds = float(state.get("train_seconds", 0.0))
        self.last_good = (checkpoint_path(self.run_dir), self.step)

    def save(self, name: str = LAST) -> Path:
        """Write a checkpoint (rank 0), unless the weights went bad: then stop, keeping the last.
        Every process takes part (their masker and random states are gathered into the file)."""
        if not _parameters_finite(self.predictor, self.dist):
            raise TrainingDiverged(self._diverged("the weights became NaN/inf", self.step))
        ranks = gather_to_main(self._rank_state(), self.dist) if self.dist.distributed else None
        self._check_masker_sync()
        path = checkpoint_path(self.run_dir, name)
        if self.dist.is_main:
            atomic_save(self._state(ranks), path)
        barrier(self.dist)
        if name == LAST:
            self.last_good = (path, self.step)
        return path

    def _check_masker_sync(self) -> None:
        """A masker that trains modules must average their gradients over processes (``dqn``
        does); say so once if its copies drifted apart."""
        modules = self.masker.modules() if self.dist.distributed else []
        if modules and not modules_agree(modules, self.dist) and not self.masker_drift_reported:
            self.masker_drift_reported = True
            self.progress.print(
                f"warning: masker '{self.config.masker}' has different weights in different processes; it should "
                "average its modules' gradients over processes (torch.distributed.all_reduce) before its optimizer step"
            )

    def export_encoder(self) -> None:
        from sslkit.models import save_encoder

        if self.dist.is_main:
            save_encoder(self.predictor.encoder, self.run_dir / "encoder")

    def _diverged(self, what: str, step: int) -> str:
        if self.last_good is not None:
            kept = f"the last good checkpoint {self.last_good[0]} (step {self.last_good[1]}) is kept"
        else:
            kept = "no checkpoint had been written yet"
        return f"training stopped: {what} at step {step} (epoch {self.epoch + 1}); {kept}; lower --lr or use --precision fp32"

    def _interrupted(self, path: Path) -> TrainingInterrupted:
        message = (
            f"Interrupted after step {self.step}; checkpoint saved to {path}; "
            f"continue with: sslkit pretrain --resume {self.run_dir}"
        )
        return TrainingInterrupted(message, self.run_dir, self.step)

    # -- training ----------------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        from sslkit.engine.progress import TrainingProgress
        from sslkit.engine.run_log import RunLog

        config = self.config
        logdir = Path(config.logdir) if config.logdir else self.run_dir / "tensorboard"
        purge = self.step + 1 if self.resuming else None  # drop events logged after the checkpoint
        self.log = RunLog(self.run_dir, logdir, enabled=self.dist.is_main, purge_step=purge)
        self.progress = TrainingProgress(self.total_steps, self.step, enabled=self.dist.is_main and not config.quiet)
        try:
            self._announce()
            with _stop_on_sigint() as stop:
                while self.epoch < config.epochs:
                    self._train_epoch(stop)
            final = self._final()
            self.log.write_metrics(self.history, final)
            return final
        finally:
            self.progress.close()
            self.log.close()
            close = getattr(self.loader, "close", None)
            if callable(close):
                close()  # stop data-loading worker processes now, not at garbage collection

    def _announce(self) -> None:
        config = self.config
        if config.precision == "fp16" and self.device.type == "cpu":
            self.progress.print("note: fp16 on the CPU is emulated and very slow; --precision bf16 is the CPU's fast choice")
        if self.resuming:
            if self.epoch >= config.epochs:
                self.progress.print(f"{self.run_dir} already finished its {config.epochs} epoch(s); nothing to do.")
            else:
                self.progress.print(
                    f"Resuming {self.run_dir} at epoch {self.epoch + 1}, batch {self.batch + 1} (step {self.step})."
                )
            return
        from sslkit.models import count_parameters

        n_params = count_parameters(self.predictor)
        self.log.hparams(config.to_dict(), ["epoch/loss"])
        self.log.text("config", "```\n" + "\n".join(f"{k}: {v}" for k, v in config.to_dict().items()) + "\n```")
        self.progress.print(
            f"Pretraining masker '{config.masker}' with backbone '{config.backbone}' ({n_params / 1e6:.2f} M parameters) "
            f"on {self.n_images} images ({'+'.join(self.splits)}) of {getattr(self.dataset, 'name', config.data)}: "
            f"{config.epochs} epoch(s) x {self.steps_per_epoch} steps on {self.device} ({config.precision}){self._processes()} "
            f"-> {self.run_dir}"
        )

    def _processes(self) -> str:
        if not self.dist.distributed:
            return ""
        return (f", {self.dist.world_size} processes ({torch.distributed.get_backend()}), global batch "
                f"{self.config.batch_size} = {self.dist.world_size} x {self.local_batch}")

    def _train_epoch(self, stop: threading.Event) -> None:
        from sslkit.engine.image_grid import step_grid

        config, epoch = self.config, self.epoch
        self.loader.set_epoch(epoch, self.batch)
        self.predictor.train()
        window = {"loss": 0.0, "n": 0, "images": 0, "start": time.perf_counter()}
        step_start = time.perf_counter()
        for batch in self.loader:
            if self.pending_rng is not None:
                # Restored once the first batch is here: starting a loader may draw from torch's
                # global generator (worker seeds) at another moment than in the uninterrupted run;
                # sslkit's loader order itself draws nothing global.
                restore_rng_states(self.pending_rng)
                self.pending_rng = None
            images = batch["image"].to(self.device, non_blocking=True)
            lesions = batch["lesion"].to(self.device, non_blocking=True) if self.has_lesions else None
            info = StepInfo(step=self.step, epoch=epoch, total_steps=self.total_steps)
            try:
                out = train_step(
                    images=images,
                    lesions=lesions,
                    info=info,
                    masker=self.masker,
                    forward=self.forward,
                    optimizer=self.optimizer,
                    scheduler=self.scheduler,
                    precision=self.precision,
                    loss_kind=config.loss,
                    dist=self.dist,
                    who=f"masker '{config.masker}'",
                )
            except NonFiniteLoss as error:
                raise TrainingDiverged(self._diverged(str(error), self.step + 1)) from None
            self.step += 1
            self.batch += 1
            _fault_hooks(self.step)

            # Book-keeping: one host sync per step for the loss (the NaN guard needed one anyway);
            # with several processes, the means over processes and the agreed Ctrl-C flag.
            figures = torch.stack([out.loss.detach().float().reshape(()), out.masks.float().mean(),
                                   *lesion_hit_counts(out.masks, lesions)])
            loss_value, area_value, hits, with_lesion = figures.tolist()  # one transfer for all four
            local = {
                "loss": loss_value,
                "area": area_value,
                "hit": hits / with_lesion if with_lesion else None,
                "images": float(images.shape[0]),
                **{f"masker/{k}": v for k, v in out.masker_scalars.items()},
            }
            means, self.stop_agreed = self.reducer(local, stop.is_set())
            loss, area, hit = means["loss"], means["area"], means.get("hit")
            n_images = int(round(means["images"] * self.dist.world_size))  # every process reports it
            masker_scalars = {k[len("masker/"):]: v for k, v in means.items() if k.startswith("masker/")}
            now = time.perf_counter()
            self.stats.add(loss=loss, images=n_images, seconds=now - step_start, area=area, hit=hit,
                           masker_scalars=masker_scalars)
            self.train_seconds += now - step_start
            window["loss"] += loss
            window["n"] += 1
            window["images"] += n_images
            if self.step % config.log_every == 0 or self.step == self.total_steps:
                scalars = {
                    "train/loss": window["loss"] / window["n"],
                    "train/images_per_s": window["images"] / max(1e-9, now - window["start"]),
                    "train/epoch": epoch + 1,
                    "mask/area_fraction": area,
                    "mask/lesion_hit_rate": hit,
                }
                for i, group in enumerate(self.optimizer.param_groups):
                    scalars["train/lr" if i == 0 else f"train/lr_group{i}"] = group["lr"]
                scalars.update({f"masker/{k}": v for k, v in masker_scalars.items()})
                self.log.scalars(self.step, scalars)
                window = {"loss": 0.0, "n": 0, "images": 0, "start": time.perf_counter()}
            every = config.log_images_every
            if every and self.dist.is_main and (self.step == 1 or self.step % every == 0 or self.step == self.total_steps):
                grid, columns = step_grid(images, out.masks, out.masked, out.reconstruction, self.masker.log_images())
                self.log.image("reconstruction/" + "|".join(columns), self.step, grid)
            self.progress.update(epoch=epoch + 1, epochs=config.epochs, loss=loss)

            inside_epoch = self.batch < self.steps_per_epoch
            if inside_epoch and config.checkpoint_every_steps and self.step % config.checkpoint_every_steps == 0:
                self.save()
            if self._should_stop(stop) and inside_epoch:
                raise self._interrupted(self.save())
            step_start = time.perf_counter()
        self._end_epoch()
        if self._should_stop(stop):
            raise self._interrupted(checkpoint_path(self.run_dir))

    def _should_stop(self, stop: threading.Event) -> bool:
        """Ctrl-C seen: by this process alone, or with several processes by any of them at this
        step's all-reduce (so every process saves and stops at the same step)."""
        return self.stop_agreed if self.dist.distributed else stop.is_set()

    def _end_epoch(self) -> None:
        config = self.config
        row = self.stats.row(self.epoch + 1, self.step, self.optimizer.param_groups[0]["lr"])
        self.history.append(row)
        row.update(self._knn_health_check(self.epoch + 1))
        self.log.scalars(self.step, {f"epoch/{k}": v for k, v in row.items() if k not in ("epoch", "step")})
        self.epoch, self.batch, self.stats = self.epoch + 1, 0, EpochStats()
        self.save()
        if config.checkpoint_every and self.epoch % config.checkpoint_every == 0:
            self.save(f"epoch_{self.epoch}.pt")
        self.export_encoder()  # after every epoch, so an interrupted run still has an encoder
        self.log.write_metrics(self.history)
        self.log.flush()
        self.progress.print(
            f"epoch {self.epoch}/{config.epochs}: loss {row['loss']:.5f}, {row['images_per_s']:.1f} images/s, "
            f"{row['seconds']:.1f} s"
        )

    def _knn_health_check(self, epoch: int) -> dict[str, float]:
        """k-NN scores of the frozen encoder every ``--knn-every`` epochs (rank 0, labelled data).

        Runs before the checkpoint and inside ``fork_rng``, so it draws nothing from the random
        streams training uses: a run with it computes the same weights as one without."""
        every = self.config.knn_every
        if not every or epoch % every or not self.dist.is_main or not self._knn_possible():
            return {}
        from sslkit.evaluation.knn import knn_on_dataset

        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            result = knn_on_dataset(
                self.predictor.encoder, self.dataset, bank_split="train", query_split="val",
                image_size=self.config.image_size, in_chans=self.config.in_chans, device=self.device,
            )
        return {f"knn_{k}": float(v) for k, v in result.metrics.scalars.items()}

    def _knn_possible(self) -> bool:
        splits = self.dataset.splits
        possible = bool(self.dataset.class_names) and bool(splits.get("train")) and bool(splits.get("val"))
        if not possible and not getattr(self, "_knn_warned", False):
            self._knn_warned = True
            self.progress.print("note: --knn-every needs labelled train and val splits; this data has none, so it is skipped")
        return possible

    def _final(self) -> dict[str, Any]:
        history = self.history
        return {
            "loss": history[-1]["loss"] if history else None,
            "first_epoch_loss": history[0]["loss"] if history else None,
            "epochs": len(history),
            "steps": self.step,
            "train_seconds": self.train_seconds,
            "run_dir": str(self.run_dir),
            "encoder": str(self.run_dir / "encoder"),
        }
