"""Precision ``auto``, channels_last and the fused optimizer: chosen as documented, and learning
the same thing as plain fp32 (the quality guard's fast form; the 5-epoch guard is in the README)."""

from __future__ import annotations

import copy

import pytest
import torch

from sslkit.engine import device as device_module
from sslkit.engine.device import Precision, resolve_precision
from sslkit.pretraining.step import train_step
from sslkit.masking import MaskerContext, StepInfo
from sslkit.models import build_predictor
from sslkit.optimizers import build_optimizer, implementation_name
from sslkit.plugins import get_plugins

CPU = torch.device("cpu")


class _NoSchedule:
    def step(self) -> None:
        pass


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_is_bf16_exactly_where_the_cpu_has_native_bf16(monkeypatch, native, expected):
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: native)
    assert resolve_precision("auto", CPU) == expected
    assert Precision("auto", CPU).name == expected
    assert expected in device_module.precision_report(CPU)


@pytest.mark.parametrize("name", ["fp32", "bf16", "fp16"])
def test_explicit_precisions_pass_through(name):
    assert resolve_precision(name, CPU) == name


def _tiny_step(precision: str, memory_format: torch.memory_format, model: torch.nn.Module, images: torch.Tensor):
    plugins = get_plugins()
    model = copy.deepcopy(model).to(memory_format=memory_format)
    optimizer = build_optimizer(model.parameters(), "adam", lr=1e-3)
    masker = plugins.maskers.create("center")
    masker.setup(MaskerContext(image_size=tuple(images.shape[-2:]), in_chans=1, device=CPU, total_steps=3,
                               steps_per_epoch=3, epochs=1, precision=precision, memory_format=memory_format))
    losses = []
    for step in range(3):
        out = train_step(images=images.contiguous(memory_format=memory_format), lesions=None,
                         info=StepInfo(step, 0, 3), masker=masker, forward=model, optimizer=optimizer,
                         scheduler=_NoSchedule(), precision=Precision(precision, CPU))
        losses.append(float(out.loss))
    return losses


def test_bf16_channels_last_steps_track_fp32():
    """Three steps on a tiny U-Net: bf16 + channels_last losses within 3 % of fp32's, and fp32 in
    channels_last equal to contiguous fp32 (the layout changes speed, not arithmetic)."""
    torch.manual_seed(0)
    model = build_predictor("paper-unet", in_chans=1).train()
    images = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    fp32 = _tiny_step("fp32", torch.contiguous_format, model, images)
    fp32_cl = _tiny_step("fp32", torch.channels_last, model, images)
    bf16_cl = _tiny_step("bf16", torch.channels_last, model, images)
    assert fp32[-1] < fp32[0]  # it learns
    assert fp32_cl == pytest.approx(fp32, rel=1e-4)
    assert bf16_cl == pytest.approx(fp32, rel=0.03)
    assert bf16_cl != fp32  # bf16 really ran (its rounding shows)


def test_optimizer_is_fused_on_cpu_and_matches_plain_adam():
    torch.manual_seed(0)
    a = torch.nn.Linear(8, 4)
    b = copy.deepcopy(a)
    fused = build_optimizer(a.parameters(), "adamw", lr=1e-2, weight_decay=0.1)
    plain = torch.optim.AdamW(b.parameters(), lr=1e-2, weight_decay=0.1, foreach=False)
    assert implementation_name(fused) == "fused" and isinstance(fused, torch.optim.AdamW)
    x = torch.randn(16, 8, generator=torch.Generator().manual_seed(2))
    for _ in range(5):
        for model, optimizer in ((a, fused), (b, plain)):
            optimizer.zero_grad()
            model(x).pow(2).mean().backward()
            optimizer.step()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_unknown_optimizer_name_is_refused():
    with pytest.raises(ValueError, match="not one of adam, adamw"):
        build_optimizer(torch.nn.Linear(2, 2).parameters(), "sgd")
