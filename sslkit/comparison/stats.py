"""``sslkit compare``'s statistics: mean ± std per method, and paired differences against the
references with bootstrap intervals, from the cells' saved test predictions (or, with
``--stats-only``, from ``predictions.csv`` alone)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sslkit.comparison.cells import cell_row
from sslkit.comparison.config import DIFFERENCES_FILE, PREDICTIONS_FILE, CompareConfig, budget_key
from sslkit.errors import UserError
from sslkit.fileio import atomic_write_text


def summarise(config: CompareConfig, records: list[dict[str, Any]], task):
    """(label budget -> mean ± std per method, label budget -> paired differences, notes)."""
    from sslkit.evaluation.reporting import aggregate

    rows = [cell_row(r) for r in records]
    summaries: dict[str, list[dict[str, Any]]] = {}
    for budget in config.budgets():
        chosen = [r for r in rows if r["labels"] == budget_key(budget)]
        summaries[budget_key(budget)] = aggregate(chosen, by="method", metrics=(*task.metrics, *task.extra_metrics))
    grouped, notes = predictions_by_budget(records, task)
    # the split's own leak line ("N of M test images have a near-duplicate in train/val"), once
    notes += list(dict.fromkeys(n for r in records for n in r.get("notes") or [] if "near-duplicate in train/val" in n))
    differences = statistics_for(grouped, config.methods(), n_resamples=config.bootstrap_resamples, task=task,
                                 references=config.references())
    return summaries, differences, notes


def predictions_by_budget(records: list[dict[str, Any]], task):
    """({budget: {method: {seed: PairedScores}}}, notes) from cell records (cells written before
    predictions were saved have none: they are named in a note and left out of the statistics)."""
    from sslkit.evaluation.statistics import PairedScores

    grouped: dict[str, dict[str, dict[int, PairedScores]]] = {}
    missing = []
    for record in records:
        saved = record.get("test_predictions")
        if not saved:
            missing.append(f"{record['method']} seed {record['seed']}")
            continue
        by_method = grouped.setdefault(str(record.get("labels")), {}).setdefault(record["method"], {})
        by_method[int(record["seed"])] = task.paired(saved)
    notes = [f"no saved test predictions for {', '.join(missing)} (cells from an older sslkit): "
             "left out of the paired statistics"] if missing else []
    return grouped, notes


def statistics_for(grouped, methods: list[str], *, n_resamples: int, task, references: tuple[str, ...],
                   seed: int = 0) -> dict[str, list]:
    """label budget -> paired differences of every method against each reference present, on the
    task's headline figures."""
    from sslkit.evaluation.statistics import paired_differences, reference_pairs

    out = {}
    for budget, by_method in grouped.items():
        present = [m for m in methods if m in by_method] or list(by_method)
        try:
            out[budget] = paired_differences(by_method, reference_pairs(present, references), metrics=task.metrics,
                                             lower_is_better=task.lower_is_better, n_resamples=n_resamples, seed=seed)
        except ValueError as error:
            raise UserError(f"cannot pair the {budget}-label cells: {error}") from None
    return out


def prediction_rows(records: list[dict[str, Any]], task) -> tuple[list[dict[str, Any]], list[str]]:
    """(predictions.csv rows, class names) from cell records: the task's per-image row with the
    method, label budget, seed, fold, group and call in front."""
    rows: list[dict[str, Any]] = []
    class_names: list[str] = []
    for record in records:
        saved = record.get("test_predictions")
        if not saved:
            continue
        class_names = list(record["test"]["class_names"])
        extra = {key: saved[column] for key, column in (("fold", "folds"), ("group", "groups"),
                                                        ("positive_call", "positive_call")) if saved.get(column)}
        for i, row in enumerate(task.prediction_rows(saved, class_names)):
            rows.append({"method": record["method"], "labels": record.get("labels"), "seed": record["seed"],
                         **{k: v[i] for k, v in extra.items()}, **row})
    return rows, class_names


