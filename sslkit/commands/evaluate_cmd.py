"""`sslkit evaluate`: re-score a saved classifier or segmenter, or check an encoder by k-NN (no training)."""

from __future__ import annotations

import click

from sslkit.choices import SPLIT_NAMES
from sslkit.choices import DEVICE_CHOICES
from sslkit.defaults import IMAGE_SIZE
from sslkit.runtime import THREADS_HELP


@click.command("evaluate")
@click.option("--classifier", "--model", "classifier", type=click.Path(), default=None,
              help="A finetune run dir (or its classifier/ or segmenter/ folder) to score.")
@click.option("--knn", is_flag=True, help="k-NN health check of --encoder instead (frozen features, seconds).")
@click.option("--encoder", type=click.Path(), default=None, help="With --knn: pretraining run dir or exported encoder.")
@click.option("--data", default=None, metavar="ADAPTER:LOCATION",
              help="Default: the data the classifier (or the pretraining run) used.")
@click.option("--split", type=click.Choice(SPLIT_NAMES), default="test", show_default=True)
@click.option("-k", "--k", "k", type=click.IntRange(min=1), default=20, show_default=True, help="k-NN: neighbours that vote.")
@click.option("--temperature", type=float, default=0.07, show_default=True,
              help="k-NN: votes weigh exp(cosine / T); 0 gives plain majority votes.")
@click.option("--image-size", type=int, default=None, help=f"k-NN: default the pretraining run's, else {IMAGE_SIZE}.")
@click.option("--split-seed", type=int, default=None, help="k-NN: default the pretraining run's, else 0.")
@click.option("--device", type=click.Choice(DEVICE_CHOICES), default="auto", show_default=True)
@click.option("--workers", type=int, default=0, show_default=True)
@click.option("--threads", type=int, default=0, show_default=True, help=THREADS_HELP)
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Where to write evaluate_SPLIT.json/.csv (default: the finetune run dir; k-NN: nowhere).")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON instead of tables.")
@click.pass_context
def evaluate_command(ctx: click.Context, classifier, knn, encoder, data, split, k, temperature, image_size,
                     split_seed, device, workers, threads, out, as_json) -> None:
    """Re-score a saved model without training: a classifier (accuracy, macro F1, AUROC, balanced
    accuracy, confusion matrix, per-class report) or a segmenter (Dice, IoU, HD95); or an encoder by k-NN.

    \b
    Examples:
      sslkit evaluate --classifier runs/finetune-paper            # reproduces its test figures
      sslkit evaluate --classifier runs/ft --data npz:other.npz --split test
      sslkit evaluate --model runs/ft-segmentation                 # a segmenter's Dice, IoU, HD95
      sslkit evaluate --knn --encoder runs/dqn -k 20               # encoder health check
    """
    from sslkit.pretraining.launch import main_process_only

    if not main_process_only("evaluate"):
        return
    import math

    from sslkit.errors import UserError

    if not math.isfinite(temperature) or temperature < 0:  # -1 or nan would quietly become majority votes
        raise UserError(f"--temperature must be a positive number (or 0 for plain majority votes), got {temperature}")

    from sslkit.console import make_console

    from sslkit.cli import load_plugins_for
    from sslkit.engine.device import resolve_device
    from sslkit.runtime import cpu_threads

    console = make_console()
    plugins = load_plugins_for(ctx)
    with cpu_threads(threads):
        _evaluate(console, plugins, classifier, knn, encoder, data, split, k, temperature, image_size, split_seed,
                  resolve_device(device), workers, out, as_json)


