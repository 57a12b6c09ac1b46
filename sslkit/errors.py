"""The exception types behind sslkit's exit codes, and turning OS errors into one sentence.

Anything a user can cause (an unknown name, a bad path, a bad option value, an unreadable image)
raises :class:`UserError`. It is a :class:`click.ClickException`, so the CLI prints its message as
one sentence and exits with status 2, never with a traceback; library callers can catch it like
any exception. A fault of the machine rather than of the input (disk full, permission denied, a
read-only file system) is a :class:`SystemFault` (exit status 1); the CLI boundary
(:func:`sslkit.cli.run_cli`) turns any other ``OSError`` into one too, with ``--debug`` (or
``SSLKIT_DEBUG=1``) for the full traceback in bug reports.

Exit codes: 0 done, 1 a system fault or an unexpected error, 2 a user error, 3 training diverged,
128 + N stopped by signal N, what was finished kept: 130 Ctrl-C, 143 SIGTERM, 138 SIGUSR1
(:mod:`sslkit.stop_signals`).
"""

from __future__ import annotations

import errno as errno_codes
import os

import click

#: Set to 1 for full tracebacks instead of one sentence (same as ``sslkit --debug``).
DEBUG_ENV = "SSLKIT_DEBUG"


class UserError(click.ClickException):
    """A mistake in the user's input, reported as one clear sentence (exit status 2)."""

    exit_code = 2


class SystemFault(click.ClickException):
    """The machine refused (disk full, permissions, read-only): one sentence, exit status 1."""

    exit_code = 1


def first_line(error: BaseException) -> str:
    """The first line of an error's message (or its type's name when the message is empty), so a
    library's multi-line error becomes part of one sentence."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


_HINTS = {
    errno_codes.ENOSPC: "free some space and run the command again (files written before are kept)",
    errno_codes.EDQUOT: "free some space and run the command again (files written before are kept)",
    errno_codes.EROFS: "choose a folder on a writable file system",
    errno_codes.EACCES: "choose a folder you may write to, or fix its permissions",
    errno_codes.EPERM: "choose a folder you may write to, or fix its permissions",
    errno_codes.EEXIST: "remove it or choose another name",
    errno_codes.ENOTDIR: "a file stands where a folder is needed",
    errno_codes.EISDIR: "a folder stands where a file is needed",
}


def describe_os_error(error: OSError, doing: str = "") -> str:
    """``OSError`` -> one sentence: what failed, on which file, why, and what to do.

    ``doing`` ("writing checkpoint 'x'") replaces the file names when the caller knows better."""
    reason = error.strerror or first_line(error)
    if not doing:
        names = [n for n in (error.filename, error.filename2) if n is not None]
        doing = " -> ".join(f"'{os.fsdecode(n) if isinstance(n, bytes) else n}'" for n in names)
    where = f"{doing}: " if doing else ""
    hint = _HINTS.get(error.errno or -1)
    return f"{where}{reason}" + (f"; {hint}" if hint else "")


def os_error_in(error: BaseException) -> OSError | None:
    """The ``OSError`` behind ``error`` (itself, its cause or context), or one rebuilt from a
    library's message, so e.g. torch's ``RuntimeError: ... No space left on device`` is seen as
    what it is (``errno 28``)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError):
            return current
        current = current.__cause__ or current.__context__
    text = str(error)
    for code in (errno_codes.ENOSPC, errno_codes.EDQUOT, errno_codes.EROFS, errno_codes.EACCES, errno_codes.EIO):
        message = os.strerror(code)
        if message in text or f"errno {code}" in text.lower() or f"errno: {code}" in text.lower():
            return OSError(code, message)
    return None
