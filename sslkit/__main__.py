"""`python -m sslkit` runs the same CLI as the `sslkit` console script (torchrun needs this form)."""

from sslkit.cli import main

if __name__ == "__main__":
    main()
