"""`sslkit plugins`: what loaded, where from, and what each plugin registers."""

from __future__ import annotations

import json

import click


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")
@click.option("--environment", "with_environment", is_flag=True,
              help="Also say what --device auto and --precision auto become here (imports torch: a few seconds).")
@click.pass_context
def plugins_command(ctx: click.Context, as_json: bool, with_environment: bool) -> None:
    """List loaded plugins, where each came from and what it registers.

    A family (timm's models) is named, not listed: 'sslkit list backbones' lists its names.
    """
    from sslkit.console import make_console
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
                "families": info.families,
                "warnings": list(info.warnings),
            }
        )
    failures = [{"name": f.name, "source": f.source, "error": f.error} for f in plugins.failures]
    environment = _environment(with_environment)
    if as_json:
        click.echo(json.dumps({"plugins": rows, "failures": failures, "environment": environment}, indent=2))
        return
    table = Table(title="sslkit plugins", show_lines=False)
    table.add_column("plugin", style="bold")
    table.add_column("from")
    table.add_column("registers")
    for row in rows:
        reg = "; ".join([*(f"{kind}: {', '.join(names)}" for kind, names in row["registers"].items()),
                         *(f"{kind} family {', '.join(names)}" for kind, names in row["families"].items())])
        if not reg:
            reg = "(commands only)" if "register_commands" in row["hooks"] else "(nothing)"
        reg += "".join(f"\n[yellow]warning: {escape(w)}[/yellow]" for w in row["warnings"])
        table.add_row(escape(row["name"]), escape(row["source"]), reg)
    for f in failures:
        table.add_row(f"[red]{f['name']}[/red]", f["source"], f"[red]failed: {f['error']}[/red]")
    console = make_console()
    console.print(table)
    line = f"sslkit {environment['sslkit']}, torch {environment['torch']}"
    if with_environment:
        line += f"; --device auto -> {environment['device']}; {escape(environment['precision'])}"
    else:
        line += " (--environment: what --device auto and --precision auto become here)"
    console.print(line)


def _environment(with_device: bool) -> dict[str, str]:
    """What a bug report needs: versions (read from package metadata, without importing torch)
    and, when asked, what the ``auto`` device and precision become here (that imports torch)."""
    from importlib.metadata import PackageNotFoundError, version

    from sslkit import __version__

    try:
        torch_version = version("torch")
    except PackageNotFoundError:
        torch_version = "not installed"
    environment = {"sslkit": __version__, "torch": torch_version}
    if with_device:
        from sslkit.engine.device import precision_report, resolve_device

        device = resolve_device("auto")
        environment.update(device=str(device), precision=precision_report(device))
    return environment
