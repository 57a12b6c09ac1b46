"""Multi-process training on PyTorch's own machinery: torchrun, a process group, DDP.

torchrun (``python -m torch.distributed.run``) starts one process per GPU (or per CPU slot) and
sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT``; without them this is process 0 of 1 and every collective helper below is an
exact no-op, so the one-process path pays nothing for multi-process readiness. Nothing here assumes one node:
ranks are global, devices are chosen by the *local* rank, and the rendezvous is torchrun's.

What the engine does with more than one process:

- :func:`process_group` joins the default process group from torchrun's environment: NCCL for
  CUDA, gloo for the CPU (MPS has no collective backend, so it is refused in one sentence).
- :func:`wrap_ddp` wraps the predictor in ``DistributedDataParallel`` (gradients averaged over
  processes during backward). On CUDA, BatchNorm layers become ``SyncBatchNorm`` so that batch
  statistics are those of the global batch, as in one process; PyTorch's ``SyncBatchNorm`` does
  not run on the CPU, where BatchNorm normalises each process's share of the batch.
- :func:`broadcast_modules` gives every process rank 0's copy of a masker's trainable modules at
  the start; :func:`modules_agree` checks at each checkpoint that they stayed identical (a masker
  that trains modules must average their gradients over processes, as ``dqn`` does).
- :class:`StepReducer` averages the logged per-step scalars over processes and agrees on Ctrl-C,
  in one small all-reduce per step, so every process stops at the same step.
- :func:`gather_to_main` collects per-process state (masker generators, random states) into the
  one checkpoint that rank 0 writes, so a resumed run continues every process exactly;
  :func:`broadcast_object` hands rank 0's choices (the default run directory) to all.
- :mod:`sslkit.pretraining.launch` starts the processes (``sslkit pretrain --nproc N``) and lets the
  commands that are not distributed run on rank 0 alone.

:func:`process_group` does nothing when the caller already joined a group, so a command that runs
several trainings in a row (e.g. a comparison) can join once around all of them.
"""

from __future__ import annotations

import io
import os
from contextlib import contextmanager
from itertools import chain
from typing import Any, Iterable, Iterator, Mapping

import torch
from torch import nn

from sslkit.pretraining.dist_info import DistInfo
from sslkit.errors import UserError


def process_group_ready() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _active(dist: DistInfo) -> bool:
    return dist.distributed and process_group_ready()


# ----------------------------------------------------------------------------- the group
def backend_for(device: torch.device) -> str:
    """NCCL for CUDA devices, gloo for the CPU."""
    if device.type == "cuda":
        return "nccl"
    if device.type == "cpu":
        return "gloo"
    raise UserError(
        f"multi-process training runs on CUDA GPUs (NCCL) or on the CPU (gloo), not on '{device.type}'; "
        "use --device cuda or --device cpu"
    )


def check_devices(dist: DistInfo, device: torch.device) -> None:
    """One GPU per process on each node: NCCL refuses two processes on one GPU."""
    if dist.distributed and device.type == "cuda":
        count = torch.cuda.device_count()
        if dist.local_world_size > count:
            raise UserError(
                f"{dist.local_world_size} processes on this node but only {count} CUDA GPU(s); "
                f"start at most {count} (torchrun --nproc-per-node {count})"
            )


@contextmanager
def process_group(dist: DistInfo, device: torch.device) -> Iterator[None]:
    """Join (and at the end leave) the default process group when torchrun started several
    processes; does nothing for one process or when the caller already joined one."""
    if not dist.distributed or process_group_ready():
        yield
        return
    if not torch.distributed.is_available():
        raise UserError(f"WORLD_SIZE={dist.world_size} is set, but this PyTorch was built without torch.distributed")
    backend = backend_for(device)
    check_devices(dist, device)
    kwargs: dict[str, Any] = {}
    if device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL and object collectives use the current device
        kwargs["device_id"] = device
    if not os.environ.get("MASTER_ADDR") or not os.environ.get("MASTER_PORT"):
        raise UserError(
            f"WORLD_SIZE={dist.world_size} is set but MASTER_ADDR/MASTER_PORT are not; start several processes with torchrun"
        )
    torch.distributed.init_process_group(backend=backend, rank=dist.rank, world_size=dist.world_size, **kwargs)
    try:
        yield
    finally:
        if process_group_ready():
            torch.distributed.destroy_process_group()


