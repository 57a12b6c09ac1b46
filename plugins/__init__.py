"""sslkit's built-in plugins (installed as ``sslkit_plugins``).

Each module here holds ``@hookimpl`` functions only and is listed as an entry point in group
``sslkit`` in ``pyproject.toml``, the same mechanism a third-party plugin package uses.
"""
