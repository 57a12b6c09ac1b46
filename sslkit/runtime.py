"""How many CPU threads PyTorch uses, set for one piece of work and restored afterwards.

``--threads`` exists on every command that trains or evaluates: on a machine busy with other
work, threads waiting for each other stall, and one thread can be several times faster than one
per core. Both the engine and evaluation import this module, so it sits outside both.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from sslkit.errors import UserError

#: ``--threads``' help, the same on every command that has it.
THREADS_HELP = "CPU threads for PyTorch (0 = one per core); try 1 on a machine busy with other work."


def check_threads(threads: int | None, option: str = "--threads") -> None:
    """``threads``: None or 0 = PyTorch's default (one per core), else a positive count."""
    if threads is not None and int(threads) < 0:
        raise UserError(f"{option} must be zero (PyTorch's default) or positive, got {threads}")


@contextlib.contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """PyTorch's intra-op CPU threads set to ``threads`` (None or 0: unchanged), then restored."""
    import torch

    check_threads(threads)
    before = torch.get_num_threads()
    if threads:
        from sslkit.cpu_cores import cap_threads  # never more threads than usable cores

        torch.set_num_threads(cap_threads(int(threads)))
    try:
        yield
    finally:
        torch.set_num_threads(before)