def collective_device(device: torch.device) -> torch.device:
    """Where small tensors for collectives live: the GPU for NCCL, the CPU for gloo."""
    if process_group_ready() and torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu") if device.type != "cuda" else device


# ------------------------------------------------------------------------ small collectives
def everywhere(flag: torch.Tensor | bool, dist: DistInfo) -> bool:
    """Whether ``flag`` is true on every process (one host sync; all ranks get the same answer)."""
    flag = torch.as_tensor(flag)
    if _active(dist):
        value = flag.to(torch.int32).to(collective_device(flag.device))
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MIN)
        flag = value
    return bool(flag)


def all_finite(value: torch.Tensor, dist: DistInfo) -> bool:
    """Whether ``value`` is finite on every process (all ranks must stop together on a NaN)."""
    return everywhere(torch.isfinite(value.detach()).all(), dist)


def max_over_processes(value: int, dist: DistInfo) -> int:
    """The largest of every process's ``value`` (e.g. which stop signal arrived where)."""
    if not _active(dist):
        return int(value)
    tensor = torch.tensor([int(value)], dtype=torch.int64, device=collective_device(torch.device("cpu")))
    torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
    return int(tensor.item())


def barrier(dist: DistInfo) -> None:
    """Wait for every process (e.g. until rank 0 has written a checkpoint)."""
    if _active(dist):
        torch.distributed.barrier()


def to_cpu(obj: Any) -> Any:
    """A copy of ``obj`` with every tensor moved to the CPU (dicts, lists and tuples walked)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        items = [to_cpu(v) for v in obj]
        return type(obj)(items) if isinstance(obj, list) or type(obj) is tuple else type(obj)(*items)
    return obj


def gather_to_main(obj: Any, dist: DistInfo) -> list[Any] | None:
    """Every process's ``obj`` (tensors moved to the CPU) as a list on rank 0, None elsewhere;
    ``[obj]`` in a single process."""
    if not _active(dist):
        return [obj]
    # Serialised with torch.save first: pickling tensors straight through gather_object fails to
    # unpickle in some PyTorch versions (typed storages), bytes always travel.
    buffer = io.BytesIO()
    torch.save(to_cpu(obj), buffer)
    gathered: list[Any] | None = [None] * dist.world_size if dist.is_main else None
    torch.distributed.gather_object(buffer.getvalue(), gathered, dst=0)
    if gathered is None:
        return None
    # Read back like a checkpoint (tensors and plain values only): the state is checked to be
    # that at the first save anyway, so nothing from another process is ever unpickled freely.
    from sslkit.safeload import safe_load

    return [safe_load(io.BytesIO(payload)) for payload in gathered]


def broadcast_object(obj: Any, dist: DistInfo) -> Any:
    """Rank 0's ``obj`` on every process (e.g. a run directory named after rank 0's clock)."""
    if not _active(dist):
        return obj
    box = [obj if dist.is_main else None]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def _module_tensors(modules: Iterable[nn.Module]) -> list[torch.Tensor]:
    return [t for m in modules for t in chain(m.parameters(), m.buffers())]


def broadcast_modules(modules: Iterable[nn.Module], dist: DistInfo) -> None:
    """Copy rank 0's parameters and buffers of ``modules`` to every process (in place)."""
    if not _active(dist):
        return
    for tensor in _module_tensors(modules):
        device = collective_device(tensor.device)
        with torch.no_grad():
            staged = tensor.detach().to(device)
            torch.distributed.broadcast(staged, src=0)
            if staged.data_ptr() != tensor.data_ptr():
                tensor.copy_(staged)


