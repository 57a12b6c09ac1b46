"""`sslkit compare`: pretrain each masker per seed (plus scratch), fine-tune, score, tabulate."""

from __future__ import annotations

import click


def _masker_options(pairs: tuple[str, ...], maskers: list[str]) -> dict[str, dict]:
    """``dqn:explore=0.2`` -> {"dqn": {"explore": 0.2}}; the masker prefix is required."""
    from sslkit.errors import UserError
    from sslkit.masking import parse_options

    out: dict[str, dict] = {}
    for pair in pairs:
        name, sep, option = pair.partition(":")
        if not sep or "=" not in option:
            raise UserError(f"--masker-opt '{pair}' is not of the form MASKER:KEY=VALUE (e.g. dqn:block=2)")
        out.setdefault(name.strip(), {}).update(parse_options((option,), "--masker-opt"))
    return out


def _seeds(text: str) -> list[int]:
    """``3`` -> [0, 1, 2]; ``0,4,7`` -> those seeds."""
    from sslkit.errors import UserError

    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--seeds must be a count (3) or a list (0,4,7), got '{text}'") from None
    if "," not in text:
        if not values or values[0] < 1:
            raise UserError(f"--seeds must be at least 1, got '{text}'")
        return list(range(values[0]))
    return values


@click.command("compare")
@click.option("--maskers", default="random,dqn", show_default=True, help="Comma-separated maskers to compare.")
@click.option("--masker-opt", "masker_opts", multiple=True, metavar="MASKER:KEY=VALUE",
              help="An option of one masker (repeatable), e.g. dqn:block=2.")
@click.option("--scratch/--no-scratch", default=True, show_default=True,
              help="Add the baseline: the same network with random weights, fine-tuned the same way.")
@click.option("--data", default=None, metavar="ADAPTER:LOCATION", help="Default: the embedded BUSI 64 px set.")
@click.option("--data-opt", "data_opts", multiple=True, metavar="KEY=VALUE",
              help="Dataset adapter option (repeatable), used by pretraining and fine-tuning alike.")
@click.option("--seeds", default="3", show_default=True, metavar="N|S1,S2,...",
              help="How many seeds (0..N-1) or which ones; each seeds pretraining and fine-tuning.")
@click.option("--labels", default="100", show_default=True, metavar="N|FRACTION|all",
              help="Labelled training images per fine-tuning run.")
@click.option("--protocol", type=click.Choice(["linear", "paper", "full"]), default="paper", show_default=True,
              help="Fine-tuning protocol shared by every cell (see 'sslkit finetune --help').")
@click.option("--backbone", default="resnet18", show_default=True)
@click.option("--backbone-opt", "backbone_opts", multiple=True, metavar="KEY=VALUE")
@click.option("--image-size", type=int, default=64, show_default=True)
@click.option("--in-chans", type=int, default=1, show_default=True)
@click.option("--split-seed", type=int, default=0, show_default=True,
              help="Seed of generated train/val/test splits (the same for every cell).")
@click.option("--pretrain-epochs", type=int, default=10, show_default=True)
@click.option("--pretrain-batch-size", type=int, default=32, show_default=True)
@click.option("--pretrain-opt", "pretrain_opts", multiple=True, metavar="KEY=VALUE",
              help="Any other pretraining setting for every masker (repeatable), e.g. lr=0.001, loss=full.")
@click.option("--finetune-epochs", type=int, default=None, help="Default: the protocol's (paper 200).")
@click.option("--finetune-batch-size", type=int, default=32, show_default=True)
@click.option("--finetune-lr", type=float, default=1e-3, show_default=True)
@click.option("--class-weights", type=click.Choice(["auto", "none"]), default="auto", show_default=True)
@click.option("--encoder-lr-scale", type=float, default=0.1, show_default=True, help="full protocol only.")
@click.option("--select", type=click.Choice(["last", "best-val"]), default="last", show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True)
@click.option("--workers", type=int, default=0, show_default=True)
@click.option("--threads", type=int, default=None,
              help="torch CPU threads (default: torch's choice); 1 is often fastest on a busy shared machine.")
@click.option("--out", type=click.Path(file_okay=False), default="compare", show_default=True,
              help="Where results.md, results.csv and results.png go.")
@click.option("--runs-dir", type=click.Path(file_okay=False), default=None,
              help="Where the cells' run directories (checkpoints) go; default OUT/runs.")
@click.option("--quiet", is_flag=True, help="Only the cell lines and the table, no progress bars.")
@click.pass_context
def compare_command(ctx: click.Context, maskers, masker_opts, scratch, data, data_opts, seeds, labels, protocol, backbone,
                    backbone_opts, image_size, in_chans, split_seed, pretrain_epochs, pretrain_batch_size,
                    pretrain_opts, finetune_epochs, finetune_batch_size, finetune_lr, class_weights,
                    encoder_lr_scale, select, device, workers, threads, out, runs_dir, quiet) -> None:
    """Compare maskers (and the from-scratch baseline) under one fine-tuning protocol.

    Every masker is pretrained once per seed, then every encoder is fine-tuned and scored on the
    test split; the table shows mean ± std over seeds. Rerunning the same command reuses the
    finished cells, so an interrupted comparison continues where it stopped.

    \b
    Example (18 minutes on a shared 2-core CPU, docs/results/results.md):
      sslkit compare --maskers random,dqn --data npz:../shared/data/busi/busi_64.npz \\
        --seeds 2 --labels 100 --protocol paper --backbone resnet18 --pretrain-epochs 15 \\
        --threads 1 --out docs/results --runs-dir /tmp/sslkit-compare-runs
    """
    from sslkit.engine.distributed import main_process_only

    if not main_process_only("compare"):
        return

    import shlex
    import sys

    from rich.console import Console

    from sslkit.cli import load_plugins_for
    from sslkit.engine.compare import CompareConfig, run_compare
    from sslkit.evaluation.reporting import summary_table
    from sslkit.masking import parse_options

    console = Console()
    names = [m.strip() for m in maskers.split(",") if m.strip()]
    config = CompareConfig(
        maskers=names, masker_options=_masker_options(masker_opts, names), scratch=scratch, data=data,
        data_options=parse_options(data_opts, "--data-opt"),
        seeds=_seeds(seeds), labels=labels, protocol=protocol, backbone=backbone,
        backbone_options=parse_options(backbone_opts, "--backbone-opt"), image_size=image_size, in_chans=in_chans,
        split_seed=split_seed, pretrain_epochs=pretrain_epochs, pretrain_batch_size=pretrain_batch_size,
        pretrain_options=parse_options(pretrain_opts, "--pretrain-opt"), finetune_epochs=finetune_epochs,
        finetune_batch_size=finetune_batch_size, finetune_lr=finetune_lr, class_weights=class_weights,
        encoder_lr_scale=encoder_lr_scale, select=select, device=device, workers=workers, threads=threads, out=out,
        runs_dir=runs_dir,
    )
    command = "sslkit " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["compare"] else ""
    result = run_compare(config, load_plugins_for(ctx), command=command, quiet=quiet,
                         say=lambda text: console.print(f"[bold cyan]compare[/bold cyan] {text}", highlight=False))
    console.print(summary_table(result.summary, title=f"test split, mean ± std over {len(config.seeds)} seed(s)"))
    console.print(f"{result.ran} cell(s) run, {result.reused} reused, {result.seconds / 60:.1f} min; wrote "
                  + ", ".join(str(p) for p in result.files.values()), highlight=False)
