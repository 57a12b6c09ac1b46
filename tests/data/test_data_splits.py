"""Seeded stratified, group-aware splits and label subsets."""

from collections import Counter

import pytest

from sslkit.data import FileImage, Record, split_records, stratified_subset
from sslkit.errors import UserError


def records(labels, groups=None):
    groups = groups or [None] * len(labels)
    return [Record(source=f"s{i}", image=FileImage(f"s{i}.png"), label=label, group=g)
            for i, (label, g) in enumerate(zip(labels, groups))]


def test_split_is_stratified_and_seeded():
    data = records([0] * 60 + [1] * 30 + [2] * 10)
    a = split_records(data, val_fraction=0.1, test_fraction=0.2, seed=5)
    b = split_records(data, val_fraction=0.1, test_fraction=0.2, seed=5)
    c = split_records(data, val_fraction=0.1, test_fraction=0.2, seed=6)
    assert a == b and a != c
    assert Counter(r.label for r in a["test"]) == {0: 12, 1: 6, 2: 2}
    assert Counter(r.label for r in a["val"]) == {0: 6, 1: 3, 2: 1}
    assert sorted(r.source for s in a.values() for r in s) == sorted(r.source for r in data)


def test_split_keeps_groups_together_and_train_nonempty():
    labels = [i % 2 for i in range(30)]
    groups = [f"p{i // 3}" for i in range(30)]
    out = split_records(records(labels, groups), val_fraction=0.2, test_fraction=0.2, seed=0)
    seen = {}
    for split, rs in out.items():
        for r in rs:
            assert seen.setdefault(r.group, split) == split
    tiny = split_records(records([0]), val_fraction=0.3, test_fraction=0.3)
    assert len(tiny["train"]) == 1


def test_bad_fractions_are_user_errors():
    with pytest.raises(UserError, match="fraction"):
        split_records(records([0, 1]), val_fraction=0.6, test_fraction=0.5)
    with pytest.raises(UserError, match="fraction"):
        split_records(records([0, 1]), val_fraction=-0.1)


def test_stratified_subset_counts_fractions_and_seed():
    data = records([0] * 70 + [1] * 20 + [2] * 10)
    few = stratified_subset(data, 10, seed=1)
    assert len(few) == 10 and Counter(r.label for r in few) == {0: 7, 1: 2, 2: 1}
    assert few == stratified_subset(data, 10, seed=1) and few != stratified_subset(data, 10, seed=2)
    assert len(stratified_subset(data, 0.1, seed=0)) == 10
    assert set(Counter(r.label for r in stratified_subset(data, 3)).values()) == {1}  # every class
    assert stratified_subset(data, 1.0) == data and stratified_subset(data, 500) == data
    order = [data.index(r) for r in few]
    assert order == sorted(order)
    for bad in (0, -3, 1.5, 0.0, "10", True):
        with pytest.raises(UserError):
            stratified_subset(data, bad)
