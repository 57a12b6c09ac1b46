"""The fine-tuning settings: one dataclass, the one place their defaults live (no torch here).

``sslkit finetune`` takes every option's default from :class:`FinetuneConfig`, and ``sslkit
compare`` (:class:`~sslkit.comparison.config.CompareConfig`) takes its fine-tuning defaults from it
too, so the command line, the Python API and compare cannot drift apart; this module stays free
of torch so that both commands start (and answer ``--help``) without importing it. Checking the
values is :func:`sslkit.finetuning.run.validate`; running them is
:func:`sslkit.finetuning.run.run_finetuning`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from sslkit.choices import DEFAULT_TASK
from sslkit.finetuning.labels import LabelBudget
from sslkit.finetuning.protocols import get_protocol

#: The built-in tasks' default protocols, so resolving a default does not load every plugin.
TASK_DEFAULT_PROTOCOLS = {"classification": "linear", "segmentation": "full"}


@dataclass
class FinetuneConfig:
    """Every setting of one fine-tuning run (written to the run's ``config.yaml``)."""

    encoder: str | None = None
    """A pretraining run dir, an exported encoder dir, or its encoder.json/.safetensors."""
    from_scratch: bool = False
    """Same network, random weights (from ``encoder``'s spec, or ``backbone``)."""
    backbone: str | None = None
    """Only for ``from_scratch`` without ``encoder``; None = :data:`sslkit.defaults.BACKBONE`."""
    backbone_options: dict[str, Any] = field(default_factory=dict)
    in_chans: int | None = None
    data: str | None = None
    """``ADAPTER:LOCATION``; None = the pretraining run's data, else the embedded BUSI 64 px."""
    data_options: dict[str, Any] = field(default_factory=dict)
    """Adapter options (``--data-opt``); with ``data`` unset, the pretraining run's."""
    task: str = DEFAULT_TASK
    """What is learnt: ``classification`` or ``segmentation`` (or a plugin's task, :mod:`sslkit.finetuning.tasks`)."""
    protocol: str | None = None
    """What trains; None = the task's default (classification ``linear``, segmentation ``full``)."""
    decoder: str = "pretrained"
    """Segmentation: start from the pretraining's decoder (``pretrained``) or a fresh one (``fresh``)."""
    labels: LabelBudget = 100
    epochs: int | None = None
    """None = the protocol's default (:data:`sslkit.finetuning.protocols.PROTOCOLS`)."""
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    encoder_lr_scale: float = 0.1
    class_weights: str = "auto"
    select: str = "last"
    standardize_features: bool = True
    """Frozen protocols: standardise the head's input with the labelled training features'
    per-channel mean and std (see :mod:`sslkit.finetuning.classifier`); off = the raw features."""
    seed: int = 0
    split_seed: int | None = None
    """None = the pretraining run's split seed (so its held-out test images stay held out), else 0."""
    image_size: int | None = None
    """None = the pretraining run's image size, else :data:`sslkit.defaults.IMAGE_SIZE`."""
    folds: int = 1
    """1: the data's own (or the paper's) split; K >= 3: grouped, stratified K-fold over the labelled
    pool (:mod:`sslkit.evaluation.folds`); this run scores fold ``fold`` (``run_folds`` runs all)."""
    fold: int = 0
    positive_class: str | None = None
    """The class whose sensitivity at 90 % specificity is reported (default: class 1 of a binary
    problem, else 'malignant' when present)."""
    paper_splits: bool | None = None
    """The authors' splits (all splits pooled, classes balanced, stratified 100 val / 100 test,
    the rest train); None = yes for ``paper`` when the data allows it (enough images, no groups)."""
    lr_schedule: str | None = None
    """"paper": MultiStepLR x0.33 at 75 % and 87.5 % of the epochs (150, 175 of 200); "none":
    constant; None = "paper" for the paper protocol, else "none"."""
    eval_batch_size: int = 64
    workers: int = 0
    device: str = "auto"
    threads: int = 0
    """CPU threads for PyTorch (0 = its default); see :mod:`sslkit.runtime`."""
    out: str | None = None
    quiet: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def resolved_epochs(self) -> int:
        return int(self.epochs) if self.epochs is not None else get_protocol(self.resolved_protocol()).default_epochs

    def resolved_lr_schedule(self) -> str:
        if self.lr_schedule is not None:
            return self.lr_schedule
        return get_protocol(self.resolved_protocol()).lr_schedule

    def resolved_protocol(self, plugins=None) -> str:
        """``protocol``, or the task's default when unset (without loading the task's plugin for
        the two built-ins; a plugin's task is found in ``plugins``' registry)."""
        if self.protocol is not None:
            return self.protocol
        from sslkit.finetuning.tasks import get_task  # a plugin's task only: it needs the registry

        return TASK_DEFAULT_PROTOCOLS.get(self.task) or get_task(self.task, plugins).protocols[0]
