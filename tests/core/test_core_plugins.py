"""Plugin loading: entry points, drop-in files, env var, and every failure mode."""

import importlib.metadata
import sys
from pathlib import Path

import pytest

from sslkit import plugins as plugin_loading
from sslkit.errors import UserError
from sslkit.plugins import load_plugins

FIXTURES = Path(__file__).resolve().parents[1] / "plugins"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def fixture(name: str) -> str:
    return str(FIXTURES / f"{name}.py")


def test_builtins_load_through_entry_points():
    loaded = load_plugins()
    eps = {ep.name for ep in importlib.metadata.entry_points(group="sslkit")}
    assert {"random", "dqn", "timm", "npz"} <= eps
    for name, info in loaded.info.items():
        assert info.source.startswith("entry point (sslkit "), (name, info.source)


def test_entry_point_of_a_third_party_package(monkeypatch):
    """The example package's entry point, loaded by the same code path as an installed one."""
    monkeypatch.syspath_prepend(str(EXAMPLES / "sslkit-checkerboard"))
    ep = importlib.metadata.EntryPoint("checkerboard", "sslkit_checkerboard", "sslkit")
    monkeypatch.setattr(plugin_loading, "_entry_points", lambda: [ep])
    loaded = load_plugins()
    assert "checkerboard" in loaded.maskers
    assert loaded.maskers.get("checkerboard").plugin == "checkerboard"
    assert loaded.info["checkerboard"].registers == {"maskers": ["checkerboard"]}


def test_dropin_file_registers_every_kind():
    loaded = load_plugins([fixture("everything")], entry_points=False)
    assert loaded.maskers.names() == ["fixture-masker"]
    assert loaded.backbones.create("fixture-backbone", in_chans=3) == ("backbone", 3)
    assert loaded.datasets.create("fixture-data", "somewhere") == ("data", "somewhere")
    assert loaded.info["everything"].source == str(Path(fixture("everything")).resolve())


def test_env_var_lists_dropin_files(monkeypatch):
    monkeypatch.setenv("SSLKIT_PLUGINS", fixture("everything"))
    loaded = load_plugins(entry_points=False)
    assert "fixture-masker" in loaded.maskers


def test_example_dropin_file_registers_stripes():
    loaded = load_plugins([str(EXAMPLES / "stripes_masker.py")], entry_points=False)
    assert loaded.maskers.get("stripes").description.startswith("Hide full-width")


def test_plugin_raising_on_import_is_reported_and_others_load():
    loaded = load_plugins([fixture("broken_on_import"), fixture("everything")], entry_points=False)
    assert "fixture-masker" in loaded.maskers
    [failure] = loaded.failures
    assert failure.name == "broken_on_import"
    assert "RuntimeError: this plugin is deliberately broken" == failure.error
    assert "sslkit_dropin_broken_on_import" not in " ".join(sys.modules)


def test_plugin_whose_hook_raises_is_reported_and_others_load():
    loaded = load_plugins([fixture("raising_hook"), fixture("everything")], entry_points=False)
    assert "fixture-masker" in loaded.maskers
    assert [(f.name, f.error) for f in loaded.failures] == [("raising_hook", "RuntimeError: hook exploded")]


def test_misspelt_hook_fails_loudly():
    with pytest.raises(UserError, match="plugin 'misspelt_hook' has a hook sslkit does not know.*register_maskerz"):
        load_plugins([fixture("misspelt_hook")], entry_points=False)


def test_two_plugins_registering_one_name_is_an_error_naming_both():
    with pytest.raises(UserError, match="masker 'twin' is registered twice: by plugin 'twin_a' and by plugin 'twin_b'"):
        load_plugins([fixture("twin_a"), fixture("twin_b")], entry_points=False)


def test_missing_plugin_file_names_it():
    with pytest.raises(UserError, match="plugin file 'nope/missing.py' does not exist"):
        load_plugins(["nope/missing.py"], entry_points=False)


def test_disabled_plugins_are_not_loaded(monkeypatch):
    monkeypatch.setenv("SSLKIT_DISABLE_PLUGINS", "everything, other")
    loaded = load_plugins([fixture("everything")], entry_points=False)
    assert len(loaded.maskers) == 0 and "everything" not in loaded.info
