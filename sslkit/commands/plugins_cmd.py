"""`sslkit plugins`: what loaded, where from, and what each plugin registers."""

from __future__ import annotations

import json

import click


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")
@click.pass_context
def plugins_command(ctx: click.Context, as_json: bool) -> None:
    """List loaded plugins, where each came from and what it registers."""
    from rich.console import Console
    from rich.table import Table

    from sslkit.cli import load_plugins_for

    plugins = load_plugins_for(ctx)
    rows = []
    for info in sorted(plugins.info.values(), key=lambda i: i.name):
        rows.append(
            {
                "name": info.name,
                "source": info.source,
                "hooks": info.hooks,
                "registers": {k: (v if len(v) <= 12 else v[:12] + [f"... {len(v)} in all"]) for k, v in info.registers.items()},
            }
        )
    failures = [{"name": f.name, "source": f.source, "error": f.error} for f in plugins.failures]
    if as_json:
        click.echo(json.dumps({"plugins": rows, "failures": failures}, indent=2))
        return
    table = Table(title="sslkit plugins", show_lines=False)
    table.add_column("plugin", style="bold")
    table.add_column("from")
    table.add_column("registers")
    for row in rows:
        reg = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in row["registers"].items()) or "(commands only)"
        table.add_row(row["name"], row["source"], reg)
    for f in failures:
        table.add_row(f"[red]{f['name']}[/red]", f["source"], f"[red]failed: {f['error']}[/red]")
    Console().print(table)
