"""The fine-tuning loops: a head on cached frozen features, or a task's model on batches.

Both run the same epoch schedule (:func:`fit`): one training pass, the learning-rate step, the
validation figures, keeping the best epoch (by the task's selection figure) when
``select="best-val"``, then one history row. Only what one training pass does differs, so the
protocols and tasks cannot drift apart in how they pick the reported epoch or what they log.
"""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from sslkit.finetuning.classifier import Classifier, fit_head_standardization
from sslkit.evaluation.metrics import Metrics, classification_metrics
from sslkit.runtime import cpu_threads

#: the authors' MultiStepLR: x0.33 at epochs 150 and 175 of 200 (scaled to other epoch counts)
PAPER_MILESTONES = (0.75, 0.875)
PAPER_GAMMA = 0.33


class Recorder:
    """history.csv rows, TensorBoard scalars and the epoch progress bar of one run."""

    def __init__(self, out: Path | None, epochs: int, quiet: bool):
        from sslkit.engine.progress import TrainingProgress

        self.rows: list[dict[str, Any]] = []
        self.epochs = epochs
        self.writer = None
        if out is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out / "tensorboard"))
        self.progress = TrainingProgress(epochs, enabled=not quiet, label="fine-tuning")

    def epoch(self, epoch: int, loss: float, val: Metrics | None) -> None:
        row: dict[str, Any] = {"epoch": epoch, "loss": loss}
        if val is not None:
            row.update({f"val_{k}": v for k, v in val.scalars.items()})
        self.rows.append(row)
        if self.writer is not None:
            from sslkit.evaluation.reporting import write_tensorboard_scalars

            write_tensorboard_scalars(self.writer, "train", {"loss": loss}, epoch)
            if val is not None:
                write_tensorboard_scalars(self.writer, "val", val.scalars, epoch)
        self.progress.update(epoch=epoch, epochs=self.epochs, loss=loss)

    def close(self) -> None:
        self.progress.close()


def one_thread_on_cpu(device: torch.device) -> contextlib.AbstractContextManager:
    """Run tiny-tensor work single-threaded on the CPU.

    A head on cached features does thousands of sub-millisecond steps; with several intra-op
    threads on a busy machine each step waits on thread hand-offs (measured on a shared 2-core
    box: 50 epochs of the paper head took 22 s with 2 threads, 0.6 s with 1).
    """
    return cpu_threads(1) if device.type == "cpu" else contextlib.nullcontext()


def _batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Shuffled index batches; a last batch of one image is dropped when others exist
    (a single image says little and breaks BatchNorm in training mode)."""
    order = torch.randperm(n, generator=generator)
    chunks = list(order.split(batch_size))
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        chunks.pop()
    return chunks


def lr_scheduler(optimizer: torch.optim.Optimizer, config):
    """The epoch-stepped learning-rate schedule ``config`` asks for, or None."""
    if config.resolved_lr_schedule() != "paper":
        return None
    epochs = config.resolved_epochs()
    milestones = sorted({max(1, round(epochs * m)) for m in PAPER_MILESTONES})
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=PAPER_GAMMA)


def _keep_best(best, metrics: Metrics, epoch: int, module: torch.nn.Module, select: str, selection_metric: str):
    """Track the epoch with the best validation ``selection_metric`` (ties: the later epoch)."""
    if select != "best-val":
        return best
    score = metrics.scalars[selection_metric]
    if best is None or score >= best[0]:
        return score, epoch, copy.deepcopy(module.state_dict())
    return best


def _step(optimizer: torch.optim.Optimizer, logits: torch.Tensor, labels: torch.Tensor,
          weights: torch.Tensor | None) -> float:
    """One optimiser step on the (class-weighted) cross-entropy; returns the batch's summed loss."""
    loss = F.cross_entropy(logits, labels, weight=weights)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item() * len(labels)


