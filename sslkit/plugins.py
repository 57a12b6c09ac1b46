"""Loading plugins: built-ins and installed packages (entry points), then drop-in files.

Order: hookspecs -> every entry point in group ``sslkit`` (sslkit's own built-ins in
``plugins/`` are registered exactly like a third-party package's) -> files given with
``--plugin FILE`` or listed in ``$SSLKIT_PLUGINS`` -> ``pm.check_pending()``, so a hook
function with a misspelt name fails loudly instead of being ignored. A function named like a hook
but missing its ``@hookimpl`` marker (pluggy ignores it) is named in a warning
(:attr:`PluginInfo.warnings`, printed once by the CLI and shown by ``sslkit plugins``).

A plugin that fails to import, or whose hook raises, is recorded in :attr:`Plugins.failures`
(its name and the error) and the others still load. Names in ``$SSLKIT_DISABLE_PLUGINS`` (comma
separated) are not loaded at all, like pytest's ``-p no:NAME``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import pluggy

from sslkit import hookspecs
from sslkit.errors import UserError
from sslkit.registry import Registry, closest

ENTRY_POINT_GROUP = "sslkit"
PLUGIN_FILES_ENV = "SSLKIT_PLUGINS"
DISABLE_ENV = "SSLKIT_DISABLE_PLUGINS"

#: hook name -> (registry attribute, kind used in messages)
REGISTRY_HOOKS = {
    "register_maskers": ("maskers", "masker"),
    "register_backbones": ("backbones", "backbone"),
    "register_datasets": ("datasets", "dataset adapter"),
    "register_tasks": ("tasks", "task"),
}


@dataclass
class PluginInfo:
    """What ``sslkit plugins`` shows for one loaded plugin."""

    name: str
    source: str
    """'entry point (dist VERSION)' or the file path."""
    hooks: list[str] = field(default_factory=list)
    registers: dict[str, list[str]] = field(default_factory=dict)
    families: dict[str, list[str]] = field(default_factory=dict)
    """Registry attribute -> "name: description" of each family (its names are listed on demand)."""
    warnings: list[str] = field(default_factory=list)
    """Problems that do not stop the plugin, e.g. a hook function without ``@hookimpl``."""


@dataclass
class PluginFailure:
    name: str
    source: str
    error: str


@dataclass
class Plugins:
    """The loaded plugin manager and the registries its hooks filled."""

    pm: pluggy.PluginManager
    maskers: Registry
    backbones: Registry
    datasets: Registry
    tasks: Registry
    info: dict[str, PluginInfo]
    failures: list[PluginFailure]

    def registry(self, kind: str) -> Registry:
        return getattr(self, kind)


def _disabled_names() -> set[str]:
    return {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}


def plugin_files_from_env() -> list[str]:
    """Files listed in ``$SSLKIT_PLUGINS`` (separated by ``os.pathsep``)."""
    return [p for p in os.environ.get(PLUGIN_FILES_ENV, "").split(os.pathsep) if p.strip()]


def _import_file(path: Path) -> Any:
    """Import a drop-in plugin file under a stable, unique module name."""
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    module_name = f"sslkit_dropin_{path.stem}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def _given(obj: Any) -> Any:
    """``obj`` itself: the loader of a plugin object registered in code."""
    return obj


def _entry_points() -> Iterable[importlib.metadata.EntryPoint]:
    return importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def build_plugin_manager(
    plugin_files: Sequence[str | os.PathLike] = (),
    *,
    entry_points: bool = True,
    extra_plugins: Sequence[tuple[str, Any]] = (),
) -> tuple[pluggy.PluginManager, dict[str, PluginInfo], list[PluginFailure]]:
    """Hookspecs, entry points, drop-in files; then ``check_pending``.

    ``extra_plugins`` are (name, object) pairs registered after the files (tests use it).
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    info: dict[str, PluginInfo] = {}
    failures: list[PluginFailure] = []
    disabled = _disabled_names()

    def add(name: str, source: str, load: Callable[[], Any]) -> None:
        if name in disabled:
            return
        if pm.has_plugin(name) or name in info:
            raise UserError(f"two plugins are both named '{name}': {info[name].source} and {source}")
        try:
            obj = load()
            pm.register(obj, name=name)
        except UserError:
            raise
        except Exception as error:  # a broken plugin must not take the others down
            failures.append(PluginFailure(name, source, _one_line(error)))
            return
        hooks = sorted(c.name for c in pm.get_hookcallers(obj) or [])
        info[name] = PluginInfo(name, source, hooks, warnings=_unmarked_hooks(name, obj, hooks))

    if entry_points:
        for ep in sorted(_entry_points(), key=lambda e: e.name):
            dist = getattr(ep, "dist", None)
            where = f"{dist.name} {dist.version}" if dist is not None else "unknown package"
            add(ep.name, f"entry point ({where})", ep.load)

    for raw in plugin_files:
        path = Path(raw).expanduser()
        if not path.is_file():
            raise UserError(f"plugin file '{raw}' does not exist")
        add(path.stem, str(path.resolve()), partial(_import_file, path.resolve()))

    for name, obj in extra_plugins:
        add(name, "registered in code", partial(_given, obj))

    unknown = _unknown_hooks(pm)
    if unknown:
        pname, hook = unknown[0]
        hint = closest(hook, HOOK_NAMES)
        suggestion = f" (did you mean '{hint}'?)" if hint else ""
        raise UserError(
            f"plugin '{pname}' has a hook sslkit does not know: '{hook}'{suggestion}; sslkit's hooks are "
            f"{', '.join(HOOK_NAMES)}"
        )
    pm.check_pending()  # anything else pluggy rejects (nothing is expected here)
    return pm, info, failures


