"""sslkit's training step against the Intelligent Masking authors' step, on the paper's architecture.

The *reference* is the authors' training step re-implemented here from the method description
(``../shared/docs/intelligent-masking.md``; no code of theirs is copied): their U-Net predictor
and Q-network (blocks conv3x3-BN-ReLU-conv3x3, channels 16-32-64-64-128-128, floor max-pools, a
depthwise bottleneck with kernel 2 (1 + S // 128) - 1, transposed-conv decoder with centre-cropped
skips, nearest resize back to S), the mask built per sample in a Python loop with ``nonzero``,
masked pixels set to 0, MSE over the masked pixels, one Adam step of the predictor, the reward
(per-image sum of squared error over the whole image, before the update), the agent's MSE at the
chosen cell and one Adam step of the agent; fp32, PyTorch's default Adam, NCHW: what their code
does, with the greedy policy (argmax of Q; its cost equals the exploration phase's).

*sslkit* is :func:`sslkit.pretraining.step.train_step` as ``sslkit pretrain --backbone paper-unet
--backbone-opt bottleneck_kernel=K --decoder-skips all --masker dqn --masker-opt network=paper
--masker-opt grid=G``
runs it: masks built vectorised, fused Adam, channels_last, and the run's precision: once in
``fp32`` and once in the default ``auto`` (bf16 on hardware with native bf16). The grid G is the
authors' S // 32 (2 at 64 px, 4 at 128 px, 9 at 300 px) so that both agents choose among the same
cells.

Steps are interleaved (reference, sslkit fp32, sslkit default, reference, ...) on the same random
batches, so a shared machine's load changes hit all three alike; the medians and the ratio
sslkit / reference are printed per size. Target: at most 0.5 at 128 px with the default precision.

    python benchmarks/bench_reference_step.py                       # 64, 128, 300 px, batch 16, 1 thread
    python benchmarks/bench_reference_step.py --sizes 128 --steps 12
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from sslkit.engine.device import Precision, resolve_precision
from sslkit.pretraining.step import train_step
from sslkit.masking import MaskerContext, StepInfo
from sslkit.models import build_predictor
from sslkit.optimizers import build_optimizer
from sslkit.plugins import get_plugins

TARGET = 0.5
CHANNELS = (16, 32, 64, 64, 128, 128)


# ----------------------------------------------------------------- the reference, from the description
class Block(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.bn = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)

    def forward(self, x):
        return self.conv2(F.relu(self.bn(self.conv1(x))))


class RefEncoder(nn.Module):
    def __init__(self, side: int):
        super().__init__()
        chans = (1, *CHANNELS)
        self.blocks = nn.ModuleList(Block(a, b) for a, b in zip(chans[:-1], chans[1:]))
        k = 2 * (1 + side // 2**7) - 1
        self.depthwise = nn.Conv2d(CHANNELS[-1], CHANNELS[-1], k, padding=k // 2, groups=CHANNELS[-1])

    def forward(self, x):
        skips = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            skips.append(x)
            if i < len(self.blocks) - 1:
                x = F.max_pool2d(x, 2)
        return self.depthwise(x), skips[:-1]


def centre_crop(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    return x[..., top:top + h, left:left + w]


class RefUNet(nn.Module):
    def __init__(self, side: int):
        super().__init__()
        self.side = side
        self.encoder = RefEncoder(side)
        dec = (128, 128, 64, 64, 32, 16)
        self.ups = nn.ModuleList(nn.ConvTranspose2d(a, b, 2, stride=2) for a, b in zip(dec[:-1], dec[1:]))
        self.blocks = nn.ModuleList(Block(2 * b, b) for b in dec[1:])
        self.head = nn.Conv2d(dec[-1], 1, 1)

    def forward(self, x):
        y, skips = self.encoder(x)
        for up, block, skip in zip(self.ups, self.blocks, reversed(skips)):
            y = up(y)
            y = block(torch.cat([y, centre_crop(skip, y.shape[-2], y.shape[-1])], dim=1))
        return F.interpolate(self.head(y), size=(self.side, self.side), mode="nearest")


class RefQNet(nn.Module):
    def __init__(self, side: int):
        super().__init__()
        self.encoder = RefEncoder(side)
        self.head = nn.Conv2d(CHANNELS[-1], 1, 1)

    def forward(self, x):
        return self.head(self.encoder(x)[0])


class Reference:
    """The authors' training step: per-sample masks, fp32, default Adam, NCHW."""

    def __init__(self, side: int, block: int = 2):
        self.side, self.block = side, block
        self.unet, self.qnet = RefUNet(side), RefQNet(side)
        self.opt_unet = torch.optim.Adam(self.unet.parameters(), lr=1e-3)
        self.opt_q = torch.optim.Adam(self.qnet.parameters(), lr=1e-3)

    def step(self, images: torch.Tensor) -> float:
        q = self.qnet(images)  # B,1,G,G
        grid = q.shape[-1]
        masks, chosen = [], []
        for b in range(images.shape[0]):  # the authors' per-sample loop
            flat = int(torch.argmax(q[b, 0].detach()))
            row, col = divmod(flat, grid)
            cells = torch.zeros(grid, grid)
            cells[row:row + self.block, col:col + self.block] = 1  # cut at the grid border
            mask = F.interpolate(cells[None, None], size=(self.side, self.side), mode="nearest")[0]
            idx = mask.nonzero()  # as their code: the masked pixels' coordinates, then zeroed
            image_mask = torch.ones_like(mask)
            image_mask[idx[:, 0], idx[:, 1], idx[:, 2]] = 0
            masks.append(image_mask)
            chosen.append(q[b, 0, row, col])
        keep = torch.stack(masks)
        masked = images * keep
        out = self.unet(masked)
        hidden = 1 - keep
        loss = ((out - images) ** 2 * hidden).sum() / hidden.sum().clamp(min=1)
        reward = ((out.detach() - images) ** 2).flatten(1).sum(dim=1)
        self.opt_unet.zero_grad()
        loss.backward()
        self.opt_unet.step()
        agent_loss = F.mse_loss(torch.stack(chosen), reward)
        self.opt_q.zero_grad()
        agent_loss.backward()
        self.opt_q.step()
        return float(loss.detach())


