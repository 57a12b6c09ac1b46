"""Showing and writing results: rich tables, JSON/CSV, TensorBoard, mean ± std, the PNG plot.

Everything the finetune / evaluate / compare commands print or write goes through here so the
three commands agree on names, order and number formats.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from sslkit.csvfiles import write_csv
from sslkit.evaluation.metrics import SCALAR_METRICS, Metrics
from sslkit.fileio import atomic_write_text

METRIC_LABELS = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced acc.",
    "macro_f1": "macro F1",
    "auroc": "AUROC",
    "ece": "ECE",
    "sensitivity_at_90_specificity": "sens. @90 % spec.",
    "dice": "Dice",
    "iou": "IoU",
    "hd95": "HD95 (px)",
    "dice_lesion": "Dice (lesion images)",
    "empty_correct": "empty correct",
}
#: Metrics where the smallest mean is the best (bold in tables).
LOWER_IS_BETTER = {"ece", "hd95"}


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def fmt_mean_std(mean: float, std: float, n: int, digits: int = 3) -> str:
    """``0.712 ± 0.034`` (sample std over seeds); a single value shows no spread."""
    if math.isnan(mean):
        return "n/a"
    if n < 2 or math.isnan(std):
        return fmt(mean, digits)
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


# --------------------------------------------------------------------------- one model

def metrics_tables(metrics: Metrics, title: str) -> list[Any]:
    """Rich renderables: the scalar metrics, the per-class report, the confusion matrix."""
    from rich.table import Table

    scalars = Table(title=title, show_header=True)
    names = [n for n in SCALAR_METRICS if n in metrics.scalars] or list(metrics.scalars)
    for name in names:
        scalars.add_column(METRIC_LABELS.get(name, name), justify="right")
    scalars.add_column("images", justify="right")
    scalars.add_row(*(fmt(metrics.scalars[n]) for n in names), str(metrics.n_samples))
    if not metrics.per_class:  # a task without classes (segmentation): the figures are all
        return [scalars]

    per_class = Table(title="per class", show_header=True)
    per_class.add_column("class")
    for col in ("precision", "recall", "f1", "AUROC (1-vs-rest)", "support"):
        per_class.add_column(col, justify="right")
    for name in metrics.class_names:
        row = metrics.per_class[name]
        per_class.add_row(name, fmt(row["precision"]), fmt(row["recall"]), fmt(row["f1"]),
                          fmt(row.get("auroc")), str(int(row["support"])))

    confusion = Table(title="confusion (rows: true, columns: predicted)", show_header=True)
    confusion.add_column("")
    for name in metrics.class_names:
        confusion.add_column(name, justify="right")
    for name, counts in zip(metrics.class_names, metrics.confusion):
        confusion.add_row(name, *(str(v) for v in counts))
    return [scalars, per_class, confusion]


def print_metrics(console, metrics: Metrics, title: str) -> None:
    for renderable in metrics_tables(metrics, title):
        console.print(renderable)
    for note in metrics.notes:
        console.print(f"[yellow]note:[/yellow] {note}")


def write_metrics_files(directory: str | Path, results: Mapping[str, Metrics], *, stem: str = "metrics",
                        extra: Mapping[str, Any] | None = None,
                        metrics_names: Sequence[str] = SCALAR_METRICS) -> tuple[Path, Path]:
    """``{stem}.json`` (everything) and ``{stem}.csv`` (one row of ``metrics_names`` per split)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    payload = {**(extra or {}), "splits": {split: m.to_dict() for split, m in results.items()}}
    json_path = directory / f"{stem}.json"
    atomic_write_text(json_path, json.dumps(payload, indent=2, default=str))
    rows = [{"split": split, **m.scalars, "n_samples": m.n_samples} for split, m in results.items()]
    columns = ["split", *(m for m in metrics_names if any(m in r for r in rows)), "n_samples"]
    csv_path = write_csv(directory / f"{stem}.csv", rows, columns, float_format=".6f")
    return json_path, csv_path


def read_metrics_json(path: str | Path) -> tuple[dict[str, Metrics], dict[str, Any]]:
    """(split -> Metrics, the rest of the JSON) from :func:`write_metrics_files` output."""
    data = json.loads(Path(path).read_text())
    splits = {split: Metrics.from_dict(d) for split, d in data.pop("splits", {}).items()}
    return splits, data


def write_tensorboard_scalars(writer, prefix: str, scalars: Mapping[str, float], step: int) -> None:
    """Scalars under ``prefix/name`` (NaN skipped: TensorBoard would draw it as a gap anyway)."""
    for name, value in scalars.items():
        if value is not None and not math.isnan(float(value)):
            writer.add_scalar(f"{prefix}/{name}", float(value), step)


# --------------------------------------------------------------------------- several runs

