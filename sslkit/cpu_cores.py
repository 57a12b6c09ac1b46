"""How many CPU cores this process may use, and ``--threads`` held to that number.

``--threads 2000`` on a 2-core machine started 3,795 threads and no epoch finished in 15 minutes
(threads waiting for each other); ``--threads 100000`` failed inside PyTorch with an error that
blamed the model. More threads than cores never helps, so the count is capped at the cores this
process may run on: ``os.sched_getaffinity`` (what ``taskset``, cgroups' cpusets and SLURM's
``--cpus-per-task`` allow), else ``os.cpu_count``. The caller says the note once.
"""

from __future__ import annotations

import os


def usable_cores() -> int:
    """The CPU cores this process may run on (at least 1)."""
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        try:
            return max(1, len(affinity(0)))
        except OSError:
            pass
    return max(1, os.cpu_count() or 1)


def capped_threads(threads: int) -> tuple[int, str | None]:
    """(``threads``, None), or (the usable cores, a one-line note) when ``threads`` is more."""
    cores = usable_cores()
    if threads <= cores:
        return threads, None
    return cores, (f"--threads {threads} is more than the {cores} CPU core(s) this process may use; "
                   f"using {cores} (more threads than cores only wait for each other)")


_NOTED: set[int] = set()


def cap_threads(threads: int) -> int:
    """:func:`capped_threads`, with its note printed on stderr once per process and count (a
    compare sets the threads for itself and again for each pretraining inside it)."""
    threads, note = capped_threads(threads)
    if note and threads not in _NOTED:
        import click

        _NOTED.add(threads)
        click.echo(f"note: {note}", err=True)
    return threads
