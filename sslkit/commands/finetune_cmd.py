"""`sslkit finetune`: train a downstream model (classifier, segmenter) on few labels on top of an encoder, and score it."""

from __future__ import annotations

import time

import click

from sslkit.choices import DECODER_CHOICES, DECODER_HELP, TASK_HELP
from sslkit.commands.shared_options import config_settings, finetune_options
from sslkit.defaults import BACKBONE, IMAGE_SIZE
from sslkit.finetuning.config import FinetuneConfig
from sslkit.finetuning.protocols import DEFAULT_EPOCHS_HELP, FOLDS_HELP, LR_SCHEDULES, PROTOCOL_HELP, PROTOCOL_NAMES

#: Every default is FinetuneConfig's, so the command and ``sslkit.finetune()`` cannot drift apart.
_D = FinetuneConfig()
#: parameter name -> FinetuneConfig field, where they differ
_RENAMES = {"backbone_opts": "backbone_options", "data_opts": "data_options"}
#: parameters that are no FinetuneConfig setting
_NOT_CONFIG = ("seeds",)


@click.command("finetune")
@click.option("--encoder", "encoder", type=click.Path(), default=_D.encoder,
              help="Pretraining run dir, exported encoder dir, or its encoder.json.")
@click.option("--from-scratch", is_flag=True, default=_D.from_scratch,
              help="Same network with random weights: the baseline (backbone from --encoder's spec or --backbone).")
@click.option("--backbone", default=_D.backbone, help=f"With --from-scratch and no --encoder (default {BACKBONE}).")
@click.option("--backbone-opt", "backbone_opts", multiple=True, metavar="KEY=VALUE",
              help="Backbone option (repeatable).")
@click.option("--in-chans", type=int, default=_D.in_chans, help="With --backbone: input channels (default 1).")
@click.option("--data", default=_D.data, metavar="ADAPTER:LOCATION",
              help="Default: the pretraining run's data, else the embedded BUSI 64 px set.")
@click.option("--data-opt", "data_opts", multiple=True, metavar="KEY=VALUE",
              help="Dataset adapter option (repeatable); default: the pretraining run's, when --data is not given.")
@click.option("--task", default=_D.task, show_default=True, metavar="NAME", help=TASK_HELP)
@click.option("--protocol", type=click.Choice(PROTOCOL_NAMES), default=_D.protocol,
              help=PROTOCOL_HELP + " Default: the task's first (classification linear, segmentation full).")
@click.option("--labels", default=str(_D.labels), show_default=True, metavar="N|FRACTION|all",
              help="Labelled training images: a count (100), a fraction of the train split (0.1) or 'all'.")
@click.option("--batch-size", type=int, default=_D.batch_size, show_default=True)
@click.option("--lr", type=float, default=_D.lr, show_default=True, help="Adam learning rate of the head.")
@click.option("--weight-decay", type=float, default=_D.weight_decay, show_default=True)
@click.option("--image-size", type=int, default=_D.image_size,
              help=f"Default: the pretraining run's, else {IMAGE_SIZE}.")
@click.option("--split-seed", type=int, default=_D.split_seed,
              help="Seed of generated train/val/test splits; default: the pretraining run's, else 0.")
@click.option("--paper-splits/--no-paper-splits", default=_D.paper_splits,
              help="The authors' splits: every split pooled, classes balanced to the smallest, stratified "
                   "100 val and 100 test images, the rest train. Default: on for --protocol paper when the "
                   "data allows (enough images, no patient groups), else the dataset's own splits.")
@click.option("--lr-schedule", type=click.Choice(LR_SCHEDULES), default=_D.lr_schedule,
              help="paper: MultiStepLR x0.33 at 75 % and 87.5 % of the epochs. Default: paper for "
                   "--protocol paper, else none.")
@finetune_options(_D)
@click.option("--decoder", type=click.Choice(DECODER_CHOICES), default=_D.decoder, show_default=True,
              help=DECODER_HELP)
@click.option("--folds", type=int, default=_D.folds, show_default=True,
              help=FOLDS_HELP + " Writes OUT/foldF, OUT/oof_predictions.csv and OUT/oof_metrics.json.")
@click.option("--epochs", type=int, default=_D.epochs, help=DEFAULT_EPOCHS_HELP)
@click.option("--seed", type=int, default=_D.seed, show_default=True, help="Label draw, head init and shuffling.")
@click.option("--seeds", type=int, default=1, show_default=True,
              help="Run this many seeds (seed, seed+1, ...) into OUT/seedN and print mean ± std.")
@click.option("--out", type=click.Path(file_okay=False), default=_D.out,
              help="Run directory (default runs/finetune-PROTOCOL-TIME).")
