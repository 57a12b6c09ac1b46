"""Built-in backbones plugins (one module per plugin)."""
