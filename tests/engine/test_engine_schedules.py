"""Learning-rate schedules: torch's schedulers give the paper's MultiStep and cosine with warm-up,
and a scheduler restored with its optimizer continues on exactly the same learning rate."""

from __future__ import annotations

import math

import pytest
import torch

from sslkit.pretraining.schedules import build_scheduler


def _lrs(kind: str, total: int, **options) -> list[float]:
    """The learning rate (base 1.0) at every step of a run of ``total`` steps."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = build_scheduler(optimizer, kind, total_steps=total, **options)
    lrs = []
    for _ in range(total):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_multistep_is_the_papers():
    f = _lrs("multistep", 300, milestones=[1 / 3, 2 / 3], gamma=0.33)
    assert f[0] == 1.0 and f[99] == 1.0
    assert f[100] == pytest.approx(0.33) and f[199] == pytest.approx(0.33)
    assert f[200] == pytest.approx(0.33**2) and f[299] == pytest.approx(0.33**2)


def test_multistep_milestones_count_from_the_first_step_even_with_warmup():
    f = _lrs("multistep", 300, warmup_steps=10, milestones=[1 / 3, 2 / 3], gamma=0.5)
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[99] == pytest.approx(1.0) and f[100] == pytest.approx(0.5) and f[200] == pytest.approx(0.25)


def test_cosine_with_warmup_matches_its_closed_form():
    f = _lrs("cosine", 111, warmup_steps=10)
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    for step in range(10, 111):
        assert f[step] == pytest.approx(0.5 * (1 + math.cos(math.pi * (step - 10) / 101)), rel=1e-12, abs=1e-15)
    assert all(f[s] >= f[s + 1] for s in range(10, 110))


def test_constant_and_unknown():
    assert _lrs("constant", 5) == [1.0] * 5
    with pytest.raises(ValueError, match="unknown schedule"):
        _lrs("linear", 5)


@pytest.mark.parametrize("kind, warmup", [("cosine", 3), ("multistep", 3), ("multistep", 0)])
def test_scheduler_resumes_on_exactly_the_same_lr(kind, warmup):
    def make():
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        return opt, build_scheduler(opt, kind, total_steps=20, warmup_steps=warmup)

    opt, sched = make()
    for _ in range(7):
        opt.step()
        sched.step()
    state, opt_state = sched.state_dict(), opt.state_dict()
    opt2, sched2 = make()
    opt2.load_state_dict(opt_state)  # the engine restores both, as here
    sched2.load_state_dict(state)
    for _ in range(13):
        assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]  # bit for bit
        opt.step(), sched.step(), opt2.step(), sched2.step()


def test_a_checkpoint_from_the_former_lambdalr_schedule_resumes_without_warmup():
    """Before torch's schedulers, a LambdaLR over a closed-form factor was saved; its state still
    loads into the schedules without warm-up (with warm-up it is refused: SequentialLR's state)."""

    def factor(step: int) -> float:  # the former multistep closed form: gamma ** milestones passed
        return 0.5 ** sum(step >= m for m in (20, 40))

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    old = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    for _ in range(25):
        opt.step(), old.step()
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    new = build_scheduler(opt2, "multistep", total_steps=60, milestones=[1 / 3, 2 / 3], gamma=0.5)
    opt2.load_state_dict(opt.state_dict())
    new.load_state_dict(old.state_dict())
    for _ in range(30):
        assert opt2.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
        opt.step(), old.step(), opt2.step(), new.step()
