"""The ``deapnas`` command (also ``python -m deapnas``): :func:`deapnas.cli.main`."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
