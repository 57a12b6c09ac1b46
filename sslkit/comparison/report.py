"""``sslkit compare``'s results files: results.md, results.csv, differences.csv,
predictions.csv, results.png and, with several label budgets, label_efficiency.png."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from sslkit.comparison.cells import result_columns
from sslkit.comparison.config import DIFFERENCES_FILE, PREDICTIONS_FILE, SCRATCH_FULL_PROTOCOL, CompareConfig, budget_key
from sslkit.evaluation.reference_methods import SCRATCH, SCRATCH_FULL
from sslkit.comparison.stats import (
    differences_markdown,
    predictions_by_budget,
    prediction_rows,
    write_differences_csv,
)
from sslkit.errors import UserError
from sslkit.finetuning.protocols import PROTOCOLS
from sslkit.fileio import atomic_write_text


def _reference_sentence(supports: dict[str, int], reference: dict[str, float]) -> str:
    from sslkit.evaluation.metrics import SCALAR_METRICS
    from sslkit.evaluation.reporting import METRIC_LABELS

    commonest = max(supports, key=lambda name: supports[name])
    scores = ", ".join(f"{METRIC_LABELS[m]} {reference[m]:.3f}" for m in SCALAR_METRICS)
    counts = ", ".join(f"{n} {name}" for name, n in supports.items())
    return (f"For reference, always predicting the commonest class ('{commonest}'; the scored images are {counts}) "
            f"scores {scores} (dashed lines in the plot).")


def load_average() -> float | None:
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


def write_results(config: CompareConfig, rows: list[dict[str, Any]], summaries: dict[str, list[dict[str, Any]]],
                  differences: dict[str, list], *, command: str, seconds: float, reused: int, ran: int,
                  load: tuple[float | None, float | None] = (None, None),
                  test_supports: dict[str, int] | None = None, records: list[dict[str, Any]] | None = None,
                  notes: list[str] | None = None, fold_rows: list[dict[str, Any]] | None = None,
                  task) -> dict[str, Path]:
    from sslkit.evaluation.reporting import (
        majority_reference,
        plot_label_efficiency,
        plot_summary,
        rows_markdown,
        summary_markdown,
        write_rows_csv,
    )
    from sslkit.evaluation.statistics import write_predictions_csv

    out = Path(config.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    budgets = [budget_key(b) for b in config.budgets()]
    columns = result_columns(task)
    csv_path = write_rows_csv(out / "results.csv", rows, columns)
    files = {"markdown": out / "results.md", "csv": csv_path}
    if fold_rows:
        files["folds"] = write_rows_csv(out / "folds.csv", fold_rows, columns)
    files["differences"] = write_differences_csv(out / DIFFERENCES_FILE, differences)
    prediction_table, class_names = prediction_rows(records or [], task)
    if prediction_table:
        files["predictions"] = write_predictions_csv(out / PREDICTIONS_FILE, prediction_table, class_names)
    first = budgets[0]
    title = (f"{config.protocol} protocol, {first} labels, {config.backbone}, "
             f"{config.pretrain_epochs} pretraining epochs, {len(config.seeds)} seed(s)")
    reference = majority_reference(list(test_supports.values())) if test_supports else None
    first_rows = [r for r in rows if r["labels"] == first]
    files["png"] = plot_summary(out / "results.png", first_rows, title=title, reference=reference,
                                differences=differences.get(first, []), metrics=task.metrics)
    overlays = _collect_overlays(config, out) if config.segmenting() else []
    if len(budgets) > 1:
        from sslkit.evaluation.statistics import bootstrap_scores

        grouped, _ = predictions_by_budget(records or [], task)
        curves = {b: bootstrap_scores(grouped.get(b, {}), n_resamples=config.bootstrap_resamples,
                                      metrics=task.metrics) for b in budgets}
        sizes = {b: _mean_labelled(rows, b) for b in budgets}
        files["label_efficiency"] = plot_label_efficiency(
            out / "label_efficiency.png", curves, sizes, config.methods(), metrics=task.metrics,
            title=f"{config.protocol} protocol, {config.backbone}, {len(config.seeds)} seed(s)")
    # every pretraining counts once, however many label budgets reuse it
    pretrain_seconds = {(config.pretrain_method(r["method"]), r["seed"]): r["pretrain_seconds"]
                        for r in rows if r["pretrain_seconds"]}  # a fresh-decoder twin shares its base's
    cell_minutes = (sum(pretrain_seconds.values()) + sum(r["finetune_seconds"] for r in rows)) / 60
    test_images = sorted({r["test_images"] for r in rows})
    baselines = f"`{SCRATCH}` is the same network with random weights, fine-tuned under the same protocol"
    if config.scratch_full:
        baselines += f"; `{SCRATCH_FULL}` the same, fine-tuned end to end (`--protocol full`) on the same splits"
    if config.segmenting():
        baselines += (" (with a fresh decoder); `METHOD` is fine-tuned from its pretrained encoder and decoder, "
                      "`METHOD+fresh-decoder` from its pretrained encoder with a freshly initialised decoder of the "
                      "same architecture (the same pretraining)")
        glossary = ("Dice, IoU: per-image overlap with the lesion mask, averaged over the images (an image without a "
                    "lesion scores 1 when left empty, else 0); HD95: 95th-percentile Hausdorff distance in pixels "
                    "of the image-size square (lower is better; 0 for a lesion-free image left empty, left out where "
                    "exactly one mask is empty, and in the paired differences compared on the images both methods "
                    "have it); Dice (lesion images): over "
                    "the images with a lesion only; empty correct: share of lesion-free images left empty.")
    else:
        glossary = ("ECE: expected calibration error (lower is better); sens. @90 % spec.: sensitivity for the "
                    "positive class at the threshold that keeps 90 % specificity on the validation part.")
    if config.folds > 1:
        scope = (f"Out-of-fold figures: grouped, stratified {config.folds}-fold cross-validation over the labelled "
                 f"pool, so every one of its {', '.join(map(str, test_images))} images is a test image exactly once "
                 "(patients and near-duplicate images never straddle folds; for each fold the next fold selects "
                 "and sets thresholds, the labels are drawn from the others); metrics over all out-of-fold "
                 f"predictions of a seed, then mean ± sample std over seeds {', '.join(map(str, config.seeds))}")
    else:
        scope = (f"Test-split figures ({', '.join(map(str, test_images))} images), mean ± sample std over seeds "
                 f"{', '.join(map(str, config.seeds))}")
    seen = config.resolved_pretrain_splits() or "train+val"
    pretraining_saw = (f"Pretraining saw the `{seen}` images without labels"
                       + (", held-out folds included (once per method and seed, as the paper pretrained on every "
                          "image)" if config.folds > 1 and seen == "all" else "") + ".")
    lines = [
        "# sslkit compare",
        "",
        f"{scope}; best mean per metric in bold. {baselines}. {pretraining_saw} {glossary}",
        "",
    ]
    for budget in budgets:
        if len(budgets) > 1:
            lines += [f"### {budget} labels", ""]
        lines += [summary_markdown(summaries[budget], metrics=(*task.metrics, *task.extra_metrics)), ""]
    if reference and test_supports:
        lines += [_reference_sentence(test_supports, reference), ""]
    lines += [
        "## Paired differences (95 % bootstrap intervals)",
        "",
        "Each method minus each reference on the same test images: leakage groups (a patient's images, a set of "
        "near-duplicates; a lone image is its own group) resampled with replacement, every image of a drawn group "
        f"taken ({config.bootstrap_resamples} times, the same draws for every method), both scored on each resample, "
        "the difference averaged over the seeds both have (seed s of one method paired with seed s of the other). "
        "Verdict: *better* / *worse* when the whole interval is above / below 0, else *not distinguishable*. "
        f"Recompute from `{PREDICTIONS_FILE}` with `sslkit compare --stats-only {config.out}`.",
        "",
        differences_markdown(differences) or "No saved predictions to compare.",
        "",
        *(line for note in (notes or []) for line in (f"Note: {note}", "")),
        "## Settings",
        "",
        f"- command: `{command or 'run_compare(...)'}`",
        f"- data: `{config.data or 'embedded BUSI 64 px'}`, image size {config.image_size}, "
        f"split seed {config.split_seed}"
        + (f", {config.folds} grouped folds over " + ("the paper's class-balanced pool" if config.paper_splits
                                                     else "every labelled image") if config.folds > 1 else
           ", the paper's balanced 100/100/100 splits" if config.paper_splits else ", the dataset's own splits")
        + f"; pretraining images: `{seen}`",
        f"- backbone `{config.backbone}` {config.backbone_options or ''}".rstrip(),
        f"- pretraining: {config.pretrain_epochs} epoch(s), batch {config.pretrain_batch_size}"
        + (f", {config.pretrain_options}" if config.pretrain_options else "")
        + (f"; aliases {config.masker_aliases}" if config.masker_aliases else "")
        + (f"; masker options {config.masker_options}" if config.masker_options else ""),
        f"- fine-tuning: task `{task.name}`, protocol `{config.protocol}`, {', '.join(budgets)} labels, "
        f"{config.finetune_epochs or 'default'} epochs, class weights {config.class_weights}, "
        f"report epoch: {config.select}"
        + (f"; `{SCRATCH_FULL}`: {config.scratch_full_epochs or f'default ({PROTOCOLS[SCRATCH_FULL_PROTOCOL].default_epochs})'} epochs" if config.scratch_full else ""),
        f"- machine: {machine_description(config.device)}"
        + (f"; load average {load[0]:.1f} at the start, {load[1]:.1f} at the end" if None not in load else ""),
        f"- time: {cell_minutes:.1f} min of cell compute in all; this invocation {seconds / 60:.1f} min "
        f"({ran} cell(s) run, {reused} reused)",
        "",
        "## Every cell",
        "",
        rows_markdown(rows, ["method", "labels", "seed", *task.metrics, f"val_{task.selection_metric}",
                             "pretrain_loss", "pretrain_seconds", "finetune_seconds"]),
        "",
        ("`folds.csv` (one row per fold cell), " if fold_rows else "")
        + f"Files: `results.csv` (these rows), `{DIFFERENCES_FILE}` (the paired differences), "
        f"`{PREDICTIONS_FILE}` (every cell's test predictions), `results.png` (left: mean ± std, dots: seeds; "
        "right: paired differences with 95 % intervals)"
        + (", `label_efficiency.png` (mean over seeds against labels, 95 % bootstrap bands)"
           if len(budgets) > 1 else "")
        + (f", `overlays/` (a test fold's predicted masks per method and label budget: truth green, prediction "
           f"red, overlap yellow: {', '.join(f'`{p.name}`' for p in overlays)})" if overlays else "") + ".",
        "",
    ]
    atomic_write_text(files["markdown"], "\n".join(lines))
    return files


def _collect_overlays(config: CompareConfig, out: Path) -> list[Path]:
    """Segmentation: each method's overlay sheet (first seed, first fold) per label budget, copied
    to ``OUT/overlays/METHOD_labelsL.png`` so the masks can be compared side by side."""
    import shutil

    from sslkit.comparison.config import Cell

    copied = []
    for budget in config.budgets():
        for method in config.methods():
            cell = Cell(method, config.seeds[0], budget, config.fold_numbers()[0])
            sheet = cell.directory(config) / "finetune" / "overlay.png"
            if sheet.is_file():
                target = out / "overlays" / f"{method}_labels{budget_key(budget)}.png"
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(sheet, target)
                copied.append(target)
    return copied


def _mean_labelled(rows: list[dict[str, Any]], budget: str) -> float:
    """The labelled images a budget gave (``all`` and fractions become a count for the x axis)."""
    counts = [r["labelled_images"] for r in rows if r["labels"] == budget and r.get("labelled_images")]
    return float(sum(counts) / len(counts)) if counts else float("nan")
