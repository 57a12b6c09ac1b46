"""``sslkit compare``: maskers x seeds, each pretrained, fine-tuned and scored under one protocol.

A *cell* is one (method, seed) pair: pretraining with that masker and seed (none for the
``scratch`` baseline), then fine-tuning under the shared protocol with the same seed, so for a
given seed every method sees the same labelled images and the same test set (a paired
comparison). Each cell lives in ``RUNS/METHOD/seedS/{pretrain,finetune}`` and ends with a
``cell.json`` holding its settings and figures; a rerun reuses every finished cell whose
settings match, continues an interrupted pretraining from its checkpoint, and refuses to mix
cells made with other settings. The summary (mean ± std per method) is written as results.md,
results.csv (one row per cell) and results.png.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sslkit.errors import UserError
from sslkit.evaluation.labels import LabelBudget, parse_label_budget
from sslkit.evaluation.metrics import SCALAR_METRICS
from sslkit.fileio import atomic_write_text

SCRATCH = "scratch"
CELL_FILE = "cell.json"
CELL_FORMAT = "sslkit-compare-cell/1"
#: Pretraining settings compare owns (the rest can be set with ``pretrain_options``).
_OWNED_PRETRAIN_KEYS = ("masker", "masker_options", "backbone", "backbone_options", "data", "data_options", "image_size",
                        "in_chans", "split_seed", "epochs", "batch_size", "seed", "out", "device", "workers", "quiet")


@dataclass
class CompareConfig:
    maskers: list[str] = field(default_factory=lambda: ["random", "dqn"])
    masker_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    """masker name -> its options (``--masker-opt dqn:key=value``)."""
    scratch: bool = True
    data: str | None = None
    data_options: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    labels: LabelBudget = 100
    protocol: str = "paper"
    backbone: str = "resnet18"
    backbone_options: dict[str, Any] = field(default_factory=dict)
    image_size: int = 64
    in_chans: int = 1
    split_seed: int = 0
    pretrain_epochs: int = 10
    pretrain_batch_size: int = 32
    pretrain_options: dict[str, Any] = field(default_factory=dict)
    """Further PretrainConfig fields (lr, loss, precision, ...), the same for every masker."""
    finetune_epochs: int | None = None
    finetune_batch_size: int = 32
    finetune_lr: float = 1e-3
    class_weights: str = "auto"
    encoder_lr_scale: float = 0.1
    select: str = "last"
    device: str = "auto"
    workers: int = 0
    threads: int | None = None
    """torch CPU threads (None: torch's default); 1 is often fastest on a busy shared machine."""
    out: str = "compare"
    runs_dir: str | None = None
    """Heavy run directories (checkpoints); default OUT/runs."""

    def methods(self) -> list[str]:
        return list(self.maskers) + ([SCRATCH] if self.scratch else [])

    def runs_path(self) -> Path:
        return Path(self.runs_dir).expanduser() if self.runs_dir else Path(self.out).expanduser() / "runs"


@dataclass
class Cell:
    method: str
    seed: int

    def directory(self, config: CompareConfig) -> Path:
        return config.runs_path() / self.method / f"seed{self.seed}"


def validate(config: CompareConfig, plugins) -> None:
    from sslkit.evaluation.classifier import PROTOCOLS

    if not config.maskers and not config.scratch:
        raise UserError("nothing to compare: give --maskers, or keep the scratch baseline")
    if len(set(config.maskers)) != len(config.maskers):
        raise UserError(f"--maskers lists a masker twice: {','.join(config.maskers)}")
    if SCRATCH in config.maskers:
        raise UserError(f"'{SCRATCH}' is the no-pretraining baseline compare adds itself; leave it out of --maskers")
    for name in config.maskers:
        plugins.maskers.get(name)  # unknown name -> "did you mean"
    for name in config.masker_options:
        if name not in config.maskers:
            raise UserError(f"--masker-opt names masker '{name}', which is not in --maskers ({','.join(config.maskers)})")
    plugins.backbones.get(config.backbone)
    if config.protocol not in PROTOCOLS:
        raise UserError(f"unknown protocol '{config.protocol}'; known: {', '.join(PROTOCOLS)}")
    if not config.seeds or len(set(config.seeds)) != len(config.seeds):
        raise UserError("--seeds must give at least one seed and no seed twice")
    if config.pretrain_epochs < 1:
        raise UserError(f"--pretrain-epochs must be at least 1, got {config.pretrain_epochs}")
    if config.threads is not None and config.threads < 1:
        raise UserError(f"--threads must be at least 1, got {config.threads}")
    if config.finetune_epochs is not None and config.finetune_epochs < 1:
        raise UserError(f"--finetune-epochs must be at least 1, got {config.finetune_epochs}")
    clash = sorted(set(config.pretrain_options) & set(_OWNED_PRETRAIN_KEYS))
    if clash:
        raise UserError(f"--pretrain-opt {clash[0]} is set by compare itself; use its own option instead")
    config.labels = parse_label_budget(config.labels)


# --------------------------------------------------------------------------- cell settings

def pretrain_config(config: CompareConfig, cell: Cell, *, quiet: bool):
    from sslkit.engine.pretrain import PretrainConfig

    values = {
        **config.pretrain_options,
        "masker": cell.method,
        "masker_options": dict(config.masker_options.get(cell.method, {})),
        "backbone": config.backbone,
        "backbone_options": dict(config.backbone_options),
        "data": config.data,
        "data_options": dict(config.data_options),
        "image_size": config.image_size,
        "in_chans": config.in_chans,
        "split_seed": config.split_seed,
        "epochs": config.pretrain_epochs,
        "batch_size": config.pretrain_batch_size,
        "seed": cell.seed,
        "out": str(cell.directory(config) / "pretrain"),
        "device": config.device,
        "workers": config.workers,
        "quiet": quiet,
    }
    return PretrainConfig.from_mapping(values, source="compare settings")


def finetune_config(config: CompareConfig, cell: Cell, *, quiet: bool):
    from sslkit.engine.finetune import FinetuneConfig

    scratch = cell.method == SCRATCH
    return FinetuneConfig(
        encoder=None if scratch else str(cell.directory(config) / "pretrain"),
        from_scratch=scratch,
        backbone=config.backbone if scratch else None,
        backbone_options=dict(config.backbone_options) if scratch else {},
        in_chans=config.in_chans,
        data=config.data,
        data_options=dict(config.data_options),
        protocol=config.protocol,
        labels=config.labels,
        epochs=config.finetune_epochs,
        batch_size=config.finetune_batch_size,
        lr=config.finetune_lr,
        encoder_lr_scale=config.encoder_lr_scale,
        class_weights=config.class_weights,
        select=config.select,
        seed=cell.seed,
        split_seed=config.split_seed,
        image_size=config.image_size,
        workers=config.workers,
        device=config.device,
        out=str(cell.directory(config) / "finetune"),
        quiet=quiet,
    )


#: Settings that do not change a cell's figures, left out of its fingerprint.
_NOT_FINGERPRINTED = {"out", "device", "workers", "quiet", "logdir", "log_every", "log_images_every",
                      "checkpoint_every", "checkpoint_every_steps", "compile"}


def fingerprint(config: CompareConfig, cell: Cell) -> dict[str, Any]:
    """What defines a cell's result: its pretraining and fine-tuning settings."""
    finetune = {k: v for k, v in dataclasses.asdict(finetune_config(config, cell, quiet=True)).items()
                if k not in _NOT_FINGERPRINTED and k != "encoder"}
    out: dict[str, Any] = {"method": cell.method, "seed": cell.seed, "finetune": finetune}
    if cell.method != SCRATCH:
        pretrain = pretrain_config(config, cell, quiet=True).to_dict()
        out["pretrain"] = {k: v for k, v in pretrain.items() if k not in _NOT_FINGERPRINTED}
    return json.loads(json.dumps(out, default=str))  # as it reads back from JSON


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    diffs = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs.extend(_differences(a, b, f"{prefix}{key}."))
        elif a != b:
            diffs.append(f"{prefix}{key} {a!r} -> {b!r}")
    return diffs


def read_cell(config: CompareConfig, cell: Cell) -> dict[str, Any] | None:
    """The finished cell's record, None if unfinished; a cell made with other settings is an error."""
    path = cell.directory(config) / CELL_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # half-written: redo the cell
    diffs = _differences(record.get("fingerprint", {}), fingerprint(config, cell))
    if diffs:
        raise UserError(
            f"'{cell.directory(config)}' holds a finished {cell.method} seed {cell.seed} cell made with other "
            f"settings ({'; '.join(diffs[:3])}); use another --runs-dir/--out or delete that folder"
        )
    return record


# --------------------------------------------------------------------------- running cells

def _pretrain(config: CompareConfig, cell: Cell, plugins, quiet: bool) -> dict[str, Any]:
    """Pretrain the cell's encoder, continuing an interrupted run from its checkpoint."""
    from sslkit.engine.pretrain import checkpoint_path, resume_config, run_pretraining

    wanted = pretrain_config(config, cell, quiet=quiet)
    run_dir = Path(wanted.out)
    if checkpoint_path(run_dir).is_file():
        saved = resume_config(run_dir, {"device": config.device, "workers": config.workers, "quiet": quiet})
        keep = {k: v for k, v in saved.to_dict().items() if k not in _NOT_FINGERPRINTED}
        want = {k: v for k, v in wanted.to_dict().items() if k not in _NOT_FINGERPRINTED}
        diffs = _differences(json.loads(json.dumps(keep, default=str)), json.loads(json.dumps(want, default=str)))
        if diffs:
            raise UserError(f"'{run_dir}' holds a pretraining run with other settings ({'; '.join(diffs[:3])}); "
                            "use another --runs-dir/--out or delete that folder")
        return run_pretraining(saved, plugins, resume=run_dir)
    return run_pretraining(wanted, plugins)


def run_cell(config: CompareConfig, cell: Cell, plugins, *, quiet: bool = False,
             say: Callable[[str], None] = lambda text: None) -> dict[str, Any]:
    """Pretrain (unless scratch), fine-tune and score one cell; writes and returns its record."""
    from sslkit.engine.finetune import run_finetuning

    directory = cell.directory(config)
    directory.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"format": CELL_FORMAT, "method": cell.method, "seed": cell.seed,
                              "fingerprint": fingerprint(config, cell)}
    if cell.method != SCRATCH:
        say(f"pretraining {cell.method}, seed {cell.seed}, {config.pretrain_epochs} epoch(s)")
        tick = time.perf_counter()
        final = _pretrain(config, cell, plugins, quiet)
        record["pretrain_seconds"] = time.perf_counter() - tick
        record["pretrain_final"] = {k: v for k, v in final.items() if isinstance(v, (int, float, str, type(None)))}
    else:
        record["pretrain_seconds"] = 0.0
    say(f"fine-tuning {cell.method}, seed {cell.seed} ({config.protocol} protocol)")
    result = run_finetuning(finetune_config(config, cell, quiet=quiet), plugins)
    record["finetune_seconds"] = result.seconds["total"]
    record["test"] = result.metrics["test"].to_dict()
    if "val" in result.metrics:
        record["val"] = result.metrics["val"].to_dict()
    record["labelled_counts"] = dict(zip(result.class_names, result.labelled_counts))

    atomic_write_text(directory / CELL_FILE, json.dumps(record, indent=2, default=str))
    return record


