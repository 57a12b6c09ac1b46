"""Factories named by reference ("package.module:attribute"), imported only when first used.

A plugin that registers ``"sslkit_plugins.maskers.random_block.masker:RandomBlockMasker"`` instead
of the class itself keeps ``sslkit list``, ``sslkit plugins`` and a typo's error free of torch
(about 3 s to import): the module is imported when the factory is called, not when its name is
registered.

``sslkit list`` also shows each option's default, which lives in the factory's signature. For a
reference whose module is not imported yet, :func:`static_defaults` reads the signature from the
module's source with :mod:`ast` (literal defaults, or module-level constants bound to literals),
the way setuptools reads ``version = {attr = ...}`` without importing; anything it cannot read
statically makes it return None and the caller imports the module instead.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path
from typing import Any, Callable


def is_reference(target: object) -> bool:
    """A ``"module:attribute"`` string (what :func:`resolve` accepts)."""
    return isinstance(target, str) and target.count(":") == 1 and all(target.split(":"))


def resolve(reference: str) -> Callable[..., Any]:
    """Import ``module`` and return ``attribute`` (dotted attributes allowed) of ``"module:attribute"``."""
    module_name, _, attribute = reference.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    return obj


def static_defaults(reference: str) -> dict[str, Any] | None:
    """Keyword defaults of the function or class ``reference`` names, read from source without
    importing its module; None when they cannot all be read that way (the caller then imports)."""
    module_name, _, attribute = reference.partition(":")
    if "." in attribute:
        return None
    try:
        spec = importlib.util.find_spec(module_name)  # imports the parent packages only
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            return None
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    except (ImportError, OSError, SyntaxError, ValueError):
        return None
    constants = _literal_constants(tree)
    function = _signature_node(tree, attribute)
    if function is None:
        return None
    args = function.args
    positional = [*args.posonlyargs, *args.args]
    if isinstance(_find(tree, attribute), ast.ClassDef):
        positional = positional[1:]  # self
    pairs = list(zip(positional[len(positional) - len(args.defaults):], args.defaults))
    pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
    defaults: dict[str, Any] = {}
    for arg, node in pairs:
        try:
            defaults[arg.arg] = _value(node, constants)
        except (ValueError, TypeError, SyntaxError):
            return None
    return defaults


def _find(tree: ast.Module, name: str) -> ast.stmt | None:
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
            return node
    return None


def _signature_node(tree: ast.Module, name: str) -> ast.FunctionDef | None:
    """The function itself, or a class's own ``__init__`` (None: inherited, or not found)."""
    node = _find(tree, name)
    if isinstance(node, ast.FunctionDef):
        return node
    if isinstance(node, ast.ClassDef):
        for item in node.body:
            if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                return item
    return None


def _literal_constants(tree: ast.Module) -> dict[str, Any]:
    """Module-level ``NAME = <literal>`` (and annotated) assignments."""
    constants: dict[str, Any] = {}
    for node in tree.body:
        target, value = None, None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        if isinstance(target, ast.Name) and value is not None:
            try:
                constants[target.id] = ast.literal_eval(value)
            except (ValueError, TypeError, SyntaxError):
                constants.pop(target.id, None)
    return constants


def _value(node: ast.expr, constants: dict[str, Any]) -> Any:
    if isinstance(node, ast.Name):
        if node.id in constants:
            return constants[node.id]
        raise ValueError(node.id)
    return ast.literal_eval(node)
