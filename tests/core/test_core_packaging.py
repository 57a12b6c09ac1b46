"""Packaging: every Python package in the tree is listed in pyproject (the plugins/ rename needs it)."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_directory_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for top, import_name in (("sslkit", "sslkit"), ("plugins", "sslkit_plugins")):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            found.add(".".join([import_name, *rel.parts]))
    assert found - listed == set(), f"add these to [tool.setuptools] packages: {sorted(found - listed)}"


def test_every_builtin_entry_point_module_exists():
    eps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["sslkit"]
    for name, target in eps.items():
        rel = Path(*target.split(".")[1:])
        assert (ROOT / "plugins" / f"{rel}.py").is_file() or (ROOT / "plugins" / rel / "__init__.py").is_file(), name
