"""Paired bootstrap statistics: the fast resampled metrics equal scikit-learn's, the CI covers a
known difference, is exactly 0 for identical predictions, and recomputes from a predictions file."""

from __future__ import annotations

import numpy as np
import pytest

from sslkit.evaluation.metrics import SCALAR_METRICS, classification_metrics
from sslkit.evaluation.statistics import (
    Predictions,
    compare_predictions,
    paired_differences,
    resampled_metrics,
    verdict,
    write_predictions_csv,
)


def _random_predictions(n: int, classes: int, seed: int, skill: float = 0.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    logits = rng.normal(size=(n, classes))
    logits[np.arange(n), labels] += skill
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels, probs


@pytest.mark.parametrize("classes", [2, 3])
def test_resampled_metrics_equal_scikit_learn(classes):
    labels, probs = _random_predictions(120, classes, seed=classes, skill=1.0)
    probs[:10] = np.round(probs[:10], 1)  # ties in the scores
    rng = np.random.default_rng(0)
    indices = np.stack([np.arange(120), rng.integers(0, 120, 120), rng.integers(0, 40, 120)])
    fast = resampled_metrics(labels, probs, indices)
    for row, idx in enumerate(indices):
        reference = classification_metrics(labels[idx], probs[idx]).scalars
        for metric in SCALAR_METRICS:
            assert fast[metric][row] == pytest.approx(reference[metric], abs=1e-12), metric


def _correct_on(labels: np.ndarray, correct: np.ndarray, classes: int = 3) -> np.ndarray:
    """Probabilities that put 0.8 on the true class where ``correct``, on the next class elsewhere."""
    predicted = np.where(correct, labels, (labels + 1) % classes)
    probs = np.full((len(labels), classes), 0.2 / (classes - 1))
    probs[np.arange(len(labels)), predicted] = 0.8
    return probs


def test_ci_covers_a_known_difference_and_says_better_or_worse():
    rng = np.random.default_rng(1)
    n = 300
    labels = rng.integers(0, 3, n)
    ids = [f"img{i}" for i in range(n)]
    good = _correct_on(labels, np.arange(n) % 10 < 8)   # 80 % right
    weak = _correct_on(labels, np.arange(n) % 10 < 5)   # 50 % right, a subset of good's hits
    predictions = {"good": {0: Predictions(ids, labels, good)}, "weak": {0: Predictions(ids, labels, weak)}}
    diffs = {(d.method, d.metric): d for d in paired_differences(predictions, [("good", "weak"), ("weak", "good")],
                                                                 n_resamples=1000, seed=3)}
    up = diffs[("good", "accuracy")]
    assert up.difference == pytest.approx(0.3)
    assert up.ci_low < 0.3 < up.ci_high and up.ci_low > 0.2 and up.ci_high < 0.4
    assert up.verdict == "better" and diffs[("weak", "accuracy")].verdict == "worse"
    assert up.images == n and up.seeds == 1


def test_identical_predictions_give_a_zero_interval():
    labels, probs = _random_predictions(100, 3, seed=5, skill=0.5)
    ids = [str(i) for i in range(100)]
    same = {"a": {0: Predictions(ids, labels, probs), 1: Predictions(ids, labels, probs)},
            "b": {0: Predictions(ids[::-1], labels[::-1], probs[::-1]), 1: Predictions(ids, labels, probs)}}
    for d in paired_differences(same, [("a", "b")], n_resamples=500):
        assert d.difference == 0 and d.ci_low == 0 and d.ci_high == 0  # order of images does not matter
        assert d.verdict == "not distinguishable"


def test_interval_covers_the_true_difference_about_95_percent_of_the_time():
    """Coverage over 60 synthetic test sets drawn from a population where the true accuracy
    difference is 0.10 (methods right with probability 0.75 and 0.65, independently)."""
    rng = np.random.default_rng(11)
    covered = 0
    for trial in range(60):
        labels = rng.integers(0, 3, 150)
        ids = [str(i) for i in range(150)]
        a = _correct_on(labels, rng.random(150) < 0.75)
        b = _correct_on(labels, rng.random(150) < 0.65)
        d = paired_differences({"a": {0: Predictions(ids, labels, a)}, "b": {0: Predictions(ids, labels, b)}},
                               [("a", "b")], metrics=["accuracy"], n_resamples=400, seed=trial)[0]
        covered += d.ci_low <= 0.10 <= d.ci_high
    assert 50 <= covered <= 60


def test_pairs_over_seeds_and_refuses_other_test_images():
    labels, probs = _random_predictions(50, 3, seed=2)
    ids = [str(i) for i in range(50)]
    other = Predictions([f"x{i}" for i in range(50)], labels, probs)
    with pytest.raises(ValueError, match="same test images"):
        paired_differences({"a": {0: Predictions(ids, labels, probs)}, "b": {0: other}}, [("a", "b")])


def test_verdict_words():
    assert verdict(0.01, 0.2) == "better" and verdict(-0.3, -0.1) == "worse"
    assert verdict(-0.1, 0.1) == "not distinguishable" and verdict(float("nan"), 1.0) == "n/a"


def test_statistics_recompute_from_a_predictions_file(tmp_path):
    labels, probs = _random_predictions(80, 3, seed=4, skill=2.0)
    noise = _random_predictions(80, 3, seed=9)[1]
    rows = []
    for method, p in (("random", probs), ("scratch", noise)):
        for seed in (0, 1):
            for i in range(80):
                rows.append({"method": method, "labels": "100", "seed": seed, "image": f"im{i}", "label": int(labels[i]),
                             **{f"prob_{c}": float(p[i, k]) for k, c in enumerate("abc")}})
    path = write_predictions_csv(tmp_path / "predictions.csv", rows, list("abc"))
    result = compare_predictions(path, n_resamples=300)
    diffs = {(d.method, d.reference, d.metric): d for d in result["100"]}
    assert set(diffs) == {("random", "scratch", metric) for metric in SCALAR_METRICS}
    assert diffs[("random", "scratch", "macro_f1")].verdict == "better"
    assert diffs[("random", "scratch", "accuracy")].seeds == 2


@pytest.mark.parametrize("task", ["classification", "segmentation"])
def test_the_library_default_references_are_the_ones_compare_reports(tmp_path, task):
    """compare_predictions(path) pairs exactly as ``sslkit compare --stats-only`` and a compare
    of those methods do: every baseline, random-grid and (segmentation) each fresh-decoder twin."""
    from sslkit.comparison.config import CompareConfig
    from sslkit.comparison.stats import recompute_statistics
    from sslkit.evaluation.statistics import reference_pairs

    maskers = ["random-grid", "dqn"]
    config = CompareConfig(maskers=maskers, task=task, scratch_full=True)
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 30)
    rows = []
    for method in config.methods():
        for seed in (0, 1):
            scores = rng.uniform(size=30)
            for i in range(30):
                row = {"method": method, "labels": "100", "seed": seed, "image": f"im{i}", "label": int(labels[i])}
                if task == "classification":
                    row.update(prob_benign=1 - scores[i], prob_malignant=scores[i])
                else:
                    row.update(dice=scores[i], iou=scores[i] / 2, hd95=10 * scores[i], lesion_pixels=int(labels[i]) * 9)
                rows.append(row)
    write_predictions_csv(tmp_path / "predictions.csv", rows, ["benign", "malignant"])

    library = compare_predictions(tmp_path / "predictions.csv", n_resamples=200)
    stats_only = recompute_statistics(tmp_path, n_resamples=200)["differences"]
    pairs = list(dict.fromkeys((d.method, d.reference) for d in library["100"]))
    assert pairs == list(dict.fromkeys((d.method, d.reference) for d in stats_only["100"]))
    assert pairs == reference_pairs(config.methods(), config.references())  # what the compare itself reports
    assert {("dqn", "scratch-full"), ("dqn", "random-grid")} <= set(pairs)  # missed by the old default
    if task == "segmentation":
        assert ("dqn", "dqn+fresh-decoder") in pairs
