"""Turning a user's box size (fraction of the side, pixels, or area share) into pixels.

Shared by the ``random`` and ``center`` maskers so both read ``size`` the same way: a number
<= 1 is a fraction of the image side, a whole number > 1 is pixels, and a ``[height, width]``
pair sets the two sides separately.
"""

from __future__ import annotations

import math
from typing import Any

from sslkit.errors import UserError
from sslkit.options import OptionChecks


def check_size(size: Any, what: str) -> tuple[float, float]:
    """Validate ``size`` once, when the masker is built: -> (height spec, width spec)."""
    check = OptionChecks(what)
    pair = size if isinstance(size, (list, tuple)) else (size, size)
    if len(pair) != 2:
        raise check.fail(f"size must be a number or a [height, width] pair, got {size!r}")
    out = []
    for value in pair:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise check.fail(f"size must be > 0 (a fraction of the side <= 1, or pixels), got {size!r}")
        if value > 1 and float(value) != int(value):
            raise check.fail(f"a size above 1 means pixels and must be a whole number, got {value!r}")
        out.append(float(value))
    return out[0], out[1]


def check_area(area: Any, what: str) -> float:
    """``area``: the share of the image area a box covers, in (0, 1]."""
    return OptionChecks(what).number("area", area, 0, 1, open_low=True)


def side_pixels(spec: float, side: int, what: str) -> int:
    """One side in pixels: fractions are rounded (at least 1 px); pixels must fit the image."""
    if spec <= 1:
        return max(1, min(side, round(spec * side)))
    if spec > side:
        raise UserError(f"{what}: a box of {int(spec)} px does not fit images of {side} px")
    return int(spec)


def box_in_cells(box: tuple[int, int], image_size: tuple[int, int], cell_grid: tuple[int, int]) -> tuple[int, int]:
    """A box of ``box`` pixels as whole cells of ``cell_grid`` (sparse encoding): the nearest
    number of cells per side, at least one."""
    return tuple(max(1, min(g, round(b * g / s))) for b, s, g in zip(box, image_size, cell_grid))  # type: ignore[return-value]


def box_pixels(size: tuple[float, float] | None, area: float | None, image_size: tuple[int, int], what: str) -> tuple[int, int]:
    """(height, width) in pixels from a checked ``size`` pair or an ``area`` share."""
    h, w = image_size
    if area is not None:
        side = math.sqrt(area)
        return max(1, min(h, round(side * h))), max(1, min(w, round(side * w)))
    assert size is not None
    return side_pixels(size[0], h, what), side_pixels(size[1], w, what)
