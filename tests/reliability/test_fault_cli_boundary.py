"""The CLI boundary: OS errors and unexpected errors become one sentence and exit 1; ``--debug``
(or SSLKIT_DEBUG=1) shows the traceback; Ctrl-C exits 130; bad run folders are refused up front."""

from __future__ import annotations

import errno

import pytest
from fault_helpers import one_sentence

BOOM_PLUGIN = '''
import errno
import click
from sslkit.hookspecs import hookimpl

@hookimpl
def register_commands(cli):
    @cli.command("boom")
    @click.argument("kind")
    def boom(kind):
        if kind == "full":
            raise OSError(errno.ENOSPC, "No space left on device", "/data/out.bin")
        if kind == "denied":
            raise PermissionError(errno.EACCES, "Permission denied", "/etc/shadow")
        if kind == "torch":
            try:
                raise OSError(errno.ENOSPC, "No space left on device")
            except OSError:
                raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64")
        if kind == "bug":
            raise ValueError("k must be positive")
        if kind == "ctrl-c":
            raise KeyboardInterrupt
'''


@pytest.fixture
def boom(tmp_path):
    path = tmp_path / "boom_plugin.py"
    path.write_text(BOOM_PLUGIN)
    return str(path)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("full", "Error: '/data/out.bin': No space left on device; free some space"),
        ("denied", "Error: '/etc/shadow': Permission denied; choose a folder you may write to"),
        ("torch", "Error: No space left on device; free some space"),
    ],
)
def test_os_errors_are_one_sentence_with_exit_1(cli, boom, kind, expected):
    code, _, err = cli("--plugin", boom, "boom", kind)
    assert code == 1
    assert one_sentence(err).startswith(expected)


def test_unexpected_error_names_the_debug_switch(cli, boom):
    code, _, err = cli("--plugin", boom, "boom", "bug")
    assert code == 1
    line = one_sentence(err)
    assert line.startswith("Error: unexpected ValueError: k must be positive")
    assert "--debug" in line and "SSLKIT_DEBUG=1" in line


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_full_traceback(cli, boom, monkeypatch, how):
    args = ["--plugin", boom, "boom", "full"]
    if how == "flag":
        args.insert(0, "--debug")
    else:
        monkeypatch.setenv("SSLKIT_DEBUG", "1")
    code, _, err = cli(*args)
    assert code == 1
    assert "Traceback (most recent call last)" in err and "OSError" in err
    assert err.strip().splitlines()[-1].startswith("Error: '/data/out.bin': No space left on device")


def test_ctrl_c_outside_training_exits_130(cli, boom):
    code, _, err = cli("--plugin", boom, "boom", "ctrl-c")
    assert code == 130
    assert err.strip() == "Interrupted."


def test_out_that_is_a_file_is_refused(cli, tiny_args, tmp_path):
    target = tmp_path / "f"
    target.write_text("")
    code, _, err = cli("pretrain", *tiny_args, "--out", str(target))
    assert code == 2
    assert one_sentence(err) == f"Error: '{target}' is a file, not a run directory; choose another --out"


def test_unwritable_out_is_one_sentence(cli, tiny_args, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = cli("pretrain", *tiny_args, "--out", str(blocker / "run"))  # a folder inside a file
    assert code == 1
    assert one_sentence(err).startswith(f"Error: cannot create the run directory '{blocker / 'run'}': Not a directory")


def test_logdir_that_is_a_file_leaves_no_stub_run_folder(cli, tiny_args, tmp_path):
    logdir = tmp_path / "f"
    logdir.write_text("")
    code, _, err = cli("pretrain", *tiny_args, "--out", str(tmp_path / "run"), "--logdir", str(logdir))
    assert code == 2
    assert "--logdir" in one_sentence(err) and "is a file" in err
    assert not (tmp_path / "run").exists()


def test_error_after_the_run_folder_exists_removes_the_stub(cli, tiny_args, tmp_path):
    # the data is only opened after the run folder is locked: a bad data option is found then
    code, _, err = cli("pretrain", *tiny_args, "--data-opt", "nonsense=1", "--out", str(tmp_path / "run"))
    assert code == 2
    assert "has no option 'nonsense'" in one_sentence(err)
    assert "did you mean" not in err  # 'nonsense' is not close to any option
    assert not (tmp_path / "run").exists()


def test_describe_os_error_names_both_files():
    from sslkit.errors import describe_os_error

    error = OSError(errno.EXDEV, "Invalid cross-device link", "a", None, "b")
    assert describe_os_error(error) == "'a' -> 'b': Invalid cross-device link"


def test_knn_with_k_zero_is_a_usage_error(cli, tmp_path):
    """Issue item 3: ``evaluate --knn -k 0`` is refused by the option itself (exit 2), before any
    encoder is read."""
    code, _, err = cli("evaluate", "--knn", "--encoder", str(tmp_path), "-k", "0")
    assert code == 2
    assert "0 is not in the range x>=1" in err and "Traceback" not in err
