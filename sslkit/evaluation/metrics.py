"""Classification metrics for downstream evaluation, computed with scikit-learn.

One function, :func:`classification_metrics`, turns labels and class probabilities into every
figure the finetune / evaluate / compare commands report (accuracy, macro F1, AUROC, balanced
accuracy, confusion matrix, per-class report). Small test sets routinely miss a class (100
stratified BUSI images still have few "normal" cases after a bad draw, a single-class LGG slice
set has no positives): such a class cannot have an AUROC, so it is left out of the macro average
with a note in :attr:`Metrics.notes` instead of crashing or silently producing NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

#: The scalar metrics, in the order tables and CSV files show them.
SCALAR_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "auroc")


@dataclass
class Metrics:
    """Every figure for one (model, split) pair; ``scalars`` holds the headline numbers."""

    scalars: dict[str, float]
    """accuracy, balanced_accuracy, macro_f1, auroc (NaN when undefined, see ``notes``), ece
    (expected calibration error; out-of-fold pools add sensitivity_at_90_specificity)."""
    confusion: list[list[int]]
    """Rows = true class, columns = predicted class, over all ``class_names``."""
    per_class: dict[str, dict[str, float]]
    """class name -> precision, recall, f1, support (and auroc when defined)."""
    class_names: list[str]
    n_samples: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN becomes None, which JSON can represent)."""
        return {
            "scalars": {k: _json_float(v) for k, v in self.scalars.items()},
            "confusion": self.confusion,
            "per_class": {c: {k: _json_float(v) for k, v in d.items()} for c, d in self.per_class.items()},
            "class_names": list(self.class_names),
            "n_samples": self.n_samples,
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Metrics":
        return cls(
            scalars={k: _from_json_float(v) for k, v in data["scalars"].items()},
            confusion=[list(map(int, row)) for row in data["confusion"]],
            per_class={c: {k: _from_json_float(v) for k, v in d.items()} for c, d in data["per_class"].items()},
            class_names=list(data["class_names"]),
            n_samples=int(data["n_samples"]),
            notes=list(data.get("notes", [])),
        )


def _json_float(value: float) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def _from_json_float(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _check_inputs(y_true: np.ndarray, probs: np.ndarray, num_classes: int) -> None:
    if y_true.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {y_true.shape}")
    if probs.ndim != 2 or probs.shape[0] != y_true.shape[0] or probs.shape[1] != num_classes:
        raise ValueError(f"probabilities must be ({y_true.shape[0]}, {num_classes}), got {probs.shape}")
    if y_true.size == 0:
        raise ValueError("no samples to evaluate")
    if y_true.min() < 0 or y_true.max() >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes - 1}], got {y_true.min()}..{y_true.max()}")


def auroc(y_true: np.ndarray, probs: np.ndarray, class_names: Sequence[str]) -> tuple[float, dict[str, float], list[str]]:
    """AUROC: binary (positive = class 1) or one-vs-rest macro over several classes.

    Returns (auroc, per-class auroc, notes). For several classes the macro average is the
    unweighted mean of each class's one-vs-rest AUROC (what scikit-learn's
    ``roc_auc_score(multi_class="ovr", average="macro")`` computes), taken over the classes that
    occur in ``y_true``: a class with no positive (or no negative) sample has no ROC curve, so it
    is skipped and named in the notes. NaN when no class has one.
    """
    from sklearn.metrics import roc_auc_score

    num_classes = probs.shape[1]
    notes: list[str] = []
    present = set(np.unique(y_true).tolist())
    if num_classes == 2:
        if len(present) < 2:
            only = class_names[next(iter(present))]
            notes.append(f"AUROC undefined: the evaluated set has only class '{only}'")
            return float("nan"), {}, notes
        value = float(roc_auc_score(y_true, probs[:, 1]))
        return value, {class_names[1]: value}, notes

    per_class: dict[str, float] = {}
    skipped: list[str] = []
    for c in range(num_classes):
        positives = y_true == c
        if positives.all() or not positives.any():
            skipped.append(class_names[c])
            continue
        per_class[class_names[c]] = float(roc_auc_score(positives, probs[:, c]))
    if skipped:
        reason = "absent from" if len(per_class) else "the only class in"
        notes.append(
            f"AUROC macro over {len(per_class)} of {num_classes} classes: "
            f"{', '.join(repr(s) for s in skipped)} {reason} the evaluated set"
        )
    value = float(np.mean(list(per_class.values()))) if per_class else float("nan")
    return value, per_class, notes


