"""The one way sslkit makes a rich Console, so tables keep their columns when piped.

Writing to a terminal, rich takes the terminal's width. Writing to a pipe or a file (``sslkit
compare ... | tee log``, ``nohup``, CI) with no terminal around, it falls back to 80 columns and
squeezes wide tables until method names read ``random-grid…``. Then the console takes
``$COLUMNS`` when set (rich's own rule) and else :data:`PIPED_WIDTH`, room for compare's widest
table; a file has no width to overflow.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

#: Columns of a console that writes to no terminal and has no ``$COLUMNS``.
PIPED_WIDTH = 200


def make_console(*, stderr: bool = False) -> Console:
    """A rich Console on stdout (or stderr): a terminal's own width, else ``$COLUMNS`` or
    :data:`PIPED_WIDTH` (see the module docstring)."""
    from rich.console import Console

    console = Console(stderr=stderr)
    if not console.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
        console.width = PIPED_WIDTH
    return console
