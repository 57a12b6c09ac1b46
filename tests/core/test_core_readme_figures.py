"""The README's figures stay tied to the commands that measure them (benchmarks/readme_figures.py).

A figure in the README can only change together with its entry in that list (the quoted text must
be in the README), every ``sslkit`` command of the list is one the CLI accepts as written, and the
exact figures that take seconds (the duplicate audit's counts on BUSI) are measured again here.
"""

from __future__ import annotations

import importlib.util
import shlex
import sys
from pathlib import Path

import click
import pytest

from sslkit.cli import cli

ROOT = Path(__file__).resolve().parents[2]
def _load_figures():
    spec = importlib.util.spec_from_file_location("readme_figures", ROOT / "benchmarks" / "readme_figures.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["readme_figures"] = module
    spec.loader.exec_module(module)
    return module


figures = _load_figures()
README = figures.normalised((ROOT / "README.md").read_text(encoding="utf-8"))
BUSI = ROOT / figures.BUSI64.removeprefix("npz:")  # the data every BUSI figure's command reads


def test_figure_names_are_unique_and_every_figure_has_commands_and_a_quote():
    names = figures.figure_names()
    assert len(names) == len(set(names))
    for figure in figures.FIGURES:
        assert figure.commands and figure.quoted and figure.minutes > 0, figure.name


@pytest.mark.parametrize("figure", figures.FIGURES, ids=lambda f: f.name)
def test_every_quoted_figure_is_in_the_readme(figure):
    for text in figure.quoted:
        assert figures.normalised(text) in README, f"{figure.name}: README no longer says {text!r}"


def _sslkit_invocations(command: str, work: Path) -> list[list[str]]:
    """The ``sslkit ...`` argument lists of one shell line (split at && and |)."""
    lexer = shlex.shlex(command.format(work=work, python=sys.executable), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    parts: list[list[str]] = [[]]
    for token in lexer:
        if token in ("|", "&&", ";", "||"):
            parts.append([])
        else:
            parts[-1].append(token)
    calls = []
    for words in parts:
        while words and "=" in words[0] and not words[0].startswith("-"):  # VAR=value prefixes
            words.pop(0)
        if words and words[0] == "sslkit":
            calls.append(words[1:])
    return calls


def _parse(args: list[str]) -> None:
    """Parse ``args`` as the CLI would, down to the command's own options, without running it."""
    command: click.Command = cli
    ctx = click.Context(cli, info_name="sslkit")
    while isinstance(command, click.Group):
        name, *args = args
        found = command.get_command(ctx, name)
        assert found is not None, f"no command {name!r}"
        command, ctx = found, click.Context(found, info_name=name, parent=ctx)
    command.make_context(ctx.info_name, list(args), parent=ctx.parent)


@pytest.mark.parametrize("figure", figures.FIGURES, ids=lambda f: f.name)
def test_every_sslkit_command_of_a_figure_parses(figure, tmp_path):
    for command in figure.commands:
        for args in _sslkit_invocations(command, tmp_path):
            _parse(args)


def test_a_misspelt_option_would_be_caught():
    with pytest.raises(click.UsageError):
        _parse(["pretrain", "--epoch", "5"])


@pytest.mark.skipif(not BUSI.exists(), reason=f"real BUSI data not found at {BUSI}")
@pytest.mark.parametrize("name", ["audit", "audit-thresholds"])
def test_the_audit_figures_the_readme_quotes_are_measured_again(name, tmp_path, capsys):
    figure = next(f for f in figures.FIGURES if f.name == name)
    assert figures.run_figure(figure, tmp_path, tmp_path), capsys.readouterr().out


def test_the_shell_lines_are_split_into_their_sslkit_calls(tmp_path):
    line = "sslkit pretrain --epochs 2 --out {work}/a && sslkit finetune --encoder {work}/a | grep '^|' x"
    assert _sslkit_invocations(line, tmp_path) == [
        ["pretrain", "--epochs", "2", "--out", f"{tmp_path}/a"], ["finetune", "--encoder", f"{tmp_path}/a"]]
    every = [call for f in figures.FIGURES for c in f.commands for call in _sslkit_invocations(c, tmp_path)]
    assert len(every) >= 25  # the parse test above is not vacuous (27 calls when written)
