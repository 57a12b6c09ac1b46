"""Which process this is in a (possibly) multi-process run, and the few collective helpers the
engine needs.

torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; without them this is process 0 of 1.
The engine reads :class:`DistInfo` once and passes rank/world size to the data loader (sharded
data order) and to maskers; only the main process (rank 0) logs, shows progress and writes
checkpoints. The helpers below are exact no-ops in a single process, so the one-process path pays
nothing for multi-process readiness.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

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
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        rank = int(os.environ.get("RANK", "0") or 0)
        local = int(os.environ.get("LOCAL_RANK", str(rank)) or 0)
        return cls(rank=rank, world_size=world, local_rank=local)


def process_group_ready() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def all_finite(value: torch.Tensor, dist: DistInfo) -> bool:
    """Whether ``value`` is finite on every process (all ranks must stop together on a NaN)."""
    finite = torch.isfinite(value.detach()).all()
    if dist.distributed and process_group_ready():
        flag = finite.to(torch.int32)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
        finite = flag.bool()
    return bool(finite)


def barrier(dist: DistInfo) -> None:
    """Wait for every process (e.g. until rank 0 has written a checkpoint)."""
    if dist.distributed and process_group_ready():
        torch.distributed.barrier()
