"""Result tables and files: mean ± std aggregation, Markdown/CSV/JSON/PNG writing."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from sslkit.evaluation.metrics import classification_metrics
from sslkit.evaluation.reporting import (
    aggregate,
    fmt_mean_std,
    plot_summary,
    read_metrics_json,
    summary_markdown,
    write_metrics_files,
    write_rows_csv,
)

ROWS = [
    {"method": "random", "seed": 0, "accuracy": 0.5, "balanced_accuracy": 0.4, "macro_f1": 0.3, "auroc": 0.6},
    {"method": "random", "seed": 1, "accuracy": 0.7, "balanced_accuracy": 0.6, "macro_f1": 0.5, "auroc": float("nan")},
    {"method": "dqn", "seed": 0, "accuracy": 0.8, "balanced_accuracy": 0.8, "macro_f1": 0.8, "auroc": 0.9},
]


def test_aggregate_mean_and_sample_std():
    summary = aggregate(ROWS)
    random_, dqn = summary  # first-seen order
    assert random_["method"] == "random" and random_["n"] == 2
    assert random_["accuracy_mean"] == pytest.approx(0.6)
    assert random_["accuracy_std"] == pytest.approx(math.sqrt(0.02))  # ddof 1: (0.01 + 0.01) / 1
    # the NaN AUROC is left out: one value, no spread
    assert random_["auroc_mean"] == pytest.approx(0.6) and random_["auroc_n"] == 1
    assert math.isnan(random_["auroc_std"])
    assert dqn["n"] == 1 and math.isnan(dqn["accuracy_std"])


def test_formatting():
    assert fmt_mean_std(0.6, math.sqrt(0.02), 2) == "0.600 ± 0.141"
    assert fmt_mean_std(0.8, float("nan"), 1) == "0.800"
    assert fmt_mean_std(float("nan"), 0.0, 0) == "n/a"


def test_markdown_marks_best_mean():
    text = summary_markdown(aggregate(ROWS))
    lines = text.splitlines()
    assert lines[0].startswith("| method | runs | accuracy")
    dqn_line = next(line for line in lines if line.startswith("| dqn"))
    assert "**0.800**" in dqn_line
    assert "0.600 ± 0.141" in next(line for line in lines if line.startswith("| random"))


def test_csv_png_and_metrics_json_are_written(tmp_path):
    csv_path = write_rows_csv(tmp_path / "r.csv", ROWS, ["method", "seed", "accuracy", "auroc"])
    with csv_path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows[1] == {"method": "random", "seed": "1", "accuracy": "0.700000", "auroc": ""}

    png = plot_summary(tmp_path / "r.png", ROWS, title="t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    m = classification_metrics([0, 1, 1], np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]), ["a", "b"])
    json_path, metrics_csv = write_metrics_files(tmp_path, {"test": m}, extra={"protocol": "linear"})
    splits, extra = read_metrics_json(json_path)
    assert extra == {"protocol": "linear"}
    assert splits["test"].scalars == pytest.approx(m.scalars)
    assert metrics_csv.read_text().splitlines()[0] == "split,accuracy,balanced_accuracy,macro_f1,auroc,n_samples"


def test_majority_reference_matches_scoring_a_constant_prediction():
    from sslkit.evaluation.reporting import majority_reference

    supports = [92, 42, 22]  # the BUSI test split
    labels = np.repeat([0, 1, 2], supports)
    constant = np.tile([0.6, 0.3, 0.1], (len(labels), 1))
    scored = classification_metrics(labels, constant, ["benign", "malignant", "normal"]).scalars
    expected = {k: v for k, v in scored.items() if k != "ece"}  # calibration depends on the constant's probabilities
    assert majority_reference(supports) == pytest.approx(expected)
    # by hand: 92/156; 1/3; (2 * 92/156 / (1 + 92/156)) / 3
    assert majority_reference(supports)["macro_f1"] == pytest.approx((2 * 92 / 156 / (1 + 92 / 156)) / 3)
