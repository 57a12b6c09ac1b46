"""Grouped k-fold cross-validation, the grouped bootstrap, clinical figures and out-of-fold runs."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from data.test_data_duplicates import records_from, smooth_images
from evaluation.eval_helpers import IMAGE_SIZE, tiny_npz, tiny_plugins
from sslkit.evaluation.folds import plan_folds
from sslkit.evaluation.statistics import bootstrap_indices, grouped_bootstrap_indices, resampled_metrics


def grouped_pool(n: int = 60):
    images = smooth_images(n, seed=7)
    for i in range(0, n, 6):
        images[i + 1] = images[i]  # near-duplicate twins
    patients = [f"p{i // 3}" if i % 5 == 0 else None for i in range(n)]
    return records_from(images, labels=[i % 3 for i in range(n)], groups=patients)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_duplicate_or_patient_group_is_split_across_folds(seed):
    pool = grouped_pool()
    plan = plan_folds(pool, 5, seed=seed)
    fold_of = dict(zip((r.source for r in pool), plan.folds.tolist()))
    for i in range(0, 60, 6):
        assert fold_of[f"img{i}"] == fold_of[f"img{i + 1}"]
    by_patient: dict[str, set[int]] = {}
    for record, fold in zip(pool, plan.folds.tolist()):
        if record.group is not None:
            by_patient.setdefault(record.group, set()).add(fold)
    assert all(len(folds) == 1 for folds in by_patient.values())
    # every record is a test image exactly once; validation is the next fold; train the rest
    tested = [r.source for f in range(5) for r in plan.parts(f)["test"]]
    assert sorted(tested) == sorted(r.source for r in pool)
    parts = plan.parts(2)
    assert {fold_of[r.source] for r in parts["val"]} == {3}
    assert {fold_of[r.source] for r in parts["train"]} == {0, 1, 4}
    # stratified: every fold holds every class
    assert all(len({r.label for r in plan.parts(f)["test"]}) == 3 for f in range(5))


def test_fold_counts_are_checked():
    from sslkit.errors import UserError

    with pytest.raises(UserError, match="at least 3"):
        plan_folds(grouped_pool(), 2, seed=0)
    with pytest.raises(UserError, match="fewer than --folds"):
        plan_folds(records_from(smooth_images(8), labels=[0] * 6 + [1] * 2), 3, seed=0)


def test_grouped_bootstrap_resamples_whole_groups():
    groups = ["a", "a", "a", "b", "c", "c", "d"]
    indices, valid = grouped_bootstrap_indices(groups, len(groups), 300, seed=4)
    members = {"a": {0, 1, 2}, "b": {3}, "c": {4, 5}, "d": {6}}
    for row, ok in zip(indices, valid):
        taken = row[ok]
        counts = np.bincount(taken, minlength=7)
        for group in members.values():  # a drawn group brings every member, each equally often
            assert len({counts[i] for i in group}) == 1
        assert len(taken) == sum(counts)
    # four groups are drawn per resample, so a row holds 4 draws' worth of images
    draws = np.array([np.bincount(r[o], minlength=7)[[0, 3, 4, 6]].sum() for r, o in zip(indices, valid)])
    assert (draws == 4).all()
    # with every image its own group it is exactly the image bootstrap
    plain, none = grouped_bootstrap_indices(list("abcdefg"), 7, 50, seed=4)
    assert none is None and np.array_equal(plain, bootstrap_indices(7, 50, seed=4))


def test_padded_resamples_score_like_scikit_learn():
    from sklearn.metrics import f1_score, roc_auc_score

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 40)
    probs = rng.dirichlet([1, 1], 40)
    groups = [f"g{i // 3}" for i in range(40)]
    indices, valid = grouped_bootstrap_indices(groups, 40, 20, seed=1)
    scores = resampled_metrics(labels, probs, indices, valid)
    for b in range(20):
        take = indices[b][valid[b]]
        assert scores["auroc"][b] == pytest.approx(roc_auc_score(labels[take], probs[take, 1]))
        assert scores["macro_f1"][b] == pytest.approx(
            f1_score(labels[take], probs[take].argmax(1), average="macro", labels=sorted(set(labels[take]) | set(probs[take].argmax(1)))))


def test_ece_and_the_operating_point_on_known_values():
    from sslkit.evaluation.metrics import (
        expected_calibration_error,
        operating_point,
        positive_class,
        threshold_at_specificity,
    )

    # confidence 0.9 in every case, right 6 times out of 10: gap 0.3
    probs = np.tile([0.9, 0.1], (10, 1))
    labels = np.array([0] * 6 + [1] * 4)
    assert expected_calibration_error(labels, probs) == pytest.approx(0.3)
    scores = np.linspace(0, 1, 21)  # negatives 0..1, 21 values
    threshold = threshold_at_specificity(np.zeros(21, int), scores, positive=1)
    assert (scores <= threshold).mean() >= 0.9 and (scores < threshold).mean() < 0.9
    sensitivity, specificity = operating_point(np.array([1, 1, 0, 0]), np.array([0.95, 0.2, 0.1, 0.99]), 1, 0.9)
    assert (sensitivity, specificity) == (0.5, 0.5)
    assert positive_class(["benign", "malignant", "normal"]) == 1
    assert positive_class(["neg", "pos"]) == 1 and positive_class(["a", "b", "c"]) is None


def distinct_npz(path, n: int = 48):
    """A 3-class npz whose images are distinct (random smooth patterns) with a learnable class
    region, in the data's own splits (tiny_npz's images are near-duplicates of their class at 16 px)."""
    images = smooth_images(n, seed=11, size=IMAGE_SIZE).astype(np.int16) // 2
    labels = np.array([i % 3 for i in range(n)], dtype=np.uint8)
    half = IMAGE_SIZE // 2
    for i, label in enumerate(labels):
        images[i][[np.s_[:, :half], np.s_[:, half:], np.s_[8:24, 8:24]][label]] += 100
    images = images.clip(0, 255).astype(np.uint8)
    np.savez(path, classes=np.array(["left", "right", "centre"]), train_images=images[:30], train_labels=labels[:30],
             val_images=images[30:39], val_labels=labels[30:39], test_images=images[39:], test_labels=labels[39:])
    return path


def test_folds_refuse_groups_too_coarse_to_stratify(tmp_path):
    from sslkit.data import open_dataset
    from sslkit.errors import UserError
    from sslkit.finetuning.labels import select_records

    ds = open_dataset(f"npz:{tiny_npz(tmp_path / 'tiny.npz')}")  # every class one near-duplicate family
    with pytest.raises(UserError, match="too coarse"):
        select_records(ds, 12, seed=0, folds=3, fold=0)


def test_finetune_folds_predict_every_labelled_image_exactly_once(tmp_path):
    from sslkit.finetuning.config import FinetuneConfig
    from sslkit.finetuning.fold_runs import run_folds

    data = distinct_npz(tmp_path / "distinct.npz")
    config = FinetuneConfig(from_scratch=True, backbone="eval-tiny-cnn", data=f"npz:{data}", protocol="linear",
                            labels=12, epochs=2, batch_size=8, image_size=IMAGE_SIZE, device="cpu", quiet=True,
                            folds=3, out=str(tmp_path / "ft"))
    result = run_folds(config, tiny_plugins())
    with (tmp_path / "ft" / "oof_predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 48 and len({r["image"] for r in rows}) == 48  # every labelled image of every split
    assert sorted({int(r["fold"]) for r in rows}) == [0, 1, 2]
    assert result.metrics.n_samples == 48 and "FoldsResult(3 folds" in repr(result)
    assert all((tmp_path / "ft" / f"fold{f}" / "metrics.json").is_file() for f in range(3))
    # `sslkit evaluate` re-scores a fold's classifier on that fold's own test part
    from sslkit.finetuning.saved import evaluate_saved_classifier

    again = evaluate_saved_classifier(tmp_path / "ft" / "fold1", split="test", device="cpu", plugins=tiny_plugins())
    assert again.metrics.scalars == result.folds[1].metrics["test"].scalars


def test_pooling_checks_that_the_folds_partition_their_pool():
    from sslkit.finetuning.fold_runs import check_partition
    from sslkit.errors import UserError

    plan = {"digest": "abc", "pool": 10}
    check_partition([plan, plan, None], 10)
    with pytest.raises(UserError, match="incomplete"):
        check_partition([plan, plan], 9)  # an image dropped out of a fold
    with pytest.raises(UserError, match="different fold assignments"):
        check_partition([plan, {"digest": "xyz", "pool": 10}], 10)


def test_the_operating_point_keeps_exactly_the_target_specificity_when_it_can():
    from sslkit.evaluation.metrics import threshold_at_specificity

    for n in (10, 20, 100):
        negatives = np.arange(n, dtype=float)
        threshold = threshold_at_specificity(np.zeros(n, int), negatives, positive=1)
        assert (negatives <= threshold).mean() == pytest.approx(0.9)  # the lowest that keeps 90 %
