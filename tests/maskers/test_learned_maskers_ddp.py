"""Under several processes the learned maskers' own networks stay one network.

Two CPU processes (gloo) train ``hpm`` and ``adios`` on *different* batches for three engine steps;
their networks must end identical (the gradients are averaged with
``sslkit.masking.average_gradients`` before each optimizer step) while their generators differ
(each process draws its own masks). ``saliency``'s teacher has no gradients: it follows the
encoder, which DDP keeps identical, so it is covered by the engine's DDP tests.

The two processes meet through a file store in the test's own directory, not a TCP port: a port
probed free in the parent and bound seconds later by rank 0 (after both processes imported torch)
can be lost in between on a shared machine, and a TCP store adds a server thread to rank 0's start
and exit. The aborts seen with a TCP store (SIGABRT, "terminate called without an active exception",
in both processes) came a second or two after the processes started, i.e. while they met, long
before training or teardown.
Teardown is ordered too: both processes pass a barrier once all their collectives (and rank 0's
result file) are done, then destroy the group; a failing process destroys it at once, and the
group's timeout turns a peer left waiting into an error rather than a hang.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

HERE = Path(__file__).parent


def _worker(rank: int, store: str, out: str) -> None:
    sys.path.insert(0, str(HERE))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2, timeout=timedelta(seconds=90))
    finished = False
    try:
        from noisy_quadrant import TinyPredictor, context, noisy_quadrant_images

        from sslkit.engine.device import Precision
        from sslkit.pretraining.step import train_step
        from sslkit.masking import StepInfo
        from sslkit_plugins.maskers.adios.masker import ADIOSMasker
        from sslkit_plugins.maskers.hpm.masker import HPMMasker

        result = {}
        for name, masker in (("hpm", HPMMasker(grid=4)), ("adios", ADIOSMasker(every=1))):
            torch.manual_seed(0)
            predictor = TinyPredictor()
            optimizer = torch.optim.Adam(predictor.parameters(), lr=1e-3)
            ctx = context(predictor, 3)
            masker.setup(ctx.__class__(**{**ctx.__dict__, "rank": rank, "world_size": 2}))
            images = noisy_quadrant_images(24, seed=10 + rank)[0]  # each process its own data

            class Constant:
                def step(self):
                    pass

            for step in range(3):
                train_step(images=images[step * 8:(step + 1) * 8], lesions=None, info=StepInfo(step, 0, 3),
                           masker=masker, forward=predictor, optimizer=optimizer, scheduler=Constant(),
                           precision=Precision("fp32", torch.device("cpu")), predictor=predictor)
            flat = torch.cat([p.detach().reshape(-1) for m in masker.modules() for p in m.parameters()])
            gathered = [torch.zeros_like(flat) for _ in range(2)]
            dist.all_gather(gathered, flat)
            generators = [None, None]
            dist.all_gather_object(generators, masker.generator.get_state())
            result[name] = (torch.equal(gathered[0], gathered[1]), torch.equal(generators[0], generators[1]),
                            masker.updates)
        if rank == 0:
            torch.save(result, out)
        finished = True
    finally:
        if finished:  # no process closes its connections while the other may still use them
            dist.barrier()
        dist.destroy_process_group()


@pytest.mark.timeout(120)
def test_learned_maskers_stay_identical_over_processes(tmp_path):
    out = tmp_path / "result.pt"
    mp.spawn(_worker, args=(str(tmp_path / "store"), str(out)), nprocs=2, join=True)
    result = torch.load(out, weights_only=True)
    for name, (same_weights, same_generator, updates) in result.items():
        assert same_weights, f"{name}'s networks differ between the processes"
        assert not same_generator, f"{name}'s processes draw the same masks"
        assert updates == 3, name
