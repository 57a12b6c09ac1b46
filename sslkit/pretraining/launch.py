"""Starting processes: ``sslkit pretrain --nproc N`` and single-process commands under torchrun.

:func:`launch_local` is torchrun's own launcher, run in-process, so ``--nproc`` behaves exactly as
``torchrun --standalone --nproc-per-node N``; :func:`main_process_only` lets the commands that
gain nothing from several processes (fine-tuning, evaluation, compare) run on rank 0 alone.
The collectives the training itself uses are in :mod:`sslkit.pretraining.distributed`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

from sslkit.pretraining.dist_info import DistInfo
from sslkit.errors import UserError


def launch_local(nproc: int, module_args: list[str]) -> int:
    """Run ``python -m <module_args>`` in ``nproc`` processes on this machine, exactly as
    ``torchrun --standalone --nproc-per-node nproc -m <module_args>`` would (PyTorch's own
    launcher and rendezvous on a free port); returns the exit status to report.

    A failed run's status is rank 0's (or the first failed rank's): 2 for a user error, 3 for a
    NaN stop, 128 + N after signal N (130 Ctrl-C, 143 SIGTERM, 138 SIGUSR1: the processes saved and
    stopped), 128 + N when a process died of signal N.
    """
    import uuid

    from torch.distributed.elastic.multiprocessing import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import elastic_launch
    from torch.distributed.run import config_from_args, parse_args

    if os.environ.get("WORLD_SIZE", "1") not in ("", "1"):
        raise UserError("--nproc starts its own processes; do not combine it with torchrun (drop --nproc there)")
    args = parse_args(["--standalone", "--nproc-per-node", str(int(nproc)), "-m", *module_args])
    args.rdzv_backend, args.rdzv_endpoint, args.rdzv_id = "c10d", "localhost:0", str(uuid.uuid4())
    if args.master_port is None:
        args.master_port = 29500  # unused by the c10d rendezvous; torchrun sets it the same way
    config, command, command_args = config_from_args(args)
    _quiet_launcher_logs()  # the processes report their own errors; the launcher would repeat them
    try:
        with _forward_sigusr1():
            elastic_launch(config=config, entrypoint=command)(*command_args)
    except SignalException as error:  # Ctrl-C/SIGTERM/SIGUSR1: passed on to the processes, which saved and stopped
        return 128 + int(error.sigval)
    except ChildFailedError as error:
        # The processes torchrun stopped itself died of SIGTERM; report a real exit status first.
        failures = sorted(error.failures.items(), key=lambda item: (item[1].exitcode <= 0, item[0] != 0, item[1].timestamp))
        for rank, failure in sorted(error.failures.items()):
            if failure.exitcode < 0 and failure.signal_name() != "SIGTERM":
                print(f"process {rank} died of signal {failure.signal_name()}", file=sys.stderr)
        code = int(failures[0][1].exitcode)
        return 128 - code if code < 0 else (code or 1)
    return 0


@contextlib.contextmanager
def _forward_sigusr1():
    """torchrun passes SIGINT and SIGTERM on to its processes (which save and stop) but dies of
    SIGUSR1, SLURM's early warning; raising torchrun's own SignalException for it makes the
    launcher pass it on the same way (and wait for them, 30 s at most, before SIGKILL)."""
    import signal

    from torch.distributed.elastic.multiprocessing.api import _terminate_process_handler

    usr1 = getattr(signal, "SIGUSR1", None)
    if usr1 is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(usr1, _terminate_process_handler)
    try:
        yield
    finally:
        signal.signal(usr1, previous)


def _quiet_launcher_logs() -> None:
    """Keep only torch.distributed.elastic's critical messages (its loggers set their own levels)."""
    import logging

    for name in list(logging.root.manager.loggerDict):
        if name.startswith(("torch.distributed.elastic", "torch.distributed.launcher")):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def main_process_only(command: str) -> bool:
    """Under torchrun, let rank 0 alone run a command that is not distributed.

    Fine-tuning, evaluation and compare train small heads on cached features (seconds), so
    spreading them over processes gains nothing, while several processes writing one run
    directory would clash. Rank 0 then carries on as a single process (the launch variables are
    reset, so a pretraining inside ``compare`` does not wait for partners that left); the other
    ranks print one line and return False.
    """
    import click

    dist = DistInfo.from_env()
    if not dist.distributed:
        return True
    if not dist.is_main:
        click.echo(f"rank {dist.rank}: 'sslkit {command}' runs on rank 0 only; this process has nothing to do", err=True)
        return False
    for name, value in (("WORLD_SIZE", "1"), ("RANK", "0"), ("LOCAL_RANK", "0"), ("LOCAL_WORLD_SIZE", "1")):
        os.environ[name] = value
    return True