# ------------------------------------------------------------------------------------ sslkit's step
class _NoSchedule:
    def step(self) -> None:
        pass


class Sslkit:
    """The engine's step with the paper's networks, at one precision."""

    def __init__(self, side: int, precision: str, plugins, steps: int):
        device = torch.device("cpu")
        self.name = resolve_precision(precision, device)
        self.memory_format = torch.channels_last
        kernel = 2 * (1 + side // 2**7) - 1
        self.model = build_predictor("paper-unet", in_chans=1, plugins=plugins, bottleneck_kernel=kernel)
        self.model = self.model.to(memory_format=self.memory_format).train()
        self.optimizer = build_optimizer(self.model.parameters(), "adam", lr=1e-3)
        self.masker = plugins.maskers.create("dqn", network="paper", grid=max(1, side // 32), exploration="paper",
                                             explore_fraction=0.0, normalize_reward=False)
        self.masker.setup(MaskerContext(image_size=(side, side), in_chans=1, device=device, total_steps=steps,
                                        steps_per_epoch=steps, epochs=1, precision=self.name,
                                        memory_format=self.memory_format))
        self.precision = Precision(self.name, device)
        self.count = 0

    def step(self, images: torch.Tensor) -> float:
        images = images.contiguous(memory_format=self.memory_format)
        out = train_step(images=images, lesions=None, info=StepInfo(self.count, 0, 1000), masker=self.masker,
                         forward=self.model, optimizer=self.optimizer, scheduler=_NoSchedule(),
                         precision=self.precision)
        self.count += 1
        return float(out.loss)


def bench_size(side: int, args, plugins) -> dict:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(side)
    batches = [torch.rand(args.batch_size, 1, side, side, generator=gen) * 2 - 1 for _ in range(4)]
    contenders = {"reference": Reference(side), "sslkit fp32": Sslkit(side, "fp32", plugins, args.steps)}
    default = Sslkit(side, "auto", plugins, args.steps)
    contenders[f"sslkit default ({default.name})"] = default
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for i in range(args.warmup + args.steps):
        for name, contender in contenders.items():
            start = time.perf_counter()
            loss = contender.step(batches[i % len(batches)])
            if i >= args.warmup:
                times[name].append(time.perf_counter() - start)
            if loss != loss:
                raise SystemExit(f"{name}: NaN loss at {side} px")
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="64,128,300", help="comma-separated image sides")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per contender and size")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steady on a shared machine)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    plugins = get_plugins()
    print(f"CPU, {torch.get_num_threads()} thread(s), batch {args.batch_size}, {args.steps} timed steps after "
          f"{args.warmup} warm-up, interleaved; torch {torch.__version__}")
    header = f"{'size':>6}  {'reference ms':>13}{'sslkit fp32 ms':>16}{'ratio':>7}{'sslkit default ms':>19}{'ratio':>7}"
    print(header)
    print("-" * len(header))
    for side in [int(s) for s in args.sizes.split(",") if s.strip()]:
        medians = bench_size(side, args, plugins)
        ref = medians["reference"]
        fp32 = medians["sslkit fp32"]
        default_name = next(n for n in medians if n.startswith("sslkit default"))
        default = medians[default_name]
        print(f"{side:>4}px  {ref * 1e3:>13.1f}{fp32 * 1e3:>16.1f}{fp32 / ref:>7.2f}{default * 1e3:>19.1f}"
              f"{default / ref:>7.2f}   ({default_name})", flush=True)
    print(f"ratio = sslkit median step / reference median step; target at 128 px with the default: <= {TARGET}")


if __name__ == "__main__":
    main()
