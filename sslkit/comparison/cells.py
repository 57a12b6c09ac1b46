"""One cell of ``sslkit compare``: its settings, its fingerprint, running it, its results row.

A finished cell's ``cell.json`` holds a *fingerprint*: every pretraining and fine-tuning setting
that can change its figures. A rerun reuses the cell when the fingerprint matches and refuses to
mix in a cell made with other settings; the settings that never change figures are left out
(:data:`sslkit.pretraining.config.NOT_RESULT_SETTINGS`, the same list ``--resume`` follows).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable

from sslkit.comparison.config import (
    CELL_FILE,
    CELL_FORMAT,
    PRETRAIN_FILE,
    SCRATCH_FULL_PROTOCOL,
    Cell,
    CompareConfig,
    budget_key,
    pretrain_settings,
)
from sslkit.evaluation.reference_methods import BASELINES, SCRATCH_FULL
from sslkit.engine.device import resolve_device, resolve_precision
from sslkit.defaults import SEGMENTATION_DECODER_SKIPS
from sslkit.errors import UserError
from sslkit.fileio import atomic_write_text


# --------------------------------------------------------------------------- cell settings

def pretrain_config(config: CompareConfig, cell: Cell, *, quiet: bool):
    from sslkit.pretraining.config import PretrainConfig

    values = {**config.pretrain_options, **pretrain_settings(config, cell, quiet=quiet)}
    if config.segmenting() and "decoder_skips" not in config.pretrain_options:
        # the decoder is what a segmentation reuses: a U-Net, as its scratch cells get (--pretrain-opt overrides)
        values["decoder_skips"] = SEGMENTATION_DECODER_SKIPS
    return PretrainConfig.from_mapping(values, source="compare settings")


def finetune_config(config: CompareConfig, cell: Cell, *, quiet: bool):
    from sslkit.finetuning.config import FinetuneConfig

    scratch = cell.method in BASELINES
    full = cell.method == SCRATCH_FULL
    return FinetuneConfig(
        encoder=None if scratch else str(cell.pretrain_directory(config) / "pretrain"),
        from_scratch=scratch,
        backbone=config.backbone if scratch else None,
        backbone_options=dict(config.backbone_options) if scratch else {},
        in_chans=config.in_chans,
        data=config.data,
        data_options=dict(config.data_options),
        task=config.task,
        decoder=config.decoder_of(cell.method),
        protocol=SCRATCH_FULL_PROTOCOL if full else config.resolved_protocol(),
        labels=cell.labels,
        paper_splits=config.paper_splits,
        epochs=config.scratch_full_epochs if full else config.finetune_epochs,
        batch_size=config.finetune_batch_size,
        lr=config.finetune_lr,
        encoder_lr_scale=config.encoder_lr_scale,
        class_weights=config.class_weights,
        select=config.select,
        standardize_features=config.standardize_features,
        seed=cell.seed,
        split_seed=config.split_seed,
        image_size=config.image_size,
        workers=config.workers,
        device=config.device,
        out=str(cell.directory(config) / "finetune"),
        quiet=quiet,
        folds=config.folds,
        fold=cell.fold,
        positive_class=config.positive_class,
    )


def _result_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` without those that never change a run's figures (the one list:
    :data:`sslkit.pretraining.config.NOT_RESULT_SETTINGS`, which also says what ``--resume`` accepts)."""
    from sslkit.pretraining.config import NOT_RESULT_SETTINGS

    return {k: v for k, v in settings.items() if k not in NOT_RESULT_SETTINGS and k != "encoder"}


def _comparable(fingerprint_: dict[str, Any]) -> dict[str, Any]:
    """A fingerprint as this sslkit compares it: a cell written before a setting joined the list of
    result-neutral ones still matches, and so does one written before a setting existed (a new
    setting's default is the behaviour that came before it, e.g. ``encoding: dense``)."""
    return {k: _with_new_defaults(k, _result_settings(v)) if k in ("finetune", "pretrain") and isinstance(v, dict)
            else v for k, v in fingerprint_.items()}


