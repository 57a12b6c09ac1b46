"""`sslkit compare`: pretrain each masker per seed (plus scratch), fine-tune, score, tabulate."""

from __future__ import annotations

import click

from sslkit.choices import KEEP_CHECKPOINT_CHOICES, TASK_HELP
from sslkit.commands.shared_options import config_settings, finetune_options
from sslkit.comparison.config import SCRATCH_FULL_PROTOCOL, CompareConfig, budget_key
from sslkit.finetuning.protocols import (
    DEFAULT_EPOCHS_HELP,
    FOLDS_HELP,
    PROTOCOL_HELP,
    PROTOCOL_NAMES,
    PROTOCOLS,
)

#: The defaults are CompareConfig's, so the command and the library cannot drift apart.
_D = CompareConfig()
#: parameter name -> CompareConfig field, where they differ
_RENAMES = {"data_opts": "data_options", "backbone_opts": "backbone_options", "pretrain_opts": "pretrain_options"}
#: parameters that are no CompareConfig setting, or that the command converts itself
_NOT_CONFIG = ("maskers", "masker_opts", "seeds", "labels", "decoders", "stats_only", "quiet")


def _seeds_text(seeds: list[int]) -> str:
    """``[0, 1, 2]`` -> ``3``, other lists -> ``0,4,7``: how ``--seeds`` writes them."""
    return str(len(seeds)) if list(seeds) == list(range(len(seeds))) else ",".join(map(str, seeds))


def parse_maskers(text: str) -> tuple[list[str], dict[str, str], dict[str, dict]]:
    """``random,dqn,dqn-masked=dqn:reward=masked,area=0.1`` -> (method names, {alias: masker},
    {alias: options}).

    An item ``ALIAS=MASKER:KEY=VALUE`` runs MASKER under the name ALIAS with those options, and the
    ``KEY=VALUE`` items after it are more options of that alias, up to the next plain masker name or
    ``ALIAS=MASKER:`` item (an alias without options is ``ALIAS=MASKER`` before any alias with
    options, or ``ALIAS=MASKER:`` anywhere).
    """
    from sslkit.errors import UserError
    from sslkit.options import parse_options

    names: list[str] = []
    aliases: dict[str, str] = {}
    options: dict[str, dict] = {}
    current: str | None = None  # the alias whose options are being read
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if ":" in item:
            head, _, option = item.partition(":")
            alias, eq, masker = (v.strip() for v in head.partition("="))
            if not eq:
                raise UserError(f"--maskers item '{item}' gives options without an alias name; "
                                f"write ALIAS=MASKER:KEY=VALUE, e.g. {alias}-2={alias}:{option}")
            current = alias
        elif "=" in item and current is not None:
            options.setdefault(current, {}).update(parse_options((item,), "--maskers"))
            continue
        else:
            alias, _, masker = (v.strip() for v in item.partition("="))
            option, current = "", None
            if "=" not in item:
                names.append(alias)
                continue
        if not alias or not masker:
            raise UserError(f"--maskers item '{item}' needs both an alias and a masker, as in dqn-masked=dqn:reward=masked")
        if alias in aliases:
            raise UserError(f"--maskers declares alias '{alias}' twice")
        names.append(alias)
        aliases[alias] = masker
        if option.strip():
            options.setdefault(alias, {}).update(parse_options((option.strip(),), "--maskers"))
    return names, aliases, options


def parse_label_list(text: str):
    """``100`` -> 100; ``20,50,100,all`` -> [20, 50, 100, None] (each as ``--labels`` reads it)."""
    from sslkit.errors import UserError
    from sslkit.finetuning.labels import parse_label_budget

    items = [v.strip() for v in str(text).split(",")]
    if any(not v for v in items):
        raise UserError(f"--labels must list budgets separated by single commas, e.g. 20,50,100,all; got '{text}'")
    budgets = [parse_label_budget(v) for v in items]
    return budgets if len(budgets) > 1 else budgets[0]


