"""Built-in maskers plugins (one module per plugin)."""