def fit(module: torch.nn.Module, optimizer: torch.optim.Optimizer, config, recorder: Recorder,
        train_epoch: Callable[[int], float], validate: Callable[[], Metrics | None],
        selection_metric: str = "macro_f1") -> tuple[dict, int]:
    """Every epoch: ``train_epoch(epoch)`` (its mean loss), the schedule's step, ``validate()``,
    the best-epoch bookkeeping and a history row. Returns (the selected state of ``module``, its epoch)."""
    scheduler = lr_scheduler(optimizer, config)
    best = None
    epochs = config.resolved_epochs()
    for epoch in range(1, epochs + 1):
        loss = train_epoch(epoch)
        if scheduler is not None:
            scheduler.step()
        val_metrics = validate()
        if val_metrics is not None:
            best = _keep_best(best, val_metrics, epoch, module, config.select, selection_metric)
        recorder.epoch(epoch, loss, val_metrics)
    if best is None or config.select == "last":
        return copy.deepcopy(module.state_dict()), epochs
    return best[2], best[1]


def train_frozen(classifier: Classifier, features: torch.Tensor, labels: torch.Tensor, val: tuple | None,
                 config, weights: torch.Tensor | None, device: torch.device,
                 class_names: list[str], recorder: Recorder) -> tuple[dict[str, torch.Tensor], int]:
    """Train the head on cached deepest maps; returns (selected head state, its epoch)."""
    head = classifier.head
    optimizer = torch.optim.Adam(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    features, labels = features.to(device), labels.to(device)
    fit_head_standardization(head, features)

    def train_epoch(epoch: int) -> float:
        head.train()
        total, seen = 0.0, 0
        for idx in _batches(len(labels), config.batch_size, generator):
            idx = idx.to(device)
            total += _step(optimizer, head(features[idx]), labels[idx], weights)
            seen += len(idx)
        return total / max(1, seen)

    def validate() -> Metrics | None:
        if val is None:
            return None
        head.eval()
        with torch.no_grad():
            probs = torch.softmax(head(val[0].to(device)), dim=1).cpu().numpy()
        return classification_metrics(val[1].numpy(), probs, class_names)

    return fit(head, optimizer, config, recorder, train_epoch, validate)


def train_batches(model: torch.nn.Module, train_loader, config, device: torch.device, recorder: Recorder, *,
                  loss: Callable[[torch.Tensor, dict[str, Any]], torch.Tensor], target: str,
                  validate: Callable[[], Metrics | None], selection_metric: str) -> tuple[dict[str, torch.Tensor], int]:
    """Train ``model`` on batches (its ``encoder`` at ``lr * encoder_lr_scale``, the rest at ``lr``;
    a frozen encoder's parameters do not train); returns (selected state, its epoch).

    ``loss(outputs, batch)`` is the task's mean loss of a batch whose ``image`` and ``target``
    entries are on ``device``; ``validate()`` gives the validation figures (None without a split)."""
    encoder = getattr(model, "encoder")
    encoder_ids = {id(p) for p in encoder.parameters()}
    rest = [p for p in model.parameters() if id(p) not in encoder_ids and p.requires_grad]
    groups = [{"params": rest, "lr": config.lr}]
    encoder_params = [p for p in encoder.parameters() if p.requires_grad]
    if config.encoder_lr_scale > 0 and encoder_params:
        groups.append({"params": encoder_params, "lr": config.lr * config.encoder_lr_scale})
    else:
        for p in encoder_params:
            p.requires_grad_(False)
    optimizer = torch.optim.Adam(groups, weight_decay=config.weight_decay)

    def train_epoch(epoch: int) -> float:
        model.train()
        train_loader.set_epoch(epoch - 1)
        total, seen = 0.0, 0
        for batch in train_loader:
            images = batch["image"].to(device)
            if len(images) < 2 and seen:  # see _batches: skip a trailing single image
                continue
            on_device = {**batch, "image": images, target: batch[target].to(device)}
            value = loss(model(images), on_device)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
            total += value.item() * len(images)
            seen += len(images)
        return total / max(1, seen)

    return fit(model, optimizer, config, recorder, train_epoch, validate, selection_metric)
