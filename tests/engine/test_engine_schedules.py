"""Learning-rate schedules: the paper's MultiStep, cosine with warm-up, exact state round trip."""

from __future__ import annotations

import pytest
import torch

from sslkit.engine.schedules import build_scheduler, lr_factor


def test_multistep_is_the_papers():
    f = lr_factor("multistep", total_steps=300, milestones=[1 / 3, 2 / 3], gamma=0.33)
    assert f(0) == 1.0 and f(99) == 1.0
    assert f(100) == pytest.approx(0.33) and f(199) == pytest.approx(0.33)
    assert f(200) == pytest.approx(0.33**2) and f(299) == pytest.approx(0.33**2)


def test_cosine_with_warmup():
    f = lr_factor("cosine", total_steps=110, warmup_steps=10)
    assert f(0) == pytest.approx(0.1)
    assert f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.5)
    assert f(110) == pytest.approx(0.0, abs=1e-12)
    assert all(f(s) >= f(s + 1) for s in range(10, 110))


def test_scheduler_resumes_on_the_same_lr():
    def make():
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        return opt, build_scheduler(opt, lr_factor("cosine", total_steps=20, warmup_steps=3))

    opt, sched = make()
    for _ in range(7):
        opt.step()
        sched.step()
    state, opt_state = sched.state_dict(), opt.state_dict()
    opt2, sched2 = make()
    opt2.load_state_dict(opt_state)  # the engine restores both, as here
    sched2.load_state_dict(state)
    assert opt2.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"])
    opt.step(), sched.step(), opt2.step(), sched2.step()
    assert opt2.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"])
