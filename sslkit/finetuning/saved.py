"""Scoring what is on disk: a saved model (classifier, segmenter) on a split, or an encoder by k-NN.

A saved model's directory records the data settings it was trained with (data spec, split seed,
image size, validation/test caps), so re-scoring rebuilds exactly the split the fine-tuning run
reported on and the same forward pass gives the same figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sslkit.choices import SPLIT_NAMES
from sslkit.defaults import IMAGE_SIZE
from sslkit.errors import UserError
from sslkit.evaluation.metrics import Metrics


@dataclass
class SavedEvaluation:
    metrics: Metrics
    split: str
    info: dict[str, Any]
    """The classifier's classifier.json."""
    run_dir: Path | None
    """The fine-tuning run that holds the classifier (None for a bare classifier folder)."""
    data: str | None


def find_saved_model(path: str | Path, plugins=None):
    """(task, model directory) of the saved model at ``path``: a fine-tuning run directory, its
    ``classifier/``/``segmenter/`` folder, or that folder's JSON file (any registered task's)."""
    from sslkit.finetuning.tasks import get_task
    from sslkit.plugins import plugins_or_default

    path = Path(path).expanduser()
    registry = plugins_or_default(plugins).tasks
    for name in registry.names():
        task = get_task(name, plugins)
        candidates = [path.parent] if path.name == task.model_file else [path, path / task.model_dir]
        for candidate in candidates:
            if (candidate / task.model_file).is_file():
                return task, candidate
    raise UserError(f"no saved model at '{path}' (expected a finetune run directory, or a folder with "
                    f"{' or '.join(get_task(n, plugins).model_file for n in registry.names())})")


def evaluate_saved_classifier(path: str | Path, *, data: str | None = None, split: str = "test",
                              device: Any = "cpu", workers: int = 0, plugins=None) -> SavedEvaluation:
    """Metrics of the saved model (classifier, segmenter, any task's) at ``path`` on ``split`` of
    ``data`` (default: its own data).

    ``train`` scores every labelled training image (not only the few it was trained on).
    ``device`` is a concrete device (``torch.device`` or ``"cpu"``/``"cuda"``); the command
    resolves ``--device auto`` before calling.
    """
    from sslkit.data import make_loader, open_dataset
    from sslkit.data.splits import PAPER_SPLIT_SIZE
    from sslkit.finetuning.labels import select_records

    if split not in SPLIT_NAMES:
        raise UserError(f"--split must be one of {', '.join(SPLIT_NAMES)}, got '{split}'")
    device_ = _concrete_device(device)
    task, directory = find_saved_model(path, plugins)
    model, info = task.load_model(directory, plugins=plugins)
    run_dir = directory.parent if (directory.parent / "metrics.json").is_file() else None
    spec = data if data is not None else info.get("data")
    options = dict(info.get("data_options") or {}) if data is None else {}
    split_seed = int(info.get("split_seed", 0))
    ds = open_dataset(spec, plugins=plugins, seed=split_seed, options=options or None)
    if ds.class_names and list(ds.class_names) != list(info["class_names"]):
        raise UserError(
            f"the model knows classes {info['class_names']} but the data has {ds.class_names}; "
            "evaluate it on data with the same classes"
        )
    task.check_data(ds)
    # "paper_split_sizes" (val/test capped at 100) is what classifiers saved before the paper splits wrote
    cap = PAPER_SPLIT_SIZE if info.get("paper_split_sizes") else None
    # a model fine-tuned on one fold of --folds K is re-scored on that fold's test part
    records = select_records(ds, None, seed=0, split_seed=split_seed, cap_val=cap, cap_test=cap,
                             paper=bool(info.get("paper_splits")), folds=int(info.get("folds") or 1),
                             fold=int(info.get("fold") or 0))
    chosen = {"train": records.labelled, "val": records.val, "test": records.test}[split]
    if not chosen:
        raise UserError(f"the '{split}' split of '{ds.name}' has no labelled images")
    loader = make_loader(ds, records=chosen, purpose="eval", image_size=int(info.get("image_size", IMAGE_SIZE)),
                         in_chans=int(info.get("in_chans", 1)), batch_size=int(info.get("eval_batch_size", 64)),
                         workers=workers, shuffle=False)
    predictions = task.predict(model.to(device_), loader, chosen, records, device_)
    metrics = task.score(predictions, list(info["class_names"]))
    return SavedEvaluation(metrics, split, {**info, "task": task.name}, run_dir, spec)


def compare_with_run(evaluation: SavedEvaluation) -> tuple[bool, dict[str, tuple[float, float]]] | None:
    """(identical?, {metric: (reported, now)}) against the fine-tuning run's own figures, or None
    when there is nothing to compare (no run dir, another split or other data); a UserError when
    its ``metrics.json`` cannot be read (the evaluation itself still stands: callers warn)."""
    import math

    from sslkit.evaluation.reporting import read_metrics_json

    if evaluation.run_dir is None or evaluation.data != evaluation.info.get("data"):
        return None
    path = evaluation.run_dir / "metrics.json"
    try:
        reported, _ = read_metrics_json(path)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:  # corrupt or hand-edited
        from sslkit.errors import UserError, first_line

        raise UserError(f"cannot compare with the fine-tuning run's own figures: '{path}' is unreadable "
                        f"({first_line(error)[:120]})") from None
    if evaluation.split not in reported:
        return None
    pairs = {k: (reported[evaluation.split].scalars[k], v) for k, v in evaluation.metrics.scalars.items()}
    same = all((math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-9 for a, b in pairs.values())
    return same, pairs


def knn_for_encoder(path: str | Path, *, data: str | None = None, split: str = "test", k: int = 20,
                    temperature: float = 0.07, image_size: int | None = None, split_seed: int | None = None,
                    batch_size: int = 64, device: Any = "cpu", workers: int = 0, plugins=None):
    """k-NN health check of the encoder at ``path`` (bank: the train split; queries: ``split``).

    Data, image size and split seed default to the pretraining run's, so the queries are the
    images pretraining held out. ``device`` is concrete, as for :func:`evaluate_saved_classifier`.
    """
    from sslkit.data import open_dataset
    from sslkit.evaluation.knn import knn_on_dataset
    from sslkit.models import load_encoder
    from sslkit.rundir import inherit_data_settings, locate_encoder

    if split not in ("val", "test"):
        raise UserError(f"k-NN queries come from 'val' or 'test', got '{split}'")
    device_ = _concrete_device(device)
    where, run_config = locate_encoder(path)
    encoder = load_encoder(where, plugins=plugins)
    spec, options, seed, size = inherit_data_settings(run_config, data, None, split_seed, image_size)
    ds = open_dataset(spec, plugins=plugins, seed=seed, options=options or None)
    result = knn_on_dataset(encoder.to(device_), ds, bank_split="train", query_split=split, k=k,
                            temperature=temperature, image_size=size, batch_size=batch_size,
                            workers=workers, device=device_)
    return result, ds


def _concrete_device(device: Any):
    """``device`` as a ``torch.device``; ``auto`` is the caller's to resolve (the commands use
    :func:`sslkit.engine.device.resolve_device`, which this layer does not import)."""
    import torch

    if str(device) == "auto":
        raise UserError("device 'auto' must be resolved before scoring (sslkit.engine.device.resolve_device); "
                        "give a concrete device such as 'cpu' or 'cuda'")
    return torch.device(device)