def _evaluate(console, plugins, classifier, knn, encoder, data, split, k, temperature, image_size, split_seed,
              device, workers, out, as_json) -> None:
    """The work of ``sslkit evaluate`` once the plugins, device and threads are set."""
    import json
    import time
    from pathlib import Path

    from sslkit.engine.run_lock import locked_output
    from sslkit.errors import UserError
    from sslkit.evaluation.reporting import print_metrics, write_metrics_files

    started = time.perf_counter()
    if knn:
        if encoder is None or classifier is not None:
            raise UserError("--knn needs --encoder (and no --classifier)")
        if split == "train":
            raise UserError("k-NN uses the train split as its memory bank; score --split val or test")
        from sslkit.finetuning.saved import knn_for_encoder

        result, ds = knn_for_encoder(encoder, data=data, split=split, k=k, temperature=temperature,
                                     image_size=image_size, split_seed=split_seed, device=device,
                                     workers=workers, plugins=plugins)
        seconds = time.perf_counter() - started
        extra = {"kind": "knn", "encoder": str(encoder), "k": result.k, "temperature": temperature,
                 "bank_size": result.bank_size, "feature_dim": result.feature_dim, "seconds": seconds}
        if out:
            with locked_output(out):
                write_metrics_files(out, {split: result.metrics}, stem=f"knn_{split}", extra=extra)
        if as_json:
            click.echo(json.dumps({**extra, "metrics": result.metrics.to_dict()}, indent=2))
            return
        title = f"k-NN (k={result.k}, bank {result.bank_size} train images, {result.feature_dim}-d) on {split}"
        print_metrics(console, result.metrics, title)
        support = [int(result.metrics.per_class[c]["support"]) for c in result.metrics.class_names]
        majority = max(support) / max(1, sum(support))
        console.print(f"always predicting the commonest class would score accuracy {majority:.3f}; "
                      f"took {seconds:.1f} s", highlight=False)
        return

    if classifier is None:
        raise UserError("give --classifier RUN (a finetune run), or --knn --encoder RUN")
    from sslkit.finetuning.saved import compare_with_run, evaluate_saved_classifier

    evaluation = evaluate_saved_classifier(classifier, data=data, split=split, device=device,
                                           workers=workers, plugins=plugins)
    seconds = time.perf_counter() - started
    target = Path(out) if out else evaluation.run_dir
    extra = {"kind": "classifier", "classifier": str(classifier), "data": evaluation.data,
             "protocol": evaluation.info.get("protocol"), "seconds": seconds}
    if target is not None:
        with locked_output(target):  # e.g. not while a fine-tuning still writes that run folder
            write_metrics_files(target, {split: evaluation.metrics}, stem=f"evaluate_{split}", extra=extra)
            if evaluation.run_dir is not None and target == evaluation.run_dir:
                _log_tensorboard(target, split, evaluation)
    if as_json:
        click.echo(json.dumps({**extra, "metrics": evaluation.metrics.to_dict()}, indent=2))
        return
    kind = "segmenter" if evaluation.info.get("task") == "segmentation" else "classifier"
    title = f"{evaluation.info.get('protocol')} {kind} on {split} ({evaluation.metrics.n_samples} images)"
    print_metrics(console, evaluation.metrics, title)
    try:
        check = compare_with_run(evaluation)
    except UserError as error:  # the figures above stand; only the comparison is lost
        console.print(f"[yellow]warning:[/yellow] {error.message}", highlight=False)
        check = None
    if check is not None:
        same, pairs = check
        if same:
            console.print(f"[green]identical to the fine-tuning run's {split} figures[/green]")
        else:
            diffs = ", ".join(f"{k} {a:.4f} -> {b:.4f}" for k, (a, b) in pairs.items() if a != b)
            console.print(f"[yellow]differs from the fine-tuning run's {split} figures:[/yellow] {diffs}")
    if target is not None:
        console.print(f"wrote {target / f'evaluate_{split}.json'} ({seconds:.1f} s)", highlight=False)


def _log_tensorboard(run_dir, split: str, evaluation) -> None:
    from torch.utils.tensorboard import SummaryWriter

    from sslkit.evaluation.reporting import write_tensorboard_scalars

    writer = SummaryWriter(str(run_dir / "tensorboard"))
    try:
        write_tensorboard_scalars(writer, f"evaluate_{split}", evaluation.metrics.scalars,
                                  int(evaluation.info.get("selected_epoch", 0)))
    finally:
        writer.close()
