"""Seeded, stratified, group-aware splitting and label subsetting.

Adapters whose data has no splits of its own call :func:`split_records`: classes keep their
proportions in every split, and all samples of one group (a patient, a volume) land in the same
split so that no patient leaks from training into testing. :func:`stratified_subset` draws the
few labelled samples fine-tuning uses (``--labels 100`` or ``--labels 0.1``).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from sslkit.data.records import Record
from sslkit.errors import UserError


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    for name, value in (("validation", val_fraction), ("test", test_fraction)):
        if not 0.0 <= float(value) < 1.0:
            raise UserError(f"the {name} fraction must be in [0, 1), got {value}")
    if val_fraction + test_fraction >= 1.0:
        raise UserError(
            f"validation + test fractions must leave data for training, got {val_fraction} + {test_fraction}"
        )


def _rng(seed: int, *salt: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *salt]))


def split_records(
    records: list[Record], *, val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0,
    group_duplicates: bool = True,
) -> dict[str, list[Record]]:
    """``{"train", "val", "test"}`` lists; a pure function of (records, fractions, seed).

    Units are leakage groups: records sharing a patient/volume group or, with
    ``group_duplicates``, a near-duplicate group (:func:`sslkit.data.duplicates.leakage_groups`,
    which reads every image once) stay together; any other record is its own unit. Each unit is stratified by its
    most common label; within each stratum the units are shuffled and the first ones fill the
    test share, the next ones the validation share (rounded per stratum, at least one unit stays
    in training). The order of records inside each split follows the input order.
    """
    check_fractions(val_fraction, test_fraction)
    units: dict[object, list[int]] = defaultdict(list)
    if group_duplicates and len(records) > 1:
        from sslkit.data.duplicates import leakage_groups

        for i, unit in enumerate(leakage_groups(records).tolist()):
            units[("u", unit)].append(i)
    else:
        for i, record in enumerate(records):
            units[("g", record.group) if record.group is not None else ("i", i)].append(i)
    strata: dict[object, list[object]] = defaultdict(list)
    for key, members in units.items():
        labels = [records[i].label for i in members]
        known = [label for label in labels if label is not None]
        majority = max(set(known), key=lambda v: (known.count(v), -v)) if known else None
        strata[majority].append(key)

    where: dict[object, str] = {}
    for stratum_index, stratum in enumerate(sorted(strata, key=lambda s: (s is None, s if s is not None else 0))):
        keys = strata[stratum]
        order = _rng(seed, 7919, stratum_index).permutation(len(keys))
        n = len(keys)
        n_test = int(round(n * test_fraction))
        n_val = int(round(n * val_fraction))
        while n_test + n_val >= n and (n_test or n_val):  # keep one unit for training
            if n_val >= n_test and n_val:
                n_val -= 1
            else:
                n_test -= 1
        for rank, position in enumerate(order):
            where[keys[position]] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"

    out: dict[str, list[Record]] = {"train": [], "val": [], "test": []}
    split_of = {}
    for key, members in units.items():
        for i in members:
            split_of[i] = where[key]
    for i, record in enumerate(records):
        out[split_of[i]].append(record)
    return out


def stratified_subset(records: list[Record], n_or_fraction: int | float, seed: int = 0) -> list[Record]:
    """A seeded, class-stratified subset of ``records`` (for fine-tuning on few labels).

    An ``int`` is a number of samples, a ``float`` in (0, 1] a fraction (so ``1`` means one
    sample and ``1.0`` means all). Classes get shares proportional to their size (largest
    remainder, and at least one sample per class when the budget allows). The subset keeps the
    input order, and a larger budget with the same seed contains the smaller one's samples only
    by chance, not by construction. Unlabelled records form their own stratum.
    """
    total = len(records)
    if isinstance(n_or_fraction, bool) or not isinstance(n_or_fraction, (int, float, np.integer, np.floating)):
        raise UserError(f"the number of labels must be a count or a fraction, got {n_or_fraction!r}")
    if isinstance(n_or_fraction, (float, np.floating)):
        if not 0.0 < float(n_or_fraction) <= 1.0:
            raise UserError(f"a label fraction must be in (0, 1], got {n_or_fraction}")
        wanted = max(1, int(round(float(n_or_fraction) * total)))
    else:
        if int(n_or_fraction) < 1:
            raise UserError(f"the number of labels must be at least 1, got {n_or_fraction}")
        wanted = int(n_or_fraction)
    if wanted >= total:
        return list(records)

    by_label: dict[object, list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        by_label[record.label].append(i)
    labels = sorted(by_label, key=lambda v: (v is None, v if v is not None else 0))
    sizes = np.array([len(by_label[v]) for v in labels], dtype=float)
    share = sizes / sizes.sum() * wanted
    quota = np.floor(share).astype(int)
    # Largest remainders first; ties broken by a seeded draw so no class is always favoured.
    tiebreak = _rng(seed, 104729).random(len(labels))
    order = sorted(range(len(labels)), key=lambda k: (-(share[k] - quota[k]), tiebreak[k]))
    for k in order[: wanted - int(quota.sum())]:
        quota[k] += 1
    if wanted >= len(labels):  # every class gets at least one, taken from the most over-served
        for k in map(int, np.flatnonzero(quota == 0)):
            donor = max((j for j in range(len(labels)) if quota[j] > 1), key=lambda j: (quota[j] - share[j], -j))
            quota[donor] -= 1
            quota[k] += 1
    quota = np.minimum(quota, sizes.astype(int))

    chosen: list[int] = []
    for k, label in enumerate(labels):
        members = by_label[label]
        pick = _rng(seed, 15485863, k).choice(len(members), size=int(quota[k]), replace=False)
        chosen.extend(members[j] for j in pick)
    return [records[i] for i in sorted(chosen)]


#: The authors' downstream validation and test sizes (BUSI: 100 each, drawn after balancing).
PAPER_SPLIT_SIZE = 100


def paper_split_problem(records: list[Record], size: int = PAPER_SPLIT_SIZE) -> str | None:
    """Why :func:`paper_splits` cannot be applied to ``records`` (one sentence), or None.

    The draws take whole leakage groups (patients, near-duplicates), so grouped data is fine;
    after balancing, at least ``size`` images must remain for training after the two draws of
    ``size`` (the authors' 100 labels).
    """
    labelled = [r for r in records if r.label is not None and r.label >= 0]
    counts: dict[int, int] = defaultdict(int)
    for label in (r.label for r in labelled if r.label is not None):
        counts[label] += 1
    if len(counts) < 2:
        return "the data has fewer than two labelled classes"
    pool = min(counts.values()) * len(counts)
    if pool < 3 * size:
        return (f"balanced to {min(counts.values())} image(s) per class the data has {pool} images, too few for "
                f"{size} training, {size} validation and {size} test images")
    return None


def balanced_positions(records: list[Record], *, seed: int = 0) -> list[int]:
    """Positions of a seeded class-balanced subset of the labelled ``records``: every class
    subsampled to the smallest class's count (the authors' ``make_balance=True``), in input order."""
    by_label: dict[int, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        if r.label is not None and r.label >= 0:
            by_label[r.label].append(i)
    smallest = min(len(v) for v in by_label.values())
    pool: list[int] = []
    for k, label in enumerate(sorted(by_label)):
        members = by_label[label]
        pick = _rng(seed, 2750159, k).choice(len(members), size=smallest, replace=False)
        pool.extend(members[j] for j in pick)
    return sorted(pool)


def paper_splits(records: list[Record], *, size: int = PAPER_SPLIT_SIZE, seed: int = 0,
                 threshold: float | None = None) -> dict[str, list[Record]]:
    """The authors' downstream splits (``make_balance=True``, then a stratified split).

    Every labelled record of every split is pooled; each class is subsampled (seeded) to the
    smallest class's count (133 per class for BUSI); a stratified ``size`` go to test, another
    stratified ``size`` to validation, the rest (199 for BUSI) is train, from which fine-tuning
    draws its labelled images (``--labels 100``: the authors' 100). One deliberate difference from
    the authors: the draws take whole patients and near-duplicate groups (:func:`grouped_draw`), so
    no twin crosses train and test. Order inside each split follows the input order. Raises a :class:`UserError` when :func:`paper_split_problem` objects.
    """
    problem = paper_split_problem(records, size)
    if problem:
        raise UserError(f"cannot make the paper's splits: {problem}")
    pool = balanced_positions(records, seed=seed)
    from sslkit.data.duplicates import leakage_groups

    unit_of = dict(zip(pool, leakage_groups([records[i] for i in pool], threshold=threshold).tolist()))

    def draw(candidates: list[int], salt: int) -> list[int]:
        return grouped_draw(records, candidates, unit_of, size, seed=seed * 7 + salt)

    test = draw(pool, 1)
    rest = [i for i in pool if i not in set(test)]
    val = draw(rest, 2)
    if min(len(test), len(val)) < 0.9 * size:
        raise UserError(f"cannot make the paper's splits: whole groups of patients and near-duplicates fill only "
                        f"{len(test)} test and {len(val)} validation images of {size}; the groups are too coarse "
                        "(`sslkit data audit` shows them; a stricter --data-opt duplicate_threshold=0.99 joins fewer)")
    taken = set(test) | set(val)
    return {"train": [records[i] for i in rest if i not in taken],
            "val": [records[i] for i in val], "test": [records[i] for i in test]}


def grouped_draw(records: list[Record], candidates: list[int], unit_of: dict[int, int], size: int,
                 seed: int) -> list[int]:
    """A seeded, class-stratified draw of ``size`` of ``candidates`` made of whole units (leakage
    groups: a patient, a set of near-duplicates): the class quotas of
    :func:`stratified_subset`, filled by taking shuffled units whose members all still fit their
    classes' quotas, so near-duplicates never end up on both sides. Exact whenever enough units
    fit (BUSI: always); otherwise a little short. Returned in input order."""
    chosen_records = stratified_subset([records[i] for i in candidates], size, seed=seed)
    quota: dict[object, int] = defaultdict(int)
    for r in chosen_records:
        quota[r.label] += 1
    members: dict[int, list[int]] = defaultdict(list)
    for i in candidates:
        members[unit_of[i]].append(i)
    units = list(members)
    order = _rng(seed, 611953).permutation(len(units))
    # singletons last among equals would bias against groups; a seeded shuffle treats them alike
    picked: list[int] = []
    for position in order:
        unit = members[units[position]]
        need: dict[object, int] = defaultdict(int)
        for i in unit:
            need[records[i].label] += 1
        if all(quota[label] >= n for label, n in need.items()):
            for label, n in need.items():
                quota[label] -= n
            picked.extend(unit)
        if not any(quota.values()):
            break
    taken = set(picked)
    return [i for i in candidates if i in taken]
