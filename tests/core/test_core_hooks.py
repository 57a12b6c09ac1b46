"""One test per hook (test_hook_<name>), and a meta-test that keeps it that way."""

import inspect
import sys

from click.testing import CliRunner

from sslkit import hookspecs
from sslkit.cli import cli
from sslkit.plugins import load_plugins

from test_core_plugins import fixture


def hook_names():
    return sorted(n for n, f in vars(hookspecs).items() if inspect.isfunction(f) and hasattr(f, "sslkit_spec"))


def test_every_hook_has_a_test_and_a_docstring():
    module = sys.modules[__name__]
    for name in hook_names():
        assert hasattr(module, f"test_hook_{name}"), f"hook {name} has no test_hook_{name}"
        doc = getattr(hookspecs, name).__doc__ or ""
        assert "Receives" in doc and "Returns" in doc, f"hook {name} does not document what it receives and returns"
    assert set(hook_names()) == {"register_maskers", "register_backbones", "register_datasets", "register_tasks",
                                 "register_commands"}


def test_hook_register_maskers():
    assert load_plugins([fixture("everything")], entry_points=False).maskers.get("fixture-masker").options == {"size": "area"}


def test_hook_register_backbones():
    assert "fixture-backbone" in load_plugins([fixture("everything")], entry_points=False).backbones


def test_hook_register_datasets():
    assert "fixture-data" in load_plugins([fixture("everything")], entry_points=False).datasets


def test_hook_register_tasks():
    plugins = load_plugins([fixture("lesion_area_task")], entry_points=False)
    assert "lesion-area" in plugins.tasks
    assert plugins.tasks.create("lesion-area").target == "lesion"


def test_hook_register_commands():
    result = CliRunner().invoke(cli, ["--plugin", fixture("everything"), "fixture-hello"])
    assert result.exit_code == 0, result.output
    assert "hello from a plugin command" in result.output
