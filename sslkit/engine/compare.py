"""``sslkit compare``: methods x label budgets x seeds, each pretrained, fine-tuned and scored.

A *method* is a masker (under its own name or an alias with its own options,
``dqn-masked=dqn:reward=masked``), the ``scratch`` baseline (same network, random weights, the
shared protocol) or ``scratch-full`` (the same, fine-tuned end to end under ``--protocol full``:
the strongest baseline without pretraining). A *cell* is one (method, label budget, seed):
pretraining with that masker and seed (shared by every label budget), then fine-tuning with the
same seed, so for a given seed and budget every method sees the same labelled images and every
cell the same test set (a paired comparison). Pretraining lives in ``RUNS/METHOD/seedS/pretrain``
(``pretrain.json`` beside it once finished), each fine-tuning in
``RUNS/METHOD/seedS/labelsL/finetune`` with a ``cell.json`` holding its settings, figures and test
predictions; a rerun reuses every finished cell whose settings match, continues an interrupted
pretraining from its checkpoint, and refuses to mix cells made with other settings.

Written to OUT: results.md (mean ± std per method, the paired differences against ``scratch``,
``scratch-full`` and ``random`` with 95 % bootstrap intervals and a verdict), results.csv (one row
per cell), differences.csv (one row per method, reference and metric), predictions.csv (every
cell's test predictions, from which :func:`sslkit.evaluation.statistics.compare_predictions` or
``sslkit compare --stats-only OUT`` recomputes the statistics), results.png, and with several
label budgets label_efficiency.png.

This module runs the comparison; its parts are :mod:`~sslkit.engine.compare_config` (settings,
cells, validation), :mod:`~sslkit.engine.compare_cells` (a cell's settings, fingerprint and run),
:mod:`~sslkit.engine.compare_stats` (summaries and paired statistics) and
:mod:`~sslkit.engine.compare_report` (the results files). Their public names are importable from
here as well.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

# The parts, importable from here as before the split (tests and plugins use these names).
from sslkit.engine.compare_cells import (  # noqa: F401
    RESULT_COLUMNS,
    cell_row,
    finetune_config,
    fingerprint,
    pretrain_config,
    read_cell,
    run_cell,
)
from sslkit.engine.compare_config import (  # noqa: F401
    BASELINES,
    CELL_FILE,
    DIFFERENCES_FILE,
    PREDICTIONS_FILE,
    PRETRAIN_FILE,
    REFERENCES,
    SCRATCH,
    SCRATCH_FULL,
    Cell,
    CompareConfig,
    budget_key,
    resolve_paper_splits,
    validate,
)
from sslkit.engine.compare_report import load_average, machine_description, write_results  # noqa: F401
from sslkit.engine.compare_stats import (  # noqa: F401
    differences_markdown,
    format_difference,
    recompute_statistics,
    summarise,
)
from sslkit.evaluation.metrics import SCALAR_METRICS
from sslkit.plugins import plugins_or_default
from sslkit.runtime import cpu_threads

__all__ = [
    "BASELINES", "CELL_FILE", "DIFFERENCES_FILE", "PREDICTIONS_FILE", "PRETRAIN_FILE", "REFERENCES", "RESULT_COLUMNS",
    "SCRATCH", "SCRATCH_FULL", "Cell", "CompareConfig", "CompareResult", "budget_key", "cell_row", "differences_markdown",
    "finetune_config", "fingerprint", "format_difference", "machine_description", "pretrain_config", "read_cell",
    "recompute_statistics", "resolve_paper_splits", "run_cell", "run_compare", "summarise", "validate",
]


@dataclass
class CompareResult:
    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    """Mean ± std per method for the first label budget (see ``summaries`` for every budget)."""
    reused: int
    ran: int
    seconds: float
    files: dict[str, Path]
    summaries: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """label budget -> mean ± std per method."""
    differences: dict[str, list] = field(default_factory=dict)
    """label budget -> :class:`sslkit.evaluation.statistics.Difference` rows."""
    notes: list[str] = field(default_factory=list)


def run_compare(config: CompareConfig, plugins=None, *, command: str = "", quiet: bool = False,
                say: Callable[[str], None] = lambda text: None) -> CompareResult:
    """Every cell (reusing finished ones), then the results files in ``out`` (module doc)."""
    plugins = plugins_or_default(plugins)
    validate(config, plugins)
    resolve_paper_splits(config, plugins)
    from sslkit.engine.run_lock import locked_output

    with cpu_threads(config.threads), locked_output(config.out):  # one compare per --out
        return _run_cells(config, plugins, command=command, quiet=quiet, say=say)


def _run_cells(config: CompareConfig, plugins, *, command: str, quiet: bool,
               say: Callable[[str], None]) -> CompareResult:
    """Read the finished cells, run the others, then write the results files."""
    started = time.perf_counter()
    load_at_start = load_average()
    cells = [Cell(method, seed, budget) for budget in config.budgets() for seed in config.seeds
             for method in config.methods()]
    records: dict[tuple[str, str, int], dict[str, Any]] = {}

    def key(cell: Cell) -> tuple[str, str, int]:
        return cell.method, budget_key(cell.labels), cell.seed

    for cell in cells:
        found = read_cell(config, cell)
        if found is not None:
            records[key(cell)] = found
    reused = len(records)
    if reused:
        say(f"reusing {reused} finished cell(s) of {len(cells)} from {config.runs_path()}")
    todo = [c for c in cells if key(c) not in records]
    for number, cell in enumerate(todo, start=1):
        what = f"{cell.method}, seed {cell.seed}"
        if len(config.budgets()) > 1:
            what += f", {budget_key(cell.labels)} labels"
        say(f"[{number}/{len(todo)}] {what}")
        tick = time.perf_counter()
        records[key(cell)] = run_cell(config, cell, plugins, quiet=quiet, say=say)
        row = cell_row(records[key(cell)])
        say(f"[{number}/{len(todo)}] {what} done in {time.perf_counter() - tick:.0f} s: "
            + ", ".join(f"{m} {row[m]:.3f}" for m in SCALAR_METRICS))
    order = sorted(cells, key=lambda c: ([budget_key(b) for b in config.budgets()].index(budget_key(c.labels)),
                                         config.methods().index(c.method), c.seed))
    rows = [cell_row(records[key(c)]) for c in order]
    summaries, differences, notes = summarise(config, [records[key(c)] for c in order])
    seconds = time.perf_counter() - started
    first_test = records[key(cells[0])]["test"]
    supports = {name: int(d["support"]) for name, d in first_test["per_class"].items()}
    files = write_results(config, rows, summaries, differences, command=command, seconds=seconds, reused=reused,
                          ran=len(todo), load=(load_at_start, load_average()), test_supports=supports,
                          records=[records[key(c)] for c in order], notes=notes)
    first = budget_key(config.budgets()[0])
    return CompareResult(rows, summaries[first], reused, len(todo), seconds, files, summaries, differences, notes)
