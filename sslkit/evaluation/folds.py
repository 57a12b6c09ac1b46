"""Grouped, stratified k-fold cross-validation over the labelled pool.

One held-out test split of 100-160 images cannot see a 5-point effect, and BUSI's near-duplicates
cross its shipped splits. With K folds every labelled image is a test image exactly once, and the
*leakage groups* (patients joined with near-duplicate groups, :func:`sslkit.data.duplicates.leakage_groups`)
never straddle folds. For fold ``f`` of ``K``: fold ``f`` is the test part (read once, at the end),
fold ``(f + 1) % K`` the validation part (model selection, thresholds), the other ``K - 2`` folds
the training part from which the labels are drawn. The assignment is scikit-learn's
``StratifiedGroupKFold`` (shuffled, seeded by the split seed), so every run seed and every method
shares the same folds, a paired comparison.

The pool is every labelled image of every split, or with the paper protocol the authors'
class-balanced subset (133 per class on BUSI, 399 images).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sslkit.errors import UserError


@dataclass
class FoldPlan:
    """The pool, its leakage groups and the fold of each pool record."""

    pool: list
    groups: np.ndarray
    folds: np.ndarray
    k: int

    def parts(self, fold: int) -> dict[str, list]:
        """``{"train", "val", "test"}`` records of fold ``fold`` (input order kept)."""
        if not 0 <= fold < self.k:
            raise UserError(f"--fold must be in 0..{self.k - 1}, got {fold}")
        val_fold = (fold + 1) % self.k
        role = np.where(self.folds == fold, 2, np.where(self.folds == val_fold, 1, 0))
        return {name: [r for r, x in zip(self.pool, role.tolist()) if x == code]
                for name, code in (("train", 0), ("val", 1), ("test", 2))}

    def digest(self) -> str:
        """A short hash of the assignment (pool order, groups, folds): every fold cell of one
        comparison must share it, or the folds would not partition the pool."""
        import hashlib

        text = "|".join(f"{r.source}:{g}:{f}" for r, g, f in zip(self.pool, self.groups.tolist(), self.folds.tolist()))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def group_names(self) -> list[str]:
        """Each pool record's leakage group name (what the grouped bootstrap resamples)."""
        return [f"g{int(g)}" for g in self.groups.tolist()]


def pool_groups(ds, pool: list, *, threshold: float | None = None) -> np.ndarray:
    """Leakage groups of ``pool`` found among *every* record of ``ds``: two labelled images that are
    each a twin of an unlabelled (or balanced-out) image are one group too."""
    from sslkit.data.duplicates import leakage_groups

    everything = ds.records()
    group_of = dict(zip(everything, leakage_groups(everything, threshold=threshold).tolist()))
    return np.array([group_of[r] for r in pool], dtype=np.int64)


def plan_for(ds, k: int, *, paper: bool, split_seed: int) -> FoldPlan:
    """The fold plan of ``ds`` (what every fold cell and ``compare``'s early check use)."""
    threshold = getattr(ds, "duplicate_threshold", None)
    pool = labelled_pool(ds, paper=paper, split_seed=split_seed)
    return plan_folds(pool, k, seed=split_seed, threshold=threshold, groups=pool_groups(ds, pool, threshold=threshold))


def labelled_pool(ds, *, paper: bool, split_seed: int) -> list:
    """Every labelled record of every split; with ``paper`` the authors' balanced subset of them."""
    pool = [r for r in ds.records() if r.label is not None and r.label >= 0]
    if paper:
        from sslkit.data.splits import balanced_positions

        pool = [pool[i] for i in balanced_positions(pool, seed=split_seed)]
    return pool


def plan_folds(pool: list, k: int, *, seed: int, threshold: float | None = None,
               groups: np.ndarray | None = None) -> FoldPlan:
    """Assign each pool record to one of ``k`` stratified folds, whole leakage groups at a time
    (near-duplicates at ``threshold``, None: the default). Folds whose training or test part lacks
    a class are refused in one sentence: the groups are then too coarse for ``k`` folds."""
    from sklearn.model_selection import StratifiedGroupKFold

    from sslkit.data.duplicates import leakage_groups

    if k < 3:
        raise UserError(f"--folds must be 1 (one split) or at least 3 (test, validation and training folds), got {k}")
    if len(pool) < k:
        raise UserError(f"{k} folds need at least {k} labelled images, the pool has {len(pool)}")
    if groups is None:
        groups = leakage_groups(pool, threshold=threshold)
    labels = np.array([r.label for r in pool])
    n_groups = len(np.unique(groups))
    if n_groups < k:
        raise UserError(f"{k} folds need at least {k} independent groups of images; the pool has {n_groups} "
                        "(patients and near-duplicates are kept together)")
    counts = np.bincount(labels)
    if (counts[counts > 0] < k).any():
        rare = int(np.flatnonzero((counts > 0) & (counts < k))[0])
        raise UserError(f"class {rare} has {int(counts[rare])} labelled image(s), fewer than --folds {k}; "
                        "use fewer folds")
    folds = np.empty(len(pool), dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=int(seed) % (2**32))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class" is checked above
        for fold, (_, test) in enumerate(splitter.split(np.zeros(len(pool)), labels, groups)):
            folds[test] = fold
    plan = FoldPlan(pool, groups, folds, k)
    classes = set(labels.tolist())
    for fold in range(k):
        for part, records in plan.parts(fold).items():
            if part != "val" and {r.label for r in records} != classes:
                largest = int(np.bincount(groups).max())
                raise UserError(
                    f"fold {fold}'s {part} part lacks a class: the {n_groups} groups of patients and near-duplicates "
                    f"(the largest {largest} images) are too coarse for {k} folds; use fewer folds or a stricter "
                    "near-duplicate threshold (--data-opt duplicate_threshold=0.99; `sslkit data audit` shows the groups)")
    return plan
