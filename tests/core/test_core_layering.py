"""The import rules of sslkit's layers, checked on the source (imports inside functions count)."""

from __future__ import annotations

import ast
from pathlib import Path

import sslkit

ROOT = Path(sslkit.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """module -> the sslkit modules it imports (``from sslkit.data import X`` counts as sslkit.data,
    and as sslkit.data.X when X is a module)."""
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sslkit"):
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names if alias.name.startswith("sslkit"))
        edges[name] = {m for m in found if m in modules and m != name}
    return edges


#: package -> the sslkit packages it must never import: the building blocks (data, models,
#: evaluation) sit below every engine; pretraining and fine-tuning are independent of each other,
#: and comparison sits above both.
ENGINES = ("sslkit.engine", "sslkit.pretraining", "sslkit.finetuning", "sslkit.comparison", "sslkit.commands")
FORBIDDEN = {
    "data": ENGINES,
    "models": ENGINES,
    "evaluation": ENGINES,
    "engine": ("sslkit.pretraining", "sslkit.finetuning", "sslkit.comparison", "sslkit.commands"),
    "pretraining": ("sslkit.finetuning", "sslkit.comparison", "sslkit.commands"),
    "finetuning": ("sslkit.pretraining", "sslkit.comparison", "sslkit.commands"),
    "comparison": ("sslkit.commands",),
}


def test_each_layer_imports_only_the_layers_below_it():
    wrong = sorted(f"{module} imports {target}" for module, targets in _imports().items()
                   for target in targets
                   for package in module.split(".")[1:2]
                   if target.startswith(tuple(f"{p}." for p in FORBIDDEN.get(package, ())))
                   or target in FORBIDDEN.get(package, ()))
    assert wrong == []


def test_the_engines_are_packages_without_flat_prefixes():
    """One folder per engine: no ``compare_*`` or ``finetune_*`` module names standing in for folders."""
    flat = sorted(p.name for p in ROOT.rglob("*.py") if p.name.startswith(("compare_", "finetune_", "pretrain_"))
                  and p.parent.name != "commands")
    assert flat == []


def test_no_two_modules_import_each_other():
    edges = _imports()
    mutual = sorted({tuple(sorted((a, b))) for a, targets in edges.items() for b in targets if a in edges.get(b, ())})
    assert mutual == []


def test_the_checks_see_imports():
    """Guard against a checker that finds nothing: known imports are found, inside functions too."""
    edges = _imports()
    assert "sslkit.finetuning.protocols" in edges["sslkit.finetuning.classifier"]
    assert "sslkit.finetuning.run" in edges["sslkit.comparison.cells"]  # imported inside a function


def test_no_module_re_exports_another_modules_names():
    """Names are imported from where they are defined: no module keeps an unused import alive for
    others to import through it (the ``# noqa: F401`` "as before the split" shims). Package
    ``__init__`` files are the public faces of their packages and may gather names."""
    shims = sorted(str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py")
                   if p.name != "__init__.py" and "noqa: F401" in p.read_text(encoding="utf-8"))
    assert shims == []
