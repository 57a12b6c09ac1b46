"""The one exception type for mistakes a user can make.

Anything a user can cause (an unknown name, a bad path, a bad option value, an unreadable image)
raises :class:`UserError`. It is a :class:`click.ClickException`, so the CLI prints its message as
one sentence and exits with status 2, never with a traceback; library callers can catch it like
any exception.
"""

from __future__ import annotations

import click


class UserError(click.ClickException):
    """A mistake in the user's input, reported as one clear sentence (exit status 2)."""

    exit_code = 2


def first_line(error: BaseException) -> str:
    """The first line of an error's message (or its type's name when the message is empty), so a
    library's multi-line error becomes part of one sentence."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
