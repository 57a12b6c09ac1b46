"""The ``sslkit`` command group: one small function per command, no training logic here.

Commands live in :mod:`sslkit.commands` and are imported only when used (``LAZY_COMMANDS``),
so ``sslkit --help`` stays quick. Plugins may add commands through ``register_commands``; those
are added when a command name is resolved, never at import time.
"""

from __future__ import annotations

import importlib
import sys

import click

from sslkit import __version__
from sslkit.errors import UserError

#: command name -> "module:attribute" in sslkit.commands
LAZY_COMMANDS = {
    "plugins": "sslkit.commands.plugins_cmd:plugins_command",
    "list": "sslkit.commands.list_cmd:list_command",
    "data": "sslkit.commands.data_cmd:data_group",
    "pretrain": "sslkit.commands.pretrain_cmd:pretrain_command",
    "finetune": "sslkit.commands.finetune_cmd:finetune_command",
    "evaluate": "sslkit.commands.evaluate_cmd:evaluate_command",
    "compare": "sslkit.commands.compare_cmd:compare_command",
}


class SslkitGroup(click.Group):
    """A click group whose built-in commands load lazily and whose plugins may add more."""

    def _builtin(self, name: str) -> click.Command | None:
        target = LAZY_COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name == module_name:  # not written yet: simply not offered
                return None
            raise
        return getattr(module, attr)

    def _add_plugin_commands(self, ctx: click.Context) -> None:
        """Let plugins add their commands (plugin loading is cached, so asking twice is cheap)."""
        from sslkit.plugins import get_plugins

        plugins = get_plugins(plugin_files_of(ctx))
        plugins.pm.hook.register_commands(cli=self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = [n for n in LAZY_COMMANDS if self._builtin(n) is not None]
        return sorted(set(names) | set(self.commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = self.commands.get(name) or self._builtin(name)
        if command is None:
            self._add_plugin_commands(ctx)
            command = self.commands.get(name)
        return command

    def resolve_command(self, ctx, args):
        cmd_name = args[0] if args else None
        cmd = self.get_command(ctx, cmd_name) if cmd_name else None
        if cmd is None and cmd_name and not cmd_name.startswith("-"):
            from sslkit.registry import unknown_name_message

            raise UserError(unknown_name_message("command", cmd_name, self.list_commands(ctx)))
        return super().resolve_command(ctx, args)


def plugin_files_of(ctx: click.Context | None) -> tuple[str, ...]:
    """The ``--plugin`` files given to the root group (empty outside the CLI)."""
    root = ctx.find_root() if ctx is not None else None
    return tuple(root.params.get("plugin_files") or ()) if root is not None else ()


def load_plugins_for(ctx: click.Context | None = None):
    """The plugins for this invocation, with failures reported once on stderr."""
    from sslkit.plugins import get_plugins

    ctx = ctx or click.get_current_context(silent=True)
    plugins = get_plugins(plugin_files_of(ctx))
    if plugins.failures and not getattr(plugins, "_failures_reported", False):
        plugins._failures_reported = True  # type: ignore[attr-defined]
        for failure in plugins.failures:
            click.echo(f"warning: plugin '{failure.name}' ({failure.source}) failed to load: {failure.error}", err=True)
    return plugins


@click.group(cls=SslkitGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", "-V", prog_name="sslkit")
@click.option(
    "--plugin",
    "plugin_files",
    multiple=True,
    type=click.Path(dir_okay=False),
    metavar="FILE.py",
    help="Load a drop-in plugin file (repeatable). Files in $SSLKIT_PLUGINS load too.",
)
def cli(plugin_files: tuple[str, ...]) -> None:
    """sslkit: self-supervised pretraining for medical imaging by context prediction.

    A masker hides part of each image, a predictor (timm encoder + decoder) reconstructs it, and
    the encoder is then fine-tuned on few labels. Maskers, backbones and dataset adapters are
    plugins: see `sslkit plugins` and `sslkit list maskers`.

    \b
    Quick start (embedded BUSI 64 px data, no set-up):
      sslkit pretrain --masker dqn --epochs 5 --out runs/dqn
      tensorboard --logdir runs/dqn
    """


def main() -> None:
    """Console-script entry point: user errors exit 2 with one sentence, never a traceback."""
    try:
        cli.main(prog_name="sslkit", standalone_mode=True)
    except KeyboardInterrupt:  # click turns Ctrl-C into Abort; this covers the rest
        click.echo("Interrupted.", err=True)
        sys.exit(130)
