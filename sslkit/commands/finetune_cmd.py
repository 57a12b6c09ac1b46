"""`sslkit finetune`: train a downstream model (classifier, segmenter) on few labels on top of an encoder, and score it."""

from __future__ import annotations

import time

import click

from sslkit.choices import DECODER_CHOICES, DECODER_HELP, DEFAULT_TASK, DEVICE_CHOICES, TASK_HELP
from sslkit.runtime import THREADS_HELP
from sslkit.finetuning.protocols import (
    CLASS_WEIGHT_CHOICES,
    DEFAULT_EPOCHS_HELP,
    FOLDS_HELP,
    LR_SCHEDULES,
    POSITIVE_CLASS_HELP,
    PROTOCOL_HELP,
    PROTOCOL_NAMES,
    SELECT_CHOICES,
)

def finetune_options(function):
    """The options finetune shares with compare (one definition, one help text)."""
    options = [
        click.option("--task", default=DEFAULT_TASK, show_default=True, metavar="NAME", help=TASK_HELP),
        click.option("--protocol", type=click.Choice(PROTOCOL_NAMES), default=None,
                     help=PROTOCOL_HELP + " Default: the task's first (classification linear, segmentation full)."),
        click.option("--labels", default="100", show_default=True, metavar="N|FRACTION|all",
                     help="Labelled training images: a count (100), a fraction of the train split (0.1) or 'all'."),
        click.option("--class-weights", type=click.Choice(CLASS_WEIGHT_CHOICES), default="auto", show_default=True,
                     help="auto: loss weights 10*(1 - n_c/N) from the labelled counts (the paper's); none: unweighted."),
        click.option("--batch-size", type=int, default=32, show_default=True),
        click.option("--lr", type=float, default=1e-3, show_default=True, help="Adam learning rate of the head."),
        click.option("--weight-decay", type=float, default=0.0, show_default=True),
        click.option("--encoder-lr-scale", type=float, default=0.1, show_default=True,
                     help="full protocol: encoder learning rate = lr x this "
                          "(0 keeps its weights; BatchNorm statistics still adapt)."),
        click.option("--select", type=click.Choice(SELECT_CHOICES), default="last", show_default=True,
                     help="Report the last epoch (the paper's) or the epoch with the best validation figure "
                          "(classification: macro F1; segmentation: Dice)."),
        click.option("--image-size", type=int, default=None, help="Default: the pretraining run's, else 64."),
        click.option("--split-seed", type=int, default=None,
                     help="Seed of generated train/val/test splits; default: the pretraining run's, else 0."),
        click.option("--paper-splits/--no-paper-splits", default=None,
                     help="The authors' splits: every split pooled, classes balanced to the smallest, stratified "
                          "100 val and 100 test images, the rest train. Default: on for --protocol paper when the "
                          "data allows (enough images, no patient groups), else the dataset's own splits."),
        click.option("--lr-schedule", type=click.Choice(LR_SCHEDULES), default=None,
                     help="paper: MultiStepLR x0.33 at 75 % and 87.5 % of the epochs. Default: paper for "
                          "--protocol paper, else none."),
        click.option("--standardize-features/--no-standardize-features", default=True, show_default=True,
                     help="Frozen protocols: standardise the head's input per channel with the labelled training "
                          "features' mean and std, so a random encoder's feature scale cannot collapse the head."),
        click.option("--device", type=click.Choice(DEVICE_CHOICES), default="auto", show_default=True),
        click.option("--workers", type=int, default=0, show_default=True, help="DataLoader worker processes."),
        click.option("--threads", type=int, default=0, show_default=True, help=THREADS_HELP),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@click.command("finetune")
@click.option("--encoder", "encoder", type=click.Path(), default=None,
              help="Pretraining run dir, exported encoder dir, or its encoder.json.")
@click.option("--from-scratch", is_flag=True,
              help="Same network with random weights: the baseline (backbone from --encoder's spec or --backbone).")
@click.option("--backbone", default=None, help="With --from-scratch and no --encoder (default resnet18).")
@click.option("--backbone-opt", "backbone_opts", multiple=True, metavar="KEY=VALUE", help="Backbone option (repeatable).")
@click.option("--in-chans", type=int, default=None, help="With --backbone: input channels (default 1).")
@click.option("--data", default=None, metavar="ADAPTER:LOCATION",
              help="Default: the pretraining run's data, else the embedded BUSI 64 px set.")
@click.option("--data-opt", "data_opts", multiple=True, metavar="KEY=VALUE",
              help="Dataset adapter option (repeatable); default: the pretraining run's, when --data is not given.")
@finetune_options
@click.option("--decoder", type=click.Choice(DECODER_CHOICES), default="pretrained", show_default=True,
              help=DECODER_HELP)
@click.option("--folds", type=int, default=1, show_default=True,
              help=FOLDS_HELP + " Writes OUT/foldF, OUT/oof_predictions.csv and OUT/oof_metrics.json.")
@click.option("--positive-class", default=None, metavar="NAME", help=POSITIVE_CLASS_HELP)
@click.option("--epochs", type=int, default=None, help=DEFAULT_EPOCHS_HELP)
@click.option("--seed", type=int, default=0, show_default=True, help="Label draw, head init and shuffling.")
@click.option("--seeds", type=int, default=1, show_default=True,
              help="Run this many seeds (seed, seed+1, ...) into OUT/seedN and print mean ± std.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Run directory (default runs/finetune-PROTOCOL-TIME).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def finetune_command(ctx: click.Context, encoder, from_scratch, backbone, backbone_opts, in_chans, data, data_opts, task,
                     protocol, labels, class_weights, batch_size, lr, weight_decay, encoder_lr_scale, select, image_size,
                     split_seed, paper_splits, lr_schedule, standardize_features, device, workers, threads, decoder,
                     folds, positive_class, epochs, seed, seeds, out, quiet) -> None:
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
    from sslkit.finetuning.run import FinetuneConfig, run_seeds
    from sslkit.evaluation.reporting import aggregate, print_metrics, summary_table
    from sslkit.options import parse_options

    console = make_console()
    plugins = load_plugins_for(ctx)
    base = Path(out) if out else Path("runs") / f"finetune-{protocol or task}-{time.strftime('%Y%m%d-%H%M%S')}"
    config = FinetuneConfig(
        encoder=encoder, from_scratch=from_scratch, backbone=backbone,
        backbone_options=parse_options(backbone_opts, "--backbone-opt"), in_chans=in_chans, data=data,
        data_options=parse_options(data_opts, "--data-opt"),
        task=task, protocol=protocol, decoder=decoder, labels=labels, epochs=epochs, batch_size=batch_size, lr=lr,
        weight_decay=weight_decay, encoder_lr_scale=encoder_lr_scale, class_weights=class_weights,
        select=select, seed=seed, split_seed=split_seed, image_size=image_size,
        paper_splits=paper_splits, lr_schedule=lr_schedule, standardize_features=standardize_features,
        workers=workers, device=device, threads=threads, out=str(base), quiet=quiet, folds=folds,
        positive_class=positive_class,
    )
    if folds != 1:
        _run_folds_command(console, config, seeds, plugins, from_scratch)
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
        rows.append({"method": str(config.protocol) + (" (scratch)" if from_scratch else ""), "seed": run_seed,
                     **result.metrics["test"].scalars})
    if seeds > 1:
        console.print(summary_table(aggregate(rows), title=f"test, mean ± std over {seeds} seeds"))


def _run_folds_command(console, config, seeds: int, plugins, from_scratch: bool) -> None:
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
        rows.append({"method": protocol + (" (scratch)" if from_scratch else ""), "seed": result.seed,
                     **result.metrics.scalars})
    if seeds > 1:
        console.print(summary_table(aggregate(rows), title=f"out of fold, mean ± std over {seeds} seeds"))
