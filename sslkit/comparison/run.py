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

This module runs the comparison; its parts are :mod:`~sslkit.comparison.config` (settings,
cells, validation), :mod:`~sslkit.comparison.cells` (a cell's settings, fingerprint and run),
:mod:`~sslkit.comparison.stats` (summaries and paired statistics) and
:mod:`~sslkit.comparison.report` (the results files); import each name from where it is defined.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sslkit.comparison.cells import cell_row, read_cell, run_cell
from sslkit.comparison.config import PRETRAIN_FILE, Cell, CompareConfig, budget_key, prepare_splits, validate
from sslkit.evaluation.reference_methods import BASELINES
from sslkit.comparison.report import load_average, write_results
from sslkit.comparison.stats import pool_folds, summarise
from sslkit.plugins import plugins_or_default
from sslkit.runtime import cpu_threads

__all__ = ["CompareResult", "run_compare"]


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

    def __repr__(self) -> str:
        """Counts and files, not every row (``rows``, ``summaries`` and ``differences`` hold them)."""
        files = {k: str(v) for k, v in self.files.items()}
        return (f"CompareResult({len(self.rows)} rows, ran={self.ran}, reused={self.reused}, "
                f"seconds={self.seconds:.0f}, files={files})")


def run_compare(config: CompareConfig, plugins=None, *, command: str = "", quiet: bool = False,
                say: Callable[[str], None] = lambda text: None) -> CompareResult:
    """Every cell (reusing finished ones), then the results files in ``out`` (module doc)."""
    plugins = plugins_or_default(plugins)
    validate(config, plugins)
    prepare_splits(config, plugins)
    from sslkit.engine.run_lock import locked_output

    with cpu_threads(config.threads), locked_output(config.out):  # one compare per --out
        return _run_cells(config, plugins, command=command, quiet=quiet, say=say)


def _fill_pretrain_seconds(config: CompareConfig, cell: Cell, record: dict[str, Any]) -> None:
    """A cell's ``pretrain_seconds`` from its pretraining's ``pretrain.json`` when the cell reused it
    (the report counts each pretraining once per method and seed)."""
    import json

    if cell.method in BASELINES or record.get("pretrain_seconds"):
        return
    try:
        done = json.loads((cell.pretrain_directory(config) / PRETRAIN_FILE).read_text())
    except (OSError, ValueError):
        return
    record["pretrain_seconds"] = float(done.get("seconds") or 0.0)


def _keep_checkpoints(config: CompareConfig, cells: list[Cell]) -> None:
    """Cut every finished pretraining of ``cells`` down to ``--keep-checkpoints``: those reused
    from an earlier run too (each just finished here already was, by its cell)."""
    from sslkit.pretraining.kept_checkpoints import keep_checkpoints

    for directory in dict.fromkeys(c.pretrain_directory(config) for c in cells if c.method not in BASELINES):
        if (directory / PRETRAIN_FILE).is_file():  # finished; an unfinished one keeps what resuming needs
            keep_checkpoints(directory / "pretrain", config.keep_checkpoints)


def _eta(started: float, done: int, total: int) -> str:
    """``; about 12 min left`` from the mean time per finished cell so far (empty when done)."""
    if done >= total:
        return ""
    left = (time.perf_counter() - started) / done * (total - done)
    return f"; about {left / 60:.0f} min left" if left >= 90 else f"; about {left:.0f} s left"


def _run_cells(config: CompareConfig, plugins, *, command: str, quiet: bool,
               say: Callable[[str], None]) -> CompareResult:
    """Read the finished cells, run the others, then write the results files."""
    started = time.perf_counter()
    load_at_start = load_average()
    task = config.task_plugin(plugins)
    # fold-major within a seed: a method's pretraining runs with its first cell, the other folds reuse it
    cells = [Cell(method, seed, budget, fold) for budget in config.budgets() for seed in config.seeds
             for method in config.methods() for fold in config.fold_numbers()]
    records: dict[tuple[str, str, int, int], dict[str, Any]] = {}

    def key(cell: Cell) -> tuple[str, str, int, int]:
        return cell.method, budget_key(cell.labels), cell.seed, cell.fold

    for cell in cells:
        found = read_cell(config, cell)
        if found is not None:
            records[key(cell)] = found
    reused = len(records)
    if reused:
        say(f"reusing {reused} finished cell(s) of {len(cells)} from {config.runs_path()}")
    todo = [c for c in cells if key(c) not in records]

    def what(cell: Cell) -> str:
        text = f"{cell.method}, seed {cell.seed}"
        if len(config.budgets()) > 1:
            text += f", {budget_key(cell.labels)} labels"
        return text + (f", fold {cell.fold + 1}/{config.folds}" if config.folds > 1 else "")

    def finished(cell: Cell, record: dict[str, Any], number: int, seconds: float | None) -> None:
        records[key(cell)] = record
        row = cell_row(record)
        took = f" in {seconds:.0f} s" if seconds is not None else ""
        say(f"[{number}/{len(todo)}] {what(cell)} done{took}: " + ", ".join(f"{m} {row[m]:.3f}" for m in task.metrics)
            + _eta(started, number, len(todo)))

    if config.jobs > 1 and len(todo) > 1:
        from sslkit.comparison.parallel import run_cells_in_parallel

        count = iter(range(1, len(todo) + 1))
        run_cells_in_parallel(config, todo, plugins, jobs=config.jobs, say=say,
                              done=lambda cell, record: finished(cell, record, next(count), None))
    else:
        for number, cell in enumerate(todo, start=1):
            say(f"[{number}/{len(todo)}] {what(cell)}")
            tick = time.perf_counter()
            finished(cell, run_cell(config, cell, plugins, quiet=quiet, say=say), number, time.perf_counter() - tick)
    _keep_checkpoints(config, cells)
    order = sorted(cells, key=lambda c: ([budget_key(b) for b in config.budgets()].index(budget_key(c.labels)),
                                         config.methods().index(c.method), c.seed, c.fold))
    for cell in order:  # cells that reused a pretraining (another budget, fold or --jobs) name its duration
        _fill_pretrain_seconds(config, cell, records[key(cell)])
    fold_rows = [cell_row(records[key(c)]) for c in order]
    pooled = pool_folds([records[key(c)] for c in order], task)
    rows = [cell_row(r) for r in pooled]
    summaries, differences, notes = summarise(config, pooled, task)
    seconds = time.perf_counter() - started
    first_test = pooled[0]["test"]
    supports = {name: int(d["support"]) for name, d in first_test["per_class"].items()}
    files = write_results(config, rows, summaries, differences, command=command, seconds=seconds, reused=reused,
                          ran=len(todo), load=(load_at_start, load_average()), test_supports=supports,
                          records=pooled, notes=notes, fold_rows=fold_rows if config.folds > 1 else None, task=task)
    first = budget_key(config.budgets()[0])
    return CompareResult(rows, summaries[first], reused, len(todo), seconds, files, summaries, differences, notes)
