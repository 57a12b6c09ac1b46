"""The CLI: help, version, plugins, list; errors as one sentence with exit 2."""

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from sslkit import __version__
from sslkit.cli import cli

from test_core_plugins import EXAMPLES, fixture


def run(*args, env=None):
    return CliRunner().invoke(cli, list(args), env=env)


def test_help_describes_every_command():
    result = run("--help")
    assert result.exit_code == 0
    for command in ("plugins", "list"):
        assert f"  {command} " in result.output


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and __version__ in result.output


def test_plugins_json_lists_sources_and_registrations():
    result = run("--plugin", fixture("everything"), "plugins", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    row = next(p for p in data["plugins"] if p["name"] == "everything")
    assert row["registers"]["maskers"] == ["fixture-masker"]
    assert row["source"].endswith("everything.py")


def test_plugins_table_shows_failures():
    result = run("--plugin", fixture("broken_on_import"), "plugins")
    assert result.exit_code == 0
    assert "broken_on_import" in result.output and "failed" in result.output


def test_list_maskers_shows_descriptions_and_options():
    result = run("--plugin", fixture("everything"), "list", "maskers", "--json")
    entry = next(e for e in json.loads(result.stdout) if e["name"] == "fixture-masker")
    assert entry["description"] == "a masker from a fixture"
    assert entry["options"] == {"size": {"help": "area", "default": 0.5}}


def test_list_glob_filters_and_unmatched_glob_is_an_error():
    ok = run("--plugin", fixture("everything"), "list", "maskers", "fixture-*", "--json")
    assert [e["name"] for e in json.loads(ok.stdout)] == ["fixture-masker"]
    bad = run("list", "maskers", "zzz*")
    assert bad.exit_code == 2 and "no maskers match 'zzz*'" in bad.output


def test_unknown_command_suggests_closest():
    result = run("lsit")
    assert result.exit_code == 2
    assert "unknown command 'lsit'; did you mean 'list'?" in result.output


def test_misspelt_hook_plugin_is_one_sentence():
    result = run("--plugin", fixture("misspelt_hook"), "list", "maskers")
    assert result.exit_code == 2
    assert "register_maskerz" in result.output and "Traceback" not in result.output


def test_missing_plugin_file_is_one_sentence():
    result = run("--plugin", "no/such/file.py", "plugins")
    assert result.exit_code == 2 and "plugin file 'no/such/file.py' does not exist" in result.output


def sslkit_subprocess(*args, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "sslkit", *args], capture_output=True, text=True, env=env, timeout=120)


def test_real_subprocess_lists_builtin_maskers_and_dropin():
    proc = sslkit_subprocess("--plugin", str(EXAMPLES / "stripes_masker.py"), "list", "maskers", "--json")
    assert proc.returncode == 0, proc.stderr
    names = {e["name"] for e in json.loads(proc.stdout)}
    assert {"random", "stripes"} <= names


def test_real_subprocess_unknown_masker_lookup_exits_2_without_traceback():
    proc = sslkit_subprocess("list", "maskers", "rnadom")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


def test_installed_example_package_appears_without_changes_to_sslkit(tmp_path):
    """pip-installs the example plugin package into a private folder, then asks sslkit."""
    target = tmp_path / "site"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(EXAMPLES / "sslkit-checkerboard")],
        capture_output=True, text=True, timeout=300,
    )
    if pip.returncode != 0:
        pytest.fail(f"pip could not install the example plugin: {pip.stderr[-800:]}")
    env = {"PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}
    listing = sslkit_subprocess("list", "maskers", "--json", env_extra=env)
    assert listing.returncode == 0, listing.stderr
    assert "checkerboard" in {e["name"] for e in json.loads(listing.stdout)}
    table = sslkit_subprocess("plugins", "--json", env_extra=env)
    row = next(p for p in json.loads(table.stdout)["plugins"] if p["name"] == "checkerboard")
    assert row["source"] == "entry point (sslkit-checkerboard 0.1.0)"
