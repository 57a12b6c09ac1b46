"""Every figure the README quotes, with the commands that produce it, rerun on demand.

A README drifts from the code one change at a time: a default moves, a figure stays. This file is
the README's list of measured claims. Each :class:`Figure` holds the exact README text it backs
(``quoted``; ``tests/core/test_core_readme_figures.py`` fails when the README no longer contains
it, so a figure cannot change without this list changing with it), the commands that measured it
(run from the repository root, ``{work}`` a scratch folder, ``{python}`` this interpreter, and
``sslkit`` this interpreter's), what to read in their output (``show``: regular expressions whose
matching lines are printed beside the quoted text), and, for figures that are exact (counts,
seeded results), ``expect``: text the output must contain, so a rerun fails loudly when the code
no longer gives the quoted figure. Timings are never ``expect``-ed: this machine is shared. Seeded
figures are exact on the machine that measured them (the development VM: its CPU picks bf16, one
thread); another CPU or thread count changes their last digits.

    python benchmarks/readme_figures.py --list                 # every figure, its cost and commands
    python benchmarks/readme_figures.py --max-minutes 5        # rerun every figure costing <= 5 min
    python benchmarks/readme_figures.py audit quality-guard    # rerun these, logs under --out
    python benchmarks/readme_figures.py --columns RUN/metrics.csv loss,mask/lesion_hit_rate

``minutes`` is the cost measured on the shared 2-core development VM. Exit code: 1 when a
command fails or an ``expect`` is missing from the output.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUSI64 = "npz:../shared/data/busi/busi_64.npz"
#: the rows of the speed benchmarks' tables (one per backbone, masker or image size)
TABLE_ROWS = r"^(backbone|resnet|paper-unet|efficientnet|convnext|random|dqn|hpm|saliency|adios|\s+\d+px)"


@dataclass(frozen=True)
class Figure:
    """One measured claim of the README and how to measure it again."""

    name: str
    section: str
    quoted: tuple[str, ...]
    commands: tuple[str, ...]
    minutes: float
    show: tuple[str, ...] = ()
    expect: tuple[str, ...] = ()
    note: str = ""
    #: the commit whose code measured the quoted figure, where it predates the newest rerun of them all
    measured_at: str = ""


def _columns(run: str, columns: str) -> str:
    """The command that prints some metrics.csv columns of a pretraining run, one row per epoch."""
    return f"{{python}} benchmarks/readme_figures.py --columns {run}/metrics.csv {columns}"


def _pretrainings(common: str, runs: dict[str, str], columns: str) -> tuple[str, ...]:
    """One ``sslkit pretrain`` per run (``{name: its own options}``), then their metrics columns."""
    trained = tuple(f"sslkit pretrain {common} {own} --out {{work}}/{name}".replace("  ", " ")
                    for name, own in runs.items())
    return trained + tuple(_columns(f"{{work}}/{name}", columns) for name in runs)


FIGURES: tuple[Figure, ...] = (
    Figure(
        "quickstart", "Quick start",
        ("that epoch took 26.3 s wall as typed", "and 27.6 s with `--threads 1`"),
        ("sslkit pretrain --masker random --epochs 1 --out {work}/quickstart",
         "sslkit pretrain --masker random --epochs 1 --threads 1 --out {work}/quickstart-1"),
        1.0, show=(r"CPU thread", r"^Done")),
    Figure(
        "lowest-versions", "Quick start",
        ("torch 2.10, timm 1.0.3, albumentations 2.0.8, numpy 1.24.4, scikit-learn 1.8.0, scipy 1.10.0",),
        ("bash .ci/lowest-versions",), 20.0, show=(r"^[A-Za-z0-9_.-]+==", r" passed"),
        expect=("torch==2.10.0", "timm==1.0.3", "albumentations==2.0.8", "numpy==1.24.4",
                "scikit-learn==1.8.0", "scipy==1.10.0")),
    Figure(
        "cli-start", "Plugins",
        ("`list maskers` 0.55 s, `plugins` 0.58 s, the typo below 0.72 s, `--help` 0.33 s",),
        ("{python} benchmarks/bench_cli_start.py",), 0.5, show=(r"median",)),
    Figure(
        "threads", "Resume, interruptions, precision",
        ("the Quick start's epoch took 32.5 s with one thread and 44.2 s with two",
         "weights up to 0.014 apart, BatchNorm running statistics up to 2.2"),
        ("sslkit pretrain --masker random --epochs 1 --threads 1 --out {work}/threads-1",
         "sslkit pretrain --masker random --epochs 1 --threads 2 --out {work}/threads-2",
         "{python} benchmarks/readme_figures.py --weight-difference {work}/threads-1 {work}/threads-2"),
        1.0, show=(r"CPU thread", r"largest difference"),
        expect=("weights 0.01374, BatchNorm running statistics 2.243",),
        note="the wall time of each pretraining is the speed figure"),
    Figure(
        "compile", "Resume, interruptions, precision",
        ("measured a first step of 93.6 s with an empty inductor cache and 3.1 s with a warm one",
         "compiled steps at 0.81x and 0.86x eager's speed"),
        ("TORCHINDUCTOR_CACHE_DIR={work}/inductor {python} benchmarks/bench_compile.py --threads 1",
         "TORCHINDUCTOR_CACHE_DIR={work}/inductor {python} benchmarks/bench_compile.py --threads 1"),
        3.0, show=(r"first", r"compiled", r"eager")),
    Figure(
        "quality-guard", "Resume, interruptions, precision; Benchmarks",
        ("lowered the masked reconstruction loss from 0.129 (epoch 1) to 0.079 (epoch 5)",
         "final masked loss 0.07895 against 0.07961",
         "accuracy 0.615 against 0.615, macro F1 0.488 against 0.511, AUROC 0.748 against 0.787"),
        _pretrainings(f"--data {BUSI64} --epochs 5 --seed 0 --knn-every 5 --threads 1",
                      {"guard-bf16": "", "guard-fp32": "--precision fp32"},
                      "epoch,loss,knn_accuracy,knn_macro_f1,knn_auroc"),
        8.0, show=(r"^\s*[15]\s",),
        expect=("1 0.12909", "5 0.07895 0.61538 0.48776 0.74758", "5 0.07961 0.61538 0.51092 0.78726")),
    Figure(
        "dqn-reward", "The `dqn` masker: Intelligent Masking",
        ("was 0.28, 0.49, 0.50 and 0.51 with the paper's reward, 0.42, 0.36, 0.39 and 0.42 with "
         "`reward=masked`, against 0.38-0.39 for random placement of the same block",),
        _pretrainings(f"--masker dqn --data {BUSI64} --epochs 5 --seed 0 --threads 1",
                      {"dqn-image": "", "dqn-masked": "--masker-opt reward=masked"},
                      "epoch,loss,masker/lesion_hit_rate,masker/lesion_hit_rate_random"),
        5.0, show=(r"^\s*\d+\s",),
        expect=("2 0.10644 0.28096 0.38525", "3 0.14948 0.49064", "4 0.12788 0.50212", "5 0.11259 0.51331 0.38721",
                "2 0.13706 0.41617", "3 0.11536 0.36436", "4 0.10714 0.39275", "5 0.11456 0.41626 0.38721")),
    Figure(
        "dqn-qmap", "The `dqn` masker: Intelligent Masking",
        ("docs/images/dqn_qmap.png",),
        (f"sslkit pretrain --masker dqn --data {BUSI64} --epochs 5 --threads 1 --out {{work}}/qmap",
         "{python} examples/plot_dqn_run.py {work}/qmap --out {work}/dqn_qmap.png"),
        3.0, note="a picture: compare {work}/dqn_qmap.png with docs/images/dqn_qmap.png by eye"),
    Figure(
        "learned-maskers", "Learned peers: `hpm`, `saliency`, `adios`",
        ("`hpm` and `adios` put 97 % and 94 % of their hidden pixels on it (38 % and 25 % before "
         "training) and `saliency` 74 %, against 24 % for `random-grid`",),
        ("{python} -m pytest tests/maskers/test_learned_maskers_learn.py -q -s -p no:cacheprovider",),
        0.5, show=(r"share on the hard region",),
        expect=("hpm: share on the hard region 0.38 -> 0.97",
                "adios: share on the hard region 0.25 -> 0.94",
                "saliency: share on the hard region 0.78 -> 0.74",
                "random-grid: share on the hard region 0.24")),
    Figure(
        "paper-unet-params", "Backbones and the predictor",
        ("(1.49 M parameters with its decoder's skip connections, `--decoder-skips all`; 1.26 M",),
        ("sslkit pretrain --backbone paper-unet --epochs 1 --threads 1 --out {work}/unet-none",
         "sslkit pretrain --backbone paper-unet --decoder-skips all --epochs 1 --threads 1 "
         "--out {work}/unet-all"),
        1.5, show=(r"parameters",), expect=("1.26 M", "1.49 M")),
    Figure(
        "audit", "Evaluation you can trust",
        ("│ near-duplicate pairs (exact) │ 244 (3) │", "│ groups / images in them │ 148 / 338 │",
         "│ test images with a twin in train/val │ 65 of 156 │", "│ pairs with different labels │ 12 │",
         "│ groups crossing splits │ 91 │", "│ groups with different labels │ 8 │",
         "│ pairs at other thresholds │ 0.9: 1086, 0.93: 300, 0.95: 244, 0.97: 224, 0.99: 180 │"),
        (f"sslkit data audit {BUSI64} --no-sheet",
         f"sslkit data audit {BUSI64} --json --no-sheet | {{python}} benchmarks/readme_figures.py --audit-json -"),
        0.3, show=(r"^audit",),
        expect=("audit 0.95: 244 pairs (3 exact), 148 groups over 338 images (largest 7), 130 crossing "
                "splits, 87 joining test to train/val, 65 of 156 test images with a twin, 12 with "
                "different labels; 91 groups crossing splits, 8 groups with different labels; at other "
                "thresholds 0.9: 1086, 0.93: 300, 0.95: 244, 0.97: 224, 0.99: 180",)),
    Figure(
        "audit-thresholds", "Evaluation you can trust",
        ("At 0.99 the same data gives 180 pairs over 273 images, 97 crossing the BreastMNIST splits "
         "and 9 with different labels",
         "(22 images at 0.93, 172 at 0.90, against at most 7 at 0.95)"),
        tuple(f"sslkit data audit {BUSI64} --threshold {t} --json --no-sheet | "
              f"{{python}} benchmarks/readme_figures.py --audit-json -" for t in ("0.99", "0.93", "0.90")),
        0.5, show=(r"^audit",),
        expect=("audit 0.99: 180 pairs", "over 273 images", "97 crossing splits",
                "9 with different labels", "audit 0.93: 300 pairs", "(largest 22)",
                "audit 0.9: 1086 pairs", "(largest 172)")),
    Figure(
        "audit-speed", "Evaluation you can trust",
        ("audits 10,000 images in about 2 s",),
        ("{python} benchmarks/bench_duplicate_audit.py",), 0.5, show=(r"images",)),
    Figure(
        "interval-width", "Evaluation you can trust",
        ("was 0.149 wide with `--folds 1` (100 test images) and 0.061 wide with `--folds 5` (399 images)",),
        ("sslkit compare --seeds 1 --maskers random-grid --pretrain-epochs 1 --finetune-epochs 3 "
         "--image-size 32 --threads 1 --folds 1 --quiet --out {work}/width-1 --runs-dir {work}/width-runs-1",
         "sslkit compare --seeds 1 --maskers random-grid --pretrain-epochs 1 --finetune-epochs 3 "
         "--image-size 32 --threads 1 --folds 5 --quiet --out {work}/width-5 --runs-dir {work}/width-runs-5",
         "grep -h 'random-grid.*scratch.*macro_f1' {work}/width-1/differences.csv {work}/width-5/differences.csv"),
        6.0, show=(r"macro_f1",), note="the width is upper minus lower in differences.csv",
        expect=("100,random-grid,scratch,macro_f1,0.103107,0.030746,0.179807",
                "100,random-grid,scratch,macro_f1,-0.010978,-0.040507,0.020043")),
    Figure(
        "compare-jobs", "Evaluation you can trust",
        ("`--jobs 2 --threads 1` at **0.95x** the speed of `--jobs 1 --threads 2` at 32 px (55.2 s "
         "against 52.4 s) and **1.24x** at 64 px with 30 fine-tuning epochs",),
        ("{python} benchmarks/bench_compare_jobs.py",
         "{python} benchmarks/bench_compare_jobs.py --image-size 64 --finetune-epochs 30"),
        8.0, show=(r"jobs", r"x$")),
    Figure(
        "standardiser", "Fair frozen probes",
        ("`--no-standardize-features` 133/23/0, 156/0/0, 124/32/0, macro F1 0.309/0.247/0.337; "
         "standardised 74/49/33, 57/56/43, 64/50/42, macro F1 0.435/0.401/0.392",),
        ("sslkit finetune --from-scratch --protocol linear --seeds 3 --threads 1 "
         "--no-standardize-features --out {work}/raw",
         "sslkit finetune --from-scratch --protocol linear --seeds 3 --threads 1 --out {work}/standardised"),
        2.0, show=(r"│ +156 │$",), note="predictions per class: the column sums of each confusion table",
        expect=("│ 0.558 │ 0.345 │ 0.309 │ 0.613 │ 156 │", "│ 0.590 │ 0.333 │ 0.247 │ 0.580 │ 156 │",
                "│ 0.564 │ 0.366 │ 0.337 │ 0.558 │ 156 │", "│ 0.506 │ 0.446 │ 0.435 │ 0.649 │ 156 │",
                "│ 0.429 │ 0.437 │ 0.401 │ 0.624 │ 156 │", "│ 0.462 │ 0.390 │ 0.392 │ 0.623 │ 156 │")),
    Figure(
        "paper-unet-scratch", "Fair frozen probes",
        ("predicts all three classes (52/28/20 of 100 test images, macro F1 0.476, AUROC 0.712, seed 0)",),
        ("sslkit finetune --from-scratch --backbone paper-unet --protocol paper --threads 1 "
         "--out {work}/unet-paper",),
        1.0, show=(r"│ +100 │$",), note="predictions per class: the column sums of the confusion table",
        expect=("│ 0.480 │ 0.479 │ 0.476 │ 0.712 │ 100 │",)),
    Figure(
        "folds-table", "Results on BUSI",
        ("| random-grid | 0.472 +- 0.005 | 0.472 +- 0.005 | 0.470 +- 0.007 | 0.651 +- 0.015 | 0.449 +- 0.016 | 0.393 +- 0.037 |",
         "| scratch (same protocol) | 0.450 +- 0.020 | 0.450 +- 0.020 | 0.443 +- 0.020 | 0.628 +- 0.013 | 0.442 +- 0.015 | 0.393 +- 0.046 |",
         "| scratch-full (`--protocol full`) | **0.487 +- 0.018** | **0.487 +- 0.018** | **0.489 +- 0.019** | **0.689 +- 0.010** | **0.133 +- 0.014** | **0.449 +- 0.034** |",
         "| random-grid | scratch | +0.027 [-0.006, +0.060] not distinguishable | +0.023 [-0.002, +0.050] not distinguishable |",
         "| scratch-full | scratch | +0.046 [+0.002, +0.092] better | +0.062 [+0.031, +0.093] better |",
         "| random-grid | scratch-full | -0.019 [-0.059, +0.020] not distinguishable | -0.038 [-0.067, -0.010] worse |"),
        (f"sslkit compare --data {BUSI64} --maskers random-grid --seeds 3 --folds 5 --scratch-full "
         "--threads 1 --jobs 2 --out {work}/folds --runs-dir {work}/folds-runs",
         "grep '^|' {work}/folds/results.md"),
        41.0, show=(r"^\|",), note="results.md in the --out folder holds both tables",
        expect=("| random-grid | 3 | 0.472 ± 0.005 | 0.472 ± 0.005 | 0.470 ± 0.007 | 0.651 ± 0.015 |",
                "| scratch | 3 | 0.450 ± 0.020 | 0.450 ± 0.020 | 0.443 ± 0.020 | 0.628 ± 0.013 |",
                "| scratch-full | 3 | **0.487 ± 0.018** | **0.487 ± 0.018** | **0.489 ± 0.019** | **0.689 ± 0.010** |")),
    Figure(
        "folds-dqn", "Results on BUSI",
        ("| dqn | 0.445 | 0.641 | +0.024 [-0.028, +0.079] not distinguishable | -0.031 [-0.083, +0.021] not distinguishable |",
         "| dqn-masked | 0.465 | 0.655 | +0.044 [-0.009, +0.099] not distinguishable | -0.011 [-0.071, +0.048] not distinguishable |",
         "| random-grid | 0.477 | 0.658 | +0.056 [-0.002, +0.113] not distinguishable | |",
         "| scratch-full | **0.499** | **0.695** | +0.078 [+0.021, +0.139] better | |",
         "(+0.045 [+0.008, +0.083] and +0.041 [+0.003, +0.081])"),
        (f"sslkit compare --data {BUSI64} --maskers random-grid,dqn,dqn-masked=dqn:reward=masked,block=1,cells=48 "
         "--masker-opt dqn:block=1 --masker-opt dqn:cells=48 --seeds 1 --folds 5 --scratch-full --threads 1 "
         "--quiet --out {work}/folds-dqn --runs-dir {work}/folds-runs",
         "grep '^|' {work}/folds-dqn/results.md"),
        36.0, show=(r"^\|",), note="named with folds-table in one call, it reuses that run's seed-0 cells (12 min)",
        expect=("| dqn | 1 | 0.449 | 0.449 | 0.445 | 0.641 |", "| dqn-masked | 1 | 0.469 | 0.469 | 0.465 | 0.655 |")),
    Figure(
        "sparse-study", "Pretraining",
        ("(resnet18, two-seed means 0.666 sparse against 0.667 dense)",
         "resnet18 from scratch scored 0.670 with `output_stride=8` against 0.547"),
        ('S="{python} examples/recipe_study.py --out {work}/recipe19 --data ' + BUSI64
         + ' --threads 1 --epochs 15"; $S --backbone resnet18 --backbone-opt output_stride=8 '
         "--tag=-os8 --only scratch,grid75-sparse-norm,grid75-dense-pix,grid75-sparse-pix,grid75-dense-norm "
         "&& $S --backbone resnet18 --backbone-opt output_stride=8 --seed 1 --tag=-os8-seed1 "
         "--only grid75-sparse-pix,grid75-dense-pix && $S --report",),
        200.0, show=(r"\|",), note="docs/results/recipe.md has every command of both studies",
        measured_at="4bf3cf3"),
    Figure(
        "segmentation-skips", "Lesion segmentation",
        ("validation Dice 0.267 (0.169 over the lesion images) without skips against 0.381 (0.442) "
         "with every skip",),
        tuple(
            f"sslkit pretrain --masker random-grid --epochs 2 --seed 0 --decoder-skips {skips} "
            f"--data {BUSI64} --data-opt resplit=true --threads 1 --out {{work}}/pre-{skips} && "
            f"sslkit finetune --task segmentation --encoder {{work}}/pre-{skips} --labels 50 "
            f"--epochs 30 --seed 0 --threads 1 --out {{work}}/seg-{skips}"
            for skips in ("auto", "all")),
        8.0, show=(r"^val: dice",),
        expect=("val: dice 0.267", "dice_lesion 0.169", "val: dice 0.381", "dice_lesion 0.442")),
    Figure(
        "segmentation-table", "Lesion segmentation",
        ('| 20 | `random-grid` (pretrained encoder + decoder) | **0.403** | **0.308** | **20.6** | 0.440 |',
         '| 20 | `random-grid+fresh-decoder` | 0.382 | 0.286 | 21.7 | 0.442 |',
         '| 20 | `scratch` | 0.260 | 0.197 | 22.5 | 0.265 |',
         '| 50 | `random-grid` (pretrained encoder + decoder) | **0.437** | **0.347** | 17.8 | **0.472** |',
         '| 50 | `random-grid+fresh-decoder` | 0.425 | 0.336 | **17.1** | 0.464 |',
         '| 50 | `scratch` | 0.404 | 0.314 | 18.2 | 0.447 |',
         '| 20 | `random-grid` vs `scratch` | +0.142 [+0.113, +0.171] | +0.111 [+0.085, +0.136] | -2.3 [-3.7, -0.9] |',
         '| 20 | `random-grid+fresh-decoder` vs `scratch` | +0.121 [+0.093, +0.150] | +0.089 [+0.064, +0.114] | -2.0 [-3.3, -0.5] |',
         '| 20 | `random-grid` vs `random-grid+fresh-decoder` | +0.021 [+0.001, +0.042] | +0.022 [+0.002, +0.042] | -0.6 [-1.5, +0.2] |',
         '| 50 | `random-grid` vs `scratch` | +0.033 [+0.006, +0.062] | +0.033 [+0.008, +0.059] | -0.1 [-1.4, +1.2] |',
         '| 50 | `random-grid+fresh-decoder` vs `scratch` | +0.021 [-0.002, +0.046] | +0.022 [+0.000, +0.044] | -0.9 [-2.1, +0.3] |',
         '| 50 | `random-grid` vs `random-grid+fresh-decoder` | +0.012 [-0.008, +0.036] | +0.011 [-0.009, +0.032] | +0.8 [-0.0, +1.6] |',
         "rerun with today's code in 27.4 min"),
        (f"sslkit compare --task segmentation --data {BUSI64} --maskers random-grid --seeds 1 "
         "--labels 20,50 --folds 5 --pretrain-epochs 30 --finetune-epochs 30 --threads 1 --quiet "
         "--out {work}/segmentation", "grep '^|' {work}/segmentation/results.md"),
        28.0, show=(r"^\|",),
        expect=("| 20 | 0 | 0.403 | 0.308 | 20.640 |", "| 20 | 0 | 0.382 | 0.286 | 21.665 |",
                "| 20 | 0 | 0.260 | 0.197 | 22.451 |", "| 50 | 0 | 0.437 | 0.347 | 17.782 |",
                "| 50 | 0 | 0.425 | 0.336 | 17.121 |", "| 50 | 0 | 0.404 | 0.314 | 18.231 |",
                "+0.142 [+0.113, +0.171] better")),
    Figure(
        "reference-step", "Benchmarks",
        ("| 64 px | 792 ms | 611 ms | 0.77 | 363 ms | **0.46** |",
         "| 128 px | 3197 ms | 2269 ms | 0.71 | 1149 ms | **0.36** |",
         "| 300 px | 20167 ms | 11729 ms | 0.58 | 5678 ms | **0.28** |"),
        ("{python} benchmarks/bench_reference_step.py --steps 6",), 10.0, show=(TABLE_ROWS,)),
    Figure(
        "precision-cli", "Benchmarks",
        ("37.2 against 31.7 images/s (1.17x) and 57.1 against 32.6 (1.75x) in two rounds, **median 1.46x**",
         "with second-epoch losses 0.0875 (bf16) and 0.0832 (fp32)"),
        ("{python} benchmarks/bench_precision_cli.py",), 6.0, show=(r"images/s", r"median"),
        expect=("default (bf16)", "loss 0.0875; fp32", "loss 0.0832")),
    Figure(
        "pretrain-step", "Benchmarks",
        ("| resnet18 | 13.53 M | 26.18 | 354 | 45.2 | 73.9 | 33 % | 563 | 1.59x |",
         "| paper-unet | 1.26 M | 11.49 | 90 | 177.4 | 127.5 | 57 % | 140 | 1.55x |",
         "| resnet10t | 7.28 M | 21.24 | 159 | 100.7 | 133.7 | 60 % | 258 | 1.63x |",
         "| efficientnet_b0 | 4.11 M | 5.67 | 319 | 50.1 | 17.8 | 8 % | 199 | **0.62x** |",
         "the default four in the pretraining-step run above gave resnet18 1.04x, paper-unet 1.28x"),
        ("{python} benchmarks/bench_pretrain_step.py --threads 1 --steps 6",), 8.0, show=(TABLE_ROWS,)),
    Figure(
        "sparse-step", "Benchmarks",
        ("resnet18 **1.15x**, resnet10t 1.16x, efficientnet_b0 1.08x, convnext_atto 1.18x",),
        ("{python} benchmarks/bench_pretrain_step.py --threads 1 --backbones "
         "resnet18,resnet10t,efficientnet_b0,convnext_atto --steps 8",), 2.0, show=(TABLE_ROWS,)),
    Figure(
        "bf16-batch32", "Benchmarks",
        ("1.70x faster in bf16 than in fp32 (365 against 622 ms",),
        ("{python} benchmarks/bench_pretrain_step.py --threads 1 --batch-size 32 --masker dqn "
         "--backbones resnet18 --steps 6",), 4.0, show=(TABLE_ROWS,)),
    Figure(
        "grid-steps", "Benchmarks",
        ("| resnet18 | 257 (26.2) | 285 (35.9) | 483 (92.3) | 624 (104.7) | 870 (143.4) | 1729 (369.3) |",
         "| resnet10t | 158 (21.2) | 193 (25.5) | 298 (54.8) | 565 (84.9) | 674 (101.9) | 1080 (219.0) |",
         "64 px `output_stride=16` (4 x 4 cells) resnet18 1.07x, resnet10t 1.08x"),
        tuple(f"{{python}} benchmarks/bench_pretrain_step.py --threads 1 --backbones resnet18,resnet10t "
              f"--masker random-grid --steps 5 --no-fp32 --image-size {size}"
              + (f" --backbone-opt output_stride={stride}" if stride else "")
              for size in (64, 128) for stride in (0, 16, 8)),
        4.0, show=(TABLE_ROWS,), note="dense ms and GFLOP/step, and sparse/dense, per backbone"),
    Figure(
        "masker-ratio", "Benchmarks; The `dqn` masker: Intelligent Masking",
        ("| random | - | 362 | 0.4 | 1.00 | 1.00 |", "| dqn (light, default) | 0.06 M | 376 | 14 | 1.04 | 1.04 |",
         "| dqn (paper) | 0.66 M | 471 | 97 | 1.30 | 1.27 |", "| hpm | 0.06 M | 371 | 14 | 1.03 | 1.04 |",
         "| saliency | 11.17 M (teacher) | 422 | 63 | 1.17 | 1.17 |", "| adios | 0.10 M | 467 | 67 | 1.29 | 1.19 |",
         "The default agent costs about 4 % of a ResNet-18 step at 64 px"),
        ("{python} benchmarks/bench_masker_ratio.py --steps 10 --warmup 2",), 4.0, show=(TABLE_ROWS,)),
    Figure(
        "loader", "Benchmarks",
        ("pipeline when every file is decoded (125.5 against 110.1 images/s",
         "**4.73x** over a 5-epoch run (491.9 against 104.0 images/s)"),
        ("{python} benchmarks/bench_loader.py",), 2.0, show=(r"images/s", r"x\b")),
)


def figure_names() -> list[str]:
    return [figure.name for figure in FIGURES]


def normalised(text: str) -> str:
    """Whitespace collapsed, so a quote matches however the README wraps its lines."""
    return " ".join(text.split())


def print_columns(path: Path, columns: list[str]) -> None:
    """Print some columns of a metrics CSV, one row per line (missing values as '-')."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    print("  ".join(f"{c:>14}" for c in columns))
    for row in rows:
        print("  ".join(f"{_short(row.get(c, '')):>14}" for c in columns))