def cell_row(record: dict[str, Any]) -> dict[str, Any]:
    """One results.csv row: method, seed, the test scalars, the validation ones, the times."""
    from sslkit.evaluation.metrics import Metrics

    test = Metrics.from_dict(record["test"])
    row: dict[str, Any] = {"method": record["method"], "seed": record["seed"], **test.scalars}
    if "val" in record:
        row.update({f"val_{k}": v for k, v in Metrics.from_dict(record["val"]).scalars.items()})
    row["test_images"] = test.n_samples
    row["pretrain_loss"] = (record.get("pretrain_final") or {}).get("loss")
    row["pretrain_seconds"] = float(record.get("pretrain_seconds", 0.0))
    row["finetune_seconds"] = float(record.get("finetune_seconds", 0.0))
    return row


RESULT_COLUMNS = ["method", "seed", *SCALAR_METRICS, *(f"val_{m}" for m in SCALAR_METRICS), "test_images",
                  "pretrain_loss", "pretrain_seconds", "finetune_seconds"]


@dataclass
class CompareResult:
    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    reused: int
    ran: int
    seconds: float
    files: dict[str, Path]


def run_compare(config: CompareConfig, plugins=None, *, command: str = "", quiet: bool = False,
                say: Callable[[str], None] = lambda text: None) -> CompareResult:
    """Every cell (reusing finished ones), then results.md / results.csv / results.png in ``out``."""
    from sslkit.evaluation.reporting import aggregate

    if plugins is None:
        from sslkit.plugins import get_plugins

        plugins = get_plugins()
    validate(config, plugins)
    if config.threads is not None:
        import torch

        torch.set_num_threads(int(config.threads))
    started = time.perf_counter()
    load_at_start = _load_average()
    cells = [Cell(method, seed) for seed in config.seeds for method in config.methods()]
    records: dict[tuple[str, int], dict[str, Any]] = {}
    for cell in cells:
        found = read_cell(config, cell)
        if found is not None:
            records[(cell.method, cell.seed)] = found
    reused = len(records)
    if reused:
        say(f"reusing {reused} finished cell(s) of {len(cells)} from {config.runs_path()}")
    todo = [c for c in cells if (c.method, c.seed) not in records]
    for number, cell in enumerate(todo, start=1):
        say(f"[{number}/{len(todo)}] {cell.method}, seed {cell.seed}")
        tick = time.perf_counter()
        records[(cell.method, cell.seed)] = run_cell(config, cell, plugins, quiet=quiet, say=say)
        row = cell_row(records[(cell.method, cell.seed)])
        say(f"[{number}/{len(todo)}] {cell.method}, seed {cell.seed} done in {time.perf_counter() - tick:.0f} s: "
            + ", ".join(f"{m} {row[m]:.3f}" for m in SCALAR_METRICS))
    rows = [cell_row(records[(c.method, c.seed)]) for c in cells]
    rows.sort(key=lambda r: (config.methods().index(r["method"]), r["seed"]))
    summary = aggregate(rows, by="method")
    seconds = time.perf_counter() - started
    first_test = records[(cells[0].method, cells[0].seed)]["test"]
    supports = {name: int(d["support"]) for name, d in first_test["per_class"].items()}
    files = write_results(config, rows, summary, command=command, seconds=seconds, reused=reused, ran=len(todo),
                          load=(load_at_start, _load_average()), test_supports=supports)
    return CompareResult(rows, summary, reused, len(todo), seconds, files)


