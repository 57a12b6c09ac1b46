"""hpm, saliency and adios: options, the shared helpers, the contract extensions, their scalars."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from sslkit.engine.device import Precision
from sslkit.pretraining.loss import masked_reconstruction_loss
from sslkit.pretraining.soft_mask import soft_mask_loss
from sslkit.errors import UserError
from sslkit.masking import MaskFeedback, StepInfo
from sslkit.registry import Registry
from sslkit_plugins.maskers import _learned, hpm, saliency
from sslkit_plugins.maskers import adios as adios_plugin
from sslkit_plugins.maskers.adios.masker import ADIOSMasker, binarise, soft_top_share
from sslkit_plugins.maskers.dqn.geometry import expected_random_hit_counts
from sslkit_plugins.maskers.hpm.masker import HPMMasker, ranking_loss
from sslkit_plugins.maskers.saliency.masker import SaliencyMasker, pick_level

sys.path.insert(0, str(Path(__file__).parent))
from noisy_quadrant import TinyPredictor, context, noisy_quadrant_images  # noqa: E402

CPU = torch.device("cpu")


def registry() -> Registry:
    reg = Registry("masker")
    for plugin in (hpm, saliency, adios_plugin):
        plugin.register_maskers(register=reg.register)
    return reg


@pytest.mark.parametrize("name", ["hpm", "saliency", "adios"])
def test_registered_with_every_option_explained(name):
    entry = registry().get(name)
    assert entry.description and set(entry.options) == set(entry.option_defaults())
    assert all(help_text for help_text in entry.options.values())


@pytest.mark.parametrize(
    "cls,options,message",
    [
        (HPMMasker, {"grid": 0}, "masker 'hpm': grid must be a whole number >= 1"),
        (HPMMasker, {"ratio": 0}, r"masker 'hpm': ratio must be a number in \(0.0, 1.0\]"),
        (HPMMasker, {"alpha_end": 2}, "alpha_end must be a number in"),
        (HPMMasker, {"lr": "fast"}, "lr must be a number >= 0"),
        (SaliencyMasker, {"random_share": -0.1}, "random_share must be a number in"),
        (SaliencyMasker, {"momentum": 1.5}, "momentum must be a number in"),
        (SaliencyMasker, {"level": "deep"}, "level must be auto or a whole number"),
        (SaliencyMasker, {"measure": "entropy"}, "measure must be one of contrast, norm"),
        (ADIOSMasker, {"ratio": 1.0}, "ratio must be below 1"),
        (ADIOSMasker, {"adversary_share": 0}, "adversary_share must be a number in"),
        (ADIOSMasker, {"temperature": 0}, "temperature must be a number > 0"),
        (ADIOSMasker, {"width": 0.5}, "width must be a whole number"),
    ],
)
def test_bad_options_are_one_sentence_user_errors(cls, options, message):
    with pytest.raises(UserError, match=message) as info:
        cls(**options)
    assert "\n" not in str(info.value)


def test_setup_errors_name_the_problem():
    predictor = TinyPredictor()
    with pytest.raises(UserError, match="grid .40. is finer than the images"):
        HPMMasker(grid=40).setup(context(predictor, 1))
    no_encoder = context(predictor, 1).__class__((32, 32), 1, CPU, total_steps=1, steps_per_epoch=1, epochs=1)
    with pytest.raises(UserError, match="needs the predictor's encoder"):
        SaliencyMasker().setup(no_encoder)
    with pytest.raises(UserError, match="level 5 does not exist; the encoder has 2 feature levels"):
        SaliencyMasker(level=5).setup(context(predictor, 1))


# -- shared helpers ----------------------------------------------------------------------------
def test_choose_cells_takes_the_top_scored_then_random_others_exact_counts():
    scores = torch.arange(16.0).repeat(5, 1)  # cell 15 best
    keys = torch.rand(5, 16, generator=torch.Generator().manual_seed(0))
    cells, by_score = _learned.choose_cells(scores, hidden=6, top=2, keys=keys)
    assert torch.equal(cells.sum(1), torch.full((5,), 6)) and torch.equal(by_score.sum(1), torch.full((5,), 2))
    assert by_score[:, 14:].all() and (cells & by_score).equal(by_score)
    others = cells & ~by_score  # the random four: the highest keys among the remaining cells
    expected = keys[:, :14].topk(4, dim=1).indices
    assert torch.equal(others[:, :14].nonzero()[:, 1].view(5, 4).sort(1).values, expected.sort(1).values)
    none, _ = _learned.choose_cells(scores, hidden=3, top=0, keys=keys)
    assert torch.equal(none, torch.zeros_like(none).scatter_(1, keys.topk(3, dim=1).indices, True))


def test_cell_means_average_exactly_the_pixels_a_cell_hides():
    maps = torch.rand(2, 1, 30, 30)
    cells = torch.eye(9, dtype=torch.bool)[None].expand(2, 9, 9)  # one cell per mask
    means = _learned.cell_means(maps, 3)
    for k in range(9):
        pixels = _learned.cells_to_pixel_masks(cells[:, k], 3, (30, 30))
        assert torch.allclose(means[:, k], (maps * pixels).flatten(1).sum(1) / pixels.flatten(1).sum(1))


def test_random_cell_hit_rate_is_dqns_formula_for_one_cell_blocks():
    lesions = torch.zeros(4, 1, 32, 32, dtype=torch.bool)
    lesions[0, :, 0:3, 0:3] = True  # one cell
    lesions[1, :, 6:20, 6:20] = True  # several
    lesions[2, :, :, :] = True  # every cell: always hit
    for hidden in (1, 5, 12):
        ours = _learned.random_cell_hit_counts(lesions, 4, hidden)
        dqn = expected_random_hit_counts(lesions, 4, 1, hidden)
        assert torch.allclose(ours[0], dqn[0].float(), atol=1e-5) and ours[1] == dqn[1] == 3


def test_random_shift_hit_rate_counts_the_overlapping_shifts():
    gen = torch.Generator().manual_seed(1)
    masks = torch.rand(3, 1, 8, 8, generator=gen) > 0.8
    lesions = torch.rand(3, 1, 8, 8, generator=gen) > 0.9
    lesions[2] = False
    hits, with_lesion = _learned.random_shift_hit_counts(masks, lesions)
    brute = 0.0
    for b in range(2):
        shifts = [torch.roll(masks[b], (dy, dx), dims=(1, 2)) for dy, dx in itertools.product(range(8), range(8))]
        brute += sum(bool((s & lesions[b]).any()) for s in shifts) / 64
    assert with_lesion == 2 and float(hits) == pytest.approx(brute)


# -- hpm ---------------------------------------------------------------------------------------
def test_ranking_loss_is_the_pairwise_bce_over_hidden_cells():
    predicted = torch.tensor([[2.0, 0.0, 5.0]])
    realised = torch.tensor([[0.3, 0.1, 9.0]])
    hidden = torch.tensor([[True, True, False]])  # only the pair (0, 1) counts, both orders
    loss, accuracy = ranking_loss(predicted, realised, hidden)
    expected = (torch.nn.functional.softplus(torch.tensor(-2.0)) + torch.nn.functional.softplus(torch.tensor(-2.0))) / 2
    assert float(loss) == pytest.approx(float(expected)) and float(accuracy) == 1.0
    _, wrong = ranking_loss(-predicted, realised, hidden)
    assert float(wrong) == 0.0


def feedback_for(masker, x, lesions=None, predictor=None, training=True):
    info = StepInfo(0, 0, 10, training)
    masks = masker.propose(x, info)
    reconstruction = x.masked_fill(masks, 0.0)
    error = (reconstruction - x).pow(2) + 0.01
    loss_fn = soft_mask_loss(predictor, Precision("fp32", CPU)) if predictor is not None else None
    return masks, masker.feedback(MaskFeedback(x, masks, reconstruction, error, error.flatten(1).mean(1), info,
                                               lesions=lesions, soft_mask_loss=loss_fn))


def lesion_batch():
    images, region = noisy_quadrant_images(8, seed=5)
    lesions = region.clone()
    lesions[6:] = False  # two images without a lesion
    return images, lesions


@pytest.mark.parametrize("cls,picture", [(HPMMasker, "loss_map"), (SaliencyMasker, "saliency_map"), (ADIOSMasker, "occluder")])
def test_scalars_maps_and_lesion_rates_beside_random(cls, picture):
    predictor = TinyPredictor()
    masker = cls()
    masker.setup(context(predictor, 10))
    assert masker.log_images() == {}
    images, lesions = lesion_batch()
    masks, scalars = feedback_for(masker, images, lesions, predictor)
    hits = (masks[:6] & lesions[:6]).flatten(1).any(1).float().mean()
    assert scalars["lesion_hit_rate"] == pytest.approx(float(hits))
    assert 0.0 < scalars["lesion_hit_rate_random"] <= 1.0
    assert all(isinstance(v, float) for v in scalars.values())
    maps = masker.log_images()
    assert set(maps) == {picture} and maps[picture].shape == (8, 3, 32, 32)
    _, without = feedback_for(masker, images, torch.zeros_like(lesions), predictor)
    assert "lesion_hit_rate" not in without and "lesion_hit_rate_random" not in without


def test_hpm_hides_the_ratio_and_its_hard_share_grows():
    masker = HPMMasker(grid=4, ratio=0.5, alpha_start=0.0, alpha_end=1.0)
    masker.setup(context(TinyPredictor(), 10))
    x = noisy_quadrant_images(4, seed=0)[0]
    masks = masker.propose(x, StepInfo(0, 0, 10))
    assert torch.equal(masks.flatten(1).sum(1), torch.full((4,), 8 * 64))  # 8 of 16 cells of 8 x 8 px
    assert masker._pending.by_score.sum() == 0
    masker.propose(x, StepInfo(10, 1, 10))
    assert torch.equal(masker._pending.by_score, masker._pending.cells)  # all by predicted difficulty
    _, scalars = feedback_for(masker, x)
    assert {"ranking_loss", "ranking_accuracy", "hard_share", "predictor_lr"} <= set(scalars)


# -- saliency ----------------------------------------------------------------------------------
def test_saliency_level_auto_is_the_deepest_map_with_a_cell_per_position():
    assert pick_level([2, 4, 8, 16, 32], (64, 64), 8) == 2
    assert pick_level([2, 4, 8, 16, 32], (256, 256), 8) == 4
    assert pick_level([4, 8], (16, 16), 8) == 0


def test_saliency_teacher_is_a_moving_average_of_the_encoder():
    predictor = TinyPredictor()
    masker = SaliencyMasker(grid=4, momentum=0.75)
    masker.setup(context(predictor, 10))
    teacher0 = [p.clone() for p in masker.teacher.parameters()]
    with torch.no_grad():
        for p in predictor.encoder.parameters():
            p.add_(1.0)  # the predictor's update
    x = noisy_quadrant_images(4, seed=0)[0]
    feedback_for(masker, x)
    for t0, t, s in zip(teacher0, masker.teacher.parameters(), predictor.encoder.parameters()):
        assert torch.allclose(t, 0.75 * t0 + 0.25 * s)
        assert not t.requires_grad
    feedback_for(masker, x, training=False)  # validation: the teacher stays
    assert masker.updates == 1


# -- adios and the soft-mask loss ---------------------------------------------------------------
class BNPredictor(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 1, 3, padding=1))

    def forward(self, x):
        return x + self.net(x)


def test_soft_mask_loss_is_the_training_loss_and_leaves_the_predictor_alone():
    predictor = BNPredictor().train()
    x = noisy_quadrant_images(4, seed=0)[0]
    binary = torch.zeros(4, 1, 32, 32, dtype=torch.bool)
    binary[:, :, 4:20, 8:24] = True
    buffers = {k: v.clone() for k, v in predictor.named_buffers()}
    fn = soft_mask_loss(predictor, Precision("fp32", CPU))
    soft = binary.float().requires_grad_(True)
    per_image = fn(x, soft)
    with torch.no_grad():
        _, expected, _ = masked_reconstruction_loss(predictor(x.masked_fill(binary, 0.0)), x, binary)
    for (k, b) in predictor.named_buffers():  # the reference forward above moved them: restore
        b.copy_(buffers[k])
    assert torch.allclose(per_image, expected, atol=1e-6)
    per_image.sum().backward()
    assert soft.grad is not None and soft.grad.abs().sum() > 0
    assert all(p.grad is None for p in predictor.parameters())
    fn(x, soft.detach())  # another call: BatchNorm statistics still those saved above
    assert all(torch.equal(buffers[k], b) for k, b in predictor.named_buffers())


def test_soft_top_share_and_binarise_hide_exactly_the_ratio():
    logits = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    soft = soft_top_share(logits, 64, 0.1)
    masks = binarise(soft, 64)
    assert torch.equal(masks.flatten(1).sum(1), torch.full((3,), 64))
    assert torch.equal(masks, binarise(logits, 64))  # the same pixels as the logits' top 64
    assert float(soft[masks].min()) >= 0.5 > float(soft[~masks].max())


def test_adios_occluder_steps_up_the_loss_and_needs_the_soft_mask_loss():
    predictor = TinyPredictor()
    masker = ADIOSMasker(ratio=0.25, every=1)
    masker.setup(context(predictor, 10))
    x = noisy_quadrant_images(8, seed=0)[0]
    before = [p.clone() for p in masker.occluder.parameters()]
    masks, scalars = feedback_for(masker, x, predictor=predictor)
    assert torch.equal(masks.flatten(1).sum(1), torch.full((8,), 256))
    assert {"adversary_loss", "share_penalty", "soft_share", "sharpness", "occluder_lr"} <= set(scalars)
    assert any(not torch.equal(a, b) for a, b in zip(before, masker.occluder.parameters()))
    with pytest.raises(UserError, match="needs the loss of a soft mask"):
        feedback_for(masker, x, predictor=None)


def test_saliency_hides_the_most_salient_cells_and_random_share_mixes_in_others():
    predictor = TinyPredictor()
    x = noisy_quadrant_images(6, seed=2)[0]
    masker = SaliencyMasker(grid=4, ratio=0.25)
    masker.setup(context(predictor, 10))
    masks = masker.propose(x, StepInfo(0, 0, 10))
    salient = torch.zeros(6, 16, dtype=torch.bool).scatter_(1, masker.saliency(x).topk(4, dim=1).indices, True)
    assert torch.equal(masks, _learned.cells_to_pixel_masks(salient, 4, (32, 32)))
    mixed = SaliencyMasker(grid=4, ratio=0.25, random_share=0.5)
    mixed.setup(context(predictor, 10))
    cells = mixed.propose(x, StepInfo(0, 0, 10))
    assert torch.equal(cells.flatten(1).sum(1), torch.full((6,), 4 * 64))
    top2 = torch.zeros(6, 16, dtype=torch.bool).scatter_(1, mixed.saliency(x).topk(2, dim=1).indices, True)
    assert (_learned.cells_to_pixel_masks(top2, 4, (32, 32)) <= cells).all()  # the two most salient stay hidden


def test_adios_updates_on_the_last_step_of_every_every_steps():
    predictor = TinyPredictor()
    masker = ADIOSMasker(every=2)
    masker.setup(context(predictor, 10))
    x = noisy_quadrant_images(8, seed=0)[0]
    fn = soft_mask_loss(predictor, Precision("fp32", CPU))
    updated = []
    for step in range(4):
        info = StepInfo(step, 0, 10)
        masks = masker.propose(x, info)
        error = (x.masked_fill(masks, 0.0) - x).pow(2)
        scalars = masker.feedback(MaskFeedback(x, masks, x.masked_fill(masks, 0.0), error, error.flatten(1).mean(1), info,
                                               soft_mask_loss=fn))
        updated.append("adversary_loss" in scalars)
    assert updated == [False, True, False, True] and masker.updates == 2
