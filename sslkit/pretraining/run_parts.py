"""Building a pretraining run: everything it trains with, from one config.

:func:`build_run` creates the parts in a fixed order (the order is part of exact resume and of
reproducibility: the masker and the predictor draw their initial weights from the seeded global
generator) and fails on cheap mistakes first: unknown masker or backbone names and options fail
before any data is read. :func:`distribute` comes after a resume has loaded the weights: it makes
every process start from rank 0's copy and wraps the predictor for DDP and ``torch.compile``.
"""

from __future__ import annotations

import dataclasses
import random
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sslkit.pretraining.config import PretrainConfig, parse_splits
from sslkit.engine.device import Precision, resolve_device, resolve_precision
from sslkit.pretraining.dist_info import DistInfo
from sslkit.pretraining.distributed import StepReducer, backend_for, broadcast_modules, broadcast_object, check_devices, convert_batchnorm, process_group_ready, wrap_ddp
from sslkit.pretraining.schedules import build_scheduler
from sslkit.errors import UserError
from sslkit.masking import MaskerContext
from sslkit.optimizers import build_optimizer
from sslkit.seeding import SEED_STRIDE

if TYPE_CHECKING:
    from sslkit.models.predictor import Predictor

#: Ranks other than 0 draw from their own global random streams (stochastic depth, dropout):
#: rank r reseeds with seed + r * this after the model is built (weights come from rank 0).
RANK_SEED_STRIDE = SEED_STRIDE


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def default_run_dir(masker: str) -> Path:
    return Path("runs") / f"{masker}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def local_batch_size(batch_size: int, dist: DistInfo) -> int:
    """Each process's share of the global batch (``--batch-size`` is global)."""
    if batch_size % dist.world_size:
        raise UserError(
            f"batch-size {batch_size} is the global batch and must divide evenly over the {dist.world_size} processes; "
            f"use a multiple of {dist.world_size}, e.g. {max(1, round(batch_size / dist.world_size)) * dist.world_size}"
        )
    return batch_size // dist.world_size


@dataclasses.dataclass
class RunParts:
    """What one run trains with; nothing here changes during training except the weights."""

    config: PretrainConfig  # with the concrete precision and ``out`` = the run directory
    dist: DistInfo
    device: torch.device
    local_batch: int
    precision: Precision
    memory_format: torch.memory_format
    masker: Any
    predictor: torch.nn.Module  # the plain module: optimizer, checkpoints and encoder use it
    dataset: Any
    splits: tuple[str, ...]
    n_images: int
    loader: Any
    steps_per_epoch: int
    has_lesions: bool
    optimizer: torch.optim.Optimizer
    scheduler: Any
    cell_grid: tuple[int, int] = (1, 1)
    """The encoder's deepest map size at this image size: the cells sparse masks are made of and
    norm-pixel targets are normalised over."""
    # Set by distribute(): the DDP wrapper, what the step calls (maybe compiled), the per-step reducer.
    model: torch.nn.Module | None = None
    forward: Any = None
    reducer: StepReducer | None = None

    @property
    def run_dir(self) -> Path:
        return Path(str(self.config.out))  # set by run_pretraining before the parts are built

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.config.epochs


def build_run(config: PretrainConfig, plugins: Any) -> RunParts:
    """Every part of the run named by ``config`` (whose ``out`` is the run directory), in order;
    rank r > 0 then reseeds its global generator (see :data:`RANK_SEED_STRIDE`)."""
    from sslkit.models import build_predictor, check_input_size

    dist = DistInfo.from_env()
    if dist.distributed and not process_group_ready():
        raise RuntimeError(f"WORLD_SIZE={dist.world_size}: join the process group first (run_pretraining does)")
    local_batch = local_batch_size(config.batch_size, dist)
    device = resolve_device(config.device, dist.local_rank)
    if dist.distributed:
        backend_for(device)  # MPS: one sentence, before anything is built
        check_devices(dist, device)
    # `auto` becomes the concrete precision here, before config.yaml is written: a resumed run
    # (and anyone reading the run directory) sees what was actually used.
    # Every process uses rank 0's choice: machines of a multi-node run may differ in bf16 support.
    config = dataclasses.replace(config, precision=broadcast_object(resolve_precision(config.precision, device), dist))
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format

    # Cheap checks first: unknown masker/backbone names and options fail before data is read.
    seed_everything(config.seed)
    masker = plugins.maskers.create(config.masker, **config.masker_options)
    predictor = convert_batchnorm(
        build_predictor(config.backbone, in_chans=config.in_chans, plugins=plugins,
                        decoder_skips=config.decoder_skips, **config.backbone_options),
        device,
        dist,
    ).to(device, memory_format=memory_format)  # type: ignore[call-overload]  # valid; torch's stubs lack this form
    # A fixed-size model (a ViT without img_size) fails here in one sentence, not mid-step.
    check_input_size(predictor.encoder, config.image_size, config.in_chans)
    cell_grid = _cell_grid(config, predictor)
    data = _build_data(config, plugins, dist, device, local_batch)
    _check_batchnorm_batch(config, dist, predictor, local_batch, data["n_images"], data["splits"])
    steps_per_epoch = data["steps_per_epoch"]
    masker.setup(
        MaskerContext(
            image_size=(config.image_size, config.image_size),
            in_chans=config.in_chans,
            device=device,
            total_steps=steps_per_epoch * config.epochs,
            steps_per_epoch=steps_per_epoch,
            epochs=config.epochs,
            seed=config.seed,
            rank=dist.rank,
            world_size=dist.world_size,
            encoder=predictor.encoder,  # read access for maskers that use it (saliency)
            precision=config.precision,
            memory_format=memory_format,
            cell_grid=cell_grid if config.encoding == "sparse" else None,
        )
    )
    optimizer, scheduler = _build_optimization(config, predictor, steps_per_epoch)
    if dist.rank > 0:
        seed_everything(config.seed + RANK_SEED_STRIDE * dist.rank)
    return RunParts(config=config, dist=dist, device=device, local_batch=local_batch,
                    precision=Precision(config.precision, device), memory_format=memory_format, masker=masker,
                    predictor=predictor, optimizer=optimizer, scheduler=scheduler, cell_grid=cell_grid, **data)


