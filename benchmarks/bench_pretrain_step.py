"""How fast is one pretraining step, and how close to the hardware does it run?

For each backbone: a batch of synthetic images, the ``random`` masker, the predictor's forward
pass, masked MSE, backward pass and an Adam step, laid out as ``sslkit pretrain`` runs them
(channels_last, fused Adam). Each backbone is timed at the default precision (``auto``: bf16 where
the hardware computes it natively) and in fp32, interleaved step by step, and the speed-up of the
default over fp32 is printed. Per backbone: step time (median), images per second, FLOPs per step
(counted by torch's FlopCounterMode: convolutions and matmuls, forward and backward) and the
achieved FLOP/s. In the same run the machine's own throughput is measured on one big
channels_last convolution (in bf16 and fp32) and one big matmul, so the last columns say what share
of that peak the training step reaches. Data loading is not included (see the engine's logs).

Sparse masked encoding (``--encoding sparse``) is timed beside the dense step, interleaved, at the
default precision, with the same masker snapped to the encoder's cells (``sparse ms`` and
``sparse/dense``; the target is at most 1.15x).

    python benchmarks/bench_pretrain_step.py --threads 1               # 64 px, batch 16, CPU or GPU
    python benchmarks/bench_pretrain_step.py --threads 1 --backbone-opt output_stride=8 --masker random-grid
    python benchmarks/bench_pretrain_step.py --image-size 256 --batch-size 32 --precision bf16
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext

import torch

from sslkit.engine.device import resolve_precision
from sslkit.options import parse_options
from sslkit.masking import MaskerContext, StepInfo, apply_mask, snap_to_cells
from sslkit.models import build_predictor, count_flops, count_parameters
from sslkit.models.sparse import encoder_cell_grid
from sslkit.optimizers import build_optimizer
from sslkit.plugins import get_plugins

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
CL = torch.channels_last


def pick_device(name: str) -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def autocast(device: torch.device, precision: str):
    dtype = DTYPES[precision]
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def timed(fn, device: torch.device, repeats: int, warmup: int = 2) -> list[float]:
    """Seconds per call of ``fn`` (after ``warmup`` calls), one value per repeat."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def hardware_reference(device: torch.device, precision: str) -> dict[str, float]:
    """FLOP/s of one big channels_last conv2d and one big matmul at ``precision``."""
    big = device.type != "cpu"
    n, c, s = (64, 256, 64) if big else (8, 128, 56)
    m = 8192 if big else 1024
    x = torch.randn(n, c, s, s, device=device).contiguous(memory_format=CL)
    conv = torch.nn.Conv2d(c, c, 3, padding=1, bias=False).to(device, memory_format=CL)
    a = torch.randn(m, m, device=device)
    b = torch.randn(m, m, device=device)
    results = {}
    with torch.no_grad(), autocast(device, precision):
        conv_flops = 2 * n * c * s * s * c * 9
        results["conv"] = conv_flops / statistics.median(timed(lambda: conv(x), device, 5))
        mm_flops = 2 * m**3
        results["matmul"] = mm_flops / statistics.median(timed(lambda: a @ b, device, 5))
    return results


class StepRunner:
    """One backbone's training step at one precision, as the engine lays it out."""

    def __init__(self, name: str, precision: str, args, device: torch.device, masker_options: dict,
                 encoding: str = "dense"):
        plugins = get_plugins()
        torch.manual_seed(0)
        self.device, self.precision = device, precision
        self.model = build_predictor(name, in_chans=args.in_chans, plugins=plugins, decoder_skips="auto",
                                     **args.backbone_options)
        self.model = self.model.to(device, memory_format=CL).train()
        size = (args.image_size, args.image_size)
        self.cell_grid = None
        if encoding == "sparse":
            self.cell_grid = encoder_cell_grid(self.model.encoder, size, args.in_chans)
            self.model.enable_sparse_encoding(self.cell_grid, size)
        self.optimizer = build_optimizer(self.model.parameters(), "adam", lr=1e-3)
        self.masker = plugins.maskers.create(args.masker, **masker_options)
        self.masker.setup(MaskerContext(image_size=size, in_chans=args.in_chans, device=device, total_steps=args.steps,
                                        steps_per_epoch=args.steps, epochs=1, precision=precision, memory_format=CL,
                                        cell_grid=self.cell_grid))
        gen = torch.Generator().manual_seed(0)
        self.images = (torch.rand(args.batch_size, args.in_chans, *size, generator=gen) * 2 - 1).to(device)
        self.images = self.images.contiguous(memory_format=CL)
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        self.total = args.steps
        self.count = 0
        self.times: list[float] = []

    def forward_backward(self):
        masks = self.masker.propose(self.images, StepInfo(self.count, 0, self.total))
        visible = None
        if self.cell_grid is not None:  # as the engine's step does under --encoding sparse
            cells, masks = snap_to_cells(masks, self.cell_grid)
            visible = ~cells
        with autocast(self.device, self.precision):
            masked = apply_mask(self.images, masks)
            out = self.model(masked) if visible is None else self.model(masked, visible)
        hidden = masks.expand_as(self.images)
        loss = ((out.float() - self.images) ** 2 * hidden).sum() / hidden.sum().clamp(min=1)
        self.scaler.scale(loss).backward()
        return loss

    def step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.forward_backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.count += 1

    def timed_step(self) -> None:
        sync(self.device)
        start = time.perf_counter()
        self.step()
        sync(self.device)
        self.times.append(time.perf_counter() - start)