def _masker_options(pairs: tuple[str, ...], maskers: list[str]) -> dict[str, dict]:
    """``dqn:explore=0.2`` -> {"dqn": {"explore": 0.2}}; the masker prefix is required."""
    from sslkit.errors import UserError
    from sslkit.options import parse_options

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
@click.option("--maskers", default=",".join(_D.maskers), show_default=True,
              help="Comma-separated maskers to compare; ALIAS=MASKER:KEY=VALUE,KEY=VALUE runs a masker again under "
                   "another name with its own options, e.g. random-grid,dqn,dqn-masked=dqn:reward=masked.")
@click.option("--masker-opt", "masker_opts", multiple=True, metavar="METHOD:KEY=VALUE",
              help="An option of one masker or alias (repeatable), e.g. dqn:block=2.")
@click.option("--scratch/--no-scratch", default=_D.scratch, show_default=True,
              help="Add the baseline: the same network with random weights, fine-tuned the same way.")
@click.option("--scratch-full", is_flag=True, default=_D.scratch_full,
              help="Add 'scratch-full': random weights fine-tuned end to end (--protocol full) on the same splits, "
                   "the strongest baseline without pretraining.")
@click.option("--scratch-full-epochs", type=int, default=_D.scratch_full_epochs,
              help=f"Epochs of scratch-full (default: {PROTOCOLS[SCRATCH_FULL_PROTOCOL].default_epochs}).")
@click.option("--data", default=_D.data, metavar="ADAPTER:LOCATION", help="Default: the embedded BUSI 64 px set.")
@click.option("--data-opt", "data_opts", multiple=True, metavar="KEY=VALUE",
              help="Dataset adapter option (repeatable), used by pretraining and fine-tuning alike.")
@click.option("--seeds", default=_seeds_text(_D.seeds), show_default=True, metavar="N|S1,S2,...",
              help="How many seeds (0..N-1) or which ones; each seeds pretraining and fine-tuning.")
@click.option("--labels", default=",".join(budget_key(b) for b in _D.budgets()), show_default=True,
              metavar="N|FRACTION|all[,...]",
              help="Labelled training images per fine-tuning run; several (20,50,100,all) add a label-efficiency "
                   "curve (label_efficiency.png), each pretraining is shared by every budget.")
@click.option("--task", default=_D.task, show_default=True, metavar="NAME", help=TASK_HELP)
@click.option("--decoders", default=",".join(_D.decoders), show_default=True, metavar="pretrained,fresh",
              help="--task segmentation: fine-tune each masker's encoder with its pretrained decoder (METHOD) and/or a "
                   "fresh one (METHOD+fresh-decoder; the same pretraining), so the decoder's pretraining is tested too.")
@click.option("--protocol", type=click.Choice(PROTOCOL_NAMES), default=_D.protocol,
              help="Fine-tuning protocol shared by every cell (default: paper for classification, else the task's "
                   "default, segmentation full). " + PROTOCOL_HELP)
@click.option("--folds", type=int, default=_D.folds, show_default=True,
              help=FOLDS_HELP + " Pretraining runs once per method and seed, fine-tuning once per fold.")
@click.option("--pretrain-splits", default=_D.pretrain_splits, metavar="SPLITS",
              help="Images pretraining sees without labels (all, train+val, ...). Default: all with --folds (the "
                   "held-out folds are seen unlabelled, the paper's setting; stated in results.md), else train+val.")
@click.option("--paper-splits/--no-paper-splits", default=_D.paper_splits,
              help="The authors' balanced 100/100/100 splits for every cell. Default: on for --protocol paper when "
                   "the data allows, else the dataset's own splits.")
@click.option("--backbone", default=_D.backbone, show_default=True)
@click.option("--backbone-opt", "backbone_opts", multiple=True, metavar="KEY=VALUE")
@click.option("--image-size", type=int, default=_D.image_size, show_default=True)
@click.option("--in-chans", type=int, default=_D.in_chans, show_default=True)
@click.option("--split-seed", type=int, default=_D.split_seed, show_default=True,
              help="Seed of generated train/val/test splits (the same for every cell).")
