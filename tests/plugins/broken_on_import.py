"""Fixture plugin: fails while being imported."""

raise RuntimeError("this plugin is deliberately broken")