def aggregate(rows: Iterable[Mapping[str, Any]], *, by: str = "method",
              metrics: Sequence[str] = SCALAR_METRICS) -> list[dict[str, Any]]:
    """Mean and sample standard deviation (ddof 1) of each metric per ``by`` group.

    Groups keep their first-seen order. NaN values (an undefined AUROC) are left out of their
    metric's statistics; ``{metric}_n`` says how many values remained.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(str(row[by]), []).append(row)
    summary = []
    for key, members in groups.items():
        entry: dict[str, Any] = {by: key, "n": len(members)}
        for metric in metrics:
            values = np.array([float(r[metric]) for r in members if r.get(metric) not in (None, "")], dtype=float)
            values = values[~np.isnan(values)]
            entry[f"{metric}_mean"] = float(values.mean()) if values.size else float("nan")
            entry[f"{metric}_std"] = float(values.std(ddof=1)) if values.size > 1 else float("nan")
            entry[f"{metric}_n"] = int(values.size)
        summary.append(entry)
    return summary


def summary_table(summary: Sequence[Mapping[str, Any]], *, title: str, by: str = "method",
                  metrics: Sequence[str] = SCALAR_METRICS):
    """A rich table of mean ± std per group, the best mean per metric in bold."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column(by)
    table.add_column("runs", justify="right")
    for metric in metrics:
        table.add_column(METRIC_LABELS.get(metric, metric), justify="right")
    best = _best_per_metric(summary, metrics, by)
    for entry in summary:
        cells = []
        for metric in metrics:
            text = fmt_mean_std(entry[f"{metric}_mean"], entry[f"{metric}_std"], entry[f"{metric}_n"])
            cells.append(f"[bold]{text}[/bold]" if entry[by] in best.get(metric, ()) else text)
        table.add_row(str(entry[by]), str(entry["n"]), *cells)
    return table


def _best_per_metric(summary: Sequence[Mapping[str, Any]], metrics: Sequence[str], by: str = "method") -> dict[str, set[str]]:
    """metric -> the groups sharing the best mean (none marked when all groups tie)."""
    best: dict[str, set[str]] = {}
    for metric in metrics:
        scored = {e[by]: round(e[f"{metric}_mean"], 12) for e in summary if not math.isnan(e[f"{metric}_mean"])}
        if len(scored) > 1 and len(set(scored.values())) > 1:
            top = min(scored.values()) if metric in LOWER_IS_BETTER else max(scored.values())
            best[metric] = {name for name, value in scored.items() if value == top}
    return best