def _cell_grid(config: PretrainConfig, predictor: Predictor) -> tuple[int, int]:
    """The encoder's cell grid; under sparse encoding, installs it (before the masker copies the
    encoder and before the optimizer collects the mask tokens)."""
    from sslkit.models.sparse import encoder_cell_grid

    size = (config.image_size, config.image_size)
    grid = encoder_cell_grid(predictor.encoder, size, config.in_chans)
    if config.encoding == "sparse":
        if min(grid) < 2:
            raise UserError(
                f"--encoding sparse needs the encoder's deepest map to have at least 2 x 2 cells; backbone "
                f"'{config.backbone}' gives {grid[0]} x {grid[1]} at {config.image_size} px: use larger images or a "
                "finer grid (e.g. --backbone-opt output_stride=8 for timm CNNs)"
            )
        predictor.enable_sparse_encoding(grid, size)
    return grid


def distribute(parts: RunParts) -> None:
    """Several processes: one copy of everything trainable (DDP broadcasts the predictor from
    rank 0 and averages its gradients; the masker's modules start from rank 0's too)."""
    config = parts.config
    broadcast_modules(parts.masker.modules(), parts.dist)
    sample = torch.zeros(1, config.in_chans, config.image_size, config.image_size, device=parts.device)
    parts.model = wrap_ddp(parts.predictor, parts.device, parts.dist, sample)
    parts.forward = torch.compile(parts.model) if config.compile else parts.model
    parts.reducer = StepReducer(parts.dist, parts.device)


def _build_optimization(config: PretrainConfig, predictor: torch.nn.Module, steps_per_epoch: int) -> tuple[Any, Any]:
    """The optimizer and its learning-rate schedule, stepped once per optimizer step."""
    optimizer = build_optimizer(predictor.parameters(), config.optimizer, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = build_scheduler(
        optimizer,
        config.schedule,
        total_steps=steps_per_epoch * config.epochs,
        warmup_steps=int(round(config.warmup_epochs * steps_per_epoch)),
        milestones=config.milestones,
        gamma=config.gamma,
    )
    return optimizer, scheduler


def _build_data(config: PretrainConfig, plugins: Any, dist: DistInfo, device: torch.device,
                local_batch: int) -> dict[str, Any]:
    from sslkit.data import make_loader, open_dataset

    dataset = open_dataset(
        config.data,
        plugins=plugins,
        on_bad_image=config.on_bad_image,
        seed=config.split_seed,
        options=dict(config.data_options) or None,
    )
    wanted = parse_splits(config.pretrain_splits)
    splits = tuple(s for s in (wanted or tuple(dataset.splits)) if dataset.splits.get(s))
    n_images = sum(len(dataset.splits[s]) for s in splits)
    if n_images == 0:
        raise UserError(f"data '{config.data or 'embedded'}' has no images in split(s) {config.pretrain_splits}")
    loader = make_loader(
        dataset,
        splits,
        purpose="pretrain",
        image_size=config.image_size,
        in_chans=config.in_chans,
        batch_size=local_batch,  # this process's share of the global batch
        workers=config.workers,
        seed=config.seed,
        shuffle=True,
        # no tiny last batch (noisy BatchNorm statistics), unless the data is smaller than one batch
        drop_last=n_images >= config.batch_size,
        rank=dist.rank,
        world_size=dist.world_size,
        pin_memory=device.type == "cuda",
    )
    if len(loader) == 0:
        raise UserError(f"data '{config.data or 'embedded'}' gives no batches of {config.batch_size} images")
    return {"dataset": dataset, "splits": splits, "n_images": n_images, "loader": loader,
            "steps_per_epoch": len(loader), "has_lesions": bool(getattr(dataset, "has_lesion_masks", False))}


def _check_batchnorm_batch(config: PretrainConfig, dist: DistInfo, predictor: torch.nn.Module, local_batch: int,
                           n_images: int, splits: tuple[str, ...]) -> None:
    """BatchNorm cannot train on one image per batch (torch raises mid-step): say so first."""
    smallest = local_batch if n_images >= config.batch_size else -(-n_images // dist.world_size)
    if smallest >= 2:
        return
    if any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in predictor.modules()):
        raise UserError(
            f"backbone '{config.backbone}' has BatchNorm layers, which need at least 2 images per batch"
            f"{' and process' if dist.distributed else ''}; this run would have {smallest} "
            f"({n_images} image(s) in {'+'.join(splits)}, --batch-size {config.batch_size}): "
            "use more images or a larger --batch-size"
        )
