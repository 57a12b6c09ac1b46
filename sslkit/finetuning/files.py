"""What a fine-tuning run leaves in its directory (see :mod:`sslkit.finetuning.run`).

``classifier/`` (reloadable, with the data settings ``sslkit evaluate`` needs to rebuild the same
split), ``metrics.json``/``metrics.csv`` (val and test), ``predictions.csv`` (test image ids,
labels, class probabilities), ``history.csv`` (per epoch) and the final TensorBoard scalars.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sslkit.csvfiles import write_csv
from sslkit.finetuning.labels import FinetuneRecords
from sslkit.evaluation.metrics import Metrics


def write_predictions(path: Path, predictions: dict[str, Any], class_names: list[str]) -> None:
    """Test predictions, one row per image (id, true label, class probabilities)."""
    columns = ["image", "label", *(f"prob_{name}" for name in class_names)]
    rows = [{"image": image, "label": label, **{f"prob_{n}": float(p) for n, p in zip(class_names, probs)}}
            for image, label, probs in zip(predictions["ids"], predictions["labels"], predictions["probs"])]
    write_csv(path, rows, columns, float_format=".8g")


def write_run(out: Path, config, task, model, records: FinetuneRecords,
              metrics: dict[str, Metrics], recorder, seconds: dict[str, float], selected: int,
              source: str, counts: list[int], weights: list[float] | None) -> None:
    """The task's model (``classifier/``, ``segmenter/``), the metrics files, history.csv and the
    final TensorBoard scalars."""
    from sslkit.evaluation.reporting import write_metrics_files, write_tensorboard_scalars

    model.cpu()
    data_meta = {
        "data": config.data,
        "data_options": dict(config.data_options),
        "split_seed": config.split_seed,
        "image_size": config.image_size,
        "in_chans": config.in_chans,
        "eval_batch_size": config.eval_batch_size,
        "paper_splits": config.paper_splits,
        "folds": config.folds,
        "fold": config.fold,
    }
    task.save_model(model, out / task.model_dir, {
        "class_names": records.class_names,
        "encoder_source": source,
        "from_scratch": config.from_scratch,
        "selected_epoch": selected,
        **data_meta,
    })
    write_metrics_files(out, metrics, metrics_names=task.metrics, extra={
        "task": task.name,
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
        "lr_schedule": config.resolved_lr_schedule(),
        "seconds": seconds,
        "notes": records.notes,
        "complete": True,
    })
    if recorder.rows:
        write_csv(out / "history.csv", recorder.rows, list(recorder.rows[-1]))
    if recorder.writer is not None:
        for split, m in metrics.items():
            write_tensorboard_scalars(recorder.writer, f"final_{split}", m.scalars, selected)
        recorder.writer.close()
