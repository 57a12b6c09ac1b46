"""Fine-tuning an encoder on few labels under one protocol, and scoring it honestly.

Protocols (see :mod:`sslkit.finetuning.classifier`): ``linear`` and ``paper`` freeze the encoder,
``full`` trains everything with the encoder at ``lr * encoder_lr_scale``. Frozen protocols use
no augmentation, so the encoder's deepest maps are computed once and the head trains on that
cache (200 epochs of the paper's head cost seconds); ``full`` trains on augmented batches.

The labelled set comes from the train split only; validation picks the epoch when
``select="best-val"`` (the paper reports the last epoch, the default); the test split is read once,
at the end, through the same forward pass ``sslkit evaluate`` uses, so evaluating the saved
classifier later reproduces the reported figures. ``from_scratch`` rebuilds the encoder from the
same backbone spec with random weights (seeded), the baseline every pretraining claim needs.

The paper protocol follows the authors' notebook: their splits (every split pooled, classes
balanced to the smallest one, stratified 100 validation / 100 test images), their head, class
weights ``10 * (1 - n_c / N)``, Adam lr 1e-3 without weight decay (theirs was configured but never
reached the optimiser), MultiStepLR x0.33 at epochs 150 and 175 of 200, the last epoch reported.
Deliberate differences: the frozen encoder's BatchNorm stays in eval mode (theirs drifted in
training mode) and the head's input is standardised with the labelled features' statistics (see
:mod:`sslkit.finetuning.classifier`; ``standardize_features=False`` turns it off).

Run directory: ``config.yaml``, ``classifier/`` (reloadable), ``metrics.json``/``metrics.csv``
(val and test), ``predictions.csv`` (test image ids, labels, class probabilities),
``history.csv`` (per epoch), ``tensorboard/``.

This module holds the run from data to scores; the settings are in
:mod:`sslkit.finetuning.config`, the training loops in :mod:`sslkit.finetuning.loop`, the run
directory's files in :mod:`sslkit.finetuning.files`, the protocol table in
:mod:`sslkit.finetuning.protocols`.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from sslkit.choices import DECODER_CHOICES, DEFAULT_TASK
from sslkit.defaults import BACKBONE
from sslkit.errors import UserError
from sslkit.evaluation.metrics import Metrics
from sslkit.finetuning.config import FinetuneConfig
from sslkit.finetuning.files import write_run
from sslkit.finetuning.labels import parse_label_budget, select_records
from sslkit.finetuning.loop import Recorder
from sslkit.finetuning.protocols import CLASS_WEIGHT_CHOICES, LR_SCHEDULES, SELECT_CHOICES, check_trainable, get_protocol
from sslkit.finetuning.tasks import check_protocol, get_task
from sslkit.fileio import atomic_write_text
from sslkit.options import check_backbone_options, check_seed
from sslkit.rundir import inherit_data_settings, locate_encoder
from sslkit.runtime import check_threads, cpu_threads


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
    test_predictions: dict[str, Any] | None = None
    """{"ids": image ids, "labels": true labels, "probs": class probabilities, "groups": leakage
    groups, "positive_call": the operating point's calls} of the test split (what ``predictions.csv``
    holds; compare's paired statistics are computed from it)."""
    val_predictions: dict[str, Any] | None = None
    """The same for the validation split (None without one)."""
    operating_point: dict[str, Any] | None = None
    fold_plan: dict[str, Any] | None = None
    """With folds: the fold assignment's digest and pool size (see ``FinetuneRecords.fold_plan``)."""
    """{"positive": class, "threshold": chosen on validation, "sensitivity"/"specificity" on test}."""
    seed: int = 0
    """The run's seed (label draw, head initialisation, shuffling)."""

    def __repr__(self) -> str:
        """The headline test figures, not every prediction (those are in ``test_predictions``)."""
        test = self.metrics.get("test")
        figures = ", ".join(f"{k} {v:.3f}" for k, v in test.scalars.items()) if test is not None else "none"
        out = str(self.out) if self.out is not None else None
        return (f"FinetuneResult(out={out!r}, seed={self.seed}, test: {figures}, "
                f"selected_epoch={self.selected_epoch}, labelled={self.labelled_counts})")


def validate(config: FinetuneConfig, plugins=None) -> None:
    """One sentence per bad value, before any data is read (fills in the task's default protocol)."""
    task = get_task(config.task, plugins)
    config.protocol = config.resolved_protocol(plugins)
    get_protocol(config.protocol)
    check_protocol(task, config.protocol)
    if config.decoder not in DECODER_CHOICES:
        raise UserError(f"--decoder must be one of {', '.join(DECODER_CHOICES)}, got '{config.decoder}'")
    check_threads(config.threads)
    check_seed(config.seed, "--seed")
    check_seed(config.split_seed, "--split-seed")
    check_backbone_options(config.backbone_options)
    if config.encoder is None and not config.from_scratch:
        raise UserError("give --encoder (a pretraining run or exported encoder), or --from-scratch for the baseline")
    if config.encoder is not None and config.backbone is not None:
        raise UserError("give either --encoder or --backbone: an encoder already names its backbone")
    if config.class_weights not in CLASS_WEIGHT_CHOICES:
        raise UserError(f"--class-weights must be one of {', '.join(CLASS_WEIGHT_CHOICES)}, got '{config.class_weights}'")
    if config.lr_schedule is not None and config.lr_schedule not in LR_SCHEDULES:
        raise UserError(f"--lr-schedule must be one of {', '.join(LR_SCHEDULES)}, got '{config.lr_schedule}'")
    if config.select not in SELECT_CHOICES:
        raise UserError(f"--select must be one of {', '.join(SELECT_CHOICES)}, got '{config.select}'")
    for name in ("batch_size", "eval_batch_size"):
        if int(getattr(config, name)) < 1:
            raise UserError(f"{name.replace('_', '-')} must be at least 1, got {getattr(config, name)}")
    if config.epochs is not None and int(config.epochs) < 1:
        raise UserError(f"--epochs must be at least 1, got {config.epochs}")
    finite = all(math.isfinite(v) for v in (config.lr, config.weight_decay, config.encoder_lr_scale))
    if not finite or not config.lr > 0 or config.weight_decay < 0 or not config.encoder_lr_scale >= 0:
        raise UserError("--lr must be a positive number, --weight-decay and --encoder-lr-scale zero or positive, "
                        f"got {config.lr}, {config.weight_decay} and {config.encoder_lr_scale}")
    folds, fold = int(config.folds), int(config.fold)
    if folds < 1 or folds == 2:
        raise UserError(f"--folds must be 1 (one split) or at least 3 (test, validation and training folds), got {folds}")
    if not 0 <= fold < max(folds, 1):
        raise UserError(f"--fold must be in 0..{folds - 1}, got {fold}")
    if config.image_size is not None and int(config.image_size) < 16:
        raise UserError(f"--image-size must be at least 16 px, got {config.image_size}")
    config.labels = parse_label_budget(config.labels)
    check_trainable(config.protocol, config.batch_size, [config.labels], task=task.name)


# --------------------------------------------------------------------------- the encoder

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
        name = config.backbone or BACKBONE
        in_chans = config.in_chans or 1
        options = dict(config.backbone_options)
    torch.manual_seed(config.seed)  # random init is part of what the seed fixes
    encoder = build_encoder(name, in_chans=int(in_chans), plugins=plugins, **options)
    return encoder, run_config, f"from scratch ({name}, random init, seed {config.seed})"


# --------------------------------------------------------------------------- the run

def resolve_paper_splits(config: FinetuneConfig, ds) -> tuple[bool, str | None]:
    """(use the paper's splits?, a note when the default had to fall back to the data's own).

    The default follows the protocol and the data (not whether the adapter generated its splits:
    the old rule read a flag no adapter set, so the documented 100/100 sizes never applied). An
    explicit ``--paper-splits`` on data that cannot take them is an error.
    """
    from sslkit.data.splits import paper_split_problem

    problem = paper_split_problem(ds.records())
    if config.paper_splits is None:
        if not get_protocol(config.resolved_protocol()).paper_splits:
            return False, None
        if problem:
            return False, f"the dataset's own splits are used: {problem}"
        return True, None
    if config.paper_splits and problem:
        raise UserError(f"--paper-splits cannot be applied: {problem}")
    return bool(config.paper_splits), None


def run_seeds(config: FinetuneConfig, seeds: int, plugins=None, *, log: Callable[[str], None] | None = None,
              runner: Callable[..., Any] | None = None) -> Iterator[Any]:
    """``seeds`` runs seeded ``config.seed``, ``config.seed + 1``, ...; with several, each writes
    to ``OUT/seedN``. Yields each result as it finishes (the command prints it before the next).
    ``runner``: what one seed runs (default :func:`run_finetuning`; ``run_folds`` for ``--folds``)."""
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}")
    for offset in range(seeds):
        one = copy.deepcopy(config)  # a run fills in inherited settings: each seed starts from the same ones
        one.seed = config.seed + offset
        if seeds > 1 and config.out is not None:
            one.out = str(Path(config.out) / f"seed{one.seed}")
        yield (runner or run_finetuning)(one, plugins, log=log)


