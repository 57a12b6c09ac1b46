"""The fine-tuning protocols, defined once: the CLI's choices, the defaults, the heads, validation.

A protocol says what trains, with which head, for how long by default and with which schedule
and splits by default. ``sslkit finetune``, ``sslkit compare`` and the engine all read
:data:`PROTOCOLS`, so adding a protocol (or changing a default) is one edit here (plus the head,
when it is a new kind, in :mod:`sslkit.finetuning.classifier`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sslkit.errors import UserError
from sslkit.registry import closest


#: ``--select``: report the last epoch (the paper's) or the one with the best validation macro F1.
SELECT_CHOICES = ("last", "best-val")
#: ``--class-weights``: ``auto`` = the paper's ``10 * (1 - n_c / N)``; ``none`` = unweighted.
CLASS_WEIGHT_CHOICES = ("auto", "none")
#: ``--lr-schedule``: ``paper`` = MultiStepLR x0.33 at 75 % and 87.5 % of the epochs; ``none`` = constant.
LR_SCHEDULES = ("none", "paper")


@dataclass(frozen=True)
class Protocol:
    name: str
    frozen: bool
    """The encoder neither trains nor updates its BatchNorm statistics (features are cached)."""
    head: str
    """Classification's head kind (:func:`sslkit.finetuning.classifier.build_head`): ``linear`` or
    ``paper``; ``task`` when the task brings its own output part (segmentation's decoder)."""
    default_epochs: int
    lr_schedule: str
    """Default learning-rate schedule: ``paper`` (MultiStepLR x0.33 at 75 % and 87.5 %) or ``none``."""
    paper_splits: bool
    """Whether the authors' balanced 100/100/100 splits are the default (when the data allows)."""
    summary: str
    """One sentence for ``--help``."""


PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (
    Protocol("linear", frozen=True, head="linear", default_epochs=100, lr_schedule="none", paper_splits=False,
             summary="frozen encoder, linear head."),
    Protocol("paper", frozen=True, head="paper", default_epochs=200, lr_schedule="paper", paper_splits=True,
             summary="the authors' protocol (their balanced 100/100/100 splits, conv+MLP head, weighted loss, "
                     "Adam 1e-3, MultiStepLR x0.33 at epochs 150 and 175 of 200, last epoch); deliberate "
                     "differences: the frozen encoder's BatchNorm stays in eval mode and the head's input is "
                     "standardised (--no-standardize-features turns that off)."),
    Protocol("full", frozen=False, head="linear", default_epochs=50, lr_schedule="none", paper_splits=False,
             summary="whole network, encoder at --encoder-lr-scale x --lr."),
    Protocol("frozen", frozen=True, head="task", default_epochs=50, lr_schedule="none", paper_splits=False,
             summary="(segmentation) frozen encoder, the decoder trains."),
)}
PROTOCOL_NAMES: tuple[str, ...] = tuple(PROTOCOLS)
FROZEN_PROTOCOLS: tuple[str, ...] = tuple(name for name, p in PROTOCOLS.items() if p.frozen)
#: ``--protocol``'s help text, shared by ``sslkit finetune`` and ``sslkit compare``.
PROTOCOL_HELP = " ".join(f"{p.name}: {p.summary}" for p in PROTOCOLS.values())
#: ``--epochs``'s help text.
DEFAULT_EPOCHS_HELP = "Default per protocol: " + ", ".join(f"{p.name} {p.default_epochs}" for p in PROTOCOLS.values()) + "."


#: ``--folds``' help text, shared by ``sslkit finetune`` and ``sslkit compare`` (each adds its default).
FOLDS_HELP = ("K >= 3: grouped, stratified K-fold over the labelled pool (patients and near-duplicates never straddle "
              "folds): each fold is the test part once, the next fold validation, labels are drawn from the rest; "
              "figures and intervals over every out-of-fold prediction. 1: one split (the data's own, or the paper's).")
#: ``--positive-class``' help text.
POSITIVE_CLASS_HELP = ("Class whose sensitivity at 90 % specificity (threshold chosen on validation) is reported. "
                       "Default: class 1 of a binary problem, else 'malignant' when present.")


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name``; an unknown name is one sentence suggesting the closest."""
    protocol = PROTOCOLS.get(name)
    if protocol is None:
        hint = closest(str(name), list(PROTOCOL_NAMES))
        suggestion = f" (did you mean '{hint}'?)" if hint else ""
        raise UserError(f"unknown protocol '{name}'{suggestion}; known: {', '.join(PROTOCOL_NAMES)}")
    return protocol


def check_trainable(protocol: str, batch_size: int, budgets: list, batch_option: str = "--batch-size", *,
                    task: str = "classification") -> None:
    """Settings no model can be trained with, refused before anything runs (``compare`` used to
    fail only after its pretraining): a label budget below two images (a classifier sees one class
    at most, then NaN scores; a segmenter one image), and a batch of one image where BatchNorm
    layers train."""
    for budget in budgets:
        if isinstance(budget, int) and budget < 2:
            why = ("a classifier needs labelled images of at least two classes (one per class at the very least)"
                   if task == "classification" else f"--task {task} needs at least two labelled images")
            raise UserError(f"--labels {budget} is too few: {why}")
    if not get_protocol(protocol).frozen and int(batch_size) < 2:
        raise UserError(f"--protocol {protocol} trains the encoder's BatchNorm layers, which need at least 2 images "
                        f"per batch; got {batch_option} {batch_size}")


def check_classes_learnable(class_names: list[str], labelled_counts: list[int], dataset: str) -> None:
    """A classifier needs labelled training images of every class it is scored on: one class
    alone "scored" accuracy 1.000 with four sklearn warnings, a class without images NaN AUROC."""
    if len(class_names) < 2:
        raise UserError(f"dataset '{dataset}' has only one class ({', '.join(map(repr, class_names)) or 'none'}); "
                        "a classifier needs at least two")
    missing = [name for name, n in zip(class_names, labelled_counts) if n == 0]
    if missing:
        counts = ", ".join(f"{n} {name}" for name, n in zip(class_names, labelled_counts))
        raise UserError(f"the {sum(labelled_counts)} labelled training image(s) ({counts}) hold none of class "
                        f"'{missing[0]}'; every class needs at least one: give a larger --labels, or check the "
                        "data's train split")
