"""Start-up time of the commands a new user meets first: discovery, a typo's error, help.

Each command runs as a fresh process (``python -m sslkit ...``), as a user's shell starts it, so
the figure includes the interpreter, imports, plugin loading and the output. Printed per command:
the median and the range of ``--repeats`` runs (default 5), and whether the median is under the
target (1 s: what the issue asked of discovery). Exit code 1 if any median misses the target, so
CI or a reviewer can rerun it as a check.

    python benchmarks/bench_cli_start.py
    python benchmarks/bench_cli_start.py --repeats 9 --target 0.5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

#: (command line after ``sslkit``, its expected exit code)
COMMANDS: list[tuple[list[str], int]] = [
    (["list", "maskers"], 0),
    (["plugins"], 0),
    (["pretrain", "--masker", "rnadom"], 2),
    (["--help"], 0),
    (["list", "datasets"], 0),
]


def time_command(args: list[str], expected: int) -> float:
    """Seconds one fresh ``python -m sslkit ARGS`` takes; its exit code must be ``expected``."""
    env = {**os.environ, "SSLKIT_PLUGINS": ""}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "sslkit", *args], capture_output=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != expected:
        raise SystemExit(f"sslkit {' '.join(args)} exited {done.returncode}, expected {expected}: "
                         f"{done.stderr.decode(errors='replace').strip()[:300]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--target", type=float, default=1.0, help="seconds a median must stay under")
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{args.repeats} fresh processes per command; load average {load:.2f} at the start")
    missed = 0
    for command, expected in COMMANDS:
        times = [time_command(command, expected) for _ in range(args.repeats)]
        median = statistics.median(times)
        verdict = "ok" if median < args.target else f"OVER {args.target:g} s"
        missed += median >= args.target
        print(f"  sslkit {' '.join(command):<28} median {median:5.2f} s  (min {min(times):.2f}, "
              f"max {max(times):.2f})  {verdict}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
