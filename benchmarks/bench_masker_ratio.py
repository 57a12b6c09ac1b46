"""What does learned masking cost? Each masker's step time over ``random``, same backbone and data.

One run times the engine's own training step (:func:`sslkit.pretraining.step.train_step`: masks,
predictor forward, masked MSE, backward, Adam step, masker feedback — for a learned masker that
includes its own networks' forward and backward passes and optimizer steps, and for ``adios`` the
extra predictor pass of its adversarial step) for ``random``, ``dqn`` with the default light and
the paper's Q-network, and ``hpm``, ``saliency`` and ``adios`` with their defaults. Each masker
gets its own copy of the same initial predictor; steps are interleaved round-robin (random, dqn
light, ..., random, ...) over the same batches so that a shared machine's load changes hit all of
them alike. Data: the embedded BUSI 64 px set through ``sslkit.data`` (batches loaded once, before
timing), or random tensors when that is unavailable (the table says which). Target: every default
configuration at most 1.3x ``random``.

    python benchmarks/bench_masker_ratio.py                          # resnet18, 64 px, batch 32
    python benchmarks/bench_masker_ratio.py --backbone paper-unet --steps 30 --threads 0
    python benchmarks/bench_masker_ratio.py --maskers random,hpm      # a subset
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from sslkit.engine.device import Precision, resolve_precision
from sslkit.pretraining.step import train_step
from sslkit.masking import MaskerContext, StepInfo
from sslkit.models import build_predictor, count_parameters
from sslkit.optimizers import build_optimizer
from sslkit.plugins import get_plugins

TARGET = 1.3
CL = torch.channels_last
#: (label, masker, options, is a default configuration held to the target)
CONFIGS = [
    ("random", "random", {}, True),
    ("dqn (light)", "dqn", {"network": "light"}, True),
    ("dqn (paper)", "dqn", {"network": "paper"}, False),
    ("hpm", "hpm", {}, True),
    ("saliency", "saliency", {}, True),
    ("adios", "adios", {}, True),
]


def load_batches(count: int, batch_size: int, image_size: int) -> tuple[list[dict], str]:
    """``count`` batches of the embedded BUSI set (lesion masks included), else random tensors."""
    try:
        from sslkit.data import make_loader, open_dataset

        ds = open_dataset(None)
        loader = make_loader(ds, ("train",), purpose="pretrain", image_size=image_size, batch_size=batch_size, drop_last=True)
        batches: list[dict] = []
        epoch = 0
        while len(batches) < count:
            loader.set_epoch(epoch)
            batches.extend(loader)
            epoch += 1
        return batches[:count], f"embedded BUSI {image_size} px (sslkit.data)"
    except Exception as error:  # the benchmark still measures the step without the data package
        gen = torch.Generator().manual_seed(0)
        batches = [{"image": torch.rand(batch_size, 1, image_size, image_size, generator=gen) * 2 - 1} for _ in range(count)]
        return batches, f"random tensors ({type(error).__name__}: sslkit.data unavailable)"


class Timed:
    """Wraps a masker to add up the seconds spent in its own propose and feedback."""

    def __init__(self, masker, device: torch.device):
        self.masker, self.device, self.seconds = masker, device, 0.0

    def _timed(self, fn, *args):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        out = fn(*args)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds += time.perf_counter() - start
        return out

    def propose(self, images, info):
        return self._timed(self.masker.propose, images, info)

    def feedback(self, feedback):
        return self._timed(self.masker.feedback, feedback)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per masker")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto", help="as sslkit pretrain's --precision (auto: bf16 where "
                        "native, else fp32); the step runs as the engine runs it: channels_last, fused Adam")
    parser.add_argument("--maskers", default="", help="comma-separated masker names to time (random always runs); "
                        "default: all of the table")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (0: torch's default). One is the default because on a shared, busy "
                             "machine several threads per process spin on each other and slow small ops (the agent's) "
                             "far more than big ones, which says more about the machine than about the method")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    plugins = get_plugins()
    total = args.warmup + args.steps
    batches, data_note = load_batches(total, args.batch_size, args.image_size)
    size = (args.image_size, args.image_size)
    precision = resolve_precision(args.precision, device)
    wanted = {m.strip() for m in args.maskers.split(",") if m.strip()} | {"random"}
    configs = [c for c in CONFIGS if not args.maskers or c[1] in wanted]

    runs = []
    for label, name, options, default in configs:
        torch.manual_seed(0)  # the same initial predictor for every masker
        model = build_predictor(args.backbone, in_chans=1, plugins=plugins, decoder_skips="auto")  # as sslkit pretrain
        model = model.to(device, memory_format=CL).train()
        masker = plugins.maskers.create(name, **options)
        masker.setup(MaskerContext(size, 1, device, total_steps=total, steps_per_epoch=total, epochs=1,
                                   encoder=model.encoder, precision=precision, memory_format=CL))
        agent = sum(count_parameters(m) for m in masker.modules())
        runs.append({
            "label": label, "model": model, "masker": Timed(masker, device), "agent_params": agent, "default": default,
            "optimizer": build_optimizer(model.parameters(), "adam", lr=1e-3), "times": [],
            "precision": Precision(precision, device), "predictor_params": count_parameters(model),
        })

    for step, batch in enumerate(batches):
        images = batch["image"].to(device, memory_format=CL)
        lesions = batch.get("lesion")
        lesions = lesions.to(device) if lesions is not None else None
        info = StepInfo(step, 0, total, True)
        for run in runs:
            if step == args.warmup:
                run["masker"].seconds = 0.0
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            train_step(images=images, lesions=lesions, info=info, masker=run["masker"], forward=run["model"],
                       optimizer=run["optimizer"], scheduler=_NoSchedule(), precision=run["precision"],
                       predictor=run["model"])
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if step >= args.warmup:
                run["times"].append(time.perf_counter() - start)

    base = statistics.median(runs[0]["times"])
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    where += f", {precision}, channels_last, fused Adam"
    print(f"backbone {args.backbone} ({runs[0]['predictor_params'] / 1e6:.2f} M params), {args.image_size} px, "
          f"batch {args.batch_size}, {args.steps} timed steps after {args.warmup} warm-up; {where}")
    print(f"data: {data_note}")
    header = f"{'masker':<14}{'own params':>14}{'step ms':>10}{'masker ms':>11}{'ratio':>8}{'ratio (masker time)':>21}"
    print(header)
    print("-" * len(header))
    base_masker = runs[0]["masker"].seconds / len(runs[0]["times"])
    for run in runs:
        median = statistics.median(run["times"])
        masker_s = run["masker"].seconds / len(run["times"])
        run["ratio"] = median / base
        run["masker_ratio"] = (base + masker_s - base_masker) / base
        print(f"{run['label']:<14}{run['agent_params'] / 1e6:>13.3f}M{median * 1e3:>10.1f}{masker_s * 1e3:>11.1f}"
              f"{run['ratio']:>8.3f}{run['masker_ratio']:>21.3f}")
    print("step ms: median of the timed steps; masker ms: mean time in propose + feedback; ratio: step time / "
          "random's; ratio (masker time): (random's step + this masker's extra time in propose + feedback) / "
          "random's step, less sensitive to the machine's load.")
    print("own params: the masker's own networks (for saliency, its teacher copy of the encoder).")
    for run in runs[1:]:
        if run["default"]:
            verdict = "within" if max(run["ratio"], run["masker_ratio"]) <= TARGET else "OVER"
            print(f"{run['label']} (default): {run['ratio']:.3f} x random ({run['masker_ratio']:.3f} from masker "
                  f"time), {verdict} the target of {TARGET}.")


class _NoSchedule:
    """The predictor's learning-rate schedule is irrelevant to step time."""

    def step(self) -> None:
        pass


if __name__ == "__main__":
    main()
