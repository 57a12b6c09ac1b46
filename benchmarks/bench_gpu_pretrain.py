"""Pretraining throughput on a GPU: images/s of ``random`` and ``dqn`` in fp32 and bf16.

Times the engine's own training step (:func:`sslkit.pretraining.step.train_step`: masks, predictor
forward under the run's autocast, masked MSE, backward, Adam step, masker feedback, which for
``dqn`` is the Q-network's forward, reward, backward and Adam step) on real BUSI images at 256 px
(``../shared/data/busi/busi_256.npz``, the paper's resolution class). Batches are loaded through
``sslkit.data`` and moved to the device before timing, so the figures are the step's, not the
disk's. Per precision, the maskers take turns step by step (random, dqn, random, ...) on the same
batches, each with its own copy of the same initial predictor, so a load change hits both alike.
Printed: median step time, images/s, peak GPU memory and the dqn/random step-time ratio.

Written for a GPU session to run as is; ``--device cpu`` with tiny settings checks it anywhere:

    python benchmarks/bench_gpu_pretrain.py                                  # cuda, 256 px, batch 32
    python benchmarks/bench_gpu_pretrain.py --batch-size 64 --compile
    python benchmarks/bench_gpu_pretrain.py --device cpu --image-size 64 --batch-size 8 \\
        --data npz:../shared/data/busi/busi_64.npz --steps 3 --warmup 1 --backbone resnet10t
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

from sslkit.engine.device import Precision, resolve_device
from sslkit.pretraining.step import train_step
from sslkit.options import parse_options
from sslkit.masking import MaskerContext, StepInfo
from sslkit.models import build_predictor, count_parameters
from sslkit.plugins import get_plugins

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = f"npz:{REPO.parent / 'shared' / 'data' / 'busi' / 'busi_256.npz'}"
POOL = 8  # distinct batches kept on the device and cycled (bounded memory at any step count)


def load_batches(spec: str, image_size: int, batch_size: int, device: torch.device) -> list[dict]:
    """Up to POOL training batches of ``spec``, on ``device``."""
    from sslkit.data import make_loader, open_dataset

    ds = open_dataset(spec)
    loader = make_loader(ds, ("train",), purpose="pretrain", image_size=image_size, batch_size=batch_size,
                         drop_last=True, seed=0)
    loader.set_epoch(0)
    batches = []
    for batch in loader:
        batches.append({"image": batch["image"].to(device), "lesion": batch["lesion"].to(device)})
        if len(batches) == POOL:
            break
    if not batches:
        raise SystemExit(f"{spec} gives no full batch of {batch_size} images")
    return batches


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Constant:
    """The learning-rate schedule does not change step time."""

    def step(self) -> None:
        pass


def bench_precision(precision_name: str, maskers: list[tuple[str, dict]], args, device, batches, plugins) -> list[dict]:
    size = (args.image_size, args.image_size)
    total = args.warmup + args.steps
    context = MaskerContext(size, 1, device, total_steps=total, steps_per_epoch=total, epochs=1, seed=0)
    runs = []
    for name, options in maskers:
        torch.manual_seed(0)  # the same initial predictor for every masker
        model = build_predictor(args.backbone, in_chans=1, plugins=plugins, decoder_skips="auto")  # as sslkit pretrain
        model = model.to(device).train()
        masker = plugins.maskers.create(name, **options)
        masker.setup(context)
        runs.append({
            "masker": name, "model": model, "forward": torch.compile(model) if args.compile else model,
            "instance": masker, "optimizer": torch.optim.Adam(model.parameters(), lr=1e-4),
            "precision": Precision(precision_name, device), "times": [], "peak": 0,
            "params": count_parameters(model), "agent": sum(count_parameters(m) for m in masker.modules()),
        })
    for step in range(total):
        batch = batches[step % len(batches)]
        info = StepInfo(step, 0, total, True)
        for run in runs:
            if device.type == "cuda" and step == args.warmup:
                torch.cuda.reset_peak_memory_stats(device)
            sync(device)
            start = time.perf_counter()
            train_step(images=batch["image"], lesions=batch["lesion"], info=info, masker=run["instance"],
                       forward=run["forward"], optimizer=run["optimizer"], scheduler=_Constant(),
                       precision=run["precision"])
            sync(device)
            if step >= args.warmup:
                run["times"].append(time.perf_counter() - start)
                if device.type == "cuda":
                    run["peak"] = max(run["peak"], torch.cuda.max_memory_allocated(device))
    results = []
    for run in runs:
        median = statistics.median(run["times"])
        results.append({"precision": precision_name, "masker": run["masker"], "step_s": median,
                        "img_s": args.batch_size / median, "peak": run["peak"], "params": run["params"],
                        "agent": run["agent"],
                        "spread": (max(run["times"]) - min(run["times"])) / median})
        del run["model"], run["forward"], run["optimizer"]
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), auto, cpu or mps")
    parser.add_argument("--data", default=DEFAULT_DATA, help="dataset spec (default: the shared BUSI 256 px npz)")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--maskers", default="random,dqn", help="comma-separated; the first is the ratio's base")
    parser.add_argument("--masker-opt", action="append", default=[], metavar="NAME:KEY=VALUE",
                        help="option for one masker, e.g. dqn:network=paper (repeatable)")
    parser.add_argument("--precisions", default="fp32,bf16", help="comma-separated among fp32, bf16, fp16")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per masker and precision")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (cuDNN autotuning, compile)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the predictor")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    plugins = get_plugins()
    per_masker: dict[str, list[str]] = {}
    for item in args.masker_opt:
        name, _, option = item.partition(":")
        per_masker.setdefault(name, []).append(option)
    maskers = [(m.strip(), parse_options(per_masker.get(m.strip(), []), f"--masker-opt {m.strip()}:"))
               for m in args.maskers.split(",") if m.strip()]
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]

    batches = load_batches(args.data, args.image_size, args.batch_size, device)
    if device.type == "cuda":
        where = f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    else:
        where = f"{device.type} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    print(f"device: {where}; torch {torch.__version__}; backbone {args.backbone}; {args.image_size} px, "
          f"batch {args.batch_size}; {args.steps} timed steps after {args.warmup} warm-up"
          f"{'; torch.compile' if args.compile else ''}")
    print(f"data: {args.data} ({len(batches)} batches cycled, on the device before timing)")
    header = f"{'precision':<10}{'masker':<10}{'agent params':>13}{'step ms':>10}{'spread':>8}{'images/s':>11}{'peak MiB':>10}{'ratio':>8}"
    print(header)
    print("-" * len(header))
    for precision in precisions:
        results = bench_precision(precision, maskers, args, device, batches, plugins)
        base = results[0]["step_s"]
        for r in results:
            peak = f"{r['peak'] / 2**20:>10.0f}" if device.type == "cuda" else f"{'-':>10}"
            print(f"{r['precision']:<10}{r['masker']:<10}{r['agent'] / 1e6:>12.3f}M{r['step_s'] * 1e3:>10.1f}"
                  f"{r['spread']:>7.0%} {r['img_s']:>11.1f}{peak}{r['step_s'] / base:>8.3f}")
    print(f"ratio: step time / {maskers[0][0]}'s at the same precision; spread = (max - min) / median step time.")


if __name__ == "__main__":
    main()
