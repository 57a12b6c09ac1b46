"""YAML read as plain data, with no way to make a small file large.

``yaml.safe_load`` constructs no objects, but it follows aliases: a "billion laughs" file of a
few hundred bytes (nine levels of ``&a [*b, *b, ...]``) expands to billions of entries and ran
out of memory after 95 s. sslkit's files (``--config``, a run's ``config.yaml``, augmentation
files, ``KEY=VALUE`` option values) never need aliases, so :func:`load_yaml` refuses them, and
refuses a text above :data:`MAX_BYTES` (a config is a few kilobytes).
"""

from __future__ import annotations

from typing import Any

import yaml

#: the largest YAML text sslkit reads (settings, not data)
MAX_BYTES = 1 << 20


class _PlainLoader(yaml.SafeLoader):
    """``SafeLoader`` without aliases (``*name``), so a document is never larger than its text."""

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, f"aliases (*{event.anchor}) are not allowed here",
                                              event.start_mark)
        return super().compose_node(parent, index)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load(text)`` without aliases and at most :data:`MAX_BYTES` long; raises
    ``yaml.YAMLError`` (callers already turn it into one sentence naming their file)."""
    if len(text) > MAX_BYTES:
        raise yaml.YAMLError(f"it is {len(text) / 1e6:.1f} MB long; sslkit reads settings files up to "
                             f"{MAX_BYTES // (1 << 20)} MB")
    return yaml.load(text, Loader=_PlainLoader)  # noqa: S506 - a SafeLoader subclass
