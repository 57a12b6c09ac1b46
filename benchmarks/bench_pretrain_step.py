"""How fast is one pretraining step, and how close to the hardware does it run?

For each backbone: a batch of synthetic images, the ``random`` masker, the predictor's forward
pass, masked MSE, backward pass and an Adam step. Printed per backbone: step time (median),
images per second, FLOPs per step (counted by torch's FlopCounterMode: convolutions and matmuls,
forward and backward) and the achieved FLOP/s. In the same run the machine's own throughput is
measured on one big convolution and one big matmul, so the last columns say what share of that
the training step reaches. Data loading is not included (see the engine's throughput logs).

    python benchmarks/bench_pretrain_step.py                       # 64 px, batch 16, CPU or GPU
    python benchmarks/bench_pretrain_step.py --image-size 256 --batch-size 32 --precision bf16
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext

import torch

from sslkit.masking import MaskerContext, StepInfo, apply_mask, parse_options
from sslkit.models import build_predictor, count_flops, count_parameters
from sslkit.plugins import get_plugins

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


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
    """FLOP/s of one big conv2d and one big matmul at the benchmark's precision."""
    big = device.type != "cpu"
    n, c, s = (64, 256, 64) if big else (8, 128, 56)
    m = 8192 if big else 1024
    x = torch.randn(n, c, s, s, device=device)
    conv = torch.nn.Conv2d(c, c, 3, padding=1, bias=False).to(device)
    a = torch.randn(m, m, device=device)
    b = torch.randn(m, m, device=device)
    results = {}
    with torch.no_grad(), autocast(device, precision):
        conv_flops = 2 * n * c * s * s * c * 9
        results["conv"] = conv_flops / statistics.median(timed(lambda: conv(x), device, 5))
        mm_flops = 2 * m**3
        results["matmul"] = mm_flops / statistics.median(timed(lambda: a @ b, device, 5))
    return results


def bench_backbone(name: str, args, device: torch.device, masker_options: dict) -> dict:
    plugins = get_plugins()
    torch.manual_seed(0)
    model = build_predictor(name, in_chans=args.in_chans, plugins=plugins).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    size = (args.image_size, args.image_size)
    masker = plugins.maskers.create(args.masker, **masker_options)
    masker.setup(MaskerContext(image_size=size, in_chans=args.in_chans, device=device,
                               total_steps=args.steps, steps_per_epoch=args.steps, epochs=1))
    images = torch.rand(args.batch_size, args.in_chans, *size, device=device) * 2 - 1
    scaler = torch.amp.GradScaler(device.type, enabled=args.precision == "fp16")
    counter = {"step": 0}

    def forward_backward():
        masks = masker.propose(images, StepInfo(counter["step"], 0, args.steps))
        with autocast(device, args.precision):
            out = model(apply_mask(images, masks))
        hidden = masks.expand_as(images)
        loss = ((out.float() - images) ** 2 * hidden).sum() / hidden.sum().clamp(min=1)
        scaler.scale(loss).backward()
        return loss

    def step():
        optimizer.zero_grad(set_to_none=True)
        forward_backward()
        scaler.step(optimizer)
        scaler.update()
        counter["step"] += 1

    flops = count_flops(forward_backward)  # counted once, outside the timing
    optimizer.zero_grad(set_to_none=True)
    times = timed(step, device, args.steps, warmup=args.warmup)
    median = statistics.median(times)
    return {
        "backbone": name,
        "params": count_parameters(model),
        "flops": flops,
        "step_s": median,
        "spread": (max(times) - min(times)) / median,
        "img_s": args.batch_size / median,
        "flop_s": flops / median,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", default="resnet18,paper-unet,resnet10t,efficientnet_b0",
                        help="comma-separated registered backbone names")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--in-chans", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per backbone")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda, cuda:1, mps")
    parser.add_argument("--precision", choices=sorted(DTYPES), default="fp32", help="autocast precision")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--masker", default="random")
    parser.add_argument("--masker-opt", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    masker_options = parse_options(args.masker_opt, "--masker-opt")

    # The reference is measured before and after the backbones and the better figure is kept:
    # on a shared machine a single measurement can land in someone else's busy moment.
    ref = hardware_reference(device, args.precision)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{device.type}, {torch.get_num_threads()} threads"
    print(f"device: {where}; precision {args.precision}; {args.image_size} px, batch {args.batch_size}, "
          f"in_chans {args.in_chans}; masker {args.masker} {masker_options or ''}")
    header = f"{'backbone':<18}{'params':>9}{'GFLOP/step':>12}{'step ms':>10}{'spread':>8}{'img/s':>10}{'GFLOP/s':>10}{'% conv':>8}{'% mm':>7}"
    results = [bench_backbone(n.strip(), args, device, masker_options) for n in args.backbones.split(",") if n.strip()]
    again = hardware_reference(device, args.precision)
    print(f"hardware reference (best of before/after): conv2d {max(ref['conv'], again['conv']) / 1e9:.1f} GFLOP/s "
          f"({min(ref['conv'], again['conv']) / 1e9:.1f} in the other run), matmul "
          f"{max(ref['matmul'], again['matmul']) / 1e9:.1f} GFLOP/s ({min(ref['matmul'], again['matmul']) / 1e9:.1f})")
    ref = {k: max(ref[k], again[k]) for k in ref}
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r['backbone']:<18}{r['params'] / 1e6:>8.2f}M{r['flops'] / 1e9:>12.2f}{r['step_s'] * 1e3:>10.1f}"
              f"{r['spread']:>7.0%} {r['img_s']:>10.1f}{r['flop_s'] / 1e9:>10.1f}"
              f"{r['flop_s'] / ref['conv']:>8.0%}{r['flop_s'] / ref['matmul']:>7.0%}")
    print("FLOPs: torch.utils.flop_counter (conv/matmul, forward + backward, multiply-add = 2); "
          "spread = (max - min) / median step time.")


if __name__ == "__main__":
    main()