def run_finetuning(config: FinetuneConfig, plugins=None, *, log: Callable[[str], None] | None = None) -> FinetuneResult:
    """Fine-tune and score one classifier as ``config`` says; writes the run dir when ``out`` is set."""
    from sslkit.engine.run_lock import locked_output
    from sslkit.stop_signals import interrupted, signals_as_interrupts

    validate(config, plugins)
    # one command per --out (the same refusal as pretraining); a failed new folder is removed
    try:
        with cpu_threads(config.threads), locked_output(config.out, finished_marker="metrics.json"), \
                signals_as_interrupts():
            return _run_finetuning(config, plugins, log)
    except KeyboardInterrupt as error:  # Ctrl-C, SIGTERM: nothing to resume, so say what to do
        if getattr(error, "message", None):
            raise
        raise interrupted(error, "Interrupted; this fine-tuning did not finish (it cannot resume; a folder it "
                                 "created is removed): run the command again") from None


def _run_finetuning(config: FinetuneConfig, plugins, log: Callable[[str], None] | None) -> FinetuneResult:
    import yaml

    from sslkit.data import open_dataset
    from sslkit.engine.device import resolve_device

    started = time.perf_counter()
    say = log or (lambda text: None)
    device = resolve_device(config.device)
    encoder, run_config, source = build_encoder_for(config, plugins)
    in_chans = int(getattr(encoder, "spec").get("in_chans", config.in_chans or 1))
    config.data, config.data_options, config.split_seed, config.image_size = inherit_data_settings(
        run_config, config.data, config.data_options, config.split_seed, config.image_size
    )
    config.in_chans = in_chans

    task = get_task(config.task, plugins)
    ds = open_dataset(config.data, plugins=plugins, seed=config.split_seed, options=config.data_options or None)
    task.check_data(ds)
    config.paper_splits, split_note = resolve_paper_splits(config, ds)
    records = select_records(ds, config.labels, seed=config.seed, split_seed=config.split_seed,
                             paper=config.paper_splits, folds=config.folds, fold=config.fold)
    if split_note:
        records.notes.append(split_note)
    counts = records.counts("labelled")
    task.check_records(records, ds.name)
    from sslkit.evaluation.leakage import repeated_image_notes

    records.notes.extend(repeated_image_notes(records.labelled, records.val, records.test))
    what = "" if task.name == DEFAULT_TASK else f"{task.name}, "
    say(f"{what}{config.protocol} protocol, encoder {source}; {len(records.labelled)} labelled "
        f"({', '.join(f'{n} {c}' for c, n in zip(records.class_names, counts))}), "
        f"{len(records.val)} val, {len(records.test)} test images")

    out = Path(config.out).expanduser() if config.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))

    torch.manual_seed(config.seed)  # head initialisation and dropout follow the seed
    model = task.build_model(encoder, config, records, run_config=run_config, plugins=plugins).to(device)
    data = RunData(ds, config, in_chans)
    training = task.prepare_training(model, records, config, device)
    recorder = Recorder(out, config.resolved_epochs(), config.quiet)
    try:
        tick = time.perf_counter()
        selected = task.train(model, data, records, config, device, recorder, training)
        data.seconds["train"] = time.perf_counter() - tick - data.seconds.get("features", 0.0)
    finally:
        recorder.close()
    seconds = data.seconds

    tick = time.perf_counter()
    metrics: dict[str, Metrics] = {}
    val_predictions = None
    if records.val:
        val_predictions = task.predict(model, data.eval_loader(records.val), records.val, records, device)
        metrics["val"] = task.score(val_predictions, records.class_names)
    predictions = task.predict(model, data.eval_loader(records.test), records.test, records, device)
    metrics["test"] = task.score(predictions, records.class_names)
    predictions["groups"] = [(records.groups or {}).get(i, i) for i in predictions["ids"]]
    operating = task.operating_point(predictions, val_predictions, records.class_names, config)
    seconds["evaluate"] = time.perf_counter() - tick
    seconds["total"] = time.perf_counter() - started
    notes = records.notes + [n for m in metrics.values() for n in m.notes]

    if out is not None:
        weights = training.get("weights")
        task.write_predictions(out, predictions, records, writer=recorder.writer)
        write_run(out, config, task, model, records, metrics, recorder, seconds, selected, source, counts,
                  None if weights is None else weights.tolist())
    return FinetuneResult(metrics, out, seconds, selected, counts, records.class_names, notes,
                          json_shaped(predictions), seed=config.seed,
                          val_predictions=None if val_predictions is None else json_shaped(val_predictions),
                          operating_point=operating, fold_plan=records.fold_plan)


