"""Which process of a multi-process run this is, read from torchrun's environment.

Kept apart from :mod:`sslkit.pretraining.distributed` (which imports torch) so that a command can ask
"am I the main process?" before paying torch's import: a typo's error stays under a second.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sslkit.errors import UserError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        """True for the process that logs and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_env(cls) -> "DistInfo":
        """The torchrun environment, or a single process when it is absent."""
        try:
            world = int(os.environ.get("WORLD_SIZE", "1") or 1)
            rank = int(os.environ.get("RANK", "0") or 0)
            local = int(os.environ.get("LOCAL_RANK", str(rank)) or 0)
            local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)) or 1)
        except ValueError:
            raise UserError("RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE must be whole numbers (torchrun sets them)") from None
        if world < 1 or not 0 <= rank < world:
            raise UserError(f"RANK={rank} is not valid for WORLD_SIZE={world}")
        return cls(rank=rank, world_size=world, local_rank=local, local_world_size=local_world)
