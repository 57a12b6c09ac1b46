"""Piped output keeps wide tables whole: with no terminal, a command's console is $COLUMNS or
200 columns wide (rich's own fallback, 80, cut method names to ``random-grid…``)."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner

from sslkit.console import PIPED_WIDTH, make_console


def test_a_console_without_a_terminal_is_wide_unless_columns_says_otherwise(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    assert make_console().width == PIPED_WIDTH == 200
    assert make_console(stderr=True).width == PIPED_WIDTH
    monkeypatch.setenv("COLUMNS", "123")
    assert make_console().width == 123


def test_a_piped_compare_table_keeps_every_method_name(tmp_path, monkeypatch):
    from sslkit.cli import cli
    from sslkit.evaluation.statistics import write_predictions_csv

    monkeypatch.delenv("COLUMNS", raising=False)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 24)
    methods = ("random-grid", "dqn-masked-reward", "scratch", "scratch-full")
    rows = [{"method": method, "labels": "100", "seed": 0, "image": f"im{i}", "label": int(labels[i]),
             "prob_benign": 1 - p, "prob_malignant": p}
            for method in methods for i, p in enumerate(rng.uniform(size=24))]
    write_predictions_csv(tmp_path / "predictions.csv", rows, ["benign", "malignant"])
    result = CliRunner().invoke(cli, ["compare", "--stats-only", str(tmp_path), "--bootstrap-resamples", "100"])
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    lines = result.output.splitlines()
    for method, reference in (("dqn-masked-reward", "scratch-full"), ("dqn-masked-reward", "random-grid")):
        assert any(f"│ {method} " in line and f"│ {reference} " in line for line in lines), result.output