def bench_backbone(name: str, args, device: torch.device, masker_options: dict) -> dict:
    """The default precision and fp32, interleaved step by step (a shared machine's load hits both)."""
    default = StepRunner(name, args.precision, args, device, masker_options)
    sparse = StepRunner(name, args.precision, args, device, masker_options, encoding="sparse")
    runners = [default, sparse] + ([StepRunner(name, "fp32", args, device, masker_options)]
                                   if args.precision != "fp32" and not args.no_fp32 else [])
    flops = count_flops(default.forward_backward)  # counted once, outside the timing
    for runner in runners:
        runner.optimizer.zero_grad(set_to_none=True)
        for _ in range(args.warmup):
            runner.step()
    for _ in range(args.steps):
        for runner in runners:
            runner.timed_step()
    median = statistics.median(default.times)
    fp32_runner = runners[2] if len(runners) > 2 else (default if args.precision == "fp32" else None)
    fp32 = statistics.median(fp32_runner.times) if fp32_runner is not None else float("nan")
    return {
        "backbone": name,
        "params": count_parameters(default.model),
        "flops": flops,
        "step_s": median,
        "spread": (max(default.times) - min(default.times)) / median,
        "img_s": args.batch_size / median,
        "flop_s": flops / median,
        "fp32_step_s": fp32,
        "sparse_step_s": statistics.median(sparse.times),
        "cell_grid": sparse.cell_grid,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", default="resnet18,paper-unet,resnet10t,efficientnet_b0",
                        help="comma-separated registered backbone names")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--in-chans", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per backbone and precision")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda, cuda:1, mps")
    parser.add_argument("--precision", choices=["auto", *sorted(DTYPES)], default="auto",
                        help="the precision timed (auto: as sslkit pretrain resolves it); fp32 is timed beside it")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--masker", default="random")
    parser.add_argument("--masker-opt", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--no-fp32", action="store_true", help="do not time fp32 beside the default precision")
    parser.add_argument("--backbone-opt", action="append", default=[], metavar="KEY=VALUE",
                        help="backbone option for every backbone, e.g. output_stride=8")
    args = parser.parse_args(argv)
    args.backbone_options = parse_options(args.backbone_opt, "--backbone-opt")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    args.precision = resolve_precision(args.precision, device)
    masker_options = parse_options(args.masker_opt, "--masker-opt")

    # The reference is measured before and after the backbones and the better figure is kept:
    # on a shared machine a single measurement can land in someone else's busy moment.
    ref = hardware_reference(device, args.precision)
    ref32 = hardware_reference(device, "fp32") if args.precision != "fp32" else ref
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{device.type}, {torch.get_num_threads()} threads"
    print(f"device: {where}; precision {args.precision} (and fp32 beside it), channels_last, fused Adam; "
          f"{args.image_size} px, batch {args.batch_size}, in_chans {args.in_chans}; masker {args.masker} "
          f"{masker_options or ''}; backbone options {args.backbone_options or 'none'}")
    header = (f"{'backbone':<18}{'params':>9}{'GFLOP/step':>12}{'step ms':>10}{'spread':>8}{'img/s':>10}{'GFLOP/s':>10}"
              f"{'% conv':>8}{'% mm':>7}{'fp32 ms':>10}{'speed-up':>10}{'sparse ms':>11}{'sparse/dense':>14}{'cells':>7}")
    results = [bench_backbone(n.strip(), args, device, masker_options) for n in args.backbones.split(",") if n.strip()]
    again = hardware_reference(device, args.precision)
    print(f"hardware reference, {args.precision} (best of before/after): channels_last conv2d "
          f"{max(ref['conv'], again['conv']) / 1e9:.1f} GFLOP/s ({min(ref['conv'], again['conv']) / 1e9:.1f} in the "
          f"other run), matmul {max(ref['matmul'], again['matmul']) / 1e9:.1f} GFLOP/s; fp32 conv2d "
          f"{ref32['conv'] / 1e9:.1f}, matmul {ref32['matmul'] / 1e9:.1f} GFLOP/s")
    ref = {k: max(ref[k], again[k]) for k in ref}
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r['backbone']:<18}{r['params'] / 1e6:>8.2f}M{r['flops'] / 1e9:>12.2f}{r['step_s'] * 1e3:>10.1f}"
              f"{r['spread']:>7.0%} {r['img_s']:>10.1f}{r['flop_s'] / 1e9:>10.1f}"
              f"{r['flop_s'] / ref['conv']:>8.0%}{r['flop_s'] / ref['matmul']:>7.0%}"
              f"{r['fp32_step_s'] * 1e3:>10.1f}{r['fp32_step_s'] / r['step_s']:>9.2f}x"
              f"{r['sparse_step_s'] * 1e3:>11.1f}{r['sparse_step_s'] / r['step_s']:>13.2f}x"
              f"{'x'.join(map(str, r['cell_grid'])):>7}")
    print("FLOPs: torch.utils.flop_counter (conv/matmul, forward + backward, multiply-add = 2); "
          "spread = (max - min) / median step time; % conv / % mm = share of the machine's peak at the "
          "timed precision; speed-up = fp32 step / timed step; sparse/dense = the --encoding sparse step (masks "
          "snapped to the encoder's cells) / the dense step at the timed precision; all interleaved in this run.")


if __name__ == "__main__":
    main()
