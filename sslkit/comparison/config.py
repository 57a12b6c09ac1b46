"""``sslkit compare``'s settings: the methods, the label budgets, the seeds, and what a cell is.

See :mod:`sslkit.comparison.run` for the whole comparison. A *cell* is one (method, label budget,
seed); its run directories live under ``RUNS/METHOD/seedS`` (the pretraining, shared by every
label budget) and ``RUNS/METHOD/seedS/labelsL`` (the fine-tuning and ``cell.json``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sslkit.choices import DECODER_CHOICES, DEFAULT_KEEP_CHECKPOINTS, KEEP_CHECKPOINT_CHOICES
from sslkit.defaults import SEGMENTATION_DECODER_SKIPS
from sslkit.errors import UserError
from sslkit.evaluation.reference_methods import (
    BASELINES,
    FRESH_DECODER_SUFFIX,
    SCRATCH,
    SCRATCH_FULL,
    default_references,
)
from sslkit.finetuning.config import FinetuneConfig
from sslkit.finetuning.labels import LabelBudget, parse_label_budget
from sslkit.pretraining.config import PretrainConfig
from sslkit.options import check_backbone_options, check_seed
from sslkit.runtime import check_threads

#: the protocol ``scratch-full`` is fine-tuned under (every other cell uses ``--protocol``)
SCRATCH_FULL_PROTOCOL = "full"
CELL_FILE = "cell.json"
PRETRAIN_FILE = "pretrain.json"
PREDICTIONS_FILE = "predictions.csv"
DIFFERENCES_FILE = "differences.csv"
CELL_FORMAT = "sslkit-compare-cell/2"
#: ``--folds`` by default: every labelled image is a test image once (1 keeps one split).
DEFAULT_FOLDS = 5
#: compare's protocol when none is given: the paper's for classification (what the comparison
#: reproduces), the task's own default otherwise.
COMPARE_DEFAULT_PROTOCOLS = {"classification": "paper"}


@dataclass
class CompareConfig:
    """Every setting of one comparison (``sslkit compare``'s options, ``sslkit.compare()``'s keywords).

    A setting compare hands on to each cell's pretraining or fine-tuning reads its default from
    :class:`~sslkit.pretraining.config.PretrainConfig` or
    :class:`~sslkit.finetuning.config.FinetuneConfig` (``= FinetuneConfig.lr``: the value, never a
    copy), so a comparison starts from the settings ``sslkit pretrain`` and ``sslkit finetune``
    start from; the few defaults that differ on purpose say why. :func:`pretrain_settings` and
    :func:`sslkit.comparison.cells.finetune_config` build each cell's two configs from these.
    """

    maskers: list[str] = field(default_factory=lambda: ["random-grid", "dqn"])
    """Method names: masker names, or aliases declared in ``masker_aliases``."""
    masker_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    """method name -> its masker options (``--masker-opt dqn:key=value``)."""
    masker_aliases: dict[str, str] = field(default_factory=dict)
    """alias -> masker, so one masker can run twice with other options (``dqn-masked=dqn:...``)."""
    scratch: bool = True
    scratch_full: bool = False
    """Add ``scratch-full``: random weights fine-tuned under ``--protocol full`` on the same splits."""
    scratch_full_epochs: int | None = FinetuneConfig.epochs
    """Epochs of ``scratch-full`` (None: the full protocol's default)."""
    data: str | None = PretrainConfig.data
    data_options: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    labels: LabelBudget | list[LabelBudget] = FinetuneConfig.labels
    """One label budget or several (``--labels 20,50,100,all``: a label-efficiency curve)."""
    task: str = FinetuneConfig.task
    """What the fine-tuning learns (``classification``, ``segmentation``, a plugin's task)."""
    decoders: list[str] = field(default_factory=lambda: list(DECODER_CHOICES))
    """Segmentation: each pretrained method fine-tuned with its pretrained decoder (``pretrained``,
    named METHOD) and/or a fresh one (``fresh``, named METHOD+fresh-decoder), sharing one pretraining."""
    protocol: str | None = None
    """None: ``paper`` for classification, else the task's default (segmentation ``full``). For
    classification not fine-tuning's default (``linear``, the quick probe) on purpose: a comparison
    measures pretraining under the protocol whose figures the paper reports
    (:data:`COMPARE_DEFAULT_PROTOCOLS`)."""
    folds: int = DEFAULT_FOLDS
    """K >= 3: grouped, stratified K-fold over the labelled pool (every image tested once, twins and
    patients kept together), statistics over every out-of-fold prediction; 1: one split. Not
    fine-tuning's default (1, one quick split) on purpose: the paired statistics between methods
    then rest on every labelled image, not on one small test split."""
    pretrain_splits: str | None = None
    """Images each pretraining sees (without labels); None: ``all`` with folds (the paper's setting:
    pretraining runs once per method and seed, so the held-out folds are seen unlabelled), else
    pretraining's own default (:attr:`PretrainConfig.pretrain_splits`)."""
    positive_class: str | None = FinetuneConfig.positive_class
    """Class of the sensitivity at 90 % specificity (default: binary class 1, else 'malignant')."""
    paper_splits: bool | None = FinetuneConfig.paper_splits
    """The authors' balanced 100/100/100 splits for every cell (scratch-full too); None = on for
    ``--protocol paper`` when the data allows, decided once before any cell runs."""
    backbone: str = PretrainConfig.backbone
    backbone_options: dict[str, Any] = field(default_factory=dict)
    image_size: int = PretrainConfig.image_size
    in_chans: int = PretrainConfig.in_chans
    split_seed: int = PretrainConfig.split_seed
    pretrain_epochs: int = PretrainConfig.epochs
    pretrain_batch_size: int = PretrainConfig.batch_size
    pretrain_options: dict[str, Any] = field(default_factory=dict)
    """Further PretrainConfig fields (lr, loss, precision, ...), the same for every masker."""
    finetune_epochs: int | None = FinetuneConfig.epochs
    finetune_batch_size: int = FinetuneConfig.batch_size
    finetune_lr: float = FinetuneConfig.lr
    class_weights: str = FinetuneConfig.class_weights
    encoder_lr_scale: float = FinetuneConfig.encoder_lr_scale
    select: str = FinetuneConfig.select
    standardize_features: bool = FinetuneConfig.standardize_features
    """Frozen protocols: standardise the head's input (see ``sslkit finetune --help``)."""
    device: str = PretrainConfig.device
    workers: int = PretrainConfig.workers
    threads: int = PretrainConfig.threads
    """torch CPU threads (0: automatic, :func:`sslkit.runtime.default_threads`); 1 is often fastest on a busy shared machine."""
    jobs: int = 1
    """Cells run in this many worker processes (``--jobs``); the figures do not depend on it."""
    out: str = "compare"
    runs_dir: str | None = None
    """Heavy run directories (checkpoints); default OUT/runs."""
    keep_checkpoints: str = DEFAULT_KEEP_CHECKPOINTS
    """What a finished pretraining keeps of its checkpoints: ``weights`` (a weights-only
    ``weights.pt``), ``last`` (the full resumable ``last.pt``), ``none``; never changes a figure."""
    bootstrap_resamples: int = 2000
    """Resamples of the test images behind each 95 % interval."""

    def segmenting(self) -> bool:
        return self.task == "segmentation"

    def pretrained_methods(self) -> list[str]:
        """Every method fine-tuned from a pretraining: each masker, and under segmentation with a
        fresh decoder its ``+fresh-decoder`` twin (pretrained decoder first, as the order of --decoders)."""
        if not self.segmenting():
            return list(self.maskers)
        return [m + ("" if d == "pretrained" else FRESH_DECODER_SUFFIX) for m in self.maskers for d in self.decoders]

    def methods(self) -> list[str]:
        return self.pretrained_methods() + ([SCRATCH] if self.scratch else []) + ([SCRATCH_FULL] if self.scratch_full else [])

    def pretrain_method(self, method: str) -> str:
        """The method whose pretraining ``method`` fine-tunes from (a fresh-decoder twin shares its base's)."""
        return method[: -len(FRESH_DECODER_SUFFIX)] if method.endswith(FRESH_DECODER_SUFFIX) else method

    def decoder_of(self, method: str) -> str:
        """The cell's ``--decoder``: only segmentation has one to choose (a scratch cell's is always
        fresh); other tasks keep the setting's default, so their cell fingerprints stay those of
        cells written before the setting existed."""
        if not self.segmenting():
            return FinetuneConfig.decoder
        return "fresh" if method.endswith(FRESH_DECODER_SUFFIX) or method in BASELINES else "pretrained"

    def masker_of(self, method: str) -> str:
        """The masker plugin a method pretrains with (an alias's target, else the name itself)."""
        base = self.pretrain_method(method)
        return self.masker_aliases.get(base, base)

    def resolved_protocol(self, plugins=None) -> str:
        """``protocol``, else compare's own default for the task, else the task's (as finetune's)."""
        if self.protocol is not None:
            return self.protocol
        return COMPARE_DEFAULT_PROTOCOLS.get(self.task) or FinetuneConfig(task=self.task).resolved_protocol(plugins)

    def task_plugin(self, plugins=None):
        """The :class:`~sslkit.finetuning.tasks.Task` this comparison fine-tunes for."""
        from sslkit.finetuning.tasks import get_task

        return get_task(self.task, plugins)

    def references(self) -> tuple[str, ...]:
        """The methods every other is measured against, when present: the baselines, the simple
        maskers, and each method's fresh-decoder twin (so the pretrained decoder's worth is tested)."""
        return default_references(self.pretrained_methods())

    def fold_numbers(self) -> list[int]:
        return list(range(self.folds)) if self.folds > 1 else [0]

    def resolved_pretrain_splits(self) -> str | None:
        """What pretraining sees: the setting, or ``all`` under folds, or None (pretraining's default)."""
        if self.pretrain_splits is not None:
            return self.pretrain_splits
        return "all" if self.folds > 1 else None

    def budgets(self) -> list[LabelBudget]:
        """The label budgets, parsed, in the order given."""
        values = self.labels if isinstance(self.labels, (list, tuple)) else [self.labels]
        return [parse_label_budget(v) for v in values]

    def runs_path(self) -> Path:
        return Path(self.runs_dir).expanduser() if self.runs_dir else Path(self.out).expanduser() / "runs"


def budget_key(budget: LabelBudget) -> str:
    """``100``, ``0.1`` or ``all``: how a label budget is named in folders, tables and files."""
    return "all" if budget is None else str(budget)


@dataclass
class Cell:
    method: str
    seed: int
    labels: LabelBudget = 100
    fold: int = 0

    def method_directory(self, config: CompareConfig) -> Path:
        """Shared by every label budget of this method and seed."""
        return config.runs_path() / self.method / f"seed{self.seed}"

    def pretrain_directory(self, config: CompareConfig) -> Path:
        """Where this cell's pretraining lives (``pretrain/`` and ``pretrain.json``): its method's
        directory, or the base method's for a fresh-decoder twin."""
        return config.runs_path() / config.pretrain_method(self.method) / f"seed{self.seed}"

    def directory(self, config: CompareConfig) -> Path:
        budget = self.method_directory(config) / f"labels{budget_key(self.labels)}"
        return budget / f"fold{self.fold}" if config.folds > 1 else budget


def pretrain_settings(config: CompareConfig, cell: Cell, *, quiet: bool) -> dict[str, Any]:
    """The :class:`~sslkit.pretraining.config.PretrainConfig` settings compare gives ``cell``'s
    pretraining itself; ``--pretrain-opt`` may set any other (these keys refuse it)."""
    splits = config.resolved_pretrain_splits()
    return {
        "masker": config.masker_of(cell.method),
        "masker_options": dict(config.masker_options.get(config.pretrain_method(cell.method), {})),
        "backbone": config.backbone,
        "backbone_options": dict(config.backbone_options),
        "data": config.data,
        "data_options": dict(config.data_options),
        "image_size": config.image_size,
        "in_chans": config.in_chans,
        "split_seed": config.split_seed,
        "epochs": config.pretrain_epochs,
        "batch_size": config.pretrain_batch_size,
        "seed": cell.seed,
        "out": str(cell.pretrain_directory(config) / "pretrain"),
        "device": config.device,
        "workers": config.workers,
        "quiet": quiet,
        "pretrain_splits": splits if splits is not None else PretrainConfig.pretrain_splits,
    }


#: The pretraining settings compare owns: the keys :func:`pretrain_settings` sets, read from it.
_OWNED_PRETRAIN_KEYS = tuple(pretrain_settings(CompareConfig(), Cell("", 0), quiet=True))


def validate(config: CompareConfig, plugins) -> None:
    from sslkit.finetuning.protocols import get_protocol

    if not config.maskers and not config.scratch_full:  # one baseline alone compares nothing
        raise UserError("nothing to compare: --maskers names no masker, so only the scratch baseline would run; "
                        "name at least one (see 'sslkit list maskers')")
    if len(set(config.maskers)) != len(config.maskers):
        raise UserError(f"--maskers lists a method twice: {','.join(config.maskers)}")
    for baseline in BASELINES:
        if baseline in config.maskers:
            raise UserError(f"'{baseline}' is a no-pretraining baseline compare adds itself "
                            f"(--scratch, --scratch-full); leave it out of --maskers")
    for alias, target in config.masker_aliases.items():
        if alias not in config.maskers:
            raise UserError(f"alias '{alias}' is not in --maskers ({','.join(config.maskers)})")
        if alias in plugins.maskers.names() and alias != target:
            raise UserError(f"alias '{alias}' is already the name of a masker; choose another name for {target}")
    for name in config.maskers:
        plugins.maskers.get(config.masker_of(name))  # unknown name -> "did you mean"
    for name in config.masker_options:
        if name not in config.maskers:
            raise UserError(f"--masker-opt names masker '{name}', which is not in --maskers ({','.join(config.maskers)})")
    plugins.backbones.get(config.backbone)
    check_backbone_options(config.backbone_options)
    from sslkit.finetuning.tasks import check_protocol

    task = config.task_plugin(plugins)
    config.protocol = config.resolved_protocol(plugins)
    get_protocol(config.protocol)
    check_protocol(task, config.protocol)
    if not config.decoders or any(d not in DECODER_CHOICES for d in config.decoders) \
            or len(set(config.decoders)) != len(config.decoders):
        raise UserError(f"--decoders must list some of {', '.join(DECODER_CHOICES)} once each, got "
                        f"{','.join(config.decoders)}")
    if not config.seeds or len(set(config.seeds)) != len(config.seeds):
        raise UserError("--seeds must give at least one seed and no seed twice")
    for seed in config.seeds:
        check_seed(seed, "--seeds")
    check_seed(config.split_seed, "--split-seed")
    if config.pretrain_epochs < 1:
        raise UserError(f"--pretrain-epochs must be at least 1, got {config.pretrain_epochs}")
    check_threads(config.threads)
    if config.finetune_epochs is not None and config.finetune_epochs < 1:
        raise UserError(f"--finetune-epochs must be at least 1, got {config.finetune_epochs}")
    if config.scratch_full_epochs is not None and config.scratch_full_epochs < 1:
        raise UserError(f"--scratch-full-epochs must be at least 1, got {config.scratch_full_epochs}")
    if int(config.jobs) < 1:
        raise UserError(f"--jobs must be at least 1, got {config.jobs}")
    if int(config.folds) < 1 or int(config.folds) == 2:
        raise UserError(f"--folds must be 1 (one split) or at least 3 (test, validation and training folds), "
                        f"got {config.folds}")
    if config.pretrain_splits is not None:
        from sslkit.pretraining.config import parse_splits

        parse_splits(config.pretrain_splits)
    if config.keep_checkpoints not in KEEP_CHECKPOINT_CHOICES:
        raise UserError(f"--keep-checkpoints must be one of {', '.join(KEEP_CHECKPOINT_CHOICES)}, "
                        f"got '{config.keep_checkpoints}'")
    if config.bootstrap_resamples < 100:
        raise UserError(f"--bootstrap-resamples must be at least 100, got {config.bootstrap_resamples}")
    clash = sorted(set(config.pretrain_options) & set(_OWNED_PRETRAIN_KEYS))
    if clash:
        raise UserError(f"--pretrain-opt {clash[0]} is set by compare itself; use its own option instead")
    if config.scratch_full and config.protocol == SCRATCH_FULL_PROTOCOL and config.scratch_full_epochs == config.finetune_epochs:
        raise UserError(f"--scratch-full would repeat 'scratch': the shared protocol is already '{SCRATCH_FULL_PROTOCOL}' "
                        "with the same epochs; leave --scratch-full out (or give it other --scratch-full-epochs)")
    if config.segmenting() and config.pretrain_options.get("decoder_skips", SEGMENTATION_DECODER_SKIPS) != SEGMENTATION_DECODER_SKIPS:
        raise UserError("compare --task segmentation pretrains U-Net decoders (every skip), the architecture its "
                        "scratch cells get, so --pretrain-opt decoder_skips cannot change it; compare other decoders "
                        "with sslkit finetune --task segmentation on runs pretrained with --decoder-skips")
    budgets = config.budgets()
    if not budgets:
        raise UserError("--labels must give at least one label budget")
    keys = [budget_key(b) for b in budgets]
    if len(set(keys)) != len(keys):
        raise UserError(f"--labels lists a budget twice: {','.join(keys)}")
    from sslkit.finetuning.protocols import check_trainable  # before any pretraining, not after it

    for protocol in [config.protocol] + ([SCRATCH_FULL_PROTOCOL] if config.scratch_full else []):
        check_trainable(protocol, config.finetune_batch_size, budgets, "--finetune-batch-size", task=task.name)
    config.labels = budgets if len(budgets) > 1 else budgets[0]


def prepare_splits(config: CompareConfig, plugins) -> None:
    """Before any cell runs: decide the paper splits and make the fold plan, opening the data at
    most once for both."""
    opened: list = []

    def data():
        if not opened:
            from sslkit.data import open_dataset

            opened.append(open_dataset(config.data, plugins=plugins, seed=config.split_seed,
                                       options=dict(config.data_options) or None))
        return opened[0]

    resolve_paper_splits(config, data)
    check_fold_plan(config, data)


def check_fold_plan(config: CompareConfig, data) -> None:
    """Make the fold plan once before any cell runs, so data that cannot take ``--folds K`` (a rare
    class, groups too coarse) is one sentence at the start, not after the pretrainings.
    ``data()`` gives the opened data set."""
    if config.folds <= 1:
        return
    from sslkit.evaluation.folds import plan_for

    plan_for(data(), config.folds, paper=bool(config.paper_splits), split_seed=config.split_seed)


def resolve_paper_splits(config: CompareConfig, data) -> None:
    """Decide once whether every cell uses the paper's splits, so ``scratch-full`` (another
    protocol) is scored on the very test images the other methods are. ``data()`` gives the
    opened data set (only called when the answer depends on it)."""
    if config.paper_splits is not None:
        return
    from sslkit.finetuning.protocols import get_protocol

    if not get_protocol(config.resolved_protocol()).paper_splits:
        config.paper_splits = False
        return
    from sslkit.data.splits import paper_split_problem

    config.paper_splits = paper_split_problem(data().records()) is None
