"""Every hook a sslkit plugin can implement.

A plugin is a module (or object) with functions marked ``@sslkit.hookimpl`` whose names are
hooks below. Each ``register_*`` hook receives a ``register`` callback and calls it once per
thing it provides; nothing is returned. The callback's signature is the same for all four::

    register(name, factory, description="", *, options=None)

``name`` is what users type (``--masker NAME``); ``factory`` builds the object from keyword
options (``--masker-opt key=value``); ``description`` is the one line ``sslkit list`` shows;
``options`` maps option names to one-line help (defaults are read from ``factory``'s signature).
Two plugins registering the same name is an error that names both.

Keep registering cheap, so that ``sslkit list``, ``sslkit plugins`` and a typo's error stay under
a second: pass ``factory`` as a ``"package.module:attribute"`` reference and import nothing heavy
(torch, timm) at module level; the module is imported when the factory is first called. A hook
may also take ``register_family``::

    register_family(name, list_names, factory, description="", *, options=None)

for many names sharing one factory (the ``timm`` plugin: every ``timm.list_models()`` name):
``list_names()`` is called only when a name outside the explicit entries is asked for or the
registry is listed, and ``factory(member, **options)`` builds a member. pluggy passes a hook only
the arguments it names, so ``register_maskers(register)`` stays valid.
"""

from __future__ import annotations

import pluggy

PROJECT_NAME = "sslkit"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_maskers(register, register_family):
    """Register masking strategies.

    Receives: ``register(name, factory, description, options=...)`` (and ``register_family``, see above). ``factory(**options)``
    returns an object following :class:`sslkit.masking.Masker` (subclassing
    :class:`sslkit.masking.MaskerBase` is easiest). Returns: nothing.
    """


@hookspec
def register_backbones(register, register_family):
    """Register encoder backbones.

    Receives: ``register(name, factory, description, options=...)`` (and ``register_family``, see above). ``factory(in_chans=...,
    **options)`` returns an :class:`sslkit.models.Encoder` (a module whose forward gives a list
    of feature maps, shallow to deep, with ``feature_channels`` and ``reductions`` attributes).
    A family such as timm registers each of its model names with one shared factory.
    Returns: nothing.
    """


@hookspec
def register_datasets(register, register_family):
    """Register dataset adapters (``--data NAME:LOCATION``).

    Receives: ``register(name, factory, description, options=...)`` (and ``register_family``, see above). ``factory(location,
    **options)`` returns a :class:`sslkit.data.DatasetSplits`. Returns: nothing.
    """


@hookspec
def register_tasks(register, register_family):
    """Register downstream tasks (``--task NAME`` of ``finetune``, ``compare`` and ``evaluate``).

    Receives: ``register(name, factory, description)``. ``factory()`` returns a
    :class:`sslkit.finetuning.tasks.Task` (what is predicted, the model on the encoder, its loss,
    figures and files). Returns: nothing.
    """


@hookspec
def register_commands(cli):
    """Add click commands to the ``sslkit`` command group.

    Receives: ``cli``, the root :class:`click.Group`; call ``cli.add_command(...)``. Called
    lazily, when the CLI resolves a command name, never at import time. Returns: nothing.
    """
