"""One run per run directory: an OS file lock held while a run trains.

Two ``sslkit pretrain --out SAME`` at once (or a ``--resume`` of a run still training) would
overwrite each other's checkpoints and mix their TensorBoard events. The run takes an exclusive
``fcntl.flock`` on ``RUN_DIR/.sslkit.lock`` before it writes anything and keeps it until it ends;
the second one is refused with one sentence naming the holder's process id. The operating system
drops the lock when its process dies (even by SIGKILL), so a lock file left behind by a dead run
is stale and never blocks: only a live holder counts. Where ``fcntl`` does not exist (Windows),
runs are not locked.

:func:`run_directory` wraps a whole run: the lock, the removal of temporaries a SIGKILL left
behind (safe only while locked), and the removal of the stub folder of a run that failed before
its first checkpoint. :func:`locked_output` gives every other folder sslkit writes (``finetune
--out``, ``evaluate``'s metrics, ``compare --out`` and its fine-tuning cells) the same lock and
the same one-sentence refusal, so two commands never interleave their files in one folder.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from sslkit.errors import SystemFault, UserError, describe_os_error
from sslkit.fileio import remove_stale_temporaries

LOCK_NAME = ".sslkit.lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class RunDirLock:
    """The exclusive lock of one run directory; :meth:`acquire` creates the folder if needed."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> "RunDirLock":
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise UserError(f"'{self.run_dir}' is a file, not a run directory; choose another --out")
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as error:
            raise SystemFault(describe_os_error(error, f"cannot create the run directory '{self.run_dir}'")) from None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_pid(fd)
                os.close(fd)
                who = f" (process {holder})" if holder else ""
                raise UserError(
                    f"'{self.run_dir}' is in use by another sslkit run{who}; wait for it to finish, "
                    "or choose another --out"
                ) from None
            except OSError:  # a file system without locks (some network mounts): run unlocked
                pass
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Unlock (closing the descriptor drops the flock); the file stays, harmlessly."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "RunDirLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None


class RunRefused(UserError):
    """Raised on processes other than rank 0 when rank 0 could not take the run directory (rank 0
    says why; the others stop quietly with the same exit status)."""


@contextmanager
def run_directory(
    run_dir: str | Path,
    *,
    fresh: bool,
    logdir: str | Path | None = None,
    is_main: bool = True,
    share: Callable[[Any], Any] = lambda value: value,
    temporaries_in: Iterable[str] = ("checkpoints", "encoder"),
    keep: Callable[[BaseException], bool] = lambda error: False,
    finished_marker: str = "checkpoints/last.pt",
) -> Iterator[RunDirLock | None]:
    """Hold ``run_dir`` for one run (rank 0 locks it; ``share`` broadcasts the outcome to the
    other processes), after checking that neither it nor ``logdir`` is a file.

    Inside, stale temporaries of killed writes are deleted first. If the run fails before writing
    ``finished_marker`` in a folder it created (``fresh``), the stub folder is removed, unless
    ``keep(error)`` (a diverged run keeps its TensorBoard events)."""
    run_dir = Path(run_dir)
    existed = run_dir.exists()
    lock = RunDirLock(run_dir)
    refusal: BaseException | None = None
    if is_main:
        try:
            if logdir is not None and Path(logdir).exists() and not Path(logdir).is_dir():
                raise UserError(f"--logdir '{logdir}' is a file, not a folder; choose another --logdir")
            lock.acquire()
        except (UserError, SystemFault) as error:
            refusal = error
    refused = share(refusal is not None)
    if refusal is not None:
        raise refusal
    if refused:
        raise RunRefused(f"rank 0 could not take the run directory '{run_dir}'")
    try:
        if is_main:
            remove_stale_temporaries(run_dir, *(run_dir / sub for sub in temporaries_in))
        yield lock if is_main else None
    except BaseException as error:
        stub = fresh and not existed and not (run_dir / finished_marker).exists()
        if is_main and stub and not keep(error):
            lock.release()
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        lock.release()


@contextmanager
def locked_output(folder: str | Path | None, *, finished_marker: str | None = None) -> Iterator[None]:
    """Hold ``folder``'s lock while a command writes into it (nothing when ``folder`` is None).

    ``finished_marker``: a folder this command created is removed again when it fails before
    writing that file (a fine-tuning that stopped leaves no half-written folder); without it the
    folder stays (``compare --out`` holds finished cells worth keeping)."""
    if folder is None:
        yield
        return
    with run_directory(Path(folder).expanduser(), fresh=finished_marker is not None, temporaries_in=(),
                       finished_marker=finished_marker or LOCK_NAME):
        yield
