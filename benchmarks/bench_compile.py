"""What ``sslkit pretrain --compile`` costs and gains on this machine: the first compiled step
(compilation, cold or warm cache) and then the step time, compiled against eager.

The step is the engine's own (:func:`sslkit.pretraining.step.train_step`) as ``sslkit pretrain`` runs
it by default: ``random`` masker, ``resnet18`` predictor with the default decoder, embedded BUSI
64 px, batch 32, the run's automatic precision, channels_last, fused Adam. Eager and compiled
models start from the same weights and take turns step by step on the same batches, so a load
change hits both alike. Inductor caches compiled code in ``TORCHINDUCTOR_CACHE_DIR``: run once
with a fresh folder for the cold cost, then again with the same folder for the warm one.

    TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) python benchmarks/bench_compile.py --threads 1   # cold
    TORCHINDUCTOR_CACHE_DIR=<same dir> python benchmarks/bench_compile.py --threads 1      # warm
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time

import torch

from sslkit.engine.device import Precision, resolve_device
from sslkit.pretraining.step import train_step
from sslkit.masking import MaskerContext, StepInfo
from sslkit.models import build_predictor
from sslkit.optimizers import build_optimizer
from sslkit.plugins import get_plugins


class _Constant:
    """The learning-rate schedule does not change step time."""

    def step(self) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per model after the first")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device("cpu")
    plugins = get_plugins()
    from sslkit.data import make_loader, open_dataset

    loader = make_loader(open_dataset(None), ("train",), purpose="pretrain", image_size=args.image_size,
                         batch_size=args.batch_size, drop_last=True, seed=0)
    loader.set_epoch(0)
    batches = [b for _, b in zip(range(4), loader)]
    precision = Precision(args.precision, device)
    torch.manual_seed(0)
    base = build_predictor(args.backbone, in_chans=1, plugins=plugins, decoder_skips="auto").train()
    base = base.to(memory_format=torch.channels_last)
    runs = {}
    for name in ("eager", "compiled"):
        model = copy.deepcopy(base)
        masker = plugins.maskers.create("random")
        total = 1 + args.steps
        masker.setup(MaskerContext((args.image_size,) * 2, 1, device, total_steps=total, steps_per_epoch=total,
                                   epochs=1, seed=0))
        runs[name] = {"forward": torch.compile(model) if name == "compiled" else model, "masker": masker,
                      "optimizer": build_optimizer(model.parameters(), "adam", lr=1e-4), "times": []}
    print(f"{args.backbone}, batch {args.batch_size}, {args.image_size} px, {precision.name}, channels_last, "
          f"{args.threads} thread(s); inductor cache {os.environ.get('TORCHINDUCTOR_CACHE_DIR', '(default)')}")
    for step in range(1 + args.steps):
        batch = batches[step % len(batches)]
        images = batch["image"].contiguous(memory_format=torch.channels_last)
        for name, run in runs.items():
            start = time.perf_counter()
            output = train_step(images=images, lesions=batch["lesion"], info=StepInfo(step, 0, 1 + args.steps, True),
                              masker=run["masker"], forward=run["forward"], optimizer=run["optimizer"],
                              scheduler=_Constant(), precision=precision)
            seconds = time.perf_counter() - start
            if step == 0:
                print(f"  first step, {name}: {seconds:.1f} s (loss {float(output.loss):.5f})")
            else:
                run["times"].append(seconds)
    eager, compiled = (statistics.median(runs[n]["times"]) for n in ("eager", "compiled"))
    print(f"  then, median of {args.steps} interleaved steps: eager {eager * 1000:.0f} ms, compiled "
          f"{compiled * 1000:.0f} ms: compiled runs at {eager / compiled:.2f}x eager's speed")


if __name__ == "__main__":
    main()
