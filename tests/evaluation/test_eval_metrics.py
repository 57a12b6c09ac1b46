"""Metrics, class weights and k-NN against values worked out by hand in the comments."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sslkit.evaluation.knn import knn_evaluate_features, knn_probabilities
from sslkit.evaluation.metrics import Metrics, auroc, class_weights, classification_metrics


def test_binary_metrics_hand_checked():
    y = [0, 0, 1, 1, 1]
    p1 = np.array([0.1, 0.6, 0.4, 0.8, 0.9])
    probs = np.stack([1 - p1, p1], axis=1)
    m = classification_metrics(y, probs, ["neg", "pos"])
    # predictions 0 1 0 1 1 -> 3 of 5 right
    assert m.scalars["accuracy"] == pytest.approx(0.6)
    assert m.confusion == [[1, 1], [1, 2]]
    # class 0: P = R = 1/2; class 1: P = R = 2/3
    assert m.per_class["neg"]["f1"] == pytest.approx(0.5)
    assert m.per_class["pos"]["precision"] == pytest.approx(2 / 3)
    assert m.scalars["macro_f1"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert m.scalars["balanced_accuracy"] == pytest.approx((0.5 + 2 / 3) / 2)
    # positive scores {.4,.8,.9} beat negatives {.1,.6} in 1+2+2 of 6 pairs
    assert m.scalars["auroc"] == pytest.approx(5 / 6)
    assert m.notes == []
    assert m.n_samples == 5


def test_multiclass_metrics_and_ovr_auroc_hand_checked():
    from sklearn.metrics import roc_auc_score

    y = np.array([0, 0, 1, 1, 2, 2])
    probs = np.array([
        [0.7, 0.2, 0.1],  # -> 0 right
        [0.3, 0.4, 0.3],  # -> 1 wrong
        [0.2, 0.6, 0.2],  # -> 1 right
        [0.1, 0.3, 0.6],  # -> 2 wrong
        [0.1, 0.1, 0.8],  # -> 2 right
        [0.5, 0.2, 0.3],  # -> 0 wrong
    ])
    m = classification_metrics(y, probs, ["a", "b", "c"])
    assert m.scalars["accuracy"] == pytest.approx(0.5)
    assert m.confusion == [[1, 1, 0], [0, 1, 1], [1, 0, 1]]
    assert m.scalars["macro_f1"] == pytest.approx(0.5)  # each class P = R = 1/2
    assert m.scalars["balanced_accuracy"] == pytest.approx(0.5)
    # one-vs-rest: a 7/8, b 7/8, c (0.3 ties a negative 0.3 -> half a pair) 6.5/8
    assert m.per_class["a"]["auroc"] == pytest.approx(7 / 8)
    assert m.per_class["b"]["auroc"] == pytest.approx(7 / 8)
    assert m.per_class["c"]["auroc"] == pytest.approx(6.5 / 8)
    assert m.scalars["auroc"] == pytest.approx((7 / 8 + 7 / 8 + 6.5 / 8) / 3)
    assert m.scalars["auroc"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr", average="macro"))


def test_absent_class_gives_a_note_not_a_crash():
    y = np.array([0, 0, 1, 1])  # class "c" never occurs
    probs = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.3, 0.6, 0.1], [0.1, 0.2, 0.7]])
    m = classification_metrics(y, probs, ["a", "b", "c"])
    # AUROC a: 3/4, b: 2/4 -> macro over the two present classes
    assert m.scalars["auroc"] == pytest.approx(0.625)
    assert "auroc" not in m.per_class["c"]
    assert any("'c'" in note and "AUROC" in note for note in m.notes)
    # predictions 0 1 1 2: macro F1 over a (2/3), b (1/2), c (predicted, absent: 0)
    assert m.scalars["macro_f1"] == pytest.approx((2 / 3 + 0.5 + 0) / 3)
    assert m.scalars["balanced_accuracy"] == pytest.approx(0.5)
    assert m.confusion[2] == [0, 0, 0]


def test_single_class_binary_auroc_is_nan_with_note():
    m = classification_metrics([1, 1, 1], np.array([[0.2, 0.8], [0.6, 0.4], [0.1, 0.9]]), ["no", "yes"])
    assert math.isnan(m.scalars["auroc"])
    assert any("only class 'yes'" in n for n in m.notes)
    assert m.scalars["accuracy"] == pytest.approx(2 / 3)


def test_auroc_binary_is_the_positive_column():
    value, per_class, notes = auroc(np.array([0, 1, 1, 0]), np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.6, 0.4]]), ["n", "p"])
    # positives 0.8, 0.3 vs negatives 0.1, 0.4: 2 + 1 of 4 pairs
    assert value == pytest.approx(0.75) and per_class == {"p": pytest.approx(0.75)} and notes == []


def test_metrics_round_trip_through_json_dict():
    m = classification_metrics([1, 1], np.array([[0.2, 0.8], [0.6, 0.4]]), ["no", "yes"])
    back = Metrics.from_dict(m.to_dict())
    assert math.isnan(back.scalars["auroc"]) and m.to_dict()["scalars"]["auroc"] is None
    assert back.confusion == m.confusion and back.notes == m.notes


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError):
        classification_metrics([0, 1], np.array([[0.5, 0.5]]))
    with pytest.raises(ValueError):
        classification_metrics([0, 3], np.array([[0.5, 0.5], [0.5, 0.5]]))


def test_class_weights_formula():
    # 10 * (1 - n_c / N) with N = 100
    assert class_weights([50, 30, 20]) == pytest.approx([5.0, 7.0, 8.0])
    assert class_weights([3, 1]) == pytest.approx([2.5, 7.5])
    with pytest.raises(ValueError):
        class_weights([0, 0])


def test_knn_votes_hand_checked():
    bank = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    labels = torch.tensor([0, 0, 1, 1])
    query = torch.tensor([[10.0, 0.5]])  # cosine: scale does not matter, nearest are the class-0 pair
    assert knn_probabilities(bank, labels, query, 2, k=1).tolist() == [[1.0, 0.0]]
    # k = 3 with plain votes: two class-0 neighbours, one class-1
    p = knn_probabilities(bank, labels, query, 2, k=3, temperature=0)
    assert p[0].tolist() == pytest.approx([2 / 3, 1 / 3])
    # similarity weighting favours the closer class further
    assert knn_probabilities(bank, labels, query, 2, k=3, temperature=0.07)[0, 0] > 2 / 3
    # k larger than the bank uses the whole bank; chunking changes nothing
    many = torch.randn(7, 2)
    assert torch.allclose(knn_probabilities(bank, labels, many, 2, k=99, chunk=2),
                          knn_probabilities(bank, labels, many, 2, k=4))


def test_knn_evaluate_features_separable_clusters_and_unlabelled_dropped():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[4.0, 0, 0], [0, 4.0, 0], [0, 0, 4.0]])
    bank_labels = torch.arange(3).repeat(10)
    bank = centres[bank_labels] + 0.3 * torch.randn(30, 3, generator=g)
    q_labels = torch.tensor([0, 1, 2, 2, -1])
    queries = centres[q_labels.clamp_min(0)] + 0.3 * torch.randn(5, 3, generator=g)
    result = knn_evaluate_features(bank, bank_labels, queries, q_labels, ["a", "b", "c"], k=5)
    assert result.metrics.n_samples == 4
    assert result.metrics.scalars["accuracy"] == 1.0 and result.metrics.scalars["auroc"] == 1.0
    assert result.bank_size == 30 and result.feature_dim == 3 and result.k == 5