@click.option("--pretrain-epochs", type=int, default=_D.pretrain_epochs, show_default=True,
              help="Epochs of each pretraining (the recipe study's choice, as sslkit pretrain's).")
@click.option("--pretrain-batch-size", type=int, default=_D.pretrain_batch_size, show_default=True)
@click.option("--pretrain-opt", "pretrain_opts", multiple=True, metavar="KEY=VALUE",
              help="Any other pretraining setting for every masker (repeatable), e.g. lr=0.001, loss=full.")
@click.option("--finetune-epochs", type=int, default=_D.finetune_epochs, help=DEFAULT_EPOCHS_HELP)
@click.option("--finetune-batch-size", type=int, default=_D.finetune_batch_size, show_default=True)
@click.option("--finetune-lr", type=float, default=_D.finetune_lr, show_default=True,
              help="Adam learning rate of the head.")
@finetune_options(_D)
@click.option("--jobs", type=int, default=_D.jobs, show_default=True,
              help="Run independent cells in this many processes (pretrainings first, then the fine-tuning cells); "
                   "the figures are the same as with 1. Faster only where cores are free: on a busy 2-core VM "
                   "--jobs 2 --threads 1 ran at 0.74-0.82x of --jobs 1 --threads 2 (benchmarks/bench_compare_jobs.py).")
@click.option("--out", type=click.Path(file_okay=False), default=_D.out, show_default=True,
              help="Where results.md, results.csv and results.png go.")
@click.option("--runs-dir", type=click.Path(file_okay=False), default=_D.runs_dir,
              help="Where the cells' run directories (checkpoints) go; default OUT/runs.")
@click.option("--keep-checkpoints", type=click.Choice(KEEP_CHECKPOINT_CHOICES), default=_D.keep_checkpoints,
              show_default=True,
              help="What a finished pretraining keeps of its checkpoints: 'weights' a weights-only weights.pt "
                   "(about a third of the full checkpoint), 'last' the full resumable last.pt (optimiser state "
                   "too), 'none' nothing; its exported encoder/ and decoder/ stay, and an unfinished pretraining "
                   "always keeps its full checkpoint to resume from.")
@click.option("--bootstrap-resamples", type=int, default=_D.bootstrap_resamples, show_default=True,
              help="Test-image resamples behind each 95 % interval of the paired differences.")
@click.option("--stats-only", type=click.Path(file_okay=False, exists=True), default=None, metavar="OUT",
              help="Only recompute the paired statistics of an earlier compare from OUT/predictions.csv "
                   "(no training; writes OUT/differences.csv and OUT/statistics.md).")
