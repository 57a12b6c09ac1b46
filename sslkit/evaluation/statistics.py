"""Paired bootstrap confidence intervals for "is method A better than method B on this test set?".

With 2-3 seeds and 100-160 test images, mean ± std over seeds cannot say whether a difference is
real: most of the uncertainty is *which* test images were drawn, and that is shared by every
method (they are scored on the same images). So the comparison is paired: each bootstrap
resample draws test images with replacement (one seeded ``numpy`` Generator, the same draws for
every method, seed and metric), scores method and reference on the same resampled images, and
averages the difference over the seeds both have (the seed fixes the labelled images, so seed s
of one method is paired with seed s of the other). The 95 % interval is the 2.5th and 97.5th
percentile of those resampled differences (``scipy.stats.scoreatpercentile``: the percentile
bootstrap). Verdict: "better" when the whole interval is above 0, "worse" when below, else "not
distinguishable".

Scoring thousands of resamples with scikit-learn would take minutes, so the four metrics are
computed here on all resamples at once with the definitions of
:func:`sslkit.evaluation.metrics.classification_metrics` (accuracy; balanced accuracy = mean recall
over the classes present; macro F1 over the classes present or predicted; AUROC binary or
one-vs-rest macro over the classes with positives and negatives, from average ranks via
``scipy.stats.rankdata``, the Mann-Whitney identity). A test checks they equal scikit-learn's on
the unresampled set. :func:`compare_predictions` recomputes everything from a saved
``predictions.csv`` without retraining.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from sslkit.evaluation.metrics import SCALAR_METRICS

DEFAULT_RESAMPLES = 2000
CONFIDENCE = 0.95
VERDICTS = ("better", "worse", "not distinguishable")


class PairedScores(ABC):
    """One model's test predictions as the paired bootstrap needs them: image ids, leakage groups,
    the truth they are judged against, and the task's figures over resampled image sets. Each
    downstream task has one (:class:`Predictions` for classification, :class:`ImageScores` for
    per-image figures such as segmentation's Dice), so the statistics never name a task."""

    ids: list[str]
    groups: list[str] | None

    @abstractmethod
    def aligned_to(self, ids: Sequence[str]) -> "PairedScores":
        """The same predictions in the order of ``ids`` (which must be the same set of images)."""

    @abstractmethod
    def truth(self) -> np.ndarray:
        """What each image is judged against (paired models must share it)."""

    @abstractmethod
    def resampled(self, indices: np.ndarray, valid: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """metric -> (B,) its value over each row of ``indices`` (B, N); ``valid`` masks padding."""

    def paired_with(self, other: "PairedScores") -> tuple["PairedScores", "PairedScores"]:
        """(self, other) restricted to what both can be scored on (default: everything)."""
        return self, other


def _order_of(current: Sequence[str], ids: Sequence[str]) -> np.ndarray | None:
    """Positions that put ``current`` in the order of ``ids`` (None when already so)."""
    if list(ids) == list(current):
        return None
    position = {image: i for i, image in enumerate(current)}
    if len(position) != len(current) or set(position) != set(ids):
        raise ValueError("the predictions to pair are not on the same test images")
    return np.array([position[image] for image in ids])


@dataclass
class Predictions(PairedScores):
    """One classifier's test predictions: image ids (N,), true labels (N,), probabilities (N, K)."""

    ids: list[str]
    labels: np.ndarray
    probs: np.ndarray
    groups: list[str] | None = None
    """Each image's leakage group (patient or near-duplicate group): the bootstrap resamples whole
    groups, so twins move together. None: every image is its own group."""

    def aligned_to(self, ids: Sequence[str]) -> "Predictions":
        order = _order_of(self.ids, ids)
        if order is None:
            return self
        groups = None if self.groups is None else [self.groups[i] for i in order.tolist()]
        return Predictions(list(ids), self.labels[order], self.probs[order], groups)

    def truth(self) -> np.ndarray:
        return np.asarray(self.labels)

    def resampled(self, indices: np.ndarray, valid: np.ndarray | None = None) -> dict[str, np.ndarray]:
        return resampled_metrics(self.labels, self.probs, indices, valid)


@dataclass
class ImageScores(PairedScores):
    """Figures that are means of per-image values (segmentation's Dice, IoU, HD95): ``values``
    maps a metric to (N,) per-image values, NaN where undefined (left out of that resample's mean).
    ``reference`` is what each image is judged against (e.g. its lesion area), so two models can be
    checked to pair the same truth."""

    ids: list[str]
    values: dict[str, np.ndarray]
    reference: np.ndarray
    groups: list[str] | None = None

    def aligned_to(self, ids: Sequence[str]) -> "ImageScores":
        order = _order_of(self.ids, ids)
        if order is None:
            return self
        groups = None if self.groups is None else [self.groups[i] for i in order.tolist()]
        return ImageScores(list(ids), {k: np.asarray(v)[order] for k, v in self.values.items()},
                           np.asarray(self.reference)[order], groups)

    def truth(self) -> np.ndarray:
        return np.asarray(self.reference)

    def paired_with(self, other: PairedScores) -> tuple[PairedScores, PairedScores]:
        """Both with NaN wherever either is undefined, so a per-image figure that only exists for
        some images (HD95 needs two non-empty masks) is compared on the same images for both
        (same image order required: :meth:`aligned_to` first)."""
        if not isinstance(other, ImageScores):
            return self, other
        mine, theirs = {}, {}
        for metric in self.values.keys() & other.values.keys():
            a, b = np.asarray(self.values[metric], dtype=float), np.asarray(other.values[metric], dtype=float)
            undefined = np.isnan(a) | np.isnan(b)
            mine[metric], theirs[metric] = np.where(undefined, np.nan, a), np.where(undefined, np.nan, b)
        return (ImageScores(self.ids, mine, self.reference, self.groups),
                ImageScores(other.ids, theirs, other.reference, other.groups))

    def resampled(self, indices: np.ndarray, valid: np.ndarray | None = None) -> dict[str, np.ndarray]:
        indices = np.atleast_2d(indices)
        if valid is None:
            valid = np.ones(indices.shape, dtype=bool)
        out = {}
        for metric, per_image in self.values.items():
            drawn = np.asarray(per_image, dtype=np.float64)[np.where(valid, indices, 0)]
            keep = valid & ~np.isnan(drawn)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[metric] = np.where(keep, drawn, 0.0).sum(axis=1) / keep.sum(axis=1)
        return out


def _rank_auroc(scores: np.ndarray, positive: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Per-row AUROC of ``scores`` (B, N) for boolean ``positive`` (B, N); NaN where a row lacks
    positives or negatives. Average ranks make ties count one half, as scikit-learn does.
    ``valid`` marks the real entries of rows padded to one length (grouped resamples): padding is
    ranked below every score and its ranks subtracted."""
    from scipy.stats import rankdata

    if valid is None:
        valid = np.ones_like(positive, dtype=bool)
    padded = np.where(valid, scores, -1.0)  # probabilities are >= 0, so padding ranks lowest
    n_pad = (~valid).sum(axis=1)
    ranks = rankdata(padded, axis=1) - n_pad[:, None]
    positive = positive & valid
    n_pos = positive.sum(axis=1)
    n_neg = valid.sum(axis=1) - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        u = (ranks * positive).sum(axis=1) - n_pos * (n_pos + 1) / 2.0
        auc = u / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def resampled_metrics(labels: np.ndarray, probs: np.ndarray, indices: np.ndarray,
                      valid: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Each scalar metric on every resample: ``indices`` (B, N) -> {metric: (B,)}; ``valid`` (B, N)
    marks the real entries when rows of different lengths are padded (grouped resamples)."""
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    indices = np.atleast_2d(indices)
    if valid is None:
        valid = np.ones(indices.shape, dtype=bool)
    indices = np.where(valid, indices, 0)
    num_classes = probs.shape[1]
    truth = labels[indices]
    predicted = probs.argmax(axis=1)[indices]
    recalls, f1s, aucs = [], [], []
    for c in range(num_classes):
        is_true, is_pred = (truth == c) & valid, (predicted == c) & valid
        n_true, n_pred = is_true.sum(axis=1), is_pred.sum(axis=1)
        hits = (is_true & is_pred).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            recalls.append(np.where(n_true > 0, hits / n_true, np.nan))
            f1s.append(np.where(n_true + n_pred > 0, 2.0 * hits / (n_true + n_pred), np.nan))
        if num_classes > 2 or c == 1:
            aucs.append(_rank_auroc(probs[:, c][indices], is_true, valid))
    with np.errstate(invalid="ignore"), _quiet_nanmean():
        return {
            "accuracy": ((truth == predicted) & valid).sum(axis=1) / valid.sum(axis=1),
            "balanced_accuracy": np.nanmean(np.stack(recalls), axis=0),
            "macro_f1": np.nanmean(np.stack(f1s), axis=0),
            "auroc": np.nanmean(np.stack(aucs), axis=0),
        }


class _quiet_nanmean:
    """nanmean of an all-NaN column is NaN by design here (an undefined AUROC); no warning."""

    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("ignore", category=RuntimeWarning)

    def __exit__(self, *exc):
        return self._catch.__exit__(*exc)


def bootstrap_indices(n: int, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> np.ndarray:
    """(n_resamples, n) test-image indices drawn with replacement by a seeded Generator."""
    return np.random.default_rng(seed).integers(0, n, size=(int(n_resamples), int(n)))


def grouped_bootstrap_indices(groups: Sequence[object] | None, n: int, n_resamples: int = DEFAULT_RESAMPLES,
                              seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """(indices (B, L), valid (B, L) or None): a cluster bootstrap that draws whole ``groups``
    with replacement (as many draws as there are groups) and takes every image of each drawn group,
    so near-duplicates and a patient's images move together. Rows differ in length and are padded
    (``valid`` False). With no groups, or every image its own group, this is the ordinary image
    bootstrap with exactly :func:`bootstrap_indices`'s draws (``valid`` None)."""
    if groups is None or len(set(groups)) == n:
        return bootstrap_indices(n, n_resamples, seed), None
    names, group_of = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)
    order = np.argsort(group_of, kind="stable")
    sizes = np.bincount(group_of, minlength=len(names))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    drawn = np.random.default_rng(seed).integers(0, len(names), size=(int(n_resamples), len(names)))
    counts = sizes[drawn]                                   # (B, G) images per drawn group
    lengths = counts.sum(axis=1)
    flat_counts = counts.ravel()
    offsets = np.repeat(starts[drawn].ravel() - np.concatenate([[0], np.cumsum(flat_counts)[:-1]]), flat_counts)
    members = order[offsets + np.arange(flat_counts.sum())]  # the drawn groups' images, row after row
    rows = np.repeat(np.arange(len(drawn)), lengths)
    columns = np.arange(len(members)) - np.repeat(np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    indices = np.zeros((len(drawn), int(lengths.max())), dtype=np.int64)
    valid = np.zeros_like(indices, dtype=bool)
    indices[rows, columns] = members
    valid[rows, columns] = True
    return indices, valid


@dataclass
class Difference:
    """method minus reference on one metric: observed, 95 % CI, verdict."""

    method: str
    reference: str
    metric: str
    difference: float
    ci_low: float
    ci_high: float
    verdict: str
    images: int
    seeds: int

    def to_row(self) -> dict:
        return asdict(self)


def verdict(low: float, high: float) -> str:
    if math.isnan(low) or math.isnan(high):
        return "n/a"
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    return "not distinguishable"


def paired_differences(
    predictions: Mapping[str, Mapping[int, PairedScores]],
    pairs: Iterable[tuple[str, str]],
    *,
    metrics: Sequence[str] = SCALAR_METRICS,
    lower_is_better: Iterable[str] = (),
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> list[Difference]:
    """Paired bootstrap CIs of ``method - reference`` for each (method, reference) pair and metric.

    ``predictions`` maps method -> seed -> :class:`Predictions`; a pair uses the seeds both
    methods have, and every model must be scored on the same test images (any order).
    """
    from scipy.stats import scoreatpercentile

    pairs = list(pairs)
    if not pairs:
        return []
    first = next(iter(next(iter(predictions.values())).values()))
    ids = list(first.ids)
    indices, valid = grouped_bootstrap_indices(first.groups, len(ids), n_resamples, seed)
    identity = np.arange(len(ids))[None, :]
    truth = first.aligned_to(ids).truth()
    aligned_runs: dict[tuple[str, int], PairedScores] = {}
    run_figures: dict[tuple[str, int], tuple[dict, dict]] = {}
    cache: dict[tuple[str, str, int], tuple[tuple[dict, dict], tuple[dict, dict]]] = {}

    def aligned(method: str, run_seed: int) -> PairedScores:
        key = (method, run_seed)
        if key not in aligned_runs:
            p = predictions[method][run_seed].aligned_to(ids)
            if not np.array_equal(p.truth(), truth):
                raise ValueError(f"{method} seed {run_seed} has another truth for the same test images")
            aligned_runs[key] = p
        return aligned_runs[key]

    def figures(method: str, run_seed: int, scores: PairedScores) -> tuple[dict, dict]:
        """(observed, resampled) figures; computed once per run when pairing left its scores as they
        are (classification), per pair when pairing restricted them (HD95's shared images)."""
        if scores is not aligned(method, run_seed):
            return scores.resampled(identity), scores.resampled(indices, valid)
        if (method, run_seed) not in run_figures:
            run_figures[method, run_seed] = (scores.resampled(identity), scores.resampled(indices, valid))
        return run_figures[method, run_seed]

    def pair_scores(method: str, reference: str, run_seed: int):
        """(method's, reference's) (observed, resampled) figures on what both can be scored on."""
        key = (method, reference, run_seed)
        if key not in cache:
            a, b = aligned(method, run_seed).paired_with(aligned(reference, run_seed))
            cache[key] = (figures(method, run_seed, a), figures(reference, run_seed, b))
        return cache[key]

    tail = 100.0 * (1.0 - confidence) / 2.0
    flipped = set(lower_is_better)  # a distance: a negative difference is the better one
    out: list[Difference] = []
    for method, reference in pairs:
        seeds = sorted(set(predictions[method]) & set(predictions[reference]))
        if not seeds:
            raise ValueError(f"{method} and {reference} share no seed to pair")
        for metric in metrics:
            both = [pair_scores(method, reference, s) for s in seeds]
            observed = np.mean([m[0][metric][0] - r[0][metric][0] for m, r in both])
            resampled = np.mean([m[1][metric] - r[1][metric] for m, r in both], axis=0)
            resampled = resampled[~np.isnan(resampled)]
            if resampled.size:
                low, high = (float(v) for v in scoreatpercentile(resampled, [tail, 100.0 - tail]))
            else:
                low = high = float("nan")
            call = verdict(-high, -low) if metric in flipped else verdict(low, high)
            out.append(Difference(method, reference, metric, float(observed), low, high, call, len(ids), len(seeds)))
    return out


def bootstrap_scores(
    predictions: Mapping[str, Mapping[int, PairedScores]],
    *,
    metrics: Sequence[str] = SCALAR_METRICS,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> dict[str, dict[str, tuple[float, float, float]]]:
    """method -> metric -> (mean over seeds, CI low, CI high): each method's own score with a
    bootstrap interval over test images (the bands of the label-efficiency curves)."""
    from scipy.stats import scoreatpercentile

    if not predictions:
        return {}
    first = next(iter(next(iter(predictions.values())).values()))
    ids = list(first.ids)
    indices, valid = grouped_bootstrap_indices(first.groups, len(ids), n_resamples, seed)
    tail = 100.0 * (1.0 - confidence) / 2.0
    out: dict[str, dict[str, tuple[float, float, float]]] = {}
    for method, by_seed in predictions.items():
        runs = [by_seed[s].aligned_to(ids) for s in sorted(by_seed)]
        observed = [p.resampled(np.arange(len(ids))[None, :]) for p in runs]
        resampled = [p.resampled(indices, valid) for p in runs]
        out[method] = {}
        for metric in metrics:
            values = np.mean([r[metric] for r in resampled], axis=0)
            values = values[~np.isnan(values)]
            low, high = ((float(v) for v in scoreatpercentile(values, [tail, 100.0 - tail]))
                         if values.size else (float("nan"), float("nan")))
            out[method][metric] = (float(np.mean([o[metric][0] for o in observed])), low, high)
    return out


# --------------------------------------------------------------------------- saved predictions

PREDICTION_KEYS = ("method", "labels", "seed", "image", "label")
#: Written when known: the fold that predicted the image, its leakage group (what the grouped
#: bootstrap resamples) and the operating point's call.
OPTIONAL_PREDICTION_KEYS = ("fold", "group", "positive_call")


def write_predictions_csv(path: str | Path, rows: Iterable[dict], class_names: Sequence[str]) -> Path:
    """Long-format predictions: one row per (method, label budget, seed, test image), with the
    true label and one probability column per class (``prob_<class>``), or the task's per-image
    figures (segmentation: ``dice``, ``iou``, ``hd95``, ``lesion_pixels``, ...)."""
    from sslkit.csvfiles import write_csv

    rows = list(rows)
    extra = [c for c in OPTIONAL_PREDICTION_KEYS if any(c in r for r in rows)]
    # classification: a probability per class; another task: its per-image columns, as the rows give them
    rest = [f"prob_{name}" for name in class_names] if any(f"prob_{n}" in rows[0] for n in class_names) else \
        [c for c in (rows[0] if rows else {}) if c not in (*PREDICTION_KEYS, *extra)]
    columns = [*PREDICTION_KEYS, *extra, *rest]
    return write_csv(path, rows, columns, float_format=".8g")


def read_predictions_csv(path: str | Path) -> tuple[dict[str, dict[str, dict[int, PairedScores]]], list[str]]:
    """({label budget: {method: {seed: PairedScores}}}, class names) from a compare predictions
    file: :class:`Predictions` from ``prob_<class>`` columns (classification), else
    :class:`ImageScores` from the per-image segmentation figures (``dice``, ``iou``, ``hd95``,
    judged against ``lesion_pixels``)."""
    import csv

    from sslkit.evaluation.segmentation_metrics import SEGMENTATION_METRICS

    with Path(path).open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields = list(reader.fieldnames or [])
        prob_columns = [c for c in fields if c.startswith("prob_")]
        per_image = [c for c in SEGMENTATION_METRICS if c in fields]
        missing = [k for k in PREDICTION_KEYS if k not in fields]
        if missing or not (prob_columns or (per_image and "lesion_pixels" in fields)):
            lacking = ", ".join(missing) or "prob_ or per-image figure columns"
            raise ValueError(f"'{path}' is not an sslkit predictions file (missing {lacking})")
        grouped: dict[tuple[str, str, int], list[dict]] = {}
        for row in reader:
            grouped.setdefault((row["labels"], row["method"], int(row["seed"])), []).append(row)
    out: dict[str, dict[str, dict[int, PairedScores]]] = {}
    for (budget, method, run_seed), rows in grouped.items():
        groups = [r["group"] for r in rows] if rows and rows[0].get("group") not in (None, "") else None
        ids = [r["image"] for r in rows]
        scores: PairedScores
        if prob_columns:
            scores = Predictions(ids, np.array([int(r["label"]) for r in rows]),
                                 np.array([[float(r[c]) for c in prob_columns] for r in rows]), groups)
        else:
            values = {c: np.array([float(r[c]) if r[c] not in ("", "nan") else np.nan for r in rows]) for c in per_image}
            scores = ImageScores(ids, values, np.array([int(float(r["lesion_pixels"])) for r in rows]), groups)
        out.setdefault(budget, {}).setdefault(method, {})[run_seed] = scores
    return out, [c[len("prob_"):] for c in prob_columns]


def reference_pairs(methods: Sequence[str], references: Sequence[str]) -> list[tuple[str, str]]:
    """Every method against every reference present, in the order of ``references``; a pair of
    two references appears once (against the earlier one: ``random`` vs ``scratch``, not both)."""
    present = [r for r in references if r in methods]
    pairs: list[tuple[str, str]] = []
    for r in present:
        pairs.extend((m, r) for m in methods if m != r and (r, m) not in pairs)
    return pairs


def compare_predictions(path: str | Path, references: Sequence[str] | None = None, *,
                        n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict[str, list[Difference]]:
    """{label budget: differences} recomputed from a compare run's ``predictions.csv``.

    The documented way to redo the statistics (other references, more resamples) without
    retraining; ``sslkit compare --stats-only OUT`` calls it. The metrics are the file's task's:
    classification's four, or segmentation's Dice, IoU and HD95 (lower is better). ``references``
    defaults to ``sslkit compare``'s (:func:`~sslkit.evaluation.reference_methods.default_references`:
    scratch, scratch-full, each fresh-decoder twin, random, random-grid, those present).
    """
    from sslkit.evaluation.reference_methods import default_references
    from sslkit.evaluation.segmentation_metrics import LOWER_IS_BETTER

    grouped, _ = read_predictions_csv(path)
    if references is None:
        references = default_references(m for by_method in grouped.values() for m in by_method)
    out = {}
    for budget, by_method in grouped.items():
        first = next(iter(next(iter(by_method.values())).values()))
        if isinstance(first, ImageScores):
            metrics, lower = list(first.values), LOWER_IS_BETTER
        else:
            metrics, lower = list(SCALAR_METRICS), frozenset()
        out[budget] = paired_differences(by_method, reference_pairs(list(by_method), references), metrics=metrics,
                                         lower_is_better=lower, n_resamples=n_resamples, seed=seed)
    return out
