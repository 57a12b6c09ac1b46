"""Named registries of factories: maskers, backbones and dataset adapters.

Plugins fill a :class:`Registry` through the ``register_*`` hooks; the core only ever asks a
registry for a name. An unknown name is a :class:`~sslkit.errors.UserError` that lists the known
names and suggests the closest, so a typo never ends in a traceback.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypeVar

from sslkit.errors import UserError

T = TypeVar("T")
MAX_LISTED = 25


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered name: the factory that builds it and where it came from."""

    name: str
    factory: Callable[..., T]
    description: str = ""
    plugin: str = "?"
    options: dict[str, str] = field(default_factory=dict)
    """Option name -> one-line help, shown by ``sslkit list``; defaults come from the factory."""

    def option_defaults(self) -> dict[str, Any]:
        """The factory's keyword defaults, so help can show them without duplicating them."""
        try:
            params = inspect.signature(self.factory).parameters
        except (TypeError, ValueError):
            return {}
        return {
            n: p.default
            for n, p in params.items()
            if p.default is not inspect.Parameter.empty
            and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        }


#: How alike a name must be for a "did you mean" (difflib's ratio): at 0.5, 'nonsense' got
#: "did you mean 'seed'?"; typos of a letter or two ('rnadom', 'sise', 'tset') are 0.75 or more.
CLOSE_ENOUGH = 0.6


def closest(name: str, known: list[str]) -> str | None:
    """The known name most like ``name`` (or None), for "did you mean" hints."""
    lowered = {k.lower(): k for k in known}
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=CLOSE_ENOUGH)
    return lowered[match[0]] if match else None


def unknown_name_message(kind: str, name: str, known: list[str]) -> str:
    """``unknown masker 'rnadom'; did you mean 'random'? known: a, b`` (one sentence)."""
    hint = closest(name, known)
    suggestion = f"; did you mean '{hint}'?" if hint else ";"
    if not known:
        listing = "none (is a plugin missing?)"
    elif len(known) <= MAX_LISTED:
        listing = ", ".join(sorted(known))
    else:
        listing = f"{', '.join(sorted(known)[:MAX_LISTED])}, ... ({len(known)} in all; see 'sslkit list')"
    return f"unknown {kind} '{name}'{suggestion} known: {listing}"


class Registry(Generic[T]):
    """Name -> factory, filled by plugins. ``kind`` ("masker", ...) is used in messages."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(
        self,
        name: str,
        factory: Callable[..., T],
        description: str = "",
        *,
        options: dict[str, str] | None = None,
        plugin: str = "?",
    ) -> None:
        """Add ``name``; a second plugin claiming the same name is an error naming both."""
        if not isinstance(name, str) or not name:
            raise UserError(f"plugin '{plugin}' registered a {self.kind} with an empty or non-text name")
        if name in self._entries:
            first = self._entries[name].plugin
            raise UserError(
                f"{self.kind} '{name}' is registered twice: by plugin '{first}' and by plugin '{plugin}'"
            )
        self._entries[name] = Entry(name, factory, description.strip(), plugin, dict(options or {}))

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str) -> Entry[T]:
        """The entry for ``name``; unknown -> UserError with the known names and the closest."""
        try:
            return self._entries[name]
        except KeyError:
            raise UserError(unknown_name_message(self.kind, name, self.names())) from None

    def create(self, name: str, *args: Any, **options: Any) -> T:
        """Build ``name`` with ``options``, rejecting option names the factory does not take."""
        entry = self.get(name)
        check_options(f"{self.kind} '{name}'", entry.factory, options)
        try:
            return entry.factory(*args, **options)
        except ValueError as error:  # factories reject bad option values with ValueError
            raise UserError(f"{self.kind} '{name}': {error}") from None


def check_options(what: str, factory: Callable[..., Any], options: dict[str, Any]) -> None:
    """Raise a UserError for option names ``factory`` does not accept, listing those it does."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    accepted = [
        n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    for key in options:
        if key not in accepted:
            hint = closest(key, accepted)
            did_you_mean = f"; did you mean '{hint}'?" if hint else ";"
            known = ", ".join(accepted) if accepted else "none"
            raise UserError(f"{what} has no option '{key}'{did_you_mean} its options: {known}")
