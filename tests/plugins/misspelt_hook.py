"""Fixture plugin: a hook name with a typo, which must fail loudly."""

from sslkit.hookspecs import hookimpl


@hookimpl
def register_maskerz(register):
    register("never", object)
