"""`sslkit finetune`: train a classifier on few labels on top of an encoder, and score it."""

from __future__ import annotations

import time

import click

PROTOCOL_HELP = (
    "linear: frozen encoder, linear head. paper: frozen encoder, the authors' conv+MLP head, "
    "weighted loss, 200 epochs. full: whole network, encoder at --encoder-lr-scale x --lr."
)


def finetune_options(function):
    """The options finetune shares with compare (one definition, one help text)."""
    options = [
        click.option("--protocol", type=click.Choice(["linear", "paper", "full"]), default="linear",
                     show_default=True, help=PROTOCOL_HELP),
        click.option("--labels", default="100", show_default=True, metavar="N|FRACTION|all",
                     help="Labelled training images: a count (100), a fraction of the train split (0.1) or 'all'."),
        click.option("--class-weights", type=click.Choice(["auto", "none"]), default="auto", show_default=True,
                     help="auto: loss weights 10*(1 - n_c/N) from the labelled counts (the paper's); none: unweighted."),
        click.option("--batch-size", type=int, default=32, show_default=True),
        click.option("--lr", type=float, default=1e-3, show_default=True, help="Adam learning rate of the head."),
        click.option("--weight-decay", type=float, default=0.0, show_default=True),
        click.option("--encoder-lr-scale", type=float, default=0.1, show_default=True,
                     help="full protocol: encoder learning rate = lr x this "
                          "(0 keeps its weights; BatchNorm statistics still adapt)."),
        click.option("--select", type=click.Choice(["last", "best-val"]), default="last", show_default=True,
                     help="Report the last epoch (the paper's) or the epoch with the best validation macro F1."),
        click.option("--image-size", type=int, default=None, help="Default: the pretraining run's, else 64."),
        click.option("--split-seed", type=int, default=None,
                     help="Seed of generated train/val/test splits; default: the pretraining run's, else 0."),
        click.option("--paper-splits/--no-paper-splits", default=None,
                     help="Cap val and test at 100 images each (the paper's sizes). "
                          "Default: on for --protocol paper when the dataset has no official splits."),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True),
        click.option("--workers", type=int, default=0, show_default=True, help="DataLoader worker processes."),
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
@click.option("--epochs", type=int, default=None, help="Default per protocol: linear 100, paper 200, full 50.")
@click.option("--seed", type=int, default=0, show_default=True, help="Label draw, head init and shuffling.")
@click.option("--seeds", type=int, default=1, show_default=True,
              help="Run this many seeds (seed, seed+1, ...) into OUT/seedN and print mean ± std.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Run directory (default runs/finetune-PROTOCOL-TIME).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def finetune_command(ctx: click.Context, encoder, from_scratch, backbone, backbone_opts, in_chans, data, data_opts, protocol,
                     labels, class_weights, batch_size, lr, weight_decay, encoder_lr_scale, select, image_size,
                     split_seed, paper_splits, device, workers, epochs, seed, seeds, out, quiet) -> None:
    """Fine-tune a classifier on few labels and report accuracy, macro F1, AUROC, balanced accuracy.

    \b
    Examples:
      sslkit finetune --encoder runs/dqn --protocol paper --labels 100
      sslkit finetune --encoder runs/dqn --from-scratch --protocol paper    # the baseline
      sslkit finetune --encoder runs/dqn --protocol full --labels 0.1 --seeds 3
    """
    from sslkit.engine.distributed import main_process_only

    if not main_process_only("finetune"):
        return

    from pathlib import Path

    from rich.console import Console

    from sslkit.cli import load_plugins_for
    from sslkit.engine.finetune import FinetuneConfig, run_finetuning
    from sslkit.errors import UserError
    from sslkit.evaluation.reporting import aggregate, print_metrics, summary_table
    from sslkit.masking import parse_options

    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}")
    console = Console()
    plugins = load_plugins_for(ctx)
    base = Path(out) if out else Path("runs") / f"finetune-{protocol}-{time.strftime('%Y%m%d-%H%M%S')}"
    rows = []
    for offset in range(seeds):
        run_seed = seed + offset
        config = FinetuneConfig(
            encoder=encoder, from_scratch=from_scratch, backbone=backbone,
            backbone_options=parse_options(backbone_opts, "--backbone-opt"), in_chans=in_chans, data=data,
            data_options=parse_options(data_opts, "--data-opt"),
            protocol=protocol, labels=labels, epochs=epochs, batch_size=batch_size, lr=lr,
            weight_decay=weight_decay, encoder_lr_scale=encoder_lr_scale, class_weights=class_weights,
            select=select, seed=run_seed, split_seed=split_seed, image_size=image_size,
            paper_split_sizes=paper_splits, workers=workers, device=device,
            out=str(base / f"seed{run_seed}" if seeds > 1 else base), quiet=quiet,
        )
        result = run_finetuning(config, plugins, log=lambda text: console.print(text, highlight=False))
        title = f"test ({result.metrics['test'].n_samples} images), seed {run_seed}, epoch {result.selected_epoch}"
        print_metrics(console, result.metrics["test"], title)
        if "val" in result.metrics:
            val = result.metrics["val"].scalars
            console.print("val: " + ", ".join(f"{k} {v:.3f}" for k, v in val.items()), highlight=False)
        for note in dict.fromkeys(result.notes):
            if note not in result.metrics["test"].notes:
                console.print(f"[yellow]note:[/yellow] {note}")
        timing = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
        console.print(f"saved to {result.out} ({timing}); re-score with: sslkit evaluate --classifier {result.out}",
                      highlight=False)
        rows.append({"method": protocol + (" (scratch)" if from_scratch else ""), "seed": run_seed,
                     **result.metrics["test"].scalars})
    if seeds > 1:
        console.print(summary_table(aggregate(rows), title=f"test, mean ± std over {seeds} seeds"))
