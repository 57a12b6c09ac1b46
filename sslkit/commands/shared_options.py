"""From a config dataclass to a command's options and back, for ``sslkit finetune`` and ``compare``.

Each option's default is read from the command's config dataclass (``sslkit pretrain`` does the
same with :class:`~sslkit.pretraining.config.PretrainConfig`), and :func:`config_settings` hands
every option named like a field to that field, so the command line, the Python API and the config
files start from one set of defaults. The fine-tuning options both commands offer are defined
once, in :func:`finetune_options`, each command passing its own config's defaults.

Adding a fine-tuning setting (say ``label_smoothing``) to both commands:

1. the field and its default in :class:`~sslkit.finetuning.config.FinetuneConfig`;
2. the field in :class:`~sslkit.comparison.config.CompareConfig`, reading that default
   (``label_smoothing: float = FinetuneConfig.label_smoothing``) and listed in ``SHARED_WITH`` of
   ``tests/core/test_core_defaults.py``, and the line handing it to each cell in
   :func:`sslkit.comparison.cells.finetune_config` (``label_smoothing=config.label_smoothing``);
3. one ``click.option("--label-smoothing", ..., default=defaults.label_smoothing)`` in
   :func:`finetune_options` (or, for one command only, beside its other options with
   ``default=_D.label_smoothing``).

The commands' bodies need no edit; an option without a field is a ``TypeError`` the first time
the command runs (the tests do), and tests check that every field has its option and every
option's default is its field's.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable

import click

from sslkit.choices import DEVICE_CHOICES
from sslkit.finetuning.protocols import CLASS_WEIGHT_CHOICES, POSITIVE_CLASS_HELP, SELECT_CHOICES
from sslkit.runtime import THREADS_HELP


def finetune_options(defaults: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The fine-tuning options ``finetune`` and ``compare`` share (one definition, one help text);
    ``defaults`` is the command's config object, whose fields give each option's default."""
    return _stacked([
        click.option("--class-weights", type=click.Choice(CLASS_WEIGHT_CHOICES), default=defaults.class_weights,
                     show_default=True,
                     help="auto: loss weights 10*(1 - n_c/N) from the labelled counts (the paper's); none: unweighted."),
        click.option("--encoder-lr-scale", type=float, default=defaults.encoder_lr_scale, show_default=True,
                     help="full protocol: encoder learning rate = lr x this "
                          "(0 keeps its weights; BatchNorm statistics still adapt)."),
        click.option("--select", type=click.Choice(SELECT_CHOICES), default=defaults.select, show_default=True,
                     help="Report the last epoch (the paper's) or the epoch with the best validation figure "
                          "(classification: macro F1; segmentation: Dice)."),
        click.option("--standardize-features/--no-standardize-features", default=defaults.standardize_features,
                     show_default=True,
                     help="Frozen protocols: standardise the head's input per channel with the labelled training "
                          "features' mean and std, so a random encoder's feature scale cannot collapse the head "
                          "(off: the raw features, as the authors' code)."),
        click.option("--positive-class", default=defaults.positive_class, metavar="NAME", help=POSITIVE_CLASS_HELP),
        click.option("--device", type=click.Choice(DEVICE_CHOICES), default=defaults.device, show_default=True),
        click.option("--workers", type=int, default=defaults.workers, show_default=True,
                     help="DataLoader worker processes."),
        click.option("--threads", type=int, default=defaults.threads, show_default=True, help=THREADS_HELP),
    ])


def _stacked(options: Iterable[Callable[[Any], Any]]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """One decorator applying ``options`` in the order given (as if stacked in that order)."""
    options = list(options)

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


def config_settings(ctx: click.Context, config_class: type, *, renames: dict[str, str] | None = None,
                    skip: Iterable[str] = ()) -> dict[str, Any]:
    """The command's parsed options as ``config_class`` settings: each option under the field it
    names (``renames``: parameter name -> field name where they differ), ``KEY=VALUE`` pairs of an
    ``..._options`` field parsed into a mapping. ``skip``: the parameters that are no setting, or
    that the command converts itself. A parameter that names no field is a ``TypeError``, so an
    option added without its field fails the first time the command runs."""
    from sslkit.options import parse_options

    fields = {f.name for f in dataclasses.fields(config_class)}
    renames = renames or {}
    skipped = set(skip)
    settings: dict[str, Any] = {}
    for param in ctx.command.params:
        name = param.name
        if name is None or name in skipped:
            continue
        key = renames.get(name, name)
        if key not in fields:
            raise TypeError(f"option '{name}' of 'sslkit {ctx.command.name}' is no {config_class.__name__} field: "
                            "add the field (its default is the option's), or list the option in skip")
        value = ctx.params[name]
        if key.endswith("_options") and isinstance(value, tuple):
            value = parse_options(value, max(param.opts, key=len))
        settings[key] = value
    return settings
