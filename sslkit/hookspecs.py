"""Every hook a sslkit plugin can implement.

A plugin is a module (or object) with functions marked ``@sslkit.hookimpl`` whose names are
hooks below. Each ``register_*`` hook receives a ``register`` callback and calls it once per
thing it provides; nothing is returned. The callback's signature is the same for all three::

    register(name, factory, description="", *, options=None)

``name`` is what users type (``--masker NAME``); ``factory`` builds the object from keyword
options (``--masker-opt key=value``); ``description`` is the one line ``sslkit list`` shows;
``options`` maps option names to one-line help (defaults are read from ``factory``'s signature).
Two plugins registering the same name is an error that names both.
"""

from __future__ import annotations

import pluggy

PROJECT_NAME = "sslkit"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_maskers(register):
    """Register masking strategies.

    Receives: ``register(name, factory, description, options=...)``. ``factory(**options)``
    returns an object following :class:`sslkit.masking.Masker` (subclassing
    :class:`sslkit.masking.MaskerBase` is easiest). Returns: nothing.
    """


@hookspec
def register_backbones(register):
    """Register encoder backbones.

    Receives: ``register(name, factory, description, options=...)``. ``factory(in_chans=...,
    **options)`` returns an :class:`sslkit.models.Encoder` (a module whose forward gives a list
    of feature maps, shallow to deep, with ``feature_channels`` and ``reductions`` attributes).
    A family such as timm registers each of its model names with one shared factory.
    Returns: nothing.
    """


@hookspec
def register_datasets(register):
    """Register dataset adapters (``--data NAME:LOCATION``).

    Receives: ``register(name, factory, description, options=...)``. ``factory(location,
    **options)`` returns a :class:`sslkit.data.DatasetSplits`. Returns: nothing.
    """


@hookspec
def register_commands(cli):
    """Add click commands to the ``sslkit`` command group.

    Receives: ``cli``, the root :class:`click.Group`; call ``cli.add_command(...)``. Called
    lazily, when the CLI resolves a command name, never at import time. Returns: nothing.
    """
