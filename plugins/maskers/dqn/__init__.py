"""Built-in masker ``dqn``: Intelligent Masking (Bahrami et al., MLMI 2022).

A deep Q-learning agent learns where masking hurts the reconstruction most. The method lives in
this package's modules (``masker``, ``qnetwork``, ``geometry``, ``exploration``, ``reward``,
``visual``); this module only registers it, importing them when the registry is filled.
"""

from __future__ import annotations

from sslkit.hookspecs import hookimpl


@hookimpl
def register_maskers(register):
    from sslkit_plugins.maskers.dqn.masker import DESCRIPTION, OPTIONS, DQNMasker

    register("dqn", DQNMasker, DESCRIPTION, options=OPTIONS)