def summary_markdown(summary: Sequence[Mapping[str, Any]], *, by: str = "method",
                     metrics: Sequence[str] = SCALAR_METRICS) -> str:
    """The mean ± std table as GitHub Markdown (best mean per metric in bold)."""
    best = _best_per_metric(summary, metrics, by)
    header = [by, "runs", *(METRIC_LABELS.get(m, m) for m in metrics)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for entry in summary:
        cells = []
        for metric in metrics:
            text = fmt_mean_std(entry[f"{metric}_mean"], entry[f"{metric}_std"], entry[f"{metric}_n"])
            cells.append(f"**{text}**" if entry[by] in best.get(metric, ()) else text)
        lines.append("| " + " | ".join([str(entry[by]), str(entry["n"]), *cells]) + " |")
    return "\n".join(lines)


def rows_markdown(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Plain Markdown table of ``rows`` (floats to 3 decimals)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for col in columns:
            value = row.get(col)
            cells.append(fmt(value) if isinstance(value, float) else "" if value is None else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_rows_csv(path: str | Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> Path:
    """Result rows (``results.csv``, ``differences.csv``): figures to 6 decimals, NaN empty, atomic."""
    return write_csv(path, rows, columns, float_format=".6f")


def majority_reference(supports: Sequence[int]) -> dict[str, float]:
    """The scores of always predicting the commonest class, from the per-class test counts.

    Accuracy = its share p; balanced accuracy = 1/K; macro F1 = (2p / (1 + p)) / K (its F1,
    the other classes 0); AUROC = 0.5 (one constant score). What a classifier must beat.
    """
    counts = np.asarray(supports, dtype=float)
    share = counts.max() / counts.sum()
    present = int((counts > 0).sum())
    return {"accuracy": float(share), "balanced_accuracy": 1.0 / present,
            "macro_f1": float(2 * share / (1 + share)) / present, "auroc": 0.5}


def plot_summary(path: str | Path, rows: Sequence[Mapping[str, Any]], *, by: str = "method",
                 metrics: Sequence[str] = SCALAR_METRICS, title: str = "",
                 reference: Mapping[str, float] | None = None, differences: Sequence[Any] = ()) -> Path:
    """Grouped bars (mean ± std per method and metric) with each run as a dot, as a PNG;
    ``reference`` (e.g. :func:`majority_reference`) is drawn as a dashed line per metric.
    ``differences`` (:class:`sslkit.evaluation.statistics.Difference`) add a panel per reference:
    each method's paired difference with its 95 % interval as an error bar."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    summary = aggregate(rows, by=by, metrics=metrics)
    methods = [e[by] for e in summary]
    x = np.arange(len(metrics))
    width = 0.8 / max(1, len(methods))
    references = list(dict.fromkeys(d.reference for d in differences))
    panel_width = 1.6 + 1.9 * len(metrics)
    fig, axes = plt.subplots(1, 1 + len(references), figsize=(panel_width * (1 + len(references)), 4.2), dpi=120,
                             squeeze=False)
    ax = axes[0][0]
    colours = plt.get_cmap("tab10")
    for i, entry in enumerate(summary):
        offset = x - 0.4 + width * (i + 0.5)
        means = [entry[f"{m}_mean"] for m in metrics]
        stds = [0.0 if math.isnan(entry[f"{m}_std"]) else entry[f"{m}_std"] for m in metrics]
        ax.bar(offset, np.nan_to_num(means), width, yerr=stds, capsize=3, label=entry[by],
               color=colours(i % 10), alpha=0.8, error_kw={"ecolor": "0.35", "lw": 1})
        for j, metric in enumerate(metrics):
            values = [float(r[metric]) for r in rows if str(r[by]) == entry[by] and r.get(metric) not in (None, "")]
            ax.scatter(np.full(len(values), offset[j] + width * 0.22), values, color="black", s=9, zorder=3)
    for j, metric in enumerate(metrics):
        if reference and metric in reference:
            ax.hlines(reference[metric], x[j] - 0.45, x[j] + 0.45, colors="0.2", linestyles="dashed", lw=1,
                      label="commonest class always" if j == 0 else None)
    ax.set_xticks(x, [METRIC_LABELS.get(m, m) for m in metrics])
    ax.set_ylim(0, 1)
    ax.set_ylabel("score (bars: mean ± std; dots: seeds)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper center", ncol=4, fontsize="small", frameon=False)
    if title:
        ax.set_title(title, fontsize="medium")
    for panel, ref in zip(axes[0][1:], references):
        _plot_differences(panel, [d for d in differences if d.reference == ref], methods, metrics, ref, colours)
    return _save_figure(fig, path)


def _plot_differences(ax, differences: Sequence[Any], methods: Sequence[str], metrics: Sequence[str],
                      reference: str, colours) -> None:
    """One panel: method - reference per metric, error bars = the 95 % bootstrap interval."""
    shown = [m for m in methods if any(d.method == m for d in differences)]
    x = np.arange(len(metrics))
    width = 0.8 / max(1, len(shown))
    by = {(d.method, d.metric): d for d in differences}
    for m in shown:
        i = methods.index(m)
        offset = x - 0.4 + width * (shown.index(m) + 0.5)
        values, low, high = [], [], []
        for metric in metrics:
            d = by.get((m, metric))
            values.append(d.difference if d is not None else np.nan)
            ok = d is not None and not math.isnan(d.ci_low)
            low.append(d.difference - d.ci_low if d is not None and ok else 0.0)
            high.append(d.ci_high - d.difference if d is not None and ok else 0.0)
        ax.errorbar(offset, values, yerr=[low, high], fmt="o", capsize=4, color=colours(i % 10), label=m)
    ax.axhline(0.0, color="0.2", lw=1)
    ax.set_xticks(x, [METRIC_LABELS.get(m, m) for m in metrics])
    ax.set_ylabel(f"method - {reference} (95 % CI)")
    ax.set_title(f"paired difference against {reference}", fontsize="medium")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="best", fontsize="small", frameon=False)


def plot_label_efficiency(path: str | Path, curves: Mapping[str, Mapping[str, Mapping[str, tuple]]],
                          sizes: Mapping[str, float], methods: Sequence[str], *,
                          metrics: Sequence[str] = SCALAR_METRICS, title: str = "") -> Path:
    """One panel per metric: each method's score against the number of labelled images (mean
    over seeds), with its 95 % bootstrap interval as a band. ``curves``: budget -> method ->
    metric -> (mean, low, high); ``sizes``: budget -> labelled images (the x position)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = sorted((b for b in curves if not math.isnan(sizes.get(b, float("nan")))), key=lambda b: sizes[b])
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics), 3.6), dpi=120, squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax, metric in zip(axes[0], metrics):
        for i, method in enumerate(methods):
            points = [(sizes[b], *curves[b][method][metric]) for b in budgets if method in curves[b]]
            if not points:
                continue
            xs, means, lows, highs = (np.array(v, dtype=float) for v in zip(*points))
            ax.plot(xs, means, marker="o", color=colours(i % 10), label=method)
            ax.fill_between(xs, lows, highs, color=colours(i % 10), alpha=0.15)
        ax.set_xscale("log")
        ax.set_xticks([sizes[b] for b in budgets], [f"{b}\n({sizes[b]:.0f})" if b == "all" else b for b in budgets])
        ax.minorticks_off()
        ax.set_xlabel("labelled images")
        ax.set_title(METRIC_LABELS.get(metric, metric), fontsize="medium")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize="small", frameon=False)
    if title:
        fig.suptitle(title, fontsize="medium")
    return _save_figure(fig, path)


def _save_figure(fig, path: str | Path) -> Path:
    """Lay out, write (atomically: a results.png is never half a file) and close a figure."""
    import matplotlib.pyplot as plt

    from sslkit.fileio import atomic_write_path

    fig.tight_layout()
    path = Path(path)
    atomic_write_path(path, lambda tmp: fig.savefig(tmp, format=path.suffix.lstrip(".") or "png"))
    plt.close(fig)
    return path
