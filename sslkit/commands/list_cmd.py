"""`sslkit list maskers|backbones|datasets|tasks [GLOB]`: registered names with one-line descriptions."""

from __future__ import annotations

import fnmatch
import json

import click

KINDS = {"maskers": "maskers", "backbones": "backbones", "datasets": "datasets", "tasks": "tasks"}


def _options_summary(entry) -> str:
    """``name=default`` for each option: compact enough for a table of many entries."""
    defaults = entry.option_defaults()
    return ", ".join(f"{n}={defaults[n]!r}" if n in defaults else n for n in entry.options)


def _options_table(entry):
    """Every option of one entry with its help and default (shown when one entry is listed)."""
    from rich.markup import escape
    from rich.table import Table

    defaults = entry.option_defaults()
    table = Table(title=f"options of {escape(entry.name)}", title_justify="left")
    table.add_column("option", style="bold")
    table.add_column("default")
    table.add_column("meaning")
    for name, help_text in entry.options.items():
        table.add_row(escape(name), escape(repr(defaults.get(name, ""))), escape(help_text))
    return table


@click.command("list")
@click.argument("kind", type=click.Choice(sorted(KINDS)), metavar="{maskers|backbones|datasets|tasks}")
@click.argument("pattern", required=False, default="*", metavar="[GLOB]")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")
@click.option(
    "--options/--no-options",
    "show_options",
    default=None,
    help="Explain every option (default: only when the pattern matches one entry).",
)
@click.pass_context
def list_command(ctx: click.Context, kind: str, pattern: str, as_json: bool, show_options: bool | None) -> None:
    """List registered maskers, backbones or dataset adapters, optionally filtered by a glob.

    \b
    Examples:
      sslkit list maskers
      sslkit list maskers dqn          (one entry: every option explained)
      sslkit list backbones 'resnet*'
    """
    from sslkit.console import make_console
    from rich.markup import escape
    from rich.table import Table

    from sslkit.cli import load_plugins_for
    from sslkit.errors import UserError

    registry = load_plugins_for(ctx).registry(KINDS[kind])
    entries = [e for e in registry.entries() if fnmatch.fnmatch(e.name, pattern)]
    if not entries and pattern != "*":
        from sslkit.registry import closest

        hint = closest(pattern, registry.names()) if not any(c in pattern for c in "*?[") else None
        suggestion = f"; did you mean '{hint}'?" if hint else ";"
        raise UserError(f"no {kind} match '{pattern}'{suggestion} try 'sslkit list {kind}' to see all {len(registry)}")
    if as_json:
        click.echo(json.dumps([
            {"name": e.name, "description": e.description, "plugin": e.plugin,
             "options": {k: {"help": v, "default": e.option_defaults().get(k)} for k, v in e.options.items()}}
            for e in entries
        ], indent=2, default=str))
        return
    opt_flag = {"maskers": "--masker-opt", "backbones": "--backbone-opt", "datasets": "--data-opt"}.get(kind)
    with_options = opt_flag is not None or any(e.options for e in entries)  # tasks take no options
    table = Table(title=f"{kind} ({len(entries)})")
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("description", ratio=3)
    table.add_column("plugin")
    if with_options:
        table.add_column(f"options ({opt_flag} key=value)" if opt_flag else "options", ratio=2)
    for e in entries:
        cells = [escape(e.name), escape(e.description), escape(e.plugin)]
        table.add_row(*cells, *([escape(_options_summary(e))] if with_options else []))
    console = make_console()
    console.print(table)
    if show_options or (show_options is None and len(entries) == 1):
        for e in entries:
            if e.options:
                console.print(_options_table(e))
