"""Where a pretraining run stands: the one object exact resume depends on.

:class:`TrainState` holds the counters (``epoch``/``batch`` say where the next step starts,
``step`` counts steps done), the per-epoch history and statistics and the training time, and
turns itself into a checkpoint and back (:meth:`TrainState.checkpoint`, :meth:`TrainState.restore`).
The checkpoint's keys are a file format: runs saved by earlier versions must keep loading, so a
new field gets a default in :meth:`restore`, never a renamed key.

It also words where the run stands when it ends early (diverged, disk full, Ctrl-C), since
those sentences name the step, the epoch and the last good checkpoint.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from sslkit.pretraining.checkpoint import FORMAT, FORMAT_VERSION, capture_rng_states, restore_rng_states
from sslkit.pretraining.config import PretrainConfig
from sslkit.pretraining.epoch_stats import EpochStats
from sslkit.errors import UserError, first_line
from sslkit.stop_signals import exit_code_of, signal_name

if TYPE_CHECKING:
    from sslkit.pretraining.run_parts import RunParts

CHECKPOINT_DIR = "checkpoints"
LAST = "last.pt"


def checkpoint_path(run_dir: Path, name: str = LAST) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / name


def _as_plain(values: dict[str, Any]) -> dict[str, Any]:
    """Settings as JSON sees them (a tuple and a list compare equal, as after a YAML round trip)."""
    import json

    return json.loads(json.dumps(values, default=str))


class TrainingDiverged(UserError):
    """The loss or the weights became NaN/inf; the last good checkpoint is kept (exit 3)."""

    exit_code = 3


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C, SIGTERM or SIGUSR1 (:mod:`sslkit.stop_signals`): the current step finished and a
    checkpoint was saved; resume with ``--resume``. Exit status 128 + the signal's number."""

    def __init__(self, message: str, run_dir: Path, step: int, signum: int | None = None):
        super().__init__(message)
        self.message = message
        self.run_dir = run_dir
        self.step = step
        self.exit_code = exit_code_of(signum)


