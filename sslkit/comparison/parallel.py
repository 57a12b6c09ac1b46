"""``sslkit compare --jobs N``: independent cells in N worker processes.

Folds multiply fine-tuning cells; where more cores are free than one process keeps busy, cells
can run side by side. Each worker pays for importing torch and the plugins, so on a busy 2-core
VM ``--jobs 2 --threads 1`` measured 0.74-0.82x the speed of ``--jobs 1 --threads 2``
(``benchmarks/bench_compare_jobs.py``). Work runs in two waves: every pretraining a
cell needs (one per method and seed), then every fine-tuning cell, which reuses its finished
pretraining. Each worker runs exactly what ``--jobs 1`` runs, with the same thread count, so the
figures are identical (a test checks it); finished cells are on disk as before, so an interrupted
run continues where it stopped. Workers are spawned (not forked: torch's thread pools do not
survive a fork) and rebuild the plugins from the same drop-in files.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable

from sslkit.comparison.config import Cell, CompareConfig
from sslkit.evaluation.reference_methods import BASELINES

_WORKER_PLUGINS = None


def plugin_files(plugins) -> list[str]:
    """The drop-in plugin files ``plugins`` was loaded from (workers load the same ones)."""
    files = []
    for info in getattr(plugins, "info", {}).values():
        source = str(getattr(info, "source", ""))
        if source.endswith(".py") and Path(source).is_file():
            files.append(source)
    return files


def _init_worker(files: list[str]) -> None:
    global _WORKER_PLUGINS
    from sslkit.plugins import load_plugins

    _WORKER_PLUGINS = load_plugins(files, include_env=False)  # files already lists $SSLKIT_PLUGINS


def _pretrain_in_worker(config: CompareConfig, cell: Cell) -> tuple[str, int]:
    from sslkit.comparison.cells import _pretrain
    from sslkit.runtime import cpu_threads

    with cpu_threads(config.threads):
        _pretrain(config, cell, _WORKER_PLUGINS, True)
    return cell.method, cell.seed


def _cell_in_worker(config: CompareConfig, cell: Cell) -> dict[str, Any]:
    from sslkit.comparison.cells import run_cell
    from sslkit.runtime import cpu_threads

    with cpu_threads(config.threads):
        return run_cell(config, cell, _WORKER_PLUGINS, quiet=True)


def run_cells_in_parallel(config: CompareConfig, todo: list[Cell], plugins, *, jobs: int,
                          done: Callable[[Cell, dict[str, Any]], None],
                          say: Callable[[str], None] = lambda text: None) -> None:
    """Run ``todo`` in ``jobs`` processes; ``done(cell, record)`` is called as each cell finishes."""
    context = multiprocessing.get_context("spawn")
    pretrainings = list({(config.pretrain_method(c.method), c.seed): c for c in todo if c.method not in BASELINES}.values())
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_init_worker,
                             initargs=(plugin_files(plugins),)) as pool:
        try:
            if pretrainings:
                say(f"pretraining {len(pretrainings)} encoder(s) in {min(jobs, len(pretrainings))} processes")
                _finish_all(pool, [pool.submit(_pretrain_in_worker, config, c) for c in pretrainings])
            futures = {pool.submit(_cell_in_worker, config, cell): cell for cell in todo}
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in finished:
                    done(futures[future], future.result())  # a worker's error is raised here
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # the running cells save their checkpoints
            raise


def _finish_all(pool: ProcessPoolExecutor, futures: list) -> None:
    finished, pending = wait(futures, return_when=FIRST_EXCEPTION)
    for future in finished:
        future.result()
    if pending:
        wait(pending)
