"""``sslkit finetune --folds K``: one fine-tuning per fold, scored over every out-of-fold prediction.

Each fold's run lives in ``OUT/foldF`` (a complete fine-tuning run directory); ``OUT`` gets
``oof_predictions.csv`` (every labelled image of the pool exactly once, with its fold, leakage
group and the operating point's call) and ``oof_metrics.json`` (the metrics over all of them).
Pooling predictions, rather than averaging per-fold figures, scores K times more test images with
one set of metric definitions; the paired statistics of ``sslkit compare`` use the same pool.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from sslkit.finetuning.config import FinetuneConfig
from sslkit.finetuning.run import FinetuneResult, run_finetuning
from sslkit.errors import UserError
from sslkit.evaluation.metrics import Metrics, classification_metrics
from sslkit.fileio import atomic_write_text

OOF_PREDICTIONS_FILE = "oof_predictions.csv"
OOF_METRICS_FILE = "oof_metrics.json"


@dataclass
class FoldsResult:
    folds: list[FinetuneResult]
    metrics: Metrics
    """Over every out-of-fold prediction."""
    predictions: dict[str, Any]
    """The pooled out-of-fold predictions (ids, labels, probs, groups, folds[, positive_call])."""
    out: Path | None
    seed: int

    def __repr__(self) -> str:
        figures = ", ".join(f"{k} {v:.3f}" for k, v in self.metrics.scalars.items())
        return f"FoldsResult({len(self.folds)} folds, seed {self.seed}, {self.metrics.n_samples} images: {figures})"


def check_partition(plans: Sequence[dict[str, Any] | None], pooled_images: int) -> None:
    """The fold cells share one fold assignment and their test parts cover its pool exactly: an
    image that failed to load, or a plan that changed between cells (another duplicate threshold,
    another sslkit), would otherwise leave images out of the out-of-fold set unnoticed."""
    known = [p for p in plans if p]
    if not known:
        return
    if len({p["digest"] for p in known}) > 1:
        raise UserError("the fold cells were made with different fold assignments (other data, split seed or "
                        "duplicate threshold); rerun them into a fresh --out / --runs-dir")
    if pooled_images != int(known[0]["pool"]):
        raise UserError(f"the folds predicted {pooled_images} images but their pool holds {known[0]['pool']}: some "
                        "images could not be read or scored (see the notes), so the out-of-fold set is incomplete")


def pool_predictions(per_fold: Sequence[dict[str, Any]], columns: Sequence[str] = ("labels", "probs")) -> dict[str, Any]:
    """Concatenate the folds' test predictions (ids, groups and the task's per-image ``columns``,
    :meth:`~sslkit.finetuning.tasks.Task.pool_columns`); every image must appear exactly once."""
    pooled: dict[str, list] = {"ids": [], **{c: [] for c in columns}, "groups": [], "folds": []}
    calls: list[int] = []
    with_calls = all("positive_call" in p for p in per_fold)
    for fold, predictions in enumerate(per_fold):
        pooled["ids"] += list(predictions["ids"])
        for column in columns:
            pooled[column] += list(predictions[column])
        pooled["groups"] += list(predictions.get("groups") or predictions["ids"])
        pooled["folds"] += [fold] * len(predictions["ids"])
        if with_calls:
            calls += list(predictions["positive_call"])
    if len(set(pooled["ids"])) != len(pooled["ids"]):
        raise UserError("the folds' test parts overlap: an image was predicted twice (the folds are not a partition)")
    if with_calls:
        pooled["positive_call"] = calls
    return pooled


def pooled_metrics(pooled: dict[str, Any], class_names: list[str], positive: str | None) -> Metrics:
    """Classification metrics, ECE and (with calls) the sensitivity over the pooled predictions."""
    labels, probs = np.asarray(pooled["labels"]), np.asarray(pooled["probs"])
    metrics = classification_metrics(labels, probs, class_names)
    metrics.scalars["sensitivity_at_90_specificity"] = float("nan")
    if "positive_call" in pooled and positive is not None:
        is_positive = labels == class_names.index(positive)
        calls = np.asarray(pooled["positive_call"], dtype=bool)
        if is_positive.any():
            metrics.scalars["sensitivity_at_90_specificity"] = float(calls[is_positive].mean())
        if (~is_positive).any():
            metrics.scalars["specificity_at_threshold"] = float((~calls[~is_positive]).mean())
    return metrics


def run_folds(config: FinetuneConfig, plugins=None, *, log: Callable[[str], None] | None = None) -> FoldsResult:
    """Fine-tune fold 0..K-1 of ``config`` (each into ``OUT/foldF``) and score the pooled predictions."""
    if int(config.folds) < 3:
        raise UserError(f"run_folds needs --folds 3 or more, got {config.folds}")
    from sslkit.finetuning.tasks import get_task

    task = get_task(config.task, plugins)
    say = log or (lambda text: None)
    results = []
    for fold in range(int(config.folds)):
        one = copy.deepcopy(config)
        one.fold = fold
        if config.out is not None:
            one.out = str(Path(config.out) / f"fold{fold}")
        say(f"fold {fold + 1}/{config.folds}")
        results.append(run_finetuning(one, plugins, log=log))
    class_names = results[0].class_names
    pooled = pool_predictions([r.test_predictions or {} for r in results], task.pool_columns())
    check_partition([r.fold_plan for r in results], len(pooled["ids"]))
    positive = next((r.operating_point["positive"] for r in results if r.operating_point), None)
    metrics = task.pooled_metrics(pooled, class_names, positive)
    out = Path(config.out).expanduser() if config.out else None
    if out is not None:
        write_oof_files(out, pooled, metrics, task.prediction_rows(pooled, class_names),
                        [r.operating_point for r in results])
    return FoldsResult(results, metrics, pooled, out, config.seed)


def write_oof_files(out: Path, pooled: dict[str, Any], metrics: Metrics, rows: list[dict[str, Any]],
                    operating_points: list[dict[str, Any] | None]) -> None:
    """``oof_predictions.csv`` (the task's per-image ``rows`` with each image's fold, group and the
    operating point's call) and ``oof_metrics.json``."""
    from sslkit.csvfiles import write_csv

    extra = ("fold", "group") + (("positive_call",) if "positive_call" in pooled else ())
    for i, row in enumerate(rows):
        row.update({"fold": pooled["folds"][i], "group": pooled["groups"][i]})
        if "positive_call" in pooled:
            row["positive_call"] = pooled["positive_call"][i]
    columns = ["image", "fold", "group", *(c for c in (rows[0] if rows else {}) if c not in ("image", *extra)),
               *extra[2:]]
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / OOF_PREDICTIONS_FILE, rows, columns, float_format=".8g")
    atomic_write_text(out / OOF_METRICS_FILE, json.dumps(
        {"out_of_fold": metrics.to_dict(), "folds": len(operating_points), "operating_points": operating_points},
        indent=2, default=str))
