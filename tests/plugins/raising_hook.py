"""Fixture plugin: imports fine but its hook raises."""

from sslkit.hookspecs import hookimpl


@hookimpl
def register_maskers(register):
    raise RuntimeError("hook exploded")