@click.option("--quiet", is_flag=True, default=_D.quiet, help="No progress bar.")
@click.pass_context
def finetune_command(ctx: click.Context, seeds: int, **_: object) -> None:
    """Fine-tune on few labels: a classifier (accuracy, macro F1, AUROC, balanced accuracy) or a
    lesion segmenter (--task segmentation: Dice, IoU, HD95).

    \b
    Examples:
      sslkit finetune --encoder runs/dqn --protocol paper --labels 100
      sslkit finetune --encoder runs/dqn --from-scratch --protocol paper    # the baseline
      sslkit finetune --encoder runs/dqn --protocol full --labels 0.1 --seeds 3
      sslkit finetune --encoder runs/dqn --protocol paper --folds 5    # every image tested once
      sslkit finetune --task segmentation --encoder runs/dqn --labels 50   # pretrained encoder + decoder
      sslkit finetune --task segmentation --encoder runs/dqn --decoder fresh --protocol frozen
    """
    from sslkit.pretraining.launch import main_process_only

    if not main_process_only("finetune"):
        return

    from pathlib import Path

    from sslkit.console import make_console

    from sslkit.cli import load_plugins_for
    from sslkit.finetuning.run import run_seeds
    from sslkit.evaluation.reporting import aggregate, print_metrics, summary_table

    console = make_console()
    plugins = load_plugins_for(ctx)
    config = FinetuneConfig(**config_settings(ctx, FinetuneConfig, renames=_RENAMES, skip=_NOT_CONFIG))
    config.protocol = config.resolved_protocol(plugins)
    config.out = str(Path(config.out) if config.out else
                     Path("runs") / f"finetune-{config.protocol}-{time.strftime('%Y%m%d-%H%M%S')}")
    if config.folds != 1:
        _run_folds_command(console, config, seeds, plugins)
        return
    rows = []
    for result in run_seeds(config, seeds, plugins, log=lambda text: console.print(text, highlight=False)):
        run_seed = result.seed
        title = f"test ({result.metrics['test'].n_samples} images), seed {run_seed}, epoch {result.selected_epoch}"
        print_metrics(console, result.metrics["test"], title)
        if "val" in result.metrics:
            val = result.metrics["val"].scalars
            console.print("val: " + ", ".join(f"{k} {v:.3f}" for k, v in val.items()), highlight=False)
        if result.operating_point:
            point = result.operating_point
            console.print(f"{point['positive']} at {point['target_specificity']:.0%} validation specificity: "
                          f"sensitivity {point['sensitivity']:.3f}, specificity {point['specificity']:.3f} on test "
                          f"(threshold {point['threshold']:.3f})", highlight=False)
        for note in dict.fromkeys(result.notes):
            if note not in result.metrics["test"].notes:
                console.print(f"[yellow]note:[/yellow] {note}")
        timing = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
        console.print(f"saved to {result.out} ({timing}); re-score with: sslkit evaluate --model {result.out}",
                      highlight=False)
        rows.append({"method": str(config.protocol) + (" (scratch)" if config.from_scratch else ""), "seed": run_seed,
                     **result.metrics["test"].scalars})
    if seeds > 1:
        console.print(summary_table(aggregate(rows), title=f"test, mean ± std over {seeds} seeds"))


def _run_folds_command(console, config, seeds: int, plugins) -> None:
    """``--folds K``: every fold of every seed, the pooled out-of-fold figures per seed."""
    from sslkit.finetuning.run import run_seeds, validate
    from sslkit.finetuning.fold_runs import run_folds
    from sslkit.evaluation.reporting import aggregate, print_metrics, summary_table

    validate(config, plugins)
    protocol = config.protocol
    rows = []
    for result in run_seeds(config, seeds, plugins, log=lambda text: console.print(text, highlight=False),
                            runner=run_folds):
        print_metrics(console, result.metrics, f"out of fold ({result.metrics.n_samples} images, {config.folds} folds), "
                                               f"seed {result.seed}")
        extra = {k: v for k, v in result.metrics.scalars.items() if k in ("ece", "sensitivity_at_90_specificity",
                                                                          "specificity_at_threshold")}
        if extra:
            console.print(", ".join(f"{k} {v:.3f}" for k, v in extra.items()), highlight=False)
        for note in dict.fromkeys(n for r in result.folds for n in r.notes if not n.startswith("fold ")):
            console.print(f"[yellow]note:[/yellow] {note}")
        console.print(f"saved to {result.out} (oof_predictions.csv, oof_metrics.json, fold0..fold{config.folds - 1})",
                      highlight=False)
        rows.append({"method": protocol + (" (scratch)" if config.from_scratch else ""), "seed": result.seed,
                     **result.metrics.scalars})
    if seeds > 1:
        console.print(summary_table(aggregate(rows), title=f"out of fold, mean ± std over {seeds} seeds"))
