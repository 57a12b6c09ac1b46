"""Does ``sslkit compare --jobs 2 --threads 1`` beat ``--jobs 1 --threads 2`` on a 2-core CPU?

Runs the same small comparison (embedded BUSI, 32 px, ``random-grid`` against ``scratch``, 3
grouped folds, 2 seeds: 2 one-epoch pretrainings and 12 fine-tuning cells)
as whole processes, alternating the two settings ``--rounds`` times so a shared machine's load
hits both alike, each into a fresh folder. Prints every wall time, the medians and their ratio,
and checks that both settings wrote identical out-of-fold predictions.

    python benchmarks/bench_compare_jobs.py                 # --rounds 1, 32 px, 3 fine-tuning epochs
    python benchmarks/bench_compare_jobs.py --image-size 64 --finetune-epochs 30 --rounds 2
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMAND = ["compare", "--maskers", "random-grid", "--seeds", "2", "--folds", "3", "--pretrain-epochs", "1",
           "--quiet"]


def run(jobs: int, threads: int, out: Path, size: int, epochs: int) -> float:
    tick = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sslkit", *COMMAND, "--image-size", str(size), "--finetune-epochs",
                    str(epochs), "--jobs", str(jobs), "--threads", str(threads), "--out", str(out)],
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - tick


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--cores", type=int, default=2, help="N: compares --jobs 1 --threads N with --jobs N --threads 1")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--finetune-epochs", type=int, default=3)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"one process": [], "processes": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            one = run(1, args.cores, Path(tmp) / f"one{r}", args.image_size, args.finetune_epochs)
            many = run(args.cores, 1, Path(tmp) / f"many{r}", args.image_size, args.finetune_epochs)
            times["one process"].append(one)
            times["processes"].append(many)
            print(f"round {r + 1}: --jobs 1 --threads {args.cores}: {one:.1f} s; "
                  f"--jobs {args.cores} --threads 1: {many:.1f} s", flush=True)
        one_rows = (Path(tmp) / "one0" / "predictions.csv").read_text()
        many_rows = (Path(tmp) / "many0" / "predictions.csv").read_text()
        print(f"out-of-fold prediction rows: {one_rows.count(chr(10)) - 1}; identical in both settings: "
              f"{one_rows == many_rows}")
    a, b = statistics.median(times["one process"]), statistics.median(times["processes"])
    print(f"median: one process {a:.1f} s, {args.cores} processes {b:.1f} s, speed-up {a / b:.2f}x")


if __name__ == "__main__":
    main()