def classification_metrics(
    y_true: Sequence[int] | np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str] | None = None,
) -> Metrics:
    """All downstream metrics from true labels (N,) and class probabilities (N, K).

    The prediction is the argmax of ``probs``; AUROC uses the probabilities themselves. Classes
    are ``range(K)`` whether or not each occurs, so confusion matrices of different runs line up.
    """
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
    )

    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    num_classes = probs.shape[1] if probs.ndim == 2 else 0
    names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names for {num_classes} probability columns")
    _check_inputs(y_true, probs, num_classes)
    labels = list(range(num_classes))
    y_pred = probs.argmax(axis=1)
    notes: list[str] = []

    present = np.unique(y_true)
    # balanced accuracy = mean recall over the classes present (scikit-learn warns otherwise)
    if len(present) < num_classes:
        absent = [names[c] for c in labels if c not in set(present.tolist())]
        notes.append(
            f"class(es) {', '.join(repr(a) for a in absent)} absent from the evaluated set: "
            "balanced accuracy averages the classes present, macro F1 the classes present or predicted"
        )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the absent-class case is reported in notes instead
        balanced = float(balanced_accuracy_score(y_true, y_pred))
        precision, recall, f1, support = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, zero_division=0
        )
        # macro F1 over classes that occur in either truth or prediction: a class nobody has and
        # nobody predicted says nothing about the model
        used = sorted(set(present.tolist()) | set(np.unique(y_pred).tolist()))
        macro_f1 = float(f1_score(y_true, y_pred, labels=used, average="macro", zero_division=0))

    auc, auc_per_class, auc_notes = auroc(y_true, probs, names)
    notes.extend(auc_notes)
    per_class = {
        names[c]: {
            "precision": float(precision[c]),
            "recall": float(recall[c]),
            "f1": float(f1[c]),
            "support": int(support[c]),
            **({"auroc": auc_per_class[names[c]]} if names[c] in auc_per_class else {}),
        }
        for c in labels
    }
    return Metrics(
        scalars={
            "accuracy": float(accuracy_score(y_true, y_pred)),
            "balanced_accuracy": balanced,
            "macro_f1": macro_f1,
            "auroc": auc,
            "ece": expected_calibration_error(y_true, probs),
        },
        confusion=confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        per_class=per_class,
        class_names=names,
        n_samples=int(y_true.size),
        notes=notes,
    )


def class_weights(counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """The authors' loss weights ``10 * (1 - n_c / N)``: rarer classes weigh more.

    ``counts`` are the labelled training images per class. A class with no image gets the
    largest weight, 10 (it never occurs in the loss, so this only keeps the vector well formed).
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        raise ValueError("class weights need at least one labelled image")
    return 10.0 * (1.0 - counts / total)


# --------------------------------------------------------------------------- clinical figures

#: Figures reported beside the scalar metrics: calibration and a clinical operating point.
CLINICAL_METRICS = ("ece", "sensitivity_at_90_specificity")
#: The specificity the operating point is chosen for (on validation predictions only).
TARGET_SPECIFICITY = 0.9
#: Equal-width confidence bins of the expected calibration error.
ECE_BINS = 15


def expected_calibration_error(y_true: Sequence[int] | np.ndarray, probs: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label expected calibration error (Guo et al. 2017): the confidence-weighted gap between
    how sure the model is (its largest probability) and how often it is right, over ``bins``
    equal-width confidence bins. 0 is perfectly calibrated; lower is better."""
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if y_true.size == 0 or not np.isfinite(probs).all():
        return float("nan")
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y_true).astype(np.float64)
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    count = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, weights=correct, minlength=bins) - np.bincount(which, weights=confidence,
                                                                                     minlength=bins))
    return float(gap.sum() / count.sum())


def positive_class(class_names: Sequence[str], requested: str | None = None) -> int | None:
    """The class a sensitivity is reported for: ``requested`` by name; by default class 1 of a
    binary problem, else a class named ``malignant`` (BUSI), else None (no clinical operating point)."""
    names = [str(n) for n in class_names]
    if requested:
        if requested not in names:
            from sslkit.errors import UserError

            raise UserError(f"--positive-class '{requested}' is not a class of the data ({', '.join(names)})")
        return names.index(requested)
    if len(names) == 2:
        return 1
    lowered = [n.lower() for n in names]
    return lowered.index("malignant") if "malignant" in lowered else None


def threshold_at_specificity(y_true: np.ndarray, scores: np.ndarray, positive: int,
                             specificity: float = TARGET_SPECIFICITY) -> float:
    """The lowest score threshold ``t`` such that calling ``score > t`` positive keeps at least
    ``specificity`` of the negatives negative (NaN without negatives). Chosen on validation
    predictions only, then applied unchanged to the test predictions."""
    negatives = np.asarray(scores, dtype=np.float64)[np.asarray(y_true) != positive]
    if negatives.size == 0:
        return float("nan")
    return float(np.quantile(negatives, specificity, method="inverted_cdf"))


def operating_point(y_true: np.ndarray, scores: np.ndarray, positive: int, threshold: float) -> tuple[float, float]:
    """(sensitivity, specificity) of calling ``score > threshold`` positive (NaN where undefined)."""
    y_true = np.asarray(y_true)
    called = np.asarray(scores, dtype=np.float64) > threshold
    is_pos = y_true == positive
    sensitivity = float(called[is_pos].mean()) if is_pos.any() else float("nan")
    specificity = float((~called[~is_pos]).mean()) if (~is_pos).any() else float("nan")
    return sensitivity, specificity
