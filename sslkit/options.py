"""Options users pass as ``key=value`` text, and checks plugin factories run on them.

Every ``--masker-opt``, ``--backbone-opt``, ``--data-opt`` and ``--pretrain-opt`` pair is read by
:func:`parse_options` (values typed as YAML reads them: ``0.25``, ``true``, ``[1, 2]``), so a
plugin receives numbers and booleans, not text.

A plugin's factory then checks its options with :class:`OptionChecks`: each failed check raises
:class:`~sslkit.errors.UserError`, the one error type a plugin raises for a bad option, which the
command line shows as one sentence naming the plugin and the option (exit code 2, no traceback)::

    from sslkit.options import OptionChecks

    def __init__(self, grid=8, ratio=0.6):
        check = OptionChecks("masker 'my-grid'")
        self.grid = check.whole("grid", grid)                       # a whole number >= 1
        self.ratio = check.number("ratio", ratio, 0, 1, open_low=True)  # in (0, 1]
"""

from __future__ import annotations

import math
from typing import Any

from sslkit.errors import UserError


def parse_option_value(text: str) -> Any:
    """``'0.25'`` -> 0.25, ``'true'`` -> True, ``'[1, 2]'`` -> [1, 2], other text stays text."""
    import yaml

    from sslkit.yaml_data import load_yaml

    try:
        value = load_yaml(text)
    except yaml.YAMLError:
        return text
    return text if value is None and text.strip().lower() not in ("null", "none", "~") else value


def parse_options(pairs: tuple[str, ...] | list[str], what: str = "option") -> dict[str, Any]:
    """``('size=0.25', 'count=2')`` -> ``{'size': 0.25, 'count': 2}``; a pair without '=' is a clear error.

    Hyphens in keys become underscores (``explore-fraction`` -> ``explore_fraction``), so option
    names match Python keyword arguments.
    """
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{what} '{pair}' is not of the form key=value")
        options[key.strip().replace("-", "_")] = parse_option_value(value.strip())
    return options


def _is_number(value: Any) -> bool:
    """True for ints and floats; False for booleans (YAML reads ``true`` as True, never a count)."""
    return not isinstance(value, bool) and isinstance(value, (int, float))


class OptionChecks:
    """Typed checks of one plugin's options; each failure is one sentence naming the plugin and option.

    ``what`` names the plugin as users write it (``"masker 'random'"``); each check returns the
    value in its checked type, so a factory can store the result directly.
    """

    def __init__(self, what: str):
        self.what = what

    def fail(self, message: str) -> UserError:
        """The error for any other rule a plugin has (``raise check.fail("grid exceeds ...")``)."""
        return UserError(f"{self.what}: {message}")

    def whole(self, name: str, value: Any, minimum: int = 1, maximum: int | None = None) -> int:
        """A whole number >= ``minimum`` and, when given, <= ``maximum`` (``2.0`` is accepted as 2;
        ``True`` is not a number)."""
        if not _is_number(value) or not math.isfinite(value) or float(value) != int(value) or value < minimum:
            raise self.fail(f"{name} must be a whole number >= {minimum}, got {value!r}")
        if maximum is not None and value > maximum:
            raise self.fail(f"{name} must be a whole number from {minimum} to {maximum}, got {value!r}")
        return int(value)

    def number(self, name: str, value: Any, low: float, high: float | None = None, *, open_low: bool = False) -> float:
        """A number >= ``low`` (> with ``open_low``) and, when given, <= ``high``."""
        ok = _is_number(value) and (value > low if open_low else value >= low)
        if ok and high is not None:
            ok = value <= high
        if not ok:
            left = "(" if open_low else "["
            bounds = f"in {left}{low}, {high}]" if high is not None else f"{'>' if open_low else '>='} {low}"
            raise self.fail(f"{name} must be a number {bounds}, got {value!r}")
        return float(value)

    def choice(self, name: str, value: Any, choices: tuple[Any, ...]) -> Any:
        """One of ``choices``."""
        if value not in choices:
            raise self.fail(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")
        return value

    def flag(self, name: str, value: Any) -> bool:
        """A boolean (``true``/``false`` on the command line; text such as ``maybe`` is refused)."""
        if not isinstance(value, bool):
            raise self.fail(f"{name} must be true or false, got {value!r}")
        return value


#: seeds reach torch.manual_seed, which takes a signed 64-bit number
SEED_RANGE = (-(2**63), 2**63 - 1)


def check_seed(value: Any, option: str = "--seed") -> None:
    """A seed PyTorch accepts (64 bits): ``--seed 2**70`` was an unexpected OverflowError."""
    low, high = SEED_RANGE
    if value is not None and not low <= int(value) <= high:
        raise UserError(f"{option} must fit in 64 bits (from -2**63 to 2**63-1), got {value}")


#: backbone options sslkit sets itself, from its own options
OWN_BACKBONE_OPTIONS = {"in_chans": "--in-chans"}


def check_backbone_options(options: Any, where: str = "--backbone-opt") -> None:
    """Refuse a backbone option sslkit passes itself (``in_chans=3`` was an unexpected TypeError)."""
    for key, instead in OWN_BACKBONE_OPTIONS.items():
        if key in (options or {}):
            raise UserError(f"{where} {key} is set by sslkit itself; use {instead}")
