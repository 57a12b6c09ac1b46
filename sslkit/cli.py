"""The ``sslkit`` command group: one small function per command, no training logic here.

Commands live in :mod:`sslkit.commands` and are imported only when used (``LAZY_COMMANDS``),
so ``sslkit --help`` stays quick. Plugins may add commands through ``register_commands``; those
are added when a command name is resolved, never at import time.
"""

from __future__ import annotations

import errno
import importlib
import os
import sys
import traceback
import weakref

import click

from sslkit import __version__
from sslkit.errors import DEBUG_ENV, UserError, describe_os_error, first_line, os_error_in

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


#: Plugin sets whose load failures and warnings were already shown (once per loaded set: the
#: loading is cached, so a command asking twice gets the same object and no second warning).
#: Keyed by id (a dataclass is unhashable); weak, so a dropped set's id can be reused safely.
_REPORTED: "weakref.WeakValueDictionary[int, object]" = weakref.WeakValueDictionary()


def load_plugins_for(ctx: click.Context | None = None):
    """The plugins for this invocation, with failures and warnings reported once on stderr."""
    from sslkit.plugins import get_plugins

    ctx = ctx or click.get_current_context(silent=True)
    plugins = get_plugins(plugin_files_of(ctx))
    if _REPORTED.get(id(plugins)) is plugins:
        return plugins
    _REPORTED[id(plugins)] = plugins
    for failure in plugins.failures:
        click.echo(f"warning: plugin '{failure.name}' ({failure.source}) failed to load: {failure.error}", err=True)
    for info in plugins.info.values():
        for warning in info.warnings:
            click.echo(f"warning: {warning}", err=True)
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
@click.option(
    "--debug",
    is_flag=True,
    help=f"Show the full traceback of an error (for bug reports) instead of one sentence; same as {DEBUG_ENV}=1.",
)
def cli(plugin_files: tuple[str, ...], debug: bool) -> None:
    """sslkit: self-supervised pretraining for medical imaging by context prediction.

    A masker hides part of each image, a predictor (timm encoder + decoder) reconstructs it, and
    the encoder is then fine-tuned on few labels. Maskers, backbones and dataset adapters are
    plugins: see `sslkit plugins` and `sslkit list maskers`.

    \b
    Quick start (embedded BUSI 64 px data, no set-up):
      sslkit pretrain --masker dqn --epochs 5 --out runs/dqn
      tensorboard --logdir runs/dqn

    \b
    Exit codes: 0 done, 1 system fault (disk full, permissions) or unexpected error,
    2 bad input, 3 training diverged, 130 interrupted (Ctrl-C), 143 stopped by SIGTERM,
    138 stopped by SIGUSR1 (pretraining saves a checkpoint first and prints how to resume).
    """
    if debug:
        os.environ[DEBUG_ENV] = "1"  # also reaches the processes --nproc starts


def debug_enabled() -> bool:
    """``--debug`` given or ``SSLKIT_DEBUG`` set to anything but 0/empty."""
    return os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")


def _fail(message: str, code: int) -> int:
    click.echo(f"Error: {message}", err=True)
    return code


def _peer_failure(error: BaseException) -> bool:
    """A collective (gloo/NCCL) failed because another process of the group died or stopped."""
    name = type(error).__name__
    text = str(error)
    return name.startswith("Dist") or any(word in text for word in ("gloo", "NCCL", "Connection closed by peer",
                                                                      "Connection reset by peer"))


def run_cli(args: list[str] | None = None) -> int:
    """Run the command line and return its exit code; every failure ends in one sentence.

    0 done; 1 a system fault (disk full, permission denied, read-only) or an unexpected error,
    whose full traceback ``--debug`` / ``SSLKIT_DEBUG=1`` shows; 2 bad input (and usage errors);
    3 training diverged; 128 + N stopped by signal N: 130 Ctrl-C (twice included), 143 SIGTERM,
    138 SIGUSR1 (:mod:`sslkit.stop_signals`).
    """
    try:
        result = cli.main(args=args, prog_name="sslkit", standalone_mode=False)
    except click.ClickException as error:  # UserError (2), SystemFault (1), usage errors (2)
        if debug_enabled() and not isinstance(error, click.UsageError):
            traceback.print_exc()
        error.show()
        return error.exit_code
    except (click.Abort, KeyboardInterrupt) as error:  # click turns Ctrl-C into Abort
        if debug_enabled():
            traceback.print_exc()
        cause = error.__cause__ or error.__context__
        message = getattr(error, "message", None) or getattr(cause, "message", None)
        click.echo(message or "Interrupted.", err=True)
        return int(getattr(error, "exit_code", None) or getattr(cause, "exit_code", None) or 130)
    except Exception as error:  # noqa: BLE001 - the boundary: nothing escapes as a traceback
        if debug_enabled():
            traceback.print_exc()
        if _peer_failure(error):
            return _fail("another process of this multi-process run stopped (its own message says why), so this one "
                         f"stopped too ({first_line(error)[:200]})", 1)
        os_error = os_error_in(error)
        if os_error is not None:
            if os_error.errno == errno.EPIPE:  # output piped into e.g. `head`, which closed early
                return 1
            return _fail(describe_os_error(os_error), 1)
        hint = "" if debug_enabled() else f"; rerun with --debug (or {DEBUG_ENV}=1) for the full traceback"
        return _fail(f"unexpected {type(error).__name__}: {first_line(error)}{hint}, and please report it", 1)
    return result if isinstance(result, int) else 0


def main() -> None:
    """Console-script entry point: every failure is one sentence and an exit code (see run_cli)."""
    sys.exit(run_cli())
