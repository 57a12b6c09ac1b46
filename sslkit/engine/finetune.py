"""Fine-tuning an encoder on few labels under one protocol, and scoring it honestly.

Protocols (see :mod:`sslkit.evaluation.classifier`): ``linear`` and ``paper`` freeze the encoder,
``full`` trains everything with the encoder at ``lr * encoder_lr_scale``. Frozen protocols use
no augmentation, so the encoder's deepest maps are computed once and the head trains on that
cache (200 epochs of the paper's head cost seconds); ``full`` trains on augmented batches.

The labelled set comes from the train split only; validation picks the epoch when
``select="best-val"`` (the paper reports the last epoch, the default); the test split is read once,
at the end, through the same forward pass ``sslkit evaluate`` uses, so evaluating the saved
classifier later reproduces the reported figures. ``from_scratch`` rebuilds the encoder from the
same backbone spec with random weights (seeded), the baseline every pretraining claim needs.

Run directory: ``config.yaml``, ``classifier/`` (reloadable), ``metrics.json``/``metrics.csv``
(val and test), ``history.csv`` (per epoch), ``tensorboard/``.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from sslkit.errors import UserError
from sslkit.fileio import atomic_write_text
from sslkit.evaluation.classifier import PROTOCOLS, Classifier, evaluate_loader, new_classifier, save_classifier
from sslkit.evaluation.labels import FinetuneRecords, LabelBudget, parse_label_budget, select_records
from sslkit.evaluation.metrics import Metrics, class_weights, classification_metrics

DEFAULT_EPOCHS = {"linear": 100, "paper": 200, "full": 50}
#: the paper's validation / test sizes, used when a dataset has no official splits
PAPER_SPLIT_SIZE = 100
SELECT_CHOICES = ("last", "best-val")
CLASS_WEIGHT_CHOICES = ("auto", "none")


@dataclass
class FinetuneConfig:
    """Every setting of one fine-tuning run (written to the run's ``config.yaml``)."""

    encoder: str | None = None
    """A pretraining run dir, an exported encoder dir, or its encoder.json/.safetensors."""
    from_scratch: bool = False
    """Same network, random weights (from ``encoder``'s spec, or ``backbone``)."""
    backbone: str | None = None
    """Only for ``from_scratch`` without ``encoder`` (default resnet18)."""
    backbone_options: dict[str, Any] = field(default_factory=dict)
    in_chans: int | None = None
    data: str | None = None
    data_options: dict[str, Any] = field(default_factory=dict)
    """Adapter options (``--data-opt``); with ``data`` unset, the pretraining run's."""
    """``ADAPTER:LOCATION``; None = the pretraining run's data, else the embedded BUSI 64 px."""
    protocol: str = "linear"
    labels: LabelBudget = 100
    epochs: int | None = None
    """None = the protocol's default (linear 100, paper 200, full 50)."""
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    encoder_lr_scale: float = 0.1
    class_weights: str = "auto"
    select: str = "last"
    seed: int = 0
    split_seed: int | None = None
    """None = the pretraining run's split seed (so its held-out test images stay held out), else 0."""
    image_size: int | None = None
    """None = the pretraining run's image size, else 64."""
    paper_split_sizes: bool | None = None
    """Cap val/test at 100 images each; None = yes for ``paper`` on datasets with generated splits."""
    eval_batch_size: int = 64
    workers: int = 0
    device: str = "auto"
    out: str | None = None
    quiet: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def resolved_epochs(self) -> int:
        return int(self.epochs) if self.epochs is not None else DEFAULT_EPOCHS[self.protocol]


@dataclass
class FinetuneResult:
    metrics: dict[str, Metrics]
    """"test" (and "val" when there is a validation split)."""
    out: Path | None
    seconds: dict[str, float]
    selected_epoch: int
    labelled_counts: list[int]
    class_names: list[str]
    notes: list[str]


def validate(config: FinetuneConfig) -> None:
    """One sentence per bad value, before any data is read."""
    if config.protocol not in PROTOCOLS:
        raise UserError(f"unknown protocol '{config.protocol}'; known: {', '.join(PROTOCOLS)}")
    if config.encoder is None and not config.from_scratch:
        raise UserError("give --encoder (a pretraining run or exported encoder), or --from-scratch for the baseline")
    if config.encoder is not None and config.backbone is not None:
        raise UserError("give either --encoder or --backbone: an encoder already names its backbone")
    if config.class_weights not in CLASS_WEIGHT_CHOICES:
        raise UserError(f"--class-weights must be one of {', '.join(CLASS_WEIGHT_CHOICES)}, got '{config.class_weights}'")
    if config.select not in SELECT_CHOICES:
        raise UserError(f"--select must be one of {', '.join(SELECT_CHOICES)}, got '{config.select}'")
    for name in ("batch_size", "eval_batch_size"):
        if int(getattr(config, name)) < 1:
            raise UserError(f"{name.replace('_', '-')} must be at least 1, got {getattr(config, name)}")
    if config.epochs is not None and int(config.epochs) < 1:
        raise UserError(f"--epochs must be at least 1, got {config.epochs}")
    if not config.lr > 0 or config.weight_decay < 0 or not config.encoder_lr_scale >= 0:
        raise UserError("--lr must be positive, --weight-decay and --encoder-lr-scale not negative")
    if config.image_size is not None and int(config.image_size) < 16:
        raise UserError(f"--image-size must be at least 16 px, got {config.image_size}")
    config.labels = parse_label_budget(config.labels)


# --------------------------------------------------------------------------- the encoder

def inherit_data_settings(
    run_config: dict[str, Any],
    data: str | None,
    data_options: dict[str, Any] | None,
    split_seed: int | None,
    image_size: int | None,
) -> tuple[str | None, dict[str, Any], int, int]:
    """(data, adapter options, split seed, image size): what the user gave, else the pretraining
    run's, so its held-out test images stay held out. The run's adapter options come along only
    with the run's data."""
    options = dict(data_options or {})
    if data is None:
        data = run_config.get("data")
        options = options or dict(run_config.get("data_options") or {})
    seed = split_seed if split_seed is not None else int(run_config.get("split_seed", 0))
    size = image_size if image_size is not None else int(run_config.get("image_size", 64))
    return data, options, seed, size


def locate_encoder(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """(exported encoder dir or file, the pretraining config.yaml or {}) from what users pass."""
    import yaml

    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"encoder '{path}' does not exist (give a pretraining run dir or an exported encoder)")
    run_config: dict[str, Any] = {}
    if path.is_dir() and (path / "encoder" / "encoder.json").is_file():
        config_file = path / "config.yaml"
        if config_file.is_file():
            try:
                run_config = yaml.safe_load(config_file.read_text()) or {}
            except yaml.YAMLError as error:
                raise UserError(f"'{config_file}' is not valid YAML ({error})") from None
        return path / "encoder", run_config if isinstance(run_config, dict) else {}
    if path.is_dir() and not (path / "encoder.json").is_file():
        raise UserError(f"'{path}' holds no encoder (no encoder/encoder.json: has its pretraining finished?)")
    return path, {}


def build_encoder_for(config: FinetuneConfig, plugins=None) -> tuple[torch.nn.Module, dict[str, Any], str]:
    """(encoder, pretraining config or {}, a description) as ``config`` asks."""
    from sslkit.models import build_encoder, load_encoder, read_encoder_spec

    if config.encoder is not None:
        where, run_config = locate_encoder(config.encoder)
        if not config.from_scratch:
            return load_encoder(where, plugins=plugins), run_config, f"pretrained {where}"
        spec = read_encoder_spec(where)
        name, in_chans, options = spec["backbone"], spec["in_chans"], dict(spec.get("options") or {})
    else:
        run_config = {}
        name = config.backbone or "resnet18"
        in_chans = config.in_chans or 1
        options = dict(config.backbone_options)
    torch.manual_seed(config.seed)  # random init is part of what the seed fixes
    encoder = build_encoder(name, in_chans=int(in_chans), plugins=plugins, **options)
    return encoder, run_config, f"from scratch ({name}, random init, seed {config.seed})"


# --------------------------------------------------------------------------- training

class _Recorder:
    """history.csv rows, TensorBoard scalars and the epoch progress bar of one run."""

    def __init__(self, out: Path | None, epochs: int, quiet: bool, title: str):
        self.rows: list[dict[str, Any]] = []
        self.writer = None
        if out is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out / "tensorboard"))
        self.progress = None
        if not quiet:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                                     console=Console(stderr=True), transient=True)
            self.progress.start()
            self.task = self.progress.add_task(title, total=epochs, info="")

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
        if self.progress is not None:
            info = f"loss {loss:.4f}" + (f"  val acc {val.scalars['accuracy']:.3f}" if val is not None else "")
            self.progress.update(self.task, advance=1, info=info)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Shuffled index batches; a last batch of one image is dropped when others exist
    (a single image says little and breaks BatchNorm in training mode)."""
    order = torch.randperm(n, generator=generator)
    chunks = list(order.split(batch_size))
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        chunks.pop()
    return chunks


@contextlib.contextmanager
def _one_thread_on_cpu(device: torch.device):
    """Run tiny-tensor work single-threaded on the CPU.

    A head on cached features does thousands of sub-millisecond steps; with several intra-op
    threads on a busy machine each step waits on thread hand-offs (measured on a shared 2-core
    box: 50 epochs of the paper head took 22 s with 2 threads, 0.6 s with 1).
    """
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train_frozen(classifier: Classifier, features: torch.Tensor, labels: torch.Tensor, val: tuple | None,
                  config: FinetuneConfig, weights: torch.Tensor | None, device: torch.device,
                  class_names: list[str], recorder: _Recorder) -> tuple[dict[str, torch.Tensor], int]:
    """Train the head on cached deepest maps; returns (selected head state, its epoch)."""
    head = classifier.head
    optimizer = torch.optim.Adam(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    features, labels = features.to(device), labels.to(device)
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    epochs = config.resolved_epochs()
    for epoch in range(1, epochs + 1):
        head.train()
        total, seen = 0.0, 0
        for idx in _batches(len(labels), config.batch_size, generator):
            idx = idx.to(device)
            loss = F.cross_entropy(head(features[idx]), labels[idx], weight=weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            seen += len(idx)
        val_metrics = None
        if val is not None:
            head.eval()
            with torch.no_grad():
                probs = torch.softmax(head(val[0].to(device)), dim=1).cpu().numpy()
            val_metrics = classification_metrics(val[1].numpy(), probs, class_names)
            best = _keep_best(best, val_metrics, epoch, head, config.select)
        recorder.epoch(epoch, total / max(1, seen), val_metrics)
    if best is None or config.select == "last":
        return copy.deepcopy(head.state_dict()), epochs
    return best[2], best[1]


def _keep_best(best, metrics: Metrics, epoch: int, module: torch.nn.Module, select: str):
    """Track the epoch with the best validation macro F1 (ties: the later epoch)."""
    if select != "best-val":
        return best
    score = metrics.scalars["macro_f1"]
    if best is None or score >= best[0]:
        return score, epoch, copy.deepcopy(module.state_dict())
    return best


def _train_full(classifier: Classifier, train_loader, val_loader, config: FinetuneConfig,
                weights: torch.Tensor | None, device: torch.device, class_names: list[str],
                recorder: _Recorder) -> tuple[dict[str, torch.Tensor], int]:
    """Train encoder and head together; returns (selected classifier state, its epoch)."""
    groups = [{"params": list(classifier.head.parameters()), "lr": config.lr}]
    encoder_params = [p for p in classifier.encoder.parameters() if p.requires_grad]
    if config.encoder_lr_scale > 0:
        groups.append({"params": encoder_params, "lr": config.lr * config.encoder_lr_scale})
    else:
        for p in encoder_params:
            p.requires_grad_(False)
    optimizer = torch.optim.Adam(groups, weight_decay=config.weight_decay)
    best = None
    epochs = config.resolved_epochs()
    for epoch in range(1, epochs + 1):
        classifier.train()
        train_loader.set_epoch(epoch - 1)
        total, seen = 0.0, 0
        for batch in train_loader:
            images, labels = batch["image"].to(device), batch["label"].to(device)
            if len(labels) < 2 and seen:  # see _batches: skip a trailing single image
                continue
            loss = F.cross_entropy(classifier(images), labels, weight=weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(labels)
            seen += len(labels)
        val_metrics = evaluate_loader(classifier, val_loader, device, class_names) if val_loader is not None else None
        if val_metrics is not None:
            best = _keep_best(best, val_metrics, epoch, classifier, config.select)
        recorder.epoch(epoch, total / max(1, seen), val_metrics)
    if best is None or config.select == "last":
        return copy.deepcopy(classifier.state_dict()), epochs
    return best[2], best[1]


# --------------------------------------------------------------------------- the run

def _has_generated_splits(ds) -> bool:
    """True when the adapter generated the splits (the data had none of its own).

    Read from ``DatasetSplits.generated_splits`` when the data layer provides it; without that
    flag the official splits are assumed (use ``--paper-splits`` to cap them anyway).
    """
    return bool(getattr(ds, "generated_splits", False))


def run_finetuning(config: FinetuneConfig, plugins=None, *, log: Callable[[str], None] | None = None) -> FinetuneResult:
    """Fine-tune and score one classifier as ``config`` says; writes the run dir when ``out`` is set."""
    import yaml

    from sslkit.data import make_loader, open_dataset
    from sslkit.engine.device import resolve_device

    started = time.perf_counter()
    validate(config)
    say = log or (lambda text: None)
    device = resolve_device(config.device)
    encoder, run_config, source = build_encoder_for(config, plugins)
    in_chans = int(encoder.spec.get("in_chans", config.in_chans or 1))
    config.data, config.data_options, config.split_seed, config.image_size = inherit_data_settings(
        run_config, config.data, config.data_options, config.split_seed, config.image_size
    )
    config.in_chans = in_chans

    ds = open_dataset(config.data, plugins=plugins, seed=config.split_seed, options=config.data_options or None)
    cap = config.paper_split_sizes
    if cap is None:
        cap = config.protocol == "paper" and _has_generated_splits(ds)
    config.paper_split_sizes = bool(cap)
    records = select_records(ds, config.labels, seed=config.seed, split_seed=config.split_seed,
                             cap_val=PAPER_SPLIT_SIZE if cap else None, cap_test=PAPER_SPLIT_SIZE if cap else None)
    counts = records.counts("labelled")
    weights = None
    if config.class_weights == "auto":
        weights = torch.tensor(class_weights(counts), dtype=torch.float32, device=device)
    say(f"{config.protocol} protocol, encoder {source}; {len(records.labelled)} labelled "
        f"({', '.join(f'{n} {c}' for c, n in zip(records.class_names, counts))}), "
        f"{len(records.val)} val, {len(records.test)} test images")

    out = Path(config.out).expanduser() if config.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))

    torch.manual_seed(config.seed)  # head initialisation and dropout follow the seed
    classifier = new_classifier(encoder, config.protocol, len(records.class_names)).to(device)
    loader_args = dict(image_size=config.image_size, in_chans=in_chans, workers=config.workers)

    def eval_loader(recs):
        return make_loader(ds, records=recs, purpose="eval", batch_size=config.eval_batch_size,
                           shuffle=False, seed=config.seed, **loader_args)

    val_loader = eval_loader(records.val) if records.val else None
    recorder = _Recorder(out, config.resolved_epochs(), config.quiet, f"{config.protocol} fine-tuning")
    seconds: dict[str, float] = {}
    try:
        tick = time.perf_counter()
        if classifier.frozen:
            from sslkit.evaluation.features import deepest_features

            train_maps, train_labels = deepest_features(classifier.encoder, eval_loader(records.labelled), device)
            val_cache = deepest_features(classifier.encoder, val_loader, device) if val_loader is not None else None
            seconds["features"] = time.perf_counter() - tick
            tick = time.perf_counter()
            with _one_thread_on_cpu(device):
                state, selected = _train_frozen(classifier, train_maps, train_labels, val_cache, config, weights,
                                                device, records.class_names, recorder)
            classifier.head.load_state_dict(state)
        else:
            train_loader = make_loader(ds, records=records.labelled, purpose="finetune",
                                       batch_size=config.batch_size, shuffle=True, seed=config.seed, **loader_args)
            state, selected = _train_full(classifier, train_loader, val_loader, config, weights, device,
                                          records.class_names, recorder)
            classifier.load_state_dict(state)
        seconds["train"] = time.perf_counter() - tick
    finally:
        recorder.close()

    tick = time.perf_counter()
    metrics: dict[str, Metrics] = {}
    if val_loader is not None:
        metrics["val"] = evaluate_loader(classifier, val_loader, device, records.class_names)
    metrics["test"] = evaluate_loader(classifier, eval_loader(records.test), device, records.class_names)
    seconds["evaluate"] = time.perf_counter() - tick
    seconds["total"] = time.perf_counter() - started
    notes = records.notes + [n for m in metrics.values() for n in m.notes]

    if out is not None:
        _write_run(out, config, classifier, records, metrics, recorder, seconds, selected, source, counts,
                   None if weights is None else weights.tolist())
    return FinetuneResult(metrics, out, seconds, selected, counts, records.class_names, notes)


def _write_run(out: Path, config: FinetuneConfig, classifier: Classifier, records: FinetuneRecords,
               metrics: dict[str, Metrics], recorder: _Recorder, seconds: dict[str, float], selected: int,
               source: str, counts: list[int], weights: list[float] | None) -> None:
    from sslkit.evaluation.reporting import write_metrics_files, write_tensorboard_scalars

    classifier.cpu()
    data_meta = {
        "data": config.data,
        "data_options": dict(config.data_options),
        "split_seed": config.split_seed,
        "image_size": config.image_size,
        "in_chans": config.in_chans,
        "eval_batch_size": config.eval_batch_size,
        "paper_split_sizes": config.paper_split_sizes,
    }
    save_classifier(classifier, out / "classifier", {
        "class_names": records.class_names,
        "encoder_source": source,
        "from_scratch": config.from_scratch,
        "selected_epoch": selected,
        **data_meta,
    })
    write_metrics_files(out, metrics, extra={
        "protocol": config.protocol,
        "encoder_source": source,
        "from_scratch": config.from_scratch,
        "seed": config.seed,
        "epochs": config.resolved_epochs(),
        "selected_epoch": selected,
        "labelled_counts": dict(zip(records.class_names, counts)),
        "val_counts": dict(zip(records.class_names, records.counts("val"))),
        "test_counts": dict(zip(records.class_names, records.counts("test"))),
        "class_weights": weights,
        "seconds": seconds,
        "notes": records.notes,
        "complete": True,
    })
    if recorder.rows:
        columns = list(recorder.rows[-1])
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in recorder.rows:
            writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
        atomic_write_text(out / "history.csv", buffer.getvalue())
    if recorder.writer is not None:
        for split, m in metrics.items():
            write_tensorboard_scalars(recorder.writer, f"final_{split}", m.scalars, selected)
        recorder.writer.close()