def json_shaped(predictions: dict[str, Any]) -> dict[str, Any]:
    """``predictions`` without the arrays a task keeps only for its files (keys starting ``_``,
    e.g. segmentation's masks): what results, cell records and fold pools carry."""
    return {k: v for k, v in predictions.items() if not k.startswith("_")}


class RunData:
    """The opened data set and how this run loads it: evaluation batches in a fixed order, and
    the training batches (augmented, shuffled by the seed). ``seconds`` collects the timings."""

    def __init__(self, ds, config: FinetuneConfig, in_chans: int):
        self.ds = ds
        self.config = config
        self.loader_args = dict(image_size=config.image_size, in_chans=in_chans, workers=config.workers)
        self.seconds: dict[str, float] = {}

    def eval_loader(self, recs: list):
        from sslkit.data import make_loader

        return make_loader(self.ds, records=recs, purpose="eval", batch_size=self.config.eval_batch_size,
                           shuffle=False, seed=self.config.seed, **self.loader_args)

    def train_loader(self, recs: list):
        from sslkit.data import make_loader

        batch = self.config.batch_size
        return make_loader(self.ds, records=recs, purpose="finetune", batch_size=batch, shuffle=True,
                           seed=self.config.seed,
                           # a last batch of one image cannot train BatchNorm: it waits a turn
                           drop_last=len(recs) % batch == 1, **self.loader_args)


