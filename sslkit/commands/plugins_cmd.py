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
    from rich.markup import escape
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
                "warnings": list(info.warnings),
            }
        )
    failures = [{"name": f.name, "source": f.source, "error": f.error} for f in plugins.failures]
    environment = _environment()
    if as_json:
        click.echo(json.dumps({"plugins": rows, "failures": failures, "environment": environment}, indent=2))
        return
    table = Table(title="sslkit plugins", show_lines=False)
    table.add_column("plugin", style="bold")
    table.add_column("from")
    table.add_column("registers")
    for row in rows:
        reg = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in row["registers"].items())
        if not reg:
            reg = "(commands only)" if "register_commands" in row["hooks"] else "(nothing)"
        reg += "".join(f"\n[yellow]warning: {escape(w)}[/yellow]" for w in row["warnings"])
        table.add_row(escape(row["name"]), escape(row["source"]), reg)
    for f in failures:
        table.add_row(f"[red]{f['name']}[/red]", f["source"], f"[red]failed: {f['error']}[/red]")
    console = Console()
    console.print(table)
    console.print(
        f"sslkit {environment['sslkit']}, torch {environment['torch']}; --device auto -> {environment['device']}; "
        f"{escape(environment['precision'])}"
    )


def _environment() -> dict[str, str]:
    """What a bug report needs: versions, and what the ``auto`` device and precision become here."""
    import torch

    from sslkit import __version__
    from sslkit.engine.device import precision_report, resolve_device

    device = resolve_device("auto")
    return {"sslkit": __version__, "torch": torch.__version__, "device": str(device),
            "precision": precision_report(device)}