def _short(value: str | None) -> str:
    if not value:
        return "-"
    try:
        number = float(value)
    except ValueError:
        return value
    return str(int(number)) if number.is_integer() else f"{number:.5f}"


def summarise_audit(report: dict) -> str:
    """One line of ``sslkit data audit --json``'s figures, in the order the README quotes them."""
    largest = max((len(group["images"]) for group in report["duplicate_groups"]), default=0)
    others = ", ".join(f"{k}: {v}" for k, v in report["pairs_at_threshold"].items())
    return (f"audit {report['threshold']:g}: {report['pairs']} pairs ({report['exact_pairs']} exact), "
            f"{report['groups']} groups over {report['images_in_groups']} images (largest {largest}), "
            f"{report['pairs_crossing_splits']} crossing splits, {report['pairs_test_to_train_or_val']} "
            f"joining test to train/val, {report['test_images_with_twin_in_train_or_val']} of "
            f"{report['test_images']} test images with a twin, {report['pairs_with_different_labels']} "
            f"with different labels; {report['groups_crossing_splits']} groups crossing splits, "
            f"{report['groups_with_different_labels']} groups with different labels; at other thresholds {others}")


def weight_difference(run_a: Path, run_b: Path) -> str:
    """The largest absolute difference between two pretraining runs' final weights, and between
    their BatchNorm running statistics (both read from ``checkpoints/last.pt``)."""
    from sslkit.pretraining.checkpoint import load_checkpoint

    a, b = (load_checkpoint(run / "checkpoints" / "last.pt")["model"] for run in (run_a, run_b))
    weights, statistics = 0.0, 0.0
    for key, tensor in a.items():
        if not tensor.is_floating_point():
            continue
        gap = (tensor.float() - b[key].float()).abs().max().item()
        if "running_" in key:
            statistics = max(statistics, gap)
        else:
            weights = max(weights, gap)
    return f"largest difference: weights {weights:.4g}, BatchNorm running statistics {statistics:.4g}"