def clinical_figures(test: dict[str, Any], val: dict[str, Any] | None, class_names: list[str],
                     requested: str | None) -> dict[str, Any] | None:
    """The operating point: the threshold keeping 90 % specificity on the validation predictions
    only, and the sensitivity/specificity it gives on the test predictions (None without a positive
    class or a validation split). Each test image's call is written into ``test`` as
    ``positive_call``, so pooled out-of-fold figures use each fold's own threshold."""
    import numpy as np

    from sslkit.evaluation.metrics import (
        TARGET_SPECIFICITY,
        operating_point,
        positive_class,
        threshold_at_specificity,
    )

    positive = positive_class(class_names, requested)
    if positive is None or val is None:
        return None
    threshold = threshold_at_specificity(np.asarray(val["labels"]), np.asarray(val["probs"])[:, positive], positive,
                                         TARGET_SPECIFICITY)
    if np.isnan(threshold):  # no negative in the validation part: no threshold can be chosen
        return None
    scores = np.asarray(test["probs"])[:, positive]
    sensitivity, specificity = operating_point(np.asarray(test["labels"]), scores, positive, threshold)
    test["positive_call"] = (scores > threshold).astype(int).tolist()
    return {"positive": class_names[positive], "threshold": threshold, "sensitivity": sensitivity,
            "specificity": specificity, "target_specificity": TARGET_SPECIFICITY}
