"""The ``classification`` task: each image's class, from the encoder's deepest feature map.

The model is :class:`~sslkit.finetuning.classifier.Classifier` (encoder + the protocol's head),
the loss the class-weighted cross-entropy, the figures :func:`classification_metrics` (plus the
operating point chosen on validation), the best epoch the one with the best validation macro F1.
Frozen protocols train the head on the encoder's maps computed once (no augmentation there), so
200 epochs of the paper's head cost seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from sslkit.evaluation.metrics import CLINICAL_METRICS, SCALAR_METRICS, class_weights, classification_metrics
from sslkit.evaluation.statistics import Predictions
from sslkit.finetuning.classifier import CLASSIFIER_JSON, load_classifier, new_classifier, predict_indexed, save_classifier
from sslkit.finetuning.protocols import check_classes_learnable, get_protocol
from sslkit.finetuning.tasks import Task


class ClassificationTask(Task):
    name: ClassVar[str] = "classification"
    target: ClassVar[str] = "label"
    metrics: ClassVar[tuple[str, ...]] = SCALAR_METRICS
    extra_metrics: ClassVar[tuple[str, ...]] = CLINICAL_METRICS
    selection_metric: ClassVar[str] = "macro_f1"
    protocols: ClassVar[tuple[str, ...]] = ("linear", "paper", "full")
    model_file: ClassVar[str] = CLASSIFIER_JSON
    model_dir: ClassVar[str] = "classifier"

    def check_records(self, records: Any, dataset_name: str) -> None:
        check_classes_learnable(records.class_names, records.counts("labelled"), dataset_name)

    def build_model(self, encoder, config, records, *, run_config, plugins=None):
        frozen = get_protocol(config.protocol).frozen
        return new_classifier(encoder, config.protocol, len(records.class_names),
                              standardize=config.standardize_features and frozen)

    def prepare_training(self, model, records, config, device) -> dict[str, Any]:
        weights = None
        if config.class_weights == "auto":
            weights = torch.tensor(class_weights(records.counts("labelled")), dtype=torch.float32, device=device)
        return {"weights": weights}

    def loss(self, outputs, batch, state):
        return F.cross_entropy(outputs, batch["label"], weight=state.get("weights"))

    def train(self, model, data, records, config, device, recorder, state):
        """Frozen protocols: the head on cached deepest maps; ``full``: the generic batch loop."""
        if not model.frozen:
            return super().train(model, data, records, config, device, recorder, state)
        import time

        from sslkit.evaluation.features import deepest_features
        from sslkit.finetuning.loop import one_thread_on_cpu, train_frozen

        tick = time.perf_counter()
        train_maps, train_labels = deepest_features(model.encoder, data.eval_loader(records.labelled), device)
        val_loader = data.eval_loader(records.val) if records.val else None
        val_cache = deepest_features(model.encoder, val_loader, device) if val_loader is not None else None
        data.seconds["features"] = time.perf_counter() - tick
        with one_thread_on_cpu(device):
            head_state, selected = train_frozen(model, train_maps, train_labels, val_cache, config, state["weights"],
                                                device, records.class_names, recorder)
        model.head.load_state_dict(head_state)
        return selected

    # ------------------------------------------------------------------ predictions and figures

    def predict(self, model, loader, recs, records, device) -> dict[str, Any]:
        indices, labels, probs = predict_indexed(model, loader, device)
        return {"ids": [records.image_id(recs[int(i)]) for i in indices], "labels": labels.tolist(),
                "probs": probs.tolist()}

    def score(self, predictions, class_names):
        return classification_metrics(predictions["labels"], predictions["probs"], class_names)

    def operating_point(self, test, val, class_names, config):
        from sslkit.finetuning.run import clinical_figures

        return clinical_figures(test, val, class_names, config.positive_class)

    def pooled_metrics(self, pooled, class_names, positive):
        from sslkit.finetuning.fold_runs import pooled_metrics

        return pooled_metrics(pooled, class_names, positive)

    def paired(self, predictions) -> Predictions:
        import numpy as np

        return Predictions(list(predictions["ids"]), np.asarray(predictions["labels"], dtype=np.int64),
                           np.asarray(predictions["probs"], dtype=float), predictions.get("groups"))

    def pool_columns(self) -> tuple[str, ...]:
        return ("labels", "probs")

    # ------------------------------------------------------------------ files

    def save_model(self, model, directory: Path, meta: dict[str, Any]) -> Path:
        return save_classifier(model, directory, meta)

    def load_model(self, directory: Path, plugins=None):
        return load_classifier(directory, plugins)

    def write_predictions(self, out: Path, predictions, records, *, writer=None) -> list[Path]:
        from sslkit.finetuning.files import write_predictions

        write_predictions(out / "predictions.csv", predictions, records.class_names)
        return [out / "predictions.csv"]

    def prediction_rows(self, predictions, class_names):
        return [{"image": image, "label": int(label), **{f"prob_{n}": float(p) for n, p in zip(class_names, probs)}}
                for image, label, probs in zip(predictions["ids"], predictions["labels"], predictions["probs"])]
