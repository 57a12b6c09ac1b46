"""``DQNMasker``: Intelligent Masking (Bahrami et al., MLMI 2022) through the masker contract.

An agent (a Q-network, :mod:`.qnetwork`) looks at the unmasked image and predicts, for every cell
of a G x G grid, how much reconstruction loss masking there will cause. Each image is masked with
the k x k block(s) of cells the policy picks from those predictions (:mod:`.exploration`); after the
predictor's step the realised loss is the reward (:mod:`.reward`) and the agent takes one Adam step
on the squared error between its prediction for the chosen cells and that reward: one-step
Q-learning (a contextual bandit, discount 0), with no replay buffer and no target network, as in
the authors' code.

The agent's forward pass from :meth:`propose` is kept, with its graph, until :meth:`feedback`; the
agent's graph is separate from the predictor's, so nothing is computed twice. Everything per batch
is tensor code on the images' device (see :mod:`.geometry`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sslkit.errors import UserError
from sslkit.masking import (
    MaskerContext,
    MaskFeedback,
    StepInfo,
    average_gradients,
    grid_on_cells,
    lesion_hit_counts,
    snap_to_cells,
)
from sslkit.optimizers import build_optimizer
from sslkit_plugins.maskers._heat_map import heat_map
from sslkit_plugins.maskers._learned import Checks, autocast_dtype, own_autocast, lesion_scalars, place, seeded, to_host
from sslkit_plugins.maskers._learned_state import LearnedMaskerBase
from sslkit_plugins.maskers.dqn.exploration import EXPLORATIONS, Choice, Policy, make_policy
from sslkit_plugins.maskers.dqn.geometry import (
    block_values,
    corners_to_masks,
    expected_random_hit_counts,
    location_entropy,
)
from sslkit_plugins.maskers.dqn.qnetwork import build_qnetwork
from sslkit_plugins.maskers.dqn.reward import REWARDS, RewardNormalizer, compute_reward

NETWORKS = ("light", "paper")
WHAT = "masker 'dqn'"
_CHECK = Checks(WHAT)


@dataclass
class _Pending:
    """What :meth:`DQNMasker.propose` leaves for :meth:`DQNMasker.feedback` (one batch)."""

    q: torch.Tensor
    """(B, 1, G, G) cell values; with the agent's graph when training."""
    cells: torch.Tensor
    """(B, G, G) bool, the cells the chosen blocks cover."""
    choice: Choice
    values: torch.Tensor
    """(B, M * M) detached block values the policy saw."""
    block: int
    training: bool


