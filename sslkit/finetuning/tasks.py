"""The downstream-task seam: what a fine-tuning predicts, how it learns it, and how it is scored.

A *task* names its target (``label`` for classification, ``lesion`` for segmentation), builds the
model on top of the encoder (a head, or a decoder), gives the loss, predicts a split in one eval
pass, turns predictions into figures, names the figure that picks the best epoch, and writes and
reads back what a run leaves. A *protocol* (:mod:`sslkit.finetuning.protocols`) is what trains:
the frozen encoder or the whole network. ``run_finetuning`` and ``sslkit compare`` only talk to
this interface, so a new task is one module with a :class:`Task` subclass plus its registration::

    @sslkit.hookimpl
    def register_tasks(register):
        register("my-task", "my_package.my_task:MyTask", "what it predicts")

Tasks are found by name in the ``tasks`` registry (``--task NAME``, ``sslkit list tasks``), like
maskers; the built-ins, ``classification`` and ``segmentation``, are registered the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from sslkit.choices import DEFAULT_TASK
from sslkit.evaluation.statistics import PairedScores

class Task(ABC):
    """A downstream task (see the module doc). Subclasses set the class attributes and the methods."""

    name: ClassVar[str]
    target: ClassVar[str]
    """The batch key the task learns: ``label`` or ``lesion``."""
    metrics: ClassVar[tuple[str, ...]]
    """Headline figures, in table order; each gets a paired interval in ``compare``."""
    extra_metrics: ClassVar[tuple[str, ...]] = ()
    """Further figures in the tables (no paired interval)."""
    lower_is_better: ClassVar[frozenset[str]] = frozenset()
    """Figures where smaller is better (a distance): verdicts flip for them."""
    selection_metric: ClassVar[str]
    """The validation figure ``--select best-val`` maximises."""
    protocols: ClassVar[tuple[str, ...]]
    """The protocols this task can be trained under; the first is its default."""
    model_file: ClassVar[str]
    """The JSON file that marks a saved model of this task (``classifier.json``, ``segmenter.json``)."""
    model_dir: ClassVar[str]
    """The run directory's folder holding the saved model (``classifier``, ``segmenter``)."""
    validate_every_epoch: ClassVar[bool] = True
    """False: with ``--select last`` no validation runs during training (the run's validation
    figures come from its one pass after training), for a task whose validation pass costs as much
    as its training epoch (segmentation's HD95)."""

    # ------------------------------------------------------------------ data

    def check_data(self, dataset: Any) -> None:
        """One sentence when ``dataset`` lacks what the task needs (e.g. lesion masks)."""

    def check_records(self, records: Any, dataset_name: str) -> None:
        """One sentence when the drawn labelled set cannot train the task."""

    # ------------------------------------------------------------------ model and training

    @abstractmethod
    def build_model(self, encoder: Any, config: Any, records: Any, *, run_config: dict[str, Any],
                    plugins: Any = None) -> Any:
        """The trainable model on ``encoder`` (``config.protocol`` says whether the encoder is frozen)."""

    @abstractmethod
    def loss(self, outputs: Any, batch: dict[str, Any], state: dict[str, Any]) -> Any:
        """The batch's mean training loss (``state``: what :meth:`prepare_training` returned)."""

    def prepare_training(self, model: Any, records: Any, config: Any, device: Any) -> dict[str, Any]:
        """Settings the loss needs, computed once from the labelled set (class weights, ...)."""
        return {}

    def train(self, model: Any, data: Any, records: Any, config: Any, device: Any, recorder: Any,
              state: dict[str, Any]) -> int:
        """Train ``model`` on the labelled records and leave it at the selected epoch; returns that
        epoch. The default: augmented batches through :func:`~sslkit.finetuning.loop.train_batches`,
        validated with :meth:`predict` and :meth:`score` (``data`` gives the loaders)."""
        from sslkit.finetuning.loop import train_batches

        # the run scores the validation split once after training; per epoch only when the history
        # or --select best-val asks for it
        per_epoch = bool(records.val) and (self.validate_every_epoch or config.select == "best-val")
        val_loader = data.eval_loader(records.val) if per_epoch else None

        def validate():
            if val_loader is None:
                return None
            return self.score(self.predict(model, val_loader, records.val, records, device), records.class_names)

        selected_state, selected = train_batches(
            model, data.train_loader(records.labelled), config, device, recorder,
            loss=lambda outputs, batch: self.loss(outputs, batch, state), target=self.target,
            validate=validate, selection_metric=self.selection_metric)
        model.load_state_dict(selected_state)
        return selected

    # ------------------------------------------------------------------ predictions and figures

    @abstractmethod
    def predict(self, model: Any, loader: Any, recs: list, records: Any, device: Any) -> dict[str, Any]:
        """One eval-mode pass over ``loader`` (of ``recs``): ``{"ids": [...], ...}``, JSON-shaped."""

    @abstractmethod
    def score(self, predictions: dict[str, Any], class_names: list[str]) -> Any:
        """:class:`~sslkit.evaluation.metrics.Metrics` of ``predictions``."""

    def operating_point(self, test: dict[str, Any], val: dict[str, Any] | None, class_names: list[str],
                        config: Any) -> dict[str, Any] | None:
        """A threshold chosen on validation and what it gives on test (None when the task has none)."""
        return None

    def pooled_metrics(self, pooled: dict[str, Any], class_names: list[str], positive: str | None) -> Any:
        """The figures over every fold's test predictions pooled (default: :meth:`score`)."""
        return self.score(pooled, class_names)

    @abstractmethod
    def paired(self, predictions: dict[str, Any]) -> PairedScores:
        """``predictions`` (as :meth:`predict` returns them) for the paired bootstrap."""

    @abstractmethod
    def pool_columns(self) -> tuple[str, ...]:
        """The per-image keys of :meth:`predict`'s dict that folds concatenate (besides ids)."""

    # ------------------------------------------------------------------ files

    @abstractmethod
    def save_model(self, model: Any, directory: Path, meta: dict[str, Any]) -> Path:
        """Write the model so :meth:`load_model` (and ``sslkit evaluate``) can rebuild it."""

    @abstractmethod
    def load_model(self, directory: Path, plugins: Any = None) -> tuple[Any, dict[str, Any]]:
        """(model in eval mode, its saved settings) from what :meth:`save_model` wrote."""

    @abstractmethod
    def write_predictions(self, out: Path, predictions: dict[str, Any], records: Any, *,
                          writer: Any = None) -> list[Path]:
        """The run's per-image outputs (``predictions.csv`` and, for masks, images; ``writer``: the
        run's TensorBoard writer or None); returns the paths."""

    def prediction_rows(self, predictions: dict[str, Any], class_names: list[str]) -> list[dict[str, Any]]:
        """One row per image for ``compare``'s predictions.csv (besides method, labels, seed)."""
        return [{"image": image} for image in predictions["ids"]]


def get_task(name: str | None, plugins: Any = None) -> Task:
    """The task registered as ``name`` (default :data:`DEFAULT_TASK`); unknown names are one
    sentence listing the known ones and the closest."""
    from sslkit.errors import UserError
    from sslkit.plugins import plugins_or_default

    task = plugins_or_default(plugins).tasks.create(name or DEFAULT_TASK)
    if not isinstance(task, Task):
        raise UserError(f"task '{name}' did not build a sslkit.finetuning.tasks.Task (got {type(task).__name__})")
    return task


def check_protocol(task: Task, protocol: str) -> None:
    """A protocol the task cannot be trained under is one sentence."""
    from sslkit.errors import UserError

    if protocol not in task.protocols:
        raise UserError(f"--protocol {protocol} does not apply to --task {task.name}; "
                        f"use one of {', '.join(task.protocols)}")
