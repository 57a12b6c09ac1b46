"""The recipe study behind sslkit's pretraining defaults: which settings make a better encoder?

Every variant is pretrained once (``sslkit pretrain``) and then scored on the **validation split
only**: the k-NN health check at the last epoch (train-split labels vote for the val split) and
``sslkit finetune --protocol P`` (val macro F1, AUROC and balanced accuracy of the last epoch,
averaged over fine-tuning seeds). Test figures are never read here: the test split is for the final
``sslkit compare`` table only, once the recipe is chosen. Baselines (``scratch``: the same network
with random weights) are scored the same way.

Rows are appended to ``OUT/validation.csv`` as variants finish, with the exact commands in
``OUT/commands.txt``; rerunning the script skips what is done, so it can be stopped at any time.

    python examples/recipe_study.py --out runs/recipe                       # the built-in plan
    python examples/recipe_study.py --out runs/recipe --only skips-none-grid60 --epochs 20
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

#: name -> extra `sslkit pretrain` arguments (resnet18, 64 px, the run's default precision).
PLAN: dict[str, list[str]] = {
    "scratch": [],  # no pretraining: random weights, the baseline
    "box6-skips-all": ["--masker", "random", "--decoder-skips", "all"],  # sslkit's earlier default: one box, 6 % of the image
    "box40-skips-all": ["--masker", "random", "--masker-opt", "area=0.1", "--masker-opt", "count=5",
                        "--decoder-skips", "all"],
    "grid60-skips-all": ["--masker", "random-grid", "--masker-opt", "ratio=0.6", "--decoder-skips", "all"],
    "box6-skips-none": ["--masker", "random", "--decoder-skips", "none"],
    "box40-skips-none": ["--masker", "random", "--masker-opt", "area=0.1", "--masker-opt", "count=5",
                         "--decoder-skips", "none"],
    "grid60-skips-none": ["--masker", "random-grid", "--masker-opt", "ratio=0.6", "--decoder-skips", "none"],
    "grid75-skips-none": ["--masker", "random-grid", "--masker-opt", "ratio=0.75", "--decoder-skips", "none"],
    "grid60-skips-deepest": ["--masker", "random-grid", "--masker-opt", "ratio=0.6", "--decoder-skips", "deepest"],
    "grid40-skips-none": ["--masker", "random-grid", "--masker-opt", "ratio=0.4", "--decoder-skips", "none"],
}
# The second study (issue 19): encoding x target x mask ratio, decoder without skips.
for _ratio in ("60", "75"):
    for _encoding in ("dense", "sparse"):
        for _target, _flag in (("pix", "pixels"), ("norm", "norm-pixels")):
            PLAN[f"grid{_ratio}-{_encoding}-{_target}"] = [
                "--masker", "random-grid", "--masker-opt", f"ratio=0.{_ratio}", "--decoder-skips", "none",
                "--encoding", _encoding, "--target", _flag]

#: Every command runs with as many torch threads as --threads says (set in main).
ENV = dict(os.environ)

COLUMNS = ["variant", "epochs", "backbone", "protocol", "finetune_seeds", "val_macro_f1", "val_macro_f1_sd",
           "val_auroc", "val_balanced_accuracy", "knn_val_macro_f1", "knn_val_auroc", "final_loss",
           "pretrain_seconds", "finetune_seconds"]


def run(command: list[str], log: Path) -> None:
    with log.open("a") as handle:
        handle.write("$ " + shlex.join(command) + "\n")
        handle.flush()
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=ENV)
    if done.returncode:
        raise SystemExit(f"failed ({done.returncode}): {shlex.join(command)}; see {log}")


def last_val(history: Path) -> dict[str, float]:
    rows = list(csv.DictReader(history.open()))
    last = rows[-1]
    return {k[len("val_"):]: float(v) for k, v in last.items() if k.startswith("val_") and v not in ("", None)}


def finetune(encoder_args: list[str], out: Path, args, log: Path) -> tuple[dict[str, float], float, float]:
    """Mean val figures over the fine-tuning seeds (last epoch), their macro F1 sd, and the seconds."""
    start = time.perf_counter()
    command = ["sslkit", "finetune", *encoder_args, "--data", args.data, "--protocol", args.protocol,
               "--labels", str(args.labels), "--seeds", str(args.finetune_seeds), "--threads", str(args.threads),
               "--out", str(out), "--quiet"]
    run(command, log)
    seconds = time.perf_counter() - start
    seeds = [out / f"seed{s}" for s in range(args.finetune_seeds)] if args.finetune_seeds > 1 else [out]
    figures = [last_val(seed / "history.csv") for seed in seeds]
    mean = {k: sum(f[k] for f in figures) / len(figures) for k in figures[0]}
    f1 = [f["macro_f1"] for f in figures]
    sd = (sum((x - mean["macro_f1"]) ** 2 for x in f1) / max(1, len(f1) - 1)) ** 0.5
    return mean, sd, seconds


def report(table: Path) -> str:
    """``validation.csv`` as Markdown tables, one per protocol (best validation macro F1 first)."""
    rows = list(csv.DictReader(table.open()))
    lines: list[str] = []
    for protocol in sorted({r["protocol"] for r in rows}):
        chosen = sorted((r for r in rows if r["protocol"] == protocol), key=lambda r: -float(r["val_macro_f1"]))
        lines += [f"### `--protocol {protocol}` (validation split)", "",
                  "| variant | backbone | epochs | val macro F1 (sd over fine-tuning seeds) | val AUROC | val balanced acc. "
                  "| k-NN val macro F1 | k-NN val AUROC | final masked loss |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in chosen:
            def num(key: str, digits: int = 3) -> str:
                return f"{float(r[key]):.{digits}f}" if r.get(key) not in ("", None) else "-"
            epochs = "-" if r["variant"].startswith("scratch") else r["epochs"]
            lines.append(f"| {r['variant']} | {r['backbone']} | {epochs} | {num('val_macro_f1')} ({num('val_macro_f1_sd')}) "
                         f"| {num('val_auroc')} | {num('val_balanced_accuracy')} | {num('knn_val_macro_f1')} "
                         f"| {num('knn_val_auroc')} | {num('final_loss', 4)} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/recipe")
    parser.add_argument("--data", default="npz:../shared/data/busi/busi_64.npz")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--backbone-opt", action="append", default=[], metavar="KEY=VALUE",
                        help="backbone option for pretraining and for the scratch baseline, e.g. output_stride=8")
    parser.add_argument("--protocol", default="paper", choices=["linear", "paper", "full"])
    parser.add_argument("--labels", default="100")
    parser.add_argument("--finetune-seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="pretraining seed")
    parser.add_argument("--only", default="", help="comma-separated variant names (default: the whole plan)")
    parser.add_argument("--extra", default="", help="extra pretrain arguments for every variant, e.g. '--lr 3e-4'")
    parser.add_argument("--tag", default="", help="suffix for the variant names in the table (with --extra)")
    parser.add_argument("--report", action="store_true", help="print OUT/validation.csv as Markdown and stop")
    args = parser.parse_args(argv)
    ENV["OMP_NUM_THREADS"] = str(args.threads)
    out = Path(args.out)
    if args.report:
        print(report(out / "validation.csv"))
        return None
    out.mkdir(parents=True, exist_ok=True)
    table = out / "validation.csv"
    log = out / "commands.txt"
    done = set()
    if table.is_file():
        done = {(r["variant"], r["epochs"], r["backbone"], r["protocol"]) for r in csv.DictReader(table.open())}
    backbone_opts = [part for option in args.backbone_opt for part in ("--backbone-opt", option)]
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(PLAN)
    unknown = [n for n in names if n not in PLAN]
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; known: {', '.join(PLAN)}")
    for name in names:
        label = name + args.tag
        key = (label, str(args.epochs), args.backbone, args.protocol)
        if key in done:
            continue
        row = {"variant": label, "epochs": args.epochs, "backbone": args.backbone, "protocol": args.protocol,
               "finetune_seeds": args.finetune_seeds}
        if name == "scratch":
            encoder_args = ["--from-scratch", "--backbone", args.backbone, *backbone_opts]
            row.update(epochs=args.epochs, pretrain_seconds=0)
        else:
            run_dir = out / "pretrain" / f"{label}-{args.backbone}-e{args.epochs}"
            if not (run_dir / "encoder" / "encoder.json").is_file() or not (run_dir / "metrics.json").is_file():
                start = time.perf_counter()
                resume = ["--resume", str(run_dir)] if (run_dir / "checkpoints" / "last.pt").is_file() else []
                command = ["sslkit", "pretrain", *resume] if resume else [
                    "sslkit", "pretrain", "--data", args.data, "--backbone", args.backbone, "--epochs", str(args.epochs),
                    "--seed", str(args.seed), "--knn-every", str(args.epochs), "--threads", str(args.threads),
                    "--out", str(run_dir), "-q", *backbone_opts, *PLAN[name], *shlex.split(args.extra)]
                if resume:
                    command += ["--threads", str(args.threads), "-q"]
                run(command, log)
                row["pretrain_seconds"] = round(time.perf_counter() - start, 1)
            metrics = json.loads((run_dir / "metrics.json").read_text())
            history = metrics.get("history") or metrics.get("epochs") or []
            last = history[-1] if history else {}
            row.update(final_loss=last.get("loss"), knn_val_macro_f1=last.get("knn_macro_f1"),
                       knn_val_auroc=last.get("knn_auroc"))
            encoder_args = ["--encoder", str(run_dir)]
        figures, sd, seconds = finetune(encoder_args, out / "finetune" / f"{label}-{args.backbone}-e{args.epochs}-{args.protocol}",
                                        args, log)
        row.update(val_macro_f1=round(figures["macro_f1"], 4), val_macro_f1_sd=round(sd, 4),
                   val_auroc=round(figures.get("auroc", float("nan")), 4),
                   val_balanced_accuracy=round(figures.get("balanced_accuracy", float("nan")), 4),
                   finetune_seconds=round(seconds, 1))
        new = not table.is_file()
        with table.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)
        print(json.dumps(row), flush=True)
    return None


if __name__ == "__main__":
    sys.exit(main())