def run_figure(figure: Figure, work: Path, log_dir: Path) -> bool:
    """Run a figure's commands in order; print the matching lines; True when all held."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    output: list[str] = []  # every command's echo and output, for the log
    printed: list[str] = []  # the outputs alone, where expect looks
    ok = True
    print(f"== {figure.name} ({figure.section}; about {figure.minutes:g} min)")
    for command in figure.commands:
        line = command.format(work=work, python=sys.executable)
        start = time.perf_counter()
        done = subprocess.run(["bash", "-o", "pipefail", "-c", line], cwd=ROOT, env=env, capture_output=True,
                              text=True)
        seconds = time.perf_counter() - start
        text = done.stdout + done.stderr
        output.append(f"$ {line}\n{text}")
        printed.append(text)
        print(f"   $ {line}\n     exit {done.returncode}, {seconds:.1f} s wall")
        ok &= done.returncode == 0
        for shown in text.splitlines():
            if any(re.search(pattern, shown) for pattern in figure.show):
                print(f"     | {shown.rstrip()}")
    (log_dir / f"{figure.name}.log").write_text("\n".join(output))
    every = normalised("\n".join(printed))
    missing = [text for text in figure.expect if normalised(text) not in every]
    for text in missing:
        print(f"   MISSING from the output: {text!r}")
    for text in figure.quoted:
        print(f"   README: {text}")
    if figure.note:
        print(f"   note: {figure.note.format(work=work)}")
    return ok and not missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help=f"figures to rerun: {', '.join(figure_names())}")
    parser.add_argument("--list", action="store_true", help="list every figure and its commands")
    parser.add_argument("--max-minutes", type=float, help="rerun every figure costing at most this")
    parser.add_argument("--out", type=Path, help="keep the runs and logs here (default: a temp folder)")
    parser.add_argument("--audit-json", metavar="FILE",
                        help="summarise an `sslkit data audit --json` report (- for stdin) and exit")
    parser.add_argument("--weight-difference", nargs=2, type=Path, metavar=("RUN_A", "RUN_B"),
                        help="print how far two pretraining runs' final weights lie apart and exit")
    parser.add_argument("--columns", nargs=2, metavar=("CSV", "COLUMNS"),
                        help="print these comma-separated columns of a metrics CSV and exit")
    args = parser.parse_args(argv)
    if args.columns:
        print_columns(Path(args.columns[0]), args.columns[1].split(","))
        return 0
    if args.weight_difference:
        print(weight_difference(*args.weight_difference))
        return 0
    if args.audit_json:
        text = sys.stdin.read() if args.audit_json == "-" else Path(args.audit_json).read_text()
        print(summarise_audit(json.loads(text)))
        return 0
    if args.list:
        for figure in FIGURES:
            when = f"  (quoted figure measured at {figure.measured_at})" if figure.measured_at else ""
            print(f"{figure.name:<20} {figure.minutes:5g} min  {figure.section}{when}")
            for command in figure.commands:
                print(f"{'':<28}$ {command}")
        return 0
    unknown = sorted(set(args.names) - set(figure_names()))
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(unknown)}; known: {', '.join(figure_names())}")
    chosen = [f for f in FIGURES if f.name in args.names
              or (args.max_minutes is not None and f.minutes <= args.max_minutes)]
    if not chosen:
        parser.error("name figures to rerun, or give --max-minutes (see --list)")
    work = args.out or Path(tempfile.mkdtemp(prefix="sslkit-readme-figures-"))
    if args.out and args.out.exists() and any(args.out.iterdir()):
        parser.error(f"--out {args.out} is not empty: its finished runs would be reused; give a new folder")
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{len(chosen)} figure(s), runs and logs in {work}; load average {load:.2f} at the start")
    results = {figure.name: run_figure(figure, work.resolve(), logs) for figure in chosen}
    failed = [name for name, ok in results.items() if not ok]
    print(f"{len(results) - len(failed)} of {len(results)} figure(s) reran cleanly"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
