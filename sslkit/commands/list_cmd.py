"""`sslkit list maskers|backbones|datasets [GLOB]`: registered names with one-line descriptions."""

from __future__ import annotations

import fnmatch
import json

import click

KINDS = {"maskers": "maskers", "backbones": "backbones", "datasets": "datasets"}


def _options_text(entry) -> str:
    defaults = entry.option_defaults()
    parts = []
    for name, help_text in entry.options.items():
        default = f" (default {defaults[name]!r})" if name in defaults else ""
        parts.append(f"{name}: {help_text}{default}")
    return "\n".join(parts)


@click.command("list")
@click.argument("kind", type=click.Choice(sorted(KINDS)), metavar="{maskers|backbones|datasets}")
@click.argument("pattern", required=False, default="*", metavar="[GLOB]")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")
@click.option("--options/--no-options", "show_options", default=True, help="Show each entry's options.")
@click.pass_context
def list_command(ctx: click.Context, kind: str, pattern: str, as_json: bool, show_options: bool) -> None:
    """List registered maskers, backbones or dataset adapters, optionally filtered by a glob.

    \b
    Examples:
      sslkit list maskers
      sslkit list backbones 'resnet*'
    """
    from rich.console import Console
    from rich.table import Table

    from sslkit.cli import load_plugins_for
    from sslkit.errors import UserError

    registry = load_plugins_for(ctx).registry(KINDS[kind])
    entries = [e for e in registry.entries() if fnmatch.fnmatch(e.name, pattern)]
    if not entries and pattern != "*":
        raise UserError(f"no {kind} match '{pattern}'; try 'sslkit list {kind}' to see all {len(registry)}")
    if as_json:
        click.echo(json.dumps([
            {"name": e.name, "description": e.description, "plugin": e.plugin,
             "options": {k: {"help": v, "default": e.option_defaults().get(k)} for k, v in e.options.items()}}
            for e in entries
        ], indent=2, default=str))
        return
    table = Table(title=f"{kind} ({len(entries)})")
    table.add_column("name", style="bold")
    table.add_column("description")
    table.add_column("plugin")
    if show_options:
        table.add_column("options (--masker-opt key=value)" if kind == "maskers" else "options")
    for e in entries:
        row = [e.name, e.description, e.plugin]
        if show_options:
            row.append(_options_text(e))
        table.add_row(*row)
    Console().print(table)
