"""Discovery stays cheap: registering names imports neither torch nor timm, and factories named by
reference ("module:attribute") or families (timm's models) are only loaded when asked for."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap

import pytest

from sslkit.errors import UserError
from sslkit.plugins import load_plugins
from sslkit.references import resolve, static_defaults
from sslkit.registry import Registry

HEAVY = ("torch", "timm", "albumentations", "sklearn")


def _modules_after(args: list[str]) -> dict:
    """Run the CLI with ``args`` in a fresh interpreter; which heavy modules got imported, and the exit code."""
    code = textwrap.dedent(f"""
        import json, sys
        from sslkit.cli import run_cli
        rc = run_cli({args!r})
        print(json.dumps({{"rc": rc, "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
    """)
    env = {**os.environ, "SSLKIT_PLUGINS": ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("args, rc", [
    (["list", "maskers"], 0),
    (["list", "datasets"], 0),
    (["plugins"], 0),
    (["pretrain", "--masker", "rnadom"], 2),
    (["pretrain", "--data", "nzp:x.npz"], 2),
    (["--help"], 0),
    (["finetune", "--help"], 0),
    (["compare", "--help"], 0),
])
def test_discovery_imports_no_heavy_library(args, rc):
    result = _modules_after(args)
    assert result["rc"] == rc
    assert result["heavy"] == [], f"sslkit {' '.join(args)} imported {result['heavy']}"


def test_the_static_reading_of_defaults_agrees_with_the_real_signatures():
    plugins = load_plugins(include_env=False)
    checked = 0
    for registry in (plugins.maskers, plugins.datasets):
        for entry in registry._entries.values():  # the explicit entries (no family listing needed)
            if not isinstance(entry.target, str):
                continue
            static = static_defaults(entry.target)
            real = {n: p.default for n, p in inspect.signature(resolve(entry.target)).parameters.items()
                    if p.default is not inspect.Parameter.empty}
            assert static == real, entry.name
            checked += 1
    assert checked >= len(plugins.maskers._entries)  # every built-in masker is listed without an import


def test_static_defaults_gives_up_on_what_it_cannot_read(tmp_path, monkeypatch):
    (tmp_path / "lazy_fixture_mod.py").write_text(
        "SIZE = 3\nLIMIT = compute()\n"
        "def plain(a, b=SIZE, *, c='x', d=None): pass\n"
        "def computed(a=LIMIT): pass\n"
        "class Cls:\n    def __init__(self, n=2, *, m=(1, 2)): pass\n"
        "class Inherits(Cls): pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert static_defaults("lazy_fixture_mod:plain") == {"b": 3, "c": "x", "d": None}
    assert static_defaults("lazy_fixture_mod:Cls") == {"n": 2, "m": (1, 2)}
    assert static_defaults("lazy_fixture_mod:computed") is None  # not a literal: the caller imports
    assert static_defaults("lazy_fixture_mod:Inherits") is None  # inherited signature: the caller imports
    assert "lazy_fixture_mod" not in sys.modules


def test_a_family_is_listed_only_when_a_name_outside_the_explicit_entries_is_asked_for():
    calls = []

    def list_names():
        calls.append(1)
        return ["alpha", "beta"]

    registry = Registry("backbone")
    registry.register("explicit", lambda: "built", "one")
    registry.register_family("fam", list_names, lambda member, **opts: (member, opts), "two")
    assert registry.get("explicit").factory() == "built"
    assert "explicit" in registry and calls == []
    assert registry.create("beta", x=1) == ("beta", {"x": 1})
    assert calls == [1]
    assert registry.names() == ["alpha", "beta", "explicit"] and calls == [1]  # listed once
    with pytest.raises(UserError, match="did you mean 'alpha'"):
        registry.get("alpah")


def test_a_family_that_cannot_list_its_names_is_one_sentence():
    registry = Registry("backbone")
    registry.register_family("broken", lambda: 1 / 0, lambda member: member, "")
    with pytest.raises(UserError, match="family 'broken' .* could not list its names: ZeroDivisionError"):
        registry.get("anything")


def test_a_reference_that_is_no_module_attribute_pair_is_refused():
    with pytest.raises(UserError, match="neither callable nor a 'module:attribute' reference"):
        Registry("masker").register("x", "not a reference")


def test_timm_is_a_family_named_by_sslkit_plugins():
    plugins = load_plugins(include_env=False)
    assert plugins.info["timm"].families == {"backbones": [plugins.info["timm"].families["backbones"][0]]}
    assert "resnet18" in plugins.backbones  # listing on demand finds the model