class DQNMasker(LearnedMaskerBase):
    """The ``dqn`` masker; options are described in :data:`sslkit_plugins.maskers.dqn.OPTIONS`."""

    WHAT = WHAT
    STATE_PARTS = ("qnet", "optimizer", "scheduler", "normalizer")
    OPTIONAL_PARTS = frozenset({"normalizer"})
    SAVED_WITH = "the checkpoint's agent was built with"

    def __init__(
        self,
        network: str = "light",
        grid: int = 8,
        block: int = 2,
        cells: int = 1,
        val_block: int | None = None,
        exploration: str = "paper",
        explore_fraction: float = 0.2,
        epsilon_start: float = 1.0,
        epsilon_end: float = 0.05,
        temperature: float = 1.0,
        reward: str = "image",
        normalize_reward: bool = True,
        lr: float = 1e-3,
        lr_gamma: float = 0.33,
        downsample: int = 32,
    ):
        self.network = _CHECK.choice("network", network, NETWORKS)
        self.grid = _CHECK.whole("grid", grid)
        self.block = _CHECK.whole("block", block)
        self.val_block = self.block if val_block is None else _CHECK.whole("val_block", val_block)
        self.cells = _CHECK.whole("cells", cells)
        for name, k in (("block", self.block), ("val_block", self.val_block)):
            if k > self.grid:
                raise UserError(f"{WHAT}: {name} ({k}) must not exceed grid ({self.grid})")
            corners = (self.grid - k + 1) ** 2
            if self.cells > corners:
                raise UserError(f"{WHAT}: cells ({self.cells}) exceeds the {corners} places a {k} x {k} block has on a {self.grid} x {self.grid} grid")
        self.exploration = _CHECK.choice("exploration", exploration, EXPLORATIONS)
        self.explore_fraction = _CHECK.number("explore_fraction", explore_fraction, 0.0, 1.0)
        self.epsilon_start = _CHECK.number("epsilon_start", epsilon_start, 0.0, 1.0)
        self.epsilon_end = _CHECK.number("epsilon_end", epsilon_end, 0.0, 1.0)
        self.temperature = _CHECK.number("temperature", temperature, 1e-6)
        self.reward = _CHECK.choice("reward", reward, REWARDS)
        self.normalize_reward = _CHECK.flag("normalize_reward", normalize_reward)
        self.lr = _CHECK.number("lr", lr, 0.0)
        self.lr_gamma = _CHECK.number("lr_gamma", lr_gamma, 0.0)
        self.downsample = _CHECK.whole("downsample", downsample, 4)
        self.policy: Policy = make_policy(
            self.exploration,
            explore_fraction=self.explore_fraction,
            epsilon_start=self.epsilon_start,
            epsilon_end=self.epsilon_end,
            temperature=self.temperature,
        )
        self.greedy = make_policy("greedy")
        self.qnet: nn.Module | None = None
        self.autocast_dtype: torch.dtype | None = None
        self.updates = 0
        self._pending: _Pending | None = None
        self._last_q: torch.Tensor | None = None
        self._last_size: tuple[int, int] | None = None

    # Life cycle ---------------------------------------------------------------------------
    def setup(self, context: MaskerContext) -> None:
        super().setup(context)
        _CHECK.grid_fits(self.grid, tuple(context.image_size))
        # The agent's initial weights come from the run seed, not from the global RNG state, so
        # every process and every rerun starts from the same network.
        qnet = seeded(int(context.seed) * 7 + 1, lambda: build_qnetwork(
            self.network,
            in_chans=context.in_chans,
            image_size=tuple(context.image_size),
            grid=self.grid,
            downsample=self.downsample,
        ))
        self.qnet = place(qnet, context)
        self.optimizer = build_optimizer(self.qnet.parameters(), "adam", lr=self.lr)
        # bf16 (the fast path on modern CPUs and GPUs) has fp32's range, so the agent's forward
        # pass can use it; under fp16 the agent would need a gradient scaler of its own: fp32.
        self.autocast_dtype = autocast_dtype(context)
        total = max(1, int(context.total_steps))
        milestones = sorted({max(1, round(total / 3)), max(1, round(2 * total / 3))})
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, milestones, gamma=self.lr_gamma)
        self.normalizer = RewardNormalizer() if self.normalize_reward else None
        self.updates = 0
        self._pending = None

    def propose(self, images: torch.Tensor, step: StepInfo) -> torch.Tensor:
        self._network("propose")  # set up first
        training = bool(step.training)
        block = self.block if training else self.val_block
        self.qnet.train(training)
        # The agent's convolutions run in the run's bf16 when it has one; its output, the
        # regression target (the reward, which spans orders of magnitude) and its loss stay fp32.
        with torch.set_grad_enabled(training), own_autocast(images.device, self.autocast_dtype):
            q = self.qnet(images.float()).float()
        values = block_values(q.detach().float(), block)
        policy = self.policy if training else self.greedy
        choice = policy.choose(values, self.cells, step.progress, self.generator)
        cells, masks = corners_to_masks(choice.corners, self.grid, block, tuple(images.shape[-2:]))
        cell_grid = self.cell_grid
        if cell_grid is not None and grid_on_cells(self.grid, self.context) != self.grid:
            # sparse encoding on a grid its own does not nest in: the same agent and blocks, each
            # block snapped to the encoder's cells (those it covers at least half of)
            masks = snap_to_cells(masks, cell_grid)[1]
        self._pending = _Pending(q, cells, choice, values, block, training)
        self._last_q = q.detach()
        self._last_size = tuple(images.shape[-2:])
        return masks

    def feedback(self, feedback: MaskFeedback) -> dict[str, float]:
        pending, self._pending = self._pending, None
        if pending is None:
            return {}
        reward = compute_reward(feedback, self.reward)
        if self.normalizer is not None and pending.training:
            self.normalizer.update(reward)
        target = self.normalizer.normalize(reward) if self.normalizer is not None else reward
        # Q of an action = the sum of its cells' values (overlapping blocks count each cell once).
        predicted = (pending.q[:, 0].float() * pending.cells.float()).flatten(1).sum(dim=1)
        loss = F.mse_loss(predicted, target)
        lr = self.optimizer.param_groups[0]["lr"]  # the rate this update uses
        if pending.training:
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            average_gradients([self.qnet])
            self.optimizer.step()
            self.scheduler.step()
            self.updates += 1
        return self._scalars(pending, feedback, reward, predicted.detach(), loss.detach(), lr)

    # Observability ------------------------------------------------------------------------
    def _scalars(
        self,
        pending: _Pending,
        feedback: MaskFeedback,
        reward: torch.Tensor,
        predicted: torch.Tensor,
        loss: torch.Tensor,
        lr: float,
    ) -> dict[str, float]:
        predicted_reward = self.normalizer.denormalize(predicted) if self.normalizer is not None else predicted
        corners = pending.choice.corners
        greedy = pending.values.topk(corners.shape[1], dim=1).indices
        off_greedy = (corners.sort(dim=1).values != greedy.sort(dim=1).values).any(dim=1)
        corner_count = pending.values.shape[1]
        values: dict[str, torch.Tensor] = {
            "agent_loss": loss,
            "reward_mean": reward.mean(),
            "q_abs_error": (predicted_reward - reward).abs().mean(),
            "q_reward_corr": _correlation(predicted, reward),
            "explore_rate": off_greedy.float().mean(),
            "location_entropy": location_entropy(corners, corner_count),
        }
        plain: dict[str, float] = {}  # host numbers stay on the host (no upload per step)
        if pending.training:
            plain["agent_lr"] = float(lr)
            if pending.choice.random_probability is not None:
                plain["epsilon"] = float(pending.choice.random_probability)
        if feedback.lesions is not None:  # sync-free: NaN without a lesion, dropped below
            hits, with_lesion = lesion_hit_counts(feedback.masks, feedback.lesions)
            expected, _ = expected_random_hit_counts(feedback.lesions, self.grid, pending.block, self.cells)
            values.update(lesion_scalars(hits, with_lesion, expected))
        return to_host(values, plain)  # NaN (an undefined correlation) left out

    def log_images(self) -> dict[str, torch.Tensor]:
        """The last batch's Q map as a colour heat map, one block of pixels per cell, scaled per image."""
        if self._last_q is None or self._last_size is None:
            return {}
        return {"q_map": heat_map(self._last_q, self._last_size)}

    # Checkpoints --------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        return {"network": self.network, "grid": self.grid, "downsample": self.downsample}


def _correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation over the batch; NaN when either side is constant (or one image)."""
    a = a.float() - a.float().mean()
    b = b.float() - b.float().mean()
    denominator = (a.pow(2).sum() * b.pow(2).sum()).sqrt()
    return torch.where(denominator > 1e-12, (a * b).sum() / denominator.clamp(min=1e-12), torch.full_like(denominator, float("nan")))