@click.option("--quiet", is_flag=True, help="Only the cell lines and the table, no progress bars.")
@click.pass_context
def compare_command(ctx: click.Context, maskers: str, masker_opts: tuple[str, ...], seeds: str, labels: str,
                    decoders: str, stats_only: str | None, quiet: bool, **_: object) -> None:
    """Compare maskers (and the from-scratch baseline) under one fine-tuning protocol.

    Every masker is pretrained once per seed, then every encoder is fine-tuned and scored; by
    default on 5 grouped, stratified folds (every labelled image a test image once, patients and
    near-duplicates never split), so the figures and the paired 95 % bootstrap intervals against
    scratch, scratch-full, random and random-grid (those present) cover every out-of-fold
    prediction, with a verdict (better / worse / not distinguishable). Rerunning the same command
    reuses the finished cells, so an interrupted comparison continues where it stopped.

    --task segmentation compares lesion segmenters instead (Dice, IoU, HD95), each pretrained
    method with its pretrained decoder and with a fresh one (--decoders).

    \b
    Example (41 minutes on a shared 2-core CPU with --jobs 2, docs/results/folds/results.md):
      sslkit compare --data npz:../shared/data/busi/busi_64.npz --maskers random-grid \\
        --seeds 3 --folds 5 --scratch-full --threads 1 --jobs 2 --out docs/results/folds
    """
    from sslkit.pretraining.launch import main_process_only

    if not main_process_only("compare"):
        return

    import shlex
    import sys

    from sslkit.console import make_console

    from sslkit.cli import load_plugins_for
    from sslkit.comparison.stats import recompute_statistics
    from sslkit.comparison.run import run_compare
    from sslkit.evaluation.reporting import summary_table

    console = make_console()
    if stats_only is not None:
        done = recompute_statistics(stats_only, n_resamples=ctx.params["bootstrap_resamples"])
        for table in differences_tables(done["differences"]):
            console.print(table)
        console.print(f"wrote {done['csv']}, {done['markdown']}", highlight=False)
        return
    names, aliases, alias_options = parse_maskers(maskers)
    options = _masker_options(masker_opts, names)
    for alias, values in alias_options.items():
        options[alias] = {**values, **options.get(alias, {})}
    config = CompareConfig(**config_settings(ctx, CompareConfig, renames=_RENAMES, skip=_NOT_CONFIG),
                           maskers=names, masker_options=options, masker_aliases=aliases, seeds=_seeds(seeds),
                           labels=parse_label_list(labels), decoders=[d.strip() for d in decoders.split(",") if d.strip()])
    command = "sslkit " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["compare"] else ""
    from sslkit.stop_signals import signals_as_interrupts

    try:
        with signals_as_interrupts():  # SIGTERM/SIGUSR1 as Ctrl-C (a pretraining saves first)
            result = run_compare(config, load_plugins_for(ctx), command=command, quiet=quiet,
                                 say=lambda text: console.print(f"[bold cyan]compare[/bold cyan] {text}", highlight=False))
    except KeyboardInterrupt as stopped:  # a pretraining cell saved its checkpoint; finished cells are on disk
        where = config.runs_dir or f"{config.out}/runs"
        again = f": {command}" if command else " (the same options)"
        click.echo(f"Interrupted; finished cells and checkpoints are kept in {where}; continue by running the same "
                   f"command again, which reuses finished cells and resumes an interrupted pretraining{again}", err=True)
        ctx.exit(getattr(stopped, "exit_code", 130))
    task_plugin = config.task_plugin(load_plugins_for(ctx))
    for budget, summary in result.summaries.items():
        scope = f"out of fold ({config.folds} folds)" if config.folds > 1 else "test split"
        title = f"{scope}, {budget} labels, mean ± std over {len(config.seeds)} seed(s)"
        console.print(summary_table(summary, title=title, metrics=(*task_plugin.metrics, *task_plugin.extra_metrics)))
    for table in differences_tables(result.differences):
        console.print(table)
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {note}", highlight=False)
    console.print(f"{result.ran} cell(s) run, {result.reused} reused, {result.seconds / 60:.1f} min; wrote "
                  + ", ".join(str(p) for p in result.files.values()), highlight=False)


def differences_tables(differences: dict) -> list:
    """Rich tables of the paired differences, one per label budget (verdicts coloured)."""
    from rich.table import Table

    from sslkit.comparison.stats import format_difference
    from sslkit.evaluation.reporting import METRIC_LABELS

    colour = {"better": "green", "worse": "red"}
    tables = []
    for budget, diffs in differences.items():
        if not diffs:
            continue
        table = Table(title=f"paired difference, {budget} labels: method - reference [95 % bootstrap CI], "
                            f"{diffs[0].images} test images, {diffs[0].seeds} seed(s)")
        table.add_column("method")
        table.add_column("vs")
        metrics = list(dict.fromkeys(d.metric for d in diffs))
        for metric in metrics:
            table.add_column(METRIC_LABELS.get(metric, metric), justify="right")
        by = {(d.method, d.reference, d.metric): d for d in diffs}
        for method, reference in dict.fromkeys((d.method, d.reference) for d in diffs):
            cells = []
            for metric in metrics:
                d = by.get((method, reference, metric))
                text = format_difference(d) if d is not None else ""
                cells.append(f"[{colour[d.verdict]}]{text}[/]" if d is not None and d.verdict in colour else text)
            table.add_row(method, reference, *cells)
        tables.append(table)
    return tables