def _with_new_defaults(kind: str, settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` with every setting it lacks at its current default (JSON-shaped)."""
    if kind == "pretrain":
        from sslkit.pretraining.config import PretrainConfig

        defaults = PretrainConfig().to_dict()
    else:
        from sslkit.finetuning.config import FinetuneConfig

        defaults = dataclasses.asdict(FinetuneConfig())
    missing = {k: v for k, v in _result_settings(defaults).items() if k not in settings}
    return {**settings, **json.loads(json.dumps(missing, default=str))}


def fingerprint(config: CompareConfig, cell: Cell) -> dict[str, Any]:
    """What defines a cell's result: its pretraining and fine-tuning settings."""
    finetune = _result_settings(dataclasses.asdict(finetune_config(config, cell, quiet=True)))
    out: dict[str, Any] = {"method": cell.method, "seed": cell.seed, "labels": budget_key(cell.labels),
                           "finetune": finetune}
    if cell.method not in BASELINES:
        out["pretrain"] = _result_settings(pretrain_config(config, cell, quiet=True).to_dict())
    return json.loads(json.dumps(out, default=str))  # as it reads back from JSON


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    diffs = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs.extend(_differences(a, b, f"{prefix}{key}."))
        elif a != b:
            diffs.append(f"{prefix}{key} {a!r} -> {b!r}")
    return diffs


def read_cell(config: CompareConfig, cell: Cell) -> dict[str, Any] | None:
    """The finished cell's record, None if unfinished; a cell made with other settings is an error."""
    path = cell.directory(config) / CELL_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # half-written: redo the cell
    diffs = _differences(_comparable(record.get("fingerprint", {})), fingerprint(config, cell))
    if diffs:
        raise UserError(
            f"'{cell.directory(config)}' holds a finished {cell.method} seed {cell.seed} cell "
            f"({budget_key(cell.labels)} labels) made with other "
            f"settings ({'; '.join(diffs[:3])}); use another --runs-dir/--out or delete that folder"
        )
    return record


# --------------------------------------------------------------------------- running cells

def _pretrain(config: CompareConfig, cell: Cell, plugins, quiet: bool) -> dict[str, Any]:
    """Pretrain the cell's encoder, continuing an interrupted run from its checkpoint; a pretraining
    already finished for another label budget (``pretrain.json``) is reused as is. One that
    finishes here has its checkpoints cut down to ``--keep-checkpoints`` at once (an unfinished
    one keeps its full ``last.pt``: nothing is pruned before ``pretrain.json`` is written)."""
    from sslkit.pretraining.kept_checkpoints import keep_checkpoints
    from sslkit.pretraining.train_state import checkpoint_path

    wanted = pretrain_config(config, cell, quiet=quiet)
    run_dir = Path(wanted.out)
    record_path = cell.pretrain_directory(config) / PRETRAIN_FILE
    want = fingerprint(config, cell)["pretrain"]
    if record_path.is_file():  # finished for another label budget
        try:
            done = json.loads(record_path.read_text())
        except (OSError, json.JSONDecodeError):
            done = {}
        have = _comparable({"pretrain": done.get("fingerprint") or {}})["pretrain"]
        if have == want and (run_dir / "encoder").is_dir():
            # the pretraining's own duration: the report counts it once per method and seed
            return {**done.get("final", {}), "_reused": True, "_seconds": float(done.get("seconds") or 0.0)}
        if have != want and (run_dir / "encoder").is_dir() and not checkpoint_path(run_dir).is_file():
            # a pruned run cannot be compared through its checkpoint: never train over it
            raise UserError(f"'{run_dir}' holds a finished pretraining with other settings "
                            f"({'; '.join(_differences(have, want)[:3])}); use another --runs-dir/--out or delete "
                            "that folder")
    tick = time.perf_counter()
    final = _run_pretraining(config, wanted, run_dir, plugins, quiet)
    record = {"fingerprint": want, "seconds": time.perf_counter() - tick,
              "final": {k: v for k, v in final.items() if isinstance(v, (int, float, str, type(None)))}}
    atomic_write_text(record_path, json.dumps(record, indent=2, default=str))
    keep_checkpoints(run_dir, config.keep_checkpoints)
    return {**record["final"], "_seconds": record["seconds"]}


def _run_pretraining(config: CompareConfig, wanted, run_dir: Path, plugins, quiet: bool) -> dict[str, Any]:
    from sslkit.pretraining.run import resume_config, run_pretraining
    from sslkit.pretraining.train_state import checkpoint_path

    if checkpoint_path(run_dir).is_file():
        saved = resume_config(run_dir, {"device": config.device, "workers": config.workers, "quiet": quiet})
        # a run records its concrete precision; `auto` means what this machine resolves it to
        device = resolve_device(saved.device)
        keep, want = ({**_result_settings(c.to_dict()), "precision": resolve_precision(c.precision, device)}
                      for c in (saved, wanted))
        diffs = _differences(json.loads(json.dumps(keep, default=str)), json.loads(json.dumps(want, default=str)))
        if diffs:
            raise UserError(f"'{run_dir}' holds a pretraining run with other settings ({'; '.join(diffs[:3])}); "
                            "use another --runs-dir/--out or delete that folder")
        return run_pretraining(saved, plugins, resume=run_dir)
    return run_pretraining(wanted, plugins)


def run_cell(config: CompareConfig, cell: Cell, plugins, *, quiet: bool = False,
             say: Callable[[str], None] = lambda text: None) -> dict[str, Any]:
    """Pretrain (unless scratch), fine-tune and score one cell; writes and returns its record."""
    from sslkit.finetuning.run import run_finetuning

    directory = cell.directory(config)
    directory.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"format": CELL_FORMAT, "method": cell.method, "seed": cell.seed,
                              "labels": budget_key(cell.labels), "fingerprint": fingerprint(config, cell)}
    record["pretrain_seconds"] = 0.0
    if cell.method not in BASELINES:
        masker = config.masker_of(cell.method)
        say(f"pretraining {cell.method}" + (f" ({masker})" if masker != cell.method else "")
            + f", seed {cell.seed}, {config.pretrain_epochs} epoch(s)")
        final = _pretrain(config, cell, plugins, quiet)
        record["pretrain_reused"] = bool(final.pop("_reused", False))
        record["pretrain_seconds"] = float(final.pop("_seconds", 0.0))
        record["pretrain_final"] = final
    settings = finetune_config(config, cell, quiet=quiet)
    say(f"fine-tuning {cell.method}, seed {cell.seed}, {budget_key(cell.labels)} labels ({settings.protocol} protocol)")
    result = run_finetuning(settings, plugins)
    record["finetune_seconds"] = result.seconds["total"]
    record["test"] = result.metrics["test"].to_dict()
    if "val" in result.metrics:
        record["val"] = result.metrics["val"].to_dict()
    record["labelled_counts"] = dict(zip(result.class_names, result.labelled_counts))
    record["test_predictions"] = result.test_predictions
    record["operating_point"] = result.operating_point
    record["fold_plan"] = result.fold_plan
    record["fold"] = cell.fold
    record["notes"] = list(dict.fromkeys(result.notes))

    atomic_write_text(directory / CELL_FILE, json.dumps(record, indent=2, default=str))
    return record


def cell_row(record: dict[str, Any]) -> dict[str, Any]:
    """One results.csv row: method, seed, the test scalars, the validation ones, the times."""
    from sslkit.evaluation.metrics import Metrics

    test = Metrics.from_dict(record["test"])
    row: dict[str, Any] = {"method": record["method"], "labels": record.get("labels", ""), "seed": record["seed"],
                           "fold": record.get("fold", ""), **test.scalars}
    if "sensitivity_at_90_specificity" not in row and "auroc" in row:  # a classification cell
        row["sensitivity_at_90_specificity"] = (record.get("operating_point") or {}).get("sensitivity", float("nan"))
    if "val" in record:
        row.update({f"val_{k}": v for k, v in Metrics.from_dict(record["val"]).scalars.items()})
    row["test_images"] = test.n_samples
    row["pretrain_loss"] = (record.get("pretrain_final") or {}).get("loss")
    row["pretrain_seconds"] = float(record.get("pretrain_seconds", 0.0))
    row["finetune_seconds"] = float(record.get("finetune_seconds", 0.0))
    row["labelled_images"] = sum((record.get("labelled_counts") or {}).values())
    return row


def result_columns(task) -> list[str]:
    """results.csv's columns for ``task`` (a :class:`~sslkit.finetuning.tasks.Task`)."""
    selected = task.selection_metric
    return ["method", "labels", "seed", "fold", *task.metrics, *task.extra_metrics,
            *(f"val_{m}" for m in task.metrics), "test_images", "labelled_images", "pretrain_loss",
            "pretrain_seconds", "finetune_seconds"] + ([] if selected in task.metrics else [f"val_{selected}"])
