"""Fixture plugin: registers masker 'twin' (so does twin_b)."""

from sslkit.hookspecs import hookimpl
from sslkit.masking import MaskerBase


@hookimpl
def register_maskers(register):
    register("twin", MaskerBase, "first twin")
