"""Fixture plugin implementing every hook once, with recognisable names."""

import click

from sslkit.hookspecs import hookimpl
from sslkit.masking import MaskerBase


class FixtureMasker(MaskerBase):
    def __init__(self, size: float = 0.5):
        if not 0 < size <= 1:
            raise ValueError("size must be in (0, 1]")
        self.size = size


@hookimpl
def register_maskers(register):
    register("fixture-masker", FixtureMasker, "a masker from a fixture", options={"size": "area"})


@hookimpl
def register_backbones(register):
    register("fixture-backbone", lambda in_chans=1: ("backbone", in_chans), "a backbone from a fixture")


@hookimpl
def register_datasets(register):
    register("fixture-data", lambda location: ("data", location), "a dataset adapter from a fixture")


@click.command("fixture-hello")
def hello():
    """Say hello from a fixture plugin."""
    click.echo("hello from a plugin command")


@hookimpl
def register_commands(cli):
    cli.add_command(hello)
