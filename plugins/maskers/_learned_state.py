"""The checkpoint state of the learned maskers (``dqn``, ``hpm``, ``saliency``, ``adios``), once.

Each of them owns a network built at setup (an agent, a loss predictor, a teacher, an occluder),
usually an optimiser for it (and ``dqn`` a learning-rate schedule and reward statistics), its
generator, a count of its updates and the few options its network was built with. A subclass of
:class:`LearnedMaskerBase` only declares those parts (:attr:`~LearnedMaskerBase.STATE_PARTS`, the
attributes saved under the same keys) and its :meth:`~LearnedMaskerBase._config`; the base writes
and reads them, refuses a checkpoint of another configuration with one sentence, and hands the
engine the network (:meth:`~LearnedMaskerBase.modules`).

The state dict's layout is the one each masker wrote before this base existed: ``generator``,
``config``, the parts in their declared order, ``updates``; networks as detached tensor copies and
everything else as deep copies, so a checkpoint never aliases live training state.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from torch import nn

from sslkit.errors import UserError
from sslkit.masking import MaskerBase


class LearnedMaskerBase(MaskerBase):
    """A masker with a network of its own: declares its parts, the base saves and restores them."""

    WHAT: ClassVar[str]
    """The masker as error sentences name it, e.g. ``masker 'hpm'``."""
    STATE_PARTS: ClassVar[tuple[str, ...]]
    """Attributes saved under the same keys, in this order. The first is the network
    :meth:`setup` builds (None until then); the others have ``state_dict``/``load_state_dict``."""
    OPTIONAL_PARTS: ClassVar[frozenset[str]] = frozenset()
    """Parts that may be None (an option turned them off) or absent from a checkpoint."""
    SAVED_WITH: ClassVar[str]
    """How a configuration mismatch begins, e.g. ``the checkpoint's occluder was built with``."""

    updates: int
    _pending: Any

    def _config(self) -> dict[str, Any]:
        """The options the network was built with; a checkpoint must have been saved with the same."""
        raise NotImplementedError

    def _network(self, method: str) -> nn.Module:
        network = getattr(self, self.STATE_PARTS[0], None)
        if network is None:
            raise RuntimeError(f"{type(self).__name__}.setup() must be called before {method}()")
        return network

    def modules(self) -> list[nn.Module]:
        network = getattr(self, self.STATE_PARTS[0], None)
        return [network] if network is not None else []

    def state_dict(self) -> dict[str, Any]:
        self._network("state_dict")
        state: dict[str, Any] = {"generator": self.generator.get_state(), "config": self._config()}
        for key in self.STATE_PARTS:
            state[key] = _saved(getattr(self, key))
        state["updates"] = self.updates
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._network("load_state_dict")
        saved, ours = state.get("config", {}), self._config()
        if saved and saved != ours:
            raise UserError(f"{self.WHAT}: {self.SAVED_WITH} {saved}, this run asks for {ours}")
        super().load_state_dict(state)
        for key in self.STATE_PARTS:
            part = getattr(self, key)
            if key in self.OPTIONAL_PARTS:
                if part is not None and state.get(key) is not None:
                    part.load_state_dict(state[key])
            else:
                part.load_state_dict(state[key])
        self.updates = int(state.get("updates", 0))
        self._pending = None


def _saved(part: Any) -> Any:
    """A copy of one part's state: a network's tensors detached and cloned, anything else deep-copied."""
    if part is None:
        return None
    if isinstance(part, nn.Module):
        return {k: v.detach().clone() for k, v in part.state_dict().items()}
    return copy.deepcopy(part.state_dict())