@dataclasses.dataclass
class TrainState:
    """The counters, history and random states of one run (see the module docstring)."""

    config: PretrainConfig  # ``config.out`` names the run directory
    epoch: int = 0
    batch: int = 0
    step: int = 0
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    stats: EpochStats = dataclasses.field(default_factory=EpochStats)
    train_seconds: float = 0.0
    # Not saved: random states waiting for the first batch, the newest checkpoint that is known
    # good, the processes' agreed Ctrl-C flag, whether masker drift was reported and whether the
    # masker's state was checked to be loadable without unpickling code.
    pending_rng: dict[str, Any] | None = None
    last_good: tuple[Path, int] | None = None
    stop_agreed: bool = False
    masker_drift_reported: bool = False
    plain_state_checked: bool = False

    @property
    def run_dir(self) -> Path:
        return Path(str(self.config.out))  # set by run_pretraining before the state exists

    # -- checkpoints -------------------------------------------------------------------------
    @staticmethod
    def rank_state(parts: RunParts) -> dict[str, Any]:
        """What differs between processes: the masker's state (its generator is seeded per rank)
        and the global random states."""
        return {"masker": parts.masker.state_dict(), "rng": capture_rng_states()}

    def checkpoint(self, parts: RunParts, ranks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The checkpoint dict; ``ranks`` are every process's :meth:`rank_state` (rank 0 first)."""
        own = ranks[0] if ranks else self.rank_state(parts)
        state = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "epoch": self.epoch,
            "batch": self.batch,
            "step": self.step,
            "steps_per_epoch": parts.steps_per_epoch,
            "model": parts.predictor.state_dict(),
            "optimizer": parts.optimizer.state_dict(),
            "scheduler": parts.scheduler.state_dict(),
            "scaler": parts.precision.state_dict(),
            "masker": own["masker"],
            "rng": own["rng"],
            "history": self.history,
            "epoch_stats": self.stats.state_dict(),
            "train_seconds": self.train_seconds,
            "config": self.config.to_dict(),
            "world_size": parts.dist.world_size,
            "cpu_threads": torch.get_num_threads(),  # on the CPU, part of the exact result
        }
        if ranks and len(ranks) > 1:
            state["ranks"] = ranks  # rank r resumes from ranks[r]
        return state

    def restore(self, parts: RunParts, state: dict[str, Any]) -> None:
        """Load a checkpoint into ``parts`` and this state; the random states wait for the first
        batch (:meth:`restore_pending_rng`)."""
        dist = parts.dist
        saved_world = int(state.get("world_size", 1))
        if saved_world != dist.world_size:
            raise UserError(
                f"cannot resume '{self.run_dir}': it was trained by {saved_world} process(es), this is {dist.world_size}; "
                f"resume it with {saved_world} (torchrun --nproc-per-node, or sslkit pretrain --nproc), since each "
                "process's data shard and random state are part of the exact resume"
            )
        if state.get("steps_per_epoch") != parts.steps_per_epoch:
            raise UserError(
                f"cannot resume '{self.run_dir}': its data now gives {parts.steps_per_epoch} batches per epoch, "
                f"the run had {state.get('steps_per_epoch')} (did the data change?)"
            )
        self.check_settings_unchanged(state.get("config"))
        if int(state.get("epoch", 0)) < self.config.epochs:  # a finished run trains nothing more
            self.check_threads_unchanged(parts, state.get("cpu_threads"))
        own = state["ranks"][dist.rank] if "ranks" in state else state
        try:
            parts.predictor.load_state_dict(state["model"])
            parts.optimizer.load_state_dict(state["optimizer"])
            parts.scheduler.load_state_dict(state["scheduler"])
            parts.precision.load_state_dict(state.get("scaler") or {})
            parts.masker.load_state_dict(own["masker"])
        except (RuntimeError, KeyError, ValueError) as error:  # e.g. a network whose layers changed since
            raise UserError(
                f"cannot resume '{self.run_dir}': its checkpoint does not fit the networks this sslkit builds from "
                f"its config.yaml (made by an older sslkit?): {first_line(error)[:160]}"
            ) from None
        self.pending_rng = own["rng"]
        self.epoch, self.batch, self.step = state["epoch"], state["batch"], state["step"]
        self.history = list(state.get("history", []))
        self.stats = EpochStats(**state.get("epoch_stats", {}))
        self.train_seconds = float(state.get("train_seconds", 0.0))
        self.last_good = (checkpoint_path(self.run_dir), self.step)

    def check_settings_unchanged(self, trained: dict[str, Any] | None) -> None:
        """Refuse a ``config.yaml`` edited after the run started: the checkpoint holds the settings
        the run was trained with, and resuming under others would apply half of an edit (the
        weights so far from the old lr, the rest from the new). The command line refuses these
        changes already; only the resumable ones (threads, device, logging ...) may differ."""
        if not isinstance(trained, dict):  # a checkpoint written before settings were stored
            return
        from sslkit.pretraining.config import RESUMABLE_OVERRIDES

        now = _as_plain(self.config.to_dict())
        trained = _as_plain(trained)
        changed = [f"{key} {trained[key]!r} -> {now[key]!r}" for key in now
                   if key in trained and key not in RESUMABLE_OVERRIDES and key != "out" and now[key] != trained[key]]
        if changed:
            raise UserError(
                f"cannot resume '{self.run_dir}': its config.yaml no longer holds the settings the run was trained "
                f"with ({'; '.join(changed[:3])}{'; ...' if len(changed) > 3 else ''}); a run continues only with its "
                f"own settings, so undo the edit, or start a new run from the edited file with "
                f"--config {self.run_dir / 'config.yaml'} --out NEW_DIR"
            )

    def check_threads_unchanged(self, parts: RunParts, trained: int | None) -> None:
        """On the CPU, PyTorch's results depend on its thread count (how sums are split), so a run
        resumed with another count ends with other weights, and not only in the last bits
        (measured: README, Resume); refused, naming the count that resumes exactly."""
        now = torch.get_num_threads()
        if trained is None or parts.device.type != "cpu" or int(trained) == now:
            return
        from sslkit.cpu_cores import usable_cores

        cores = usable_cores()
        how = (f"resume it with --threads {trained}" if int(trained) <= cores else
               f"this process may use only {cores} core(s), so resume it where {trained} are available")
        raise UserError(
            f"cannot resume '{self.run_dir}' with {now} CPU thread(s): it was trained with {trained}, and on the CPU "
            f"the thread count changes the weights; {how}"
        )

    def restore_pending_rng(self) -> None:
        """Called once the first batch is here: starting a loader may draw from torch's global
        generator (worker seeds) at another moment than in the uninterrupted run; sslkit's
        loader order itself draws nothing global."""
        if self.pending_rng is not None:
            restore_rng_states(self.pending_rng)
            self.pending_rng = None

    def end_epoch(self, lr: float) -> dict[str, Any]:
        """Close the epoch: its row joins the history (callbacks may add to it before it is
        saved) and the counters move to the next epoch's first batch."""
        row = self.stats.row(self.epoch + 1, self.step, lr)
        self.history.append(row)
        self.epoch, self.batch, self.stats = self.epoch + 1, 0, EpochStats()
        return row

    def final(self) -> dict[str, Any]:
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

    # -- how the run ends early --------------------------------------------------------------
    def kept(self) -> str:
        if self.last_good is not None:
            return f"the last good checkpoint {self.last_good[0]} (step {self.last_good[1]}) is kept"
        return "no checkpoint had been written yet"

    def diverged(self, what: str, step: int) -> str:
        # --resume keeps a run's settings, so the advice is a new run; fp32 only when not already
        advice = "start a new run with a lower --lr"
        if self.config.precision != "fp32":
            advice += " or with --precision fp32"
        return f"training stopped: {what} at step {step} (epoch {self.epoch + 1}); {self.kept()}; {advice}"

    def save_failed(self, path: Path | str | None, error: OSError, what: str = "checkpoint") -> str:
        then = (f"continue with: sslkit pretrain --resume {self.run_dir}" if self.last_good is not None
                else "start the run again")
        target = f"{what} '{path}'" if path else what
        return (f"cannot write {target}: {error.strerror or error}; {self.kept()}; "
                f"free some space (or fix the folder's permissions), then {then}")

    def interrupted(self, path: Path, signum: int | None = None) -> TrainingInterrupted:
        by = "" if signal_name(signum) == "Ctrl-C" else f" by {signal_name(signum)}"
        message = (
            f"Interrupted{by} after step {self.step}; checkpoint saved to {path}; "
            f"continue with: sslkit pretrain --resume {self.run_dir}"
        )
        return TrainingInterrupted(message, self.run_dir, self.step, signum)

    def interrupted_again(self, signum: int | None = None) -> TrainingInterrupted:
        """A second stop signal while the first one's checkpoint was being written."""
        if self.last_good is not None:
            then = f"{self.kept()}; continue with: sslkit pretrain --resume {self.run_dir}"
        else:
            then = "no checkpoint had been written yet, so the run folder is removed; start the run again"
        return TrainingInterrupted(f"Interrupted again before a checkpoint was saved; {then}", self.run_dir, self.step,
                                   signum)