#: The hooks of :mod:`sslkit.hookspecs`.
HOOK_NAMES = sorted(n for n in dir(hookspecs) if n.startswith("register_") and callable(getattr(hookspecs, n)))


def _unknown_hooks(pm: pluggy.PluginManager) -> list[tuple[str, str]]:
    """(plugin name, hook name) for each marked hook function whose name is no sslkit hook
    (named plainly, not with pluggy's module repr)."""
    found: list[tuple[str, str]] = []
    for hook_name in sorted(vars(pm.hook)):
        caller = getattr(pm.hook, hook_name)
        if getattr(caller, "spec", True) is None:
            found.extend((impl.plugin_name, hook_name) for impl in caller.get_hookimpls())
    return found


def _unmarked_hooks(name: str, obj: Any, marked: list[str]) -> list[str]:
    """Warnings for functions named like a hook but without ``@hookimpl`` (pluggy skips them)."""
    warnings = []
    for hook in HOOK_NAMES:
        if hook not in marked and callable(getattr(obj, hook, None)):
            warnings.append(
                f"plugin '{name}' defines {hook}() without @hookimpl, so it is ignored; "
                "decorate it with @sslkit.hookspecs.hookimpl"
            )
    return warnings


def _fill_registries(
    pm: pluggy.PluginManager, info: dict[str, PluginInfo], failures: list[PluginFailure]
) -> dict[str, Registry]:
    """Call each plugin's ``register_*`` hooks one plugin at a time, so every entry knows its
    plugin and one failing hook is reported without losing the others."""
    registries: dict[str, Registry] = {attr: Registry(kind) for attr, kind in REGISTRY_HOOKS.values()}
    for hook_name, (attr, _kind) in REGISTRY_HOOKS.items():
        caller = getattr(pm.hook, hook_name)
        for impl in caller.get_hookimpls():  # registration order (pluggy calls them reversed)
            name = impl.plugin_name
            registry = registries[attr]
            added: list[str] = []
            families: list[str] = []

            def register(rname, factory, description="", *, options=None, _p=name, _a=added, _r=registry):
                _r.register(rname, factory, description, options=options, plugin=_p)
                _a.append(rname)

            def register_family(fname, list_names, factory, description="", *, options=None, _p=name,
                                _f=families, _r=registry):
                _r.register_family(fname, list_names, factory, description, options=options, plugin=_p)
                _f.append(f"{fname}: {description}" if description else fname)

            offered = {"register": register, "register_family": register_family}
            try:
                impl.function(**{arg: offered[arg] for arg in impl.argnames})
            except UserError:
                raise
            except Exception as error:
                failures.append(PluginFailure(name, info[name].source if name in info else "?", _one_line(error)))
                continue
            if name in info and added:
                info[name].registers.setdefault(attr, []).extend(added)
            if name in info and families:
                info[name].families.setdefault(attr, []).extend(families)
    return registries


def load_plugins(
    plugin_files: Sequence[str | os.PathLike] = (),
    *,
    entry_points: bool = True,
    extra_plugins: Sequence[tuple[str, Any]] = (),
    include_env: bool = True,
) -> Plugins:
    """Load every plugin and fill the registries (see the module docstring for the order)."""
    files = list(plugin_files) + (plugin_files_from_env() if include_env else [])
    pm, info, failures = build_plugin_manager(files, entry_points=entry_points, extra_plugins=extra_plugins)
    regs = _fill_registries(pm, info, failures)
    return Plugins(pm, regs["maskers"], regs["backbones"], regs["datasets"], regs["tasks"], info, failures)


_cache: dict[tuple, Plugins] = {}


def get_plugins(plugin_files: Sequence[str | os.PathLike] = ()) -> Plugins:
    """Cached :func:`load_plugins` for the CLI and the engine (one load per process)."""
    key = (tuple(str(p) for p in plugin_files), os.environ.get(PLUGIN_FILES_ENV, ""), os.environ.get(DISABLE_ENV, ""))
    if key not in _cache:
        _cache[key] = load_plugins(plugin_files)
    return _cache[key]


def plugins_or_default(plugins: Plugins | None) -> Plugins:
    """``plugins`` when given, else :func:`get_plugins`: the one fallback for library callers
    (tests, notebooks) that do not pass the CLI's plugins down."""
    return plugins if plugins is not None else get_plugins()
