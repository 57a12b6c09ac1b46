"""Named registries of factories: maskers, backbones and dataset adapters.

Plugins fill a :class:`Registry` through the ``register_*`` hooks; the core only ever asks a
registry for a name. An unknown name is a :class:`~sslkit.errors.UserError` that lists the known
names and suggests the closest, so a typo never ends in a traceback.

Registering is cheap so that discovery commands stay under a second: a factory may be a
``"module:attribute"`` reference (:mod:`sslkit.references`), imported when first built, and a
*family* (timm's 1,300+ models) registers a function that lists its names, called only when a
name outside the explicit entries is asked for or the whole registry is listed.
"""

from __future__ import annotations

import difflib
import inspect
import sys
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Generic, Iterable, Iterator, TypeVar, Union

from sslkit.errors import UserError
from sslkit.references import is_reference, resolve, static_defaults

T = TypeVar("T")
MAX_LISTED = 25

#: What a plugin registers as a factory: the callable, or a "module:attribute" reference to it.
Target = Union[Callable[..., Any], str]


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered name: the factory that builds it and where it came from."""

    name: str
    target: Target
    """The factory, or a ``"module:attribute"`` reference to it (imported by :attr:`factory`)."""
    description: str = ""
    plugin: str = "?"
    options: dict[str, str] = field(default_factory=dict)
    """Option name -> one-line help, shown by ``sslkit list``; defaults come from the factory."""
    bound_name: str | None = None
    """For a family's member: the name passed to the family's factory as its first argument."""

    @property
    def factory(self) -> Callable[..., T]:
        """The callable that builds this entry (importing a referenced module on first use)."""
        factory = resolve(self.target) if isinstance(self.target, str) else self.target
        return partial(factory, self.bound_name) if self.bound_name is not None else factory

    def option_defaults(self) -> dict[str, Any]:
        """The factory's keyword defaults, so help can show them without duplicating them (read
        from source while a referenced module is not imported yet: see :mod:`sslkit.references`)."""
        if isinstance(self.target, str) and self.target.partition(":")[0] not in sys.modules:
            static = static_defaults(self.target)
            if static is not None:
                return static
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


@dataclass(frozen=True)
class Family:
    """Many names sharing one factory, listed only when needed (``list_names`` may be slow)."""

    name: str
    list_names: Callable[[], Iterable[str]]
    target: Target
    """Called as ``factory(member_name, **options)``."""
    description: str
    """One line for the family; a member's description is ``"<family> <member>"``."""
    plugin: str = "?"
    options: dict[str, str] = field(default_factory=dict)


class Registry(Generic[T]):
    """Name -> factory, filled by plugins. ``kind`` ("masker", ...) is used in messages."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._families: list[Family] = []
        self._pending: list[Family] = []
        """Families whose names are not listed yet."""

    def register(
        self,
        name: str,
        factory: Target,
        description: str = "",
        *,
        options: dict[str, str] | None = None,
        plugin: str = "?",
    ) -> None:
        """Add ``name`` (``factory``: a callable or a ``"module:attribute"`` reference); a second
        plugin claiming the same name is an error naming both."""
        self._check_new(name, plugin)
        if not callable(factory) and not is_reference(factory):
            raise UserError(f"plugin '{plugin}' registered {self.kind} '{name}' with a factory that is neither "
                            f"callable nor a 'module:attribute' reference: {factory!r}")
        self._entries[name] = Entry(name, factory, description.strip(), plugin, dict(options or {}))

    def register_family(
        self,
        name: str,
        list_names: Callable[[], Iterable[str]],
        factory: Target,
        description: str = "",
        *,
        options: dict[str, str] | None = None,
        plugin: str = "?",
    ) -> None:
        """Add a family: ``list_names()`` is called only when a name outside the explicit entries
        is asked for or the registry is listed; ``factory(member, **options)`` builds a member."""
        family = Family(name, list_names, factory, description.strip(), plugin, dict(options or {}))
        self._families.append(family)
        self._pending.append(family)

    def families(self) -> list[Family]:
        return list(self._families)

    def _check_new(self, name: object, plugin: str) -> None:
        if not isinstance(name, str) or not name:
            raise UserError(f"plugin '{plugin}' registered a {self.kind} with an empty or non-text name")
        if name in self._entries:
            first = self._entries[name].plugin
            raise UserError(
                f"{self.kind} '{name}' is registered twice: by plugin '{first}' and by plugin '{plugin}'"
            )

    def _expand(self) -> None:
        """List every pending family's names into entries (once)."""
        while self._pending:
            family = self._pending.pop(0)
            try:
                members = list(family.list_names())
            except Exception as error:  # noqa: BLE001 - a broken family is one sentence, not a traceback
                raise UserError(f"{self.kind} family '{family.name}' of plugin '{family.plugin}' could not list "
                                f"its names: {type(error).__name__}: {error}") from None
            for member in members:
                self._check_new(member, family.plugin)
                self._entries[member] = Entry(member, family.target, f"{family.name} {member}", family.plugin,
                                              dict(family.options), bound_name=member)

    def names(self) -> list[str]:
        self._expand()
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        if name not in self._entries:
            self._expand()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._expand()
        return len(self._entries)

    def get(self, name: str) -> Entry[T]:
        """The entry for ``name``; unknown -> UserError with the known names and the closest."""
        if name not in self:
            raise UserError(unknown_name_message(self.kind, name, self.names()))
        return self._entries[name]

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
