"""``sslkit compare``: methods x label budgets x seeds, each pretrained, fine-tuned and scored.

- :mod:`~sslkit.comparison.config`: :class:`CompareConfig`, the cells, validation.
- :mod:`~sslkit.comparison.cells`: one cell's settings, fingerprint and run.
- :mod:`~sslkit.comparison.run`: :func:`run_compare`, every cell then the results files.
- :mod:`~sslkit.comparison.parallel`: cells in worker processes (``--jobs``).
- :mod:`~sslkit.comparison.stats` / :mod:`~sslkit.comparison.report`: paired statistics; results files.
"""