def pool_folds(records: list[dict[str, Any]], task) -> list[dict[str, Any]]:
    """One record per (label budget, method, seed) whose test figures are computed over every
    out-of-fold prediction of its fold cells (cells of a single split are returned as they are)."""
    from sslkit.finetuning.fold_runs import check_partition, pool_predictions

    grouped: dict[tuple, list[dict[str, Any]]] = {}
    for record in records:
        grouped.setdefault((record.get("labels"), record["method"], record["seed"]), []).append(record)
    out = []
    for (budget, method, seed), cells in grouped.items():
        if len(cells) == 1:
            out.append(cells[0])
            continue
        cells = sorted(cells, key=lambda c: int(c.get("fold", 0)))
        missing = [c.get("fold") for c in cells if not c.get("test_predictions")]
        if missing:
            raise UserError(f"{method} seed {seed} fold(s) {missing} have no saved predictions to pool")
        pooled = pool_predictions([c["test_predictions"] for c in cells], task.pool_columns())
        check_partition([c.get("fold_plan") for c in cells], len(pooled["ids"]))
        class_names = list(cells[0]["test"]["class_names"])
        positive = next((c["operating_point"]["positive"] for c in cells if c.get("operating_point")), None)
        metrics = task.pooled_metrics(pooled, class_names, positive)
        out.append({
            "method": method, "seed": seed, "labels": budget, "fold": "all", "folds": len(cells),
            "test": metrics.to_dict(), "test_predictions": pooled,
            "pretrain_final": cells[0].get("pretrain_final"),
            "pretrain_seconds": max(float(c.get("pretrain_seconds", 0.0)) for c in cells),
            "finetune_seconds": sum(float(c.get("finetune_seconds", 0.0)) for c in cells),
            "labelled_counts": cells[0].get("labelled_counts"),
        })
    return out


def recompute_statistics(out: str | Path, *, n_resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """``sslkit compare --stats-only OUT``: redo differences.csv (and statistics.md) from
    OUT/predictions.csv alone, without the run directories and without retraining."""
    from sslkit.evaluation.statistics import compare_predictions

    out = Path(out).expanduser()
    path = out / PREDICTIONS_FILE
    if not path.is_file():
        raise UserError(f"'{out}' has no {PREDICTIONS_FILE}; run sslkit compare with --out {out} first")
    try:  # the default references: compare's (sslkit.evaluation.reference_methods)
        differences = compare_predictions(path, n_resamples=n_resamples, seed=seed)
    except ValueError as error:
        raise UserError(f"cannot recompute the statistics from '{path}': {error}") from None
    csv_path = write_differences_csv(out / DIFFERENCES_FILE, differences)
    md_path = out / "statistics.md"
    atomic_write_text(md_path, "\n".join(["# sslkit compare: paired statistics", "",
                                          f"Recomputed from `{PREDICTIONS_FILE}` ({n_resamples} resamples).", "",
                                          differences_markdown(differences), ""]))
    return {"csv": csv_path, "markdown": md_path, "differences": differences}


def write_differences_csv(path: Path, differences: dict[str, list]) -> Path:
    from sslkit.evaluation.reporting import write_rows_csv

    rows = [{"labels": budget, **d.to_row()} for budget, diffs in differences.items() for d in diffs]
    return write_rows_csv(path, rows, DIFFERENCE_COLUMNS)


DIFFERENCE_COLUMNS = ["labels", "method", "reference", "metric", "difference", "ci_low", "ci_high", "verdict",
                      "images", "seeds"]


def differences_markdown(differences: dict[str, list]) -> str:
    """One table per label budget: method vs reference, each metric as difference [95 % CI] verdict."""
    from sslkit.evaluation.reporting import METRIC_LABELS

    blocks = []
    for budget, diffs in differences.items():
        if not diffs:
            continue
        metrics = list(dict.fromkeys(d.metric for d in diffs))
        header = ["method", "vs", *(METRIC_LABELS.get(m, m) for m in metrics)]
        lines = [f"{budget} labels, {diffs[0].images} test images, pooled over {diffs[0].seeds} seed(s):", "",
                 "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        pairs = list(dict.fromkeys((d.method, d.reference) for d in diffs))
        by = {(d.method, d.reference, d.metric): d for d in diffs}
        for method, reference in pairs:
            cells = [format_difference(by[(method, reference, m)]) if (method, reference, m) in by else ""
                     for m in metrics]
            lines.append("| " + " | ".join([method, reference, *cells]) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def format_difference(d) -> str:
    """``+0.052 [-0.011, +0.118] not distinguishable``."""
    import math

    if math.isnan(d.difference):
        return "n/a"
    interval = "" if math.isnan(d.ci_low) else f" [{d.ci_low:+.3f}, {d.ci_high:+.3f}]"
    return f"{d.difference:+.3f}{interval} {d.verdict}"
