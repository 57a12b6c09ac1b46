"""The user's view of the default precision: ``sslkit pretrain`` as typed, default against fp32.

Runs ``sslkit pretrain --masker dqn --epochs 2`` on the embedded data twice per round, once with
the default precision (``auto``) and once with ``--precision fp32`` (everything else the same:
channels_last, fused Adam), alternating, and reads the second epoch's images/s and loss from each
run's ``metrics.csv`` (the first epoch includes start-up). Prints each round and the median ratio.
Target: the default at least 1.8x fp32's images/s on hardware with native bf16.

    python benchmarks/bench_precision_cli.py                 # 2 rounds, --threads 1
    python benchmarks/bench_precision_cli.py --rounds 3 --threads 0 --masker random
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def second_epoch(run_dir: Path) -> dict[str, float]:
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    return {"images_per_s": float(rows[1]["images_per_s"]), "loss": float(rows[1]["loss"])}


def pretrain(out: Path, precision: str | None, args) -> dict[str, float]:
    command = [sys.executable, "-m", "sslkit", "pretrain", "--masker", args.masker, "--epochs", "2",
               "--threads", str(args.threads), "--out", str(out), "-q"]
    if precision:
        command += ["--precision", precision]
    subprocess.run(command, check=True)
    config = (out / "config.yaml").read_text()
    resolved = next(line.split(":", 1)[1].strip() for line in config.splitlines() if line.startswith("precision:"))
    return {**second_epoch(out), "precision": resolved}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--masker", default="dqn")
    args = parser.parse_args(argv)
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            default = pretrain(Path(tmp) / f"default{round_}", None, args)
            fp32 = pretrain(Path(tmp) / f"fp32{round_}", "fp32", args)
            ratio = default["images_per_s"] / fp32["images_per_s"]
            ratios.append(ratio)
            print(f"round {round_ + 1}: default ({default['precision']}) {default['images_per_s']:.1f} images/s, "
                  f"loss {default['loss']:.4f}; fp32 {fp32['images_per_s']:.1f} images/s, loss {fp32['loss']:.4f}; "
                  f"ratio {ratio:.2f}x", flush=True)
    print(f"median ratio over {args.rounds} round(s): {statistics.median(ratios):.2f}x "
          f"(sslkit pretrain --masker {args.masker} --epochs 2 --threads {args.threads}, embedded data, second epoch)")


if __name__ == "__main__":
    main()
