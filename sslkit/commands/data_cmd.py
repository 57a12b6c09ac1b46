"""`sslkit data inspect [SPEC]`: what a dataset spec resolves to, before training on it."""

from __future__ import annotations

import json

import click

from sslkit.choices import BAD_IMAGE_POLICIES
from sslkit.choices import SPLIT_NAMES

#: Mirrors sslkit.data.duplicates (kept here so `--help` imports neither numpy nor torch).
_DEFAULT_THRESHOLD = 0.95
_SIGNATURE_SIZE = 16


def _split_options(function):
    """The options inspect and audit share: how data without its own splits is split."""
    options = [
        click.option("--on-bad-image", type=click.Choice(BAD_IMAGE_POLICIES), default="skip", show_default=True,
                     help="Unreadable images: list and leave out (skip), or stop with exit status 2 (error)."),
        click.option("--val-fraction", type=float, default=0.1, show_default=True,
                     help="Validation share for data without its own splits."),
        click.option("--test-fraction", type=float, default=0.2, show_default=True,
                     help="Test share for data without its own splits."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed of the stratified splits."),
        click.option("--resplit", is_flag=True,
                     help="Replace the data's own splits by sslkit's duplicate- and patient-grouped ones "
                          "(the same as --data-opt resplit=true on the other commands)."),
        click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of tables."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _open(ctx: click.Context, spec, on_bad_image, val_fraction, test_fraction, seed, resplit):
    import logging

    from sslkit.cli import load_plugins_for
    from sslkit.data import open_dataset

    plugins = load_plugins_for(ctx)
    data_log = logging.getLogger("sslkit.data")
    level = data_log.level
    data_log.setLevel(logging.ERROR)  # the reports list skipped files and notes themselves
    try:
        return open_dataset(spec, plugins=plugins, on_bad_image=on_bad_image, val_fraction=val_fraction,
                            test_fraction=test_fraction, seed=seed, options={"resplit": True} if resplit else None)
    finally:
        data_log.setLevel(level)


@click.group("data")
def data_group() -> None:
    """Look at datasets: `sslkit data inspect busi:/data/Dataset_BUSI_with_GT`.

    A dataset is given as ADAPTER:LOCATION (see `sslkit list datasets`); adapter options may
    follow the location, e.g. `folder:/scans?labels=none`. Without a spec: the embedded BUSI 64 px.
    """


@data_group.command("inspect")
@click.argument("spec", required=False, metavar="[ADAPTER:LOCATION]")
@_split_options
@click.pass_context
def inspect_command(ctx: click.Context, spec: str | None, on_bad_image: str, val_fraction: float,
                    test_fraction: float, seed: int, resplit: bool, as_json: bool) -> None:
    """Counts per split and class, image sizes and channels, lesion masks, unreadable files,
    and how many test images have a near-duplicate in train/val.

    Every image is decoded once, so files that look intact but do not decode are found too.

    \b
    Examples:
      sslkit data inspect busi:../shared/data/busi/raw_sample
      sslkit data inspect npz:busi_128.npz --json
    """
    from sslkit.data.duplicates import leak_sentence, count_test_twins
    from sslkit.data.inspection import inspect_dataset

    ds = _open(ctx, spec, on_bad_image, val_fraction, test_fraction, seed, resplit)
    report = inspect_dataset(ds, on_bad_image=on_bad_image)
    leaked, tests = count_test_twins(ds.splits)
    sentence = leak_sentence(leaked, tests)
    if sentence:
        report.notes.append(sentence)
    if as_json:
        click.echo(json.dumps({**report.to_json(), "test_images_with_twin_in_train_or_val": leaked}, indent=2))
        return
    _print_report(report)


@data_group.command("audit")
@click.argument("spec", required=False, metavar="[ADAPTER:LOCATION]")
@click.option("--threshold", type=click.FloatRange(0.0, 1.0, min_open=True), default=_DEFAULT_THRESHOLD,
              show_default=True,
              help="Correlation of the downsampled images at or above which two images are near-duplicates "
                   "(0.95: on BUSI, pairs above it are the same scan or the same sweep; below 0.93 different patients "
                   "start to chain into large groups).")
@click.option("--signature-size", type=click.IntRange(4, 64), default=_SIGNATURE_SIZE, show_default=True,
              help="Side in pixels of the downsampled image compared.")
@click.option("--sheet", type=click.Path(dir_okay=False), default="duplicates.png", show_default=True,
              help="Contact sheet of the worst groups (label conflicts first, then split crossings, then the "
                   "largest); --no-sheet to skip.")
@click.option("--no-sheet", is_flag=True, help="Write no contact sheet.")
@click.option("--groups", "sheet_groups", type=click.IntRange(1, 200), default=12, show_default=True,
              help="Groups shown on the contact sheet.")
@_split_options
@click.pass_context
def audit_command(ctx: click.Context, spec: str | None, threshold: float, signature_size: int, sheet: str,
                  no_sheet: bool, sheet_groups: int, on_bad_image: str, val_fraction: float, test_fraction: float,
                  seed: int, resplit: bool, as_json: bool) -> None:
    """Find exact and near-duplicate images: the groups, how many cross the splits, how many
    disagree on their label.

    Twins on both sides of a train/test split let a network score by memory, so every figure on
    that split is optimistic. sslkit's own splits and folds keep each group on one side; data with
    its own splits keeps them unless you pass --resplit (or --data-opt resplit=true elsewhere).

    \b
    Examples:
      sslkit data audit npz:../shared/data/busi/busi_64.npz
      sslkit data audit folder:/scans --threshold 0.98 --json > duplicates.json
    """
    from sslkit.data.audit import audit_dataset, write_contact_sheet

    ds = _open(ctx, spec, on_bad_image, val_fraction, test_fraction, seed, resplit)
    report = audit_dataset(ds, threshold=threshold, size=signature_size)
    picture = None if no_sheet else write_contact_sheet(sheet, ds, report, groups=sheet_groups)
    if as_json:
        click.echo(json.dumps({**report.to_json(), "contact_sheet": str(picture) if picture else None}, indent=2))
        return
    _print_audit(report, picture)


def _print_audit(report, picture) -> None:
    from sslkit.console import make_console
    from rich.markup import escape
    from rich.table import Table

    console = make_console()
    table = Table(show_header=False, title=f"{escape(report.name)}: {report.images} images, "
                                          f"correlation >= {report.threshold:g} at {report.signature_size} px")
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    groups = report.groups
    table.add_row("near-duplicate pairs (exact)", f"{report.pairs} ({report.exact_pairs})")
    table.add_row("groups / images in them", f"{len(groups)} / {report.images_in_groups}")
    table.add_row("pairs crossing splits", str(report.crossing_pairs))
    table.add_row("pairs joining test to train/val", str(report.test_pairs))
    table.add_row("test images with a twin in train/val", f"{report.test_with_twin} of {report.test_images}")
    table.add_row("pairs with different labels", str(report.label_pairs))
    table.add_row("groups crossing splits", str(sum(g.crosses_splits for g in groups)))
    table.add_row("groups with different labels", str(sum(g.labels_disagree for g in groups)))
    table.add_row("pairs at other thresholds", ", ".join(f"{t:g}: {n}" for t, n in report.sweep.items()))
    table.add_row("time", f"{report.seconds:.2f} s")
    console.print(table)
    worst = report.worst(10)
    if worst:
        detail = Table(title="worst groups (label conflicts, then split crossings, then size)")
        detail.add_column("images", justify="right")
        detail.add_column("splits")
        detail.add_column("labels")
        detail.add_column("files", overflow="fold")
        for group in worst:
            detail.add_row(str(len(group.members)), ", ".join(group.splits), ", ".join(group.labels),
                           escape(", ".join(_short_name(s) for s in group.sources[:4])))
        console.print(detail)
    if report.unreadable:
        console.print(f"note: {report.unreadable} unreadable image(s) were left out")
    if picture is not None:
        console.print(f"contact sheet: {picture}", highlight=False)


def _short_name(source: str) -> str:
    """The last part of a record's source (a file name, or ``file.npz:train_images[12]``)."""
    return source.replace("\\", "/").rsplit("/", 1)[-1]


def _print_report(report) -> None:
    from sslkit.console import make_console
    from rich.markup import escape
    from rich.table import Table

    console = make_console()
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
