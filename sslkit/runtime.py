"""How many CPU threads PyTorch uses, set for one piece of work and restored afterwards.

``--threads`` exists on every command that trains or evaluates: on a machine busy with other
work, threads waiting for each other stall, and one thread can be several times faster than one
per core. Both the engine and evaluation import this module, so it sits outside both.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from sslkit.cpu_cores import usable_cores
from sslkit.errors import UserError

#: The most threads the automatic default picks. Small models at 64-256 px gain little from more
#: (not measured beyond 2 cores here); ``--threads N`` asks for more explicitly.
MAX_DEFAULT_THREADS = 8

#: ``--threads``' help, the same on every command that has it.
THREADS_HELP = (f"CPU threads for PyTorch; 0 = automatic: half of the cores this process may use, 1 to "
                f"{MAX_DEFAULT_THREADS} (printed when a run starts). Try 1 on a machine busy with other work.")


def check_threads(threads: int | None, option: str = "--threads") -> None:
    """``threads``: None or 0 = automatic (:func:`default_threads`), else a positive count."""
    if threads is not None and int(threads) < 0:
        raise UserError(f"{option} must be zero (automatic) or positive, got {threads}")


def default_threads() -> int:
    """What ``--threads 0`` (the default) means: half of :func:`usable_cores`, at least 1, at most
    :data:`MAX_DEFAULT_THREADS`.

    Why not PyTorch's own default (one thread per core): on a shared machine its threads wait for
    each other behind other jobs. On the 2-core development machine the Quick start's epoch
    (``sslkit pretrain --masker random --epochs 1``) took 15.0-16.0 s with 1 thread, and with 2
    threads 15.6 s while the machine was quiet but 47.0 s with a neighbour's job running; the issue
    measured 157 s (one thread per core) against 26.5 s (1 thread) under heavier load. Half leaves
    the other cores to data-loading workers and to neighbours. It depends on the machine only, not
    on its momentary load, so the same machine gives the same default (and the same result)."""
    return max(1, min(MAX_DEFAULT_THREADS, usable_cores() // 2))


def resolved_threads(threads: int | None) -> int:
    """``threads``, or :func:`default_threads` for None or 0."""
    check_threads(threads)
    return int(threads) if threads else default_threads()


def threads_note(threads: int | None) -> str:
    """``1 CPU thread (automatic: half of 2 usable cores)`` for the line a run starts with."""
    count = resolved_threads(threads)
    plural = "s" if count != 1 else ""
    how = f"automatic: half of {usable_cores()} usable cores" if not threads else "--threads"
    return f"{count} CPU thread{plural} ({how})"


@contextlib.contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """PyTorch's intra-op CPU threads set to ``threads`` (None or 0: :func:`default_threads`),
    then restored."""
    import torch

    count = resolved_threads(threads)
    before = torch.get_num_threads()
    from sslkit.cpu_cores import cap_threads  # never more threads than usable cores

    torch.set_num_threads(cap_threads(count))
    try:
        yield
    finally:
        torch.set_num_threads(before)
