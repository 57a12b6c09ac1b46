"""`sslkit data inspect [SPEC]`: what a dataset spec resolves to, before training on it."""

from __future__ import annotations

import json

import click

from sslkit.data.opening import BAD_IMAGE_POLICIES
from sslkit.data.records import SPLIT_NAMES


@click.group("data")
def data_group() -> None:
    """Look at datasets: `sslkit data inspect busi:/data/Dataset_BUSI_with_GT`.

    A dataset is given as ADAPTER:LOCATION (see `sslkit list datasets`); adapter options may
    follow the location, e.g. `folder:/scans?labels=none`. Without a spec: the embedded BUSI 64 px.
    """


@data_group.command("inspect")
@click.argument("spec", required=False, metavar="[ADAPTER:LOCATION]")
@click.option("--on-bad-image", type=click.Choice(BAD_IMAGE_POLICIES), default="skip", show_default=True,
              help="Unreadable images: list and leave out (skip), or stop with exit status 2 (error).")
@click.option("--val-fraction", type=float, default=0.1, show_default=True,
              help="Validation share for data without its own splits.")
@click.option("--test-fraction", type=float, default=0.2, show_default=True,
              help="Test share for data without its own splits.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the stratified splits.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of tables.")
@click.pass_context
def inspect_command(ctx: click.Context, spec: str | None, on_bad_image: str, val_fraction: float,
                    test_fraction: float, seed: int, as_json: bool) -> None:
    """Counts per split and class, image sizes and channels, lesion masks, unreadable files.

    Every image is decoded once, so files that look intact but do not decode are found too.

    \b
    Examples:
      sslkit data inspect busi:../shared/data/busi/raw_sample
      sslkit data inspect npz:busi_128.npz --json
    """
    import logging

    from sslkit.cli import load_plugins_for
    from sslkit.data import open_dataset
    from sslkit.data.inspection import inspect_dataset

    plugins = load_plugins_for(ctx)
    data_log = logging.getLogger("sslkit.data")
    level = data_log.level
    data_log.setLevel(logging.ERROR)  # the report lists skipped files and notes itself
    try:
        ds = open_dataset(spec, plugins=plugins, on_bad_image=on_bad_image, val_fraction=val_fraction,
                          test_fraction=test_fraction, seed=seed)
        report = inspect_dataset(ds, on_bad_image=on_bad_image)
    finally:
        data_log.setLevel(level)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
        return
    _print_report(report)


def _print_report(report) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    counts = Table(title=f"{escape(report.name)}: {report.total} images")
    counts.add_column("class", style="bold")
    splits = SPLIT_NAMES
    for split in splits:
        counts.add_column(split, justify="right")
    counts.add_column("total", justify="right")
    names = sorted({c for split in splits for c in report.counts.get(split, {})},
                   key=lambda c: (report.class_names or []).index(c) if c in (report.class_names or []) else 10**6)
    for name in names:
        row = [report.counts.get(s, {}).get(name, 0) for s in splits]
        counts.add_row(escape(name), *map(str, row), str(sum(row)))
    totals = [sum(report.counts.get(s, {}).values()) for s in splits]
    counts.add_row("all", *map(str, totals), str(sum(totals)), style="italic")
    console.print(counts)

    summary = Table(show_header=False, title="images")
    summary.add_column("what", style="bold")
    summary.add_column("value")
    summary.add_row("classes", escape(", ".join(report.class_names)) if report.class_names else "none (unlabelled)")
    summary.add_row("sizes (w x h)", report.size_text())
    summary.add_row("channels", ", ".join(f"{c} ({n})" for c, n in sorted(report.channels.items())) or "-")
    summary.add_row("pixel types", ", ".join(f"{d} ({n})" for d, n in report.dtypes.most_common()) or "-")
    if report.has_lesion_masks:
        lesion = f"found: {report.with_lesion} with a lesion, {report.empty_masks} empty"
    else:
        lesion = "none"
    summary.add_row("lesion masks", lesion)
    summary.add_row("unreadable", str(len(report.unreadable)))
    console.print(summary)

    if report.unreadable:
        bad = Table(title=f"unreadable files ({len(report.unreadable)}, left out)")
        bad.add_column("file", overflow="fold")
        bad.add_column("reason")
        for file, reason in report.unreadable:
            bad.add_row(escape(file), escape(reason))
        console.print(bad)
    for note in report.notes:
        console.print(f"note: {escape(note)}")