def modules_agree(modules: Iterable[nn.Module], dist: DistInfo, rtol: float = 1e-6) -> bool:
    """Whether ``modules`` hold the same parameters on every process (checksums).

    Buffers are left out: BatchNorm running statistics differ per process by construction
    (each sees its own share of the batch) while the trained weights must not."""
    tensors = [p for m in modules for p in m.parameters() if p.is_floating_point()]
    if not _active(dist) or not tensors:
        return True
    device = collective_device(tensors[0].device)
    sums = torch.stack([torch.stack([t.detach().double().sum(), t.detach().double().pow(2).sum()]) for t in tensors])
    sums = sums.flatten().to(device)
    both = torch.cat([sums, -sums])
    torch.distributed.all_reduce(both, op=torch.distributed.ReduceOp.MAX)
    high, low = both[: sums.numel()], -both[sums.numel():]
    agree = bool(((high - low).abs() <= rtol * (1.0 + high.abs())).all())
    return agree


# -------------------------------------------------------------------------------- DDP
def unused_parameters(model: nn.Module, sample: torch.Tensor) -> list[str]:
    """Names of trainable parameters that get no gradient from ``model(sample)``.

    DistributedDataParallel must be told about such parameters (``find_unused_parameters``,
    which costs a graph walk per step), so they are found once, in eval mode (BatchNorm running
    statistics and random layers untouched) on one sample.
    """
    was_training = model.training
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        return []
    model.eval()
    try:
        out = model(sample)
        grads = torch.autograd.grad(out.float().sum(), [p for _, p in named], allow_unused=True)
    finally:
        model.train(was_training)
    return [n for (n, _), g in zip(named, grads) if g is None]


def wrap_ddp(model: nn.Module, device: torch.device, dist: DistInfo, sample: torch.Tensor) -> nn.Module:
    """``model`` itself in one process; else DistributedDataParallel around it (SyncBatchNorm on
    CUDA, see the module docstring). The returned wrapper shares ``model``'s parameters, so the
    optimizer and checkpoints keep using the bare ``model``."""
    if not _active(dist):
        return model
    from torch.nn.parallel import DistributedDataParallel

    find_unused = bool(unused_parameters(model, sample))
    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused)


def convert_batchnorm(model: nn.Module, device: torch.device, dist: DistInfo) -> nn.Module:
    """BatchNorm -> SyncBatchNorm for multi-process CUDA training (same state-dict keys, so
    checkpoints and exported encoders are unchanged); ``model`` as it is otherwise."""
    if dist.distributed and device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


# ----------------------------------------------------------------------- per-step scalars
class StepReducer:
    """Per-step scalars averaged over processes, and an agreed stop flag, in one all-reduce.

    Each process reports a mapping of name -> value (None = not measured on this process, e.g. a
    lesion hit rate on a batch without lesions); the result is, per name, the mean over the
    processes that measured it. The set of names is agreed lazily: a process that reports a name
    the others do not know yet raises a flag in the same all-reduce, and only then are the names
    exchanged (once per new name), so a steady run costs one tiny all-reduce per step.
    ``stop`` is true everywhere when any process asked to stop (Ctrl-C), so all stop together.
    """

    def __init__(self, dist: DistInfo, device: torch.device):
        self.dist = dist
        self.device = device
        self.keys: list[str] = []
        self.index: dict[str, int] = {}

    def __call__(self, values: Mapping[str, float | None], stop: bool = False) -> tuple[dict[str, float], bool]:
        present = {k: float(v) for k, v in values.items() if v is not None}
        if not _active(self.dist):
            return present, bool(stop)
        device = collective_device(self.device)
        while True:
            n = len(self.keys)
            buffer = [0.0] * (2 * n + 2)
            for key, value in present.items():
                i = self.index.get(key)
                if i is not None:
                    buffer[i], buffer[n + i] = value, 1.0
            buffer[2 * n] = float(any(key not in self.index for key in present))
            buffer[2 * n + 1] = float(bool(stop))
            tensor = torch.tensor(buffer, dtype=torch.float64, device=device)
            torch.distributed.all_reduce(tensor)
            sums = tensor.tolist()
            if sums[2 * n] == 0:
                break
            everyone: list[Any] = [None] * self.dist.world_size
            torch.distributed.all_gather_object(everyone, sorted(present))
            for key in sorted(set(chain.from_iterable(everyone)) - set(self.index)):
                self.index[key] = len(self.keys)
                self.keys.append(key)
        means = {key: sums[i] / sums[n + i] for key, i in self.index.items() if sums[n + i] > 0}
        return means, sums[2 * n + 1] > 0