# --------------------------------------------------------------------------- results files

def _reference_sentence(supports: dict[str, int], reference: dict[str, float]) -> str:
    from sslkit.evaluation.reporting import METRIC_LABELS

    commonest = max(supports, key=supports.get)
    scores = ", ".join(f"{METRIC_LABELS[m]} {reference[m]:.3f}" for m in SCALAR_METRICS)
    counts = ", ".join(f"{n} {name}" for name, n in supports.items())
    return (f"For reference, always predicting the commonest class ('{commonest}'; the test split has {counts}) "
            f"scores {scores} (dashed lines in the plot).")


def _load_average() -> float | None:
    """The 1-minute load average (how busy the machine was: timings depend on it), if known."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def machine_description(device: str = "auto") -> str:
    """``4-core x86_64 CPU (model), Linux, torch 2.x`` plus the GPU when one is used."""
    import torch

    from sslkit.engine.device import resolve_device

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = (f"{os.cpu_count()}-core CPU ({model}), {platform.system()}, Python {platform.python_version()}, "
            f"torch {torch.__version__} ({torch.get_num_threads()} CPU thread(s))")
    try:
        resolved = resolve_device(device)
    except UserError:
        return text
    if resolved.type == "cuda":
        text += f", GPU {torch.cuda.get_device_name(resolved)}"
    elif resolved.type == "cpu":
        text += ", no GPU used"
    return text


def write_results(config: CompareConfig, rows: list[dict[str, Any]], summary: list[dict[str, Any]], *,
                  command: str, seconds: float, reused: int, ran: int,
                  load: tuple[float | None, float | None] = (None, None),
                  test_supports: dict[str, int] | None = None) -> dict[str, Path]:
    from sslkit.evaluation.reporting import (
        majority_reference,
        plot_summary,
        rows_markdown,
        summary_markdown,
        write_rows_csv,
    )

    out = Path(config.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    csv_path = write_rows_csv(out / "results.csv", rows, RESULT_COLUMNS)
    budget = "all" if config.labels is None else config.labels
    title = (f"{config.protocol} protocol, {budget} labels, {config.backbone}, "
             f"{config.pretrain_epochs} pretraining epochs, {len(config.seeds)} seed(s)")
    reference = majority_reference(list(test_supports.values())) if test_supports else None
    png_path = plot_summary(out / "results.png", rows, title=title, reference=reference)
    cell_minutes = sum(r["pretrain_seconds"] + r["finetune_seconds"] for r in rows) / 60
    test_images = sorted({r["test_images"] for r in rows})
    lines = [
        "# sslkit compare",
        "",
        f"Test-split figures ({', '.join(map(str, test_images))} images), mean ± sample std over seeds "
        f"{', '.join(map(str, config.seeds))}; best mean per metric in bold. `{SCRATCH}` is the same network "
        f"with random weights, fine-tuned under the same protocol.",
        "",
        summary_markdown(summary),
        "",
        *([_reference_sentence(test_supports, reference), ""] if reference else []),
        "## Settings",
        "",
        f"- command: `{command or 'run_compare(...)'}`",
        f"- data: `{config.data or 'embedded BUSI 64 px'}`, image size {config.image_size}, split seed {config.split_seed}",
        f"- backbone `{config.backbone}` {config.backbone_options or ''}".rstrip(),
        f"- pretraining: {config.pretrain_epochs} epoch(s), batch {config.pretrain_batch_size}"
        + (f", {config.pretrain_options}" if config.pretrain_options else "")
        + (f"; masker options {config.masker_options}" if config.masker_options else ""),
        f"- fine-tuning: protocol `{config.protocol}`, {budget} labels, "
        f"{config.finetune_epochs or 'default'} epochs, class weights {config.class_weights}, "
        f"report epoch: {config.select}",
        f"- machine: {machine_description(config.device)}"
        + (f"; load average {load[0]:.1f} at the start, {load[1]:.1f} at the end" if None not in load else ""),
        f"- time: {cell_minutes:.1f} min of cell compute in all; this invocation {seconds / 60:.1f} min "
        f"({ran} cell(s) run, {reused} reused)",
        "",
        "## Every cell",
        "",
        rows_markdown(rows, ["method", "seed", *SCALAR_METRICS, "val_macro_f1", "pretrain_loss",
                             "pretrain_seconds", "finetune_seconds"]),
        "",
        "Files: `results.csv` (these rows), `results.png` (bars: mean ± std, dots: seeds).",
        "",
    ]
    md_path = out / "results.md"
    atomic_write_text(md_path, "\n".join(lines))
    return {"markdown": md_path, "csv": csv_path, "png": png_path}
