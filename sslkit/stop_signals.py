"""Stop requests from outside: Ctrl-C, a scheduler's SIGTERM and SLURM's early warning SIGUSR1.

Cluster schedulers stop jobs with SIGTERM (SLURM pre-emption and time limits, Kubernetes
eviction, torchrun stopping its processes) and SLURM can send SIGUSR1 a chosen time before the
deadline (``#SBATCH --signal=USR1@120``). sslkit treats all three as Ctrl-C: pretraining
finishes the current step, saves a checkpoint and prints the resume command
(:func:`stop_requests`); a command without such a save point stops at once, keeping what is
finished (:func:`signals_as_interrupts`). A second signal while the first one's checkpoint is
being written interrupts at once.

The exit status is what a shell reports for a process the signal ended, 128 + its number:
130 (SIGINT), 143 (SIGTERM), 138 (SIGUSR1 on Linux), so a job script can tell a stop from a failure.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

#: the signals that ask a run to save and stop (SIGUSR1 does not exist on Windows)
STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGUSR1") if hasattr(signal, name))


def exit_code_of(signum: int | None) -> int:
    """128 + the signal number (130 for Ctrl-C, also when the signal is unknown)."""
    return 128 + int(signum or signal.SIGINT)


def signal_name(signum: int | None) -> str:
    return "Ctrl-C" if not signum or signum == signal.SIGINT else signal.Signals(signum).name


class Interrupted(KeyboardInterrupt):
    """A stop signal that interrupts at once (a second one, or one outside pretraining); a
    KeyboardInterrupt, so everything written for Ctrl-C handles it, with the signal's exit code."""

    def __init__(self, signum: int | None, message: str | None = None):
        super().__init__(message or signal_name(signum))
        self.signum = signum
        self.exit_code = exit_code_of(signum)
        self.message = message  # what the command line prints (None: "Interrupted.")


def interrupted(error: KeyboardInterrupt, message: str) -> Interrupted:
    """``error`` (Ctrl-C or another stop signal) again, with the sentence saying what was kept."""
    return Interrupted(getattr(error, "signum", None), message)


class StopRequest(threading.Event):
    """Set by the first stop signal; ``signum`` says which one arrived."""

    signum: int | None = None


@contextmanager
def _handlers(handler) -> Iterator[None]:
    """``handler`` for every stop signal inside the block, the previous handlers after it. Only
    the main thread can install handlers: elsewhere the block runs without them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextmanager
def stop_requests() -> Iterator[StopRequest]:
    """The first stop signal sets the returned flag, which the training loop checks after each
    step (a consistent point to save); a second one raises :class:`Interrupted` at once."""
    stop = StopRequest()

    def handler(signum, frame):  # noqa: ARG001
        if stop.is_set():
            raise Interrupted(signum)
        stop.signum = signum
        stop.set()

    with _handlers(handler):
        yield stop


@contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """SIGTERM and SIGUSR1 interrupt like Ctrl-C (a KeyboardInterrupt carrying the exit code),
    for commands whose finished parts are already on disk; a pretraining inside installs its own
    save-then-stop handlers for its duration."""

    def handler(signum, frame):  # noqa: ARG001
        raise Interrupted(signum)

    with _handlers(handler):
        yield
