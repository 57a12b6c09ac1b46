"""Which images fine-tuning may learn from, select with, and report on.

The labelled training set is a seeded, class-stratified draw from the *train* split only
(``--labels 100`` or ``--labels 0.1``). Validation and test images are never drawn into it, and
the test split is only ever read for the final report. For datasets whose splits were generated
(no official ones), the paper's protocol caps validation and test at 100 images each by a
stratified draw seeded with the *split* seed, so every run and every seed shares one test set.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sslkit.errors import UserError

LabelBudget = int | float | None


def parse_label_budget(text: str | int | float | None) -> LabelBudget:
    """``"100"`` -> 100 images, ``"0.1"`` -> 10 % of train, ``"all"``/None -> every label.

    A number written with a decimal point is a fraction (so ``1.0`` is all of train and ``1``
    is one image), the convention of :func:`sslkit.data.stratified_subset`.
    """
    if text is None:
        return None
    if isinstance(text, bool):
        raise UserError(f"--labels must be a count, a fraction or 'all', got {text!r}")
    if isinstance(text, (int, float)):
        value: int | float = text
    else:
        raw = str(text).strip().lower()
        if raw in ("all", ""):
            return None
        try:
            value = float(raw) if any(c in raw for c in ".e") else int(raw)
        except ValueError:
            raise UserError(f"--labels must be a count (100), a fraction (0.1) or 'all', got '{text}'") from None
    if isinstance(value, float) and not 0.0 < value <= 1.0:
        raise UserError(f"a label fraction must be in (0, 1], got {value}")
    if isinstance(value, int) and value < 1:
        raise UserError(f"the number of labels must be at least 1, got {value}")
    return value


@dataclass
class FinetuneRecords:
    """The records of one fine-tuning run, by role."""

    labelled: list
    val: list
    test: list
    class_names: list[str]
    notes: list[str]
    ids: dict | None = None
    """record -> its image id: the source, made unique over the whole data set (a second record
    with the same source gets `` #2``), so predictions of different folds and methods pair up."""
    groups: dict[str, str] | None = None
    """image id -> leakage group (patients joined with near-duplicates) of the test records,
    which the grouped bootstrap resamples whole; None: not computed."""
    fold_plan: dict | None = None
    """With folds: {"digest": the assignment's hash, "pool": its size}, so pooling can check that
    the folds partition the pool exactly."""

    def image_id(self, record) -> str:
        return (self.ids or {}).get(record, record.source)

    def counts(self, role: str) -> list[int]:
        """Images per class (in class order) of ``role`` ("labelled", "val", "test")."""
        tally = Counter(r.label for r in getattr(self, role))
        return [int(tally.get(c, 0)) for c in range(len(self.class_names))]


def _labelled(records: list) -> list:
    return [r for r in records if r.label is not None and r.label >= 0]


def select_records(
    ds,
    budget: LabelBudget,
    *,
    seed: int,
    split_seed: int = 0,
    cap_val: int | None = None,
    cap_test: int | None = None,
    paper: bool = False,
    folds: int = 1,
    fold: int = 0,
) -> FinetuneRecords:
    """Labelled train subset (seeded by ``seed``), validation and test records of ``ds``.

    ``paper``: replace the dataset's splits by the authors' (:func:`sslkit.data.splits.paper_splits`:
    every split pooled, classes balanced, stratified 100 test and 100 validation images), drawn
    with ``split_seed`` so every run seed shares them.
    ``cap_val`` / ``cap_test`` draw at most that many validation/test images, stratified and
    seeded by ``split_seed`` (the same images whatever ``seed`` is). Unlabelled records are left
    out everywhere: they cannot be learnt from or scored.
    ``folds`` > 1: the labelled pool (every split, or with ``paper`` the authors' balanced subset)
    in grouped, stratified folds (:mod:`sslkit.evaluation.folds`, seeded by ``split_seed``): fold
    ``fold`` is the test part, the next fold validation, the rest training.
    """
    from sslkit.data import stratified_subset
    from sslkit.choices import SPLIT_NAMES

    if not ds.class_names:
        raise UserError(f"dataset '{ds.name}' has no class labels, so it cannot be used for fine-tuning")
    notes: list[str] = []
    splits = ds.splits
    groups = None
    fold_plan = None
    image_ids = unique_ids(ds.records())
    if folds > 1:
        from sslkit.evaluation.folds import plan_for

        plan = plan_for(ds, folds, paper=paper, split_seed=split_seed)
        fold_plan = {"digest": plan.digest(), "pool": len(plan.pool)}
        splits = plan.parts(fold)
        groups = {image_ids[r]: g for r, g in zip(plan.pool, plan.group_names())}
        notes.append(f"fold {fold} of {folds} (grouped, stratified, split seed {split_seed}): "
                     f"{len(splits['train'])} train / {len(splits['val'])} val / {len(splits['test'])} test of a "
                     f"pool of {len(plan.pool)}" + (" (the paper's class-balanced pool)" if paper else ""))
    elif paper:
        from sslkit.data.splits import paper_splits

        splits = paper_splits(_labelled(ds.records()), seed=split_seed, threshold=getattr(ds, "duplicate_threshold", None))
        sizes = {name: len(splits[name]) for name in SPLIT_NAMES}
        notes.append(f"paper splits: classes balanced to {sum(sizes.values())} images, "
                     f"{sizes['train']} train / {sizes['val']} val / {sizes['test']} test")
    train = _labelled(splits.get("train", []))
    val = _labelled(splits.get("val", []))
    test = _labelled(splits.get("test", []))
    if not train:
        raise UserError(f"dataset '{ds.name}' has no labelled training images")
    if not test:
        raise UserError(f"dataset '{ds.name}' has no labelled test images to evaluate on")
    labelled = train if budget is None else stratified_subset(train, budget, seed=seed)
    if isinstance(budget, int) and budget > len(train):
        notes.append(f"asked for {budget} labels but the train split has {len(train)}: using all of them")
    for name, records, cap in (("val", val, cap_val), ("test", test, cap_test)):
        if cap is not None and len(records) > cap:
            subset = stratified_subset(records, int(cap), seed=split_seed)
            if name == "val":
                val = subset
            else:
                test = subset
            notes.append(f"{name}: a stratified {cap} of {len(records)} images (paper protocol sizes)")
    if groups is None:
        from sslkit.data.duplicates import leak_sentence, leakage_groups, count_test_twins

        threshold = getattr(ds, "duplicate_threshold", None)
        sentence = leak_sentence(*count_test_twins({"train": train, "val": val, "test": test}, threshold=threshold))
        if sentence:
            notes.append(sentence)

        ids = leakage_groups(test, threshold=threshold).tolist() if len(test) > 1 else [0] * len(test)
        groups = {image_ids[r]: f"g{g}" for r, g in zip(test, ids)}
    return FinetuneRecords(labelled, val, test, list(ds.class_names), notes, image_ids, groups, fold_plan)


def unique_ids(records: list) -> dict:
    """record -> its source, with `` #N`` added to the N-th record sharing a source (BUSI has two
    files named ``benign (152).png`` in different class folders' exports)."""
    seen: dict[str, int] = {}
    out = {}
    for record in records:
        n = seen[record.source] = seen.get(record.source, 0) + 1
        out[record] = record.source if n == 1 else f"{record.source} #{n}"
    return out
