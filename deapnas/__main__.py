"""The ``deapnas`` command (also ``python -m deapnas``): :func:`deapnas.cli.main`, once the CLI
and torch are imported.

Importing torch takes seconds, part of them in its C++ start-up, where a Ctrl-C raised as
``KeyboardInterrupt`` aborts the process with a C++ error instead of a Python one. So a Ctrl-C
during the imports is only noted, and the command then ends quietly with status 130.
"""
import signal
import sys


def main() -> int:
    interrupted = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))
    try:
        from .cli import main as run
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted:
        print("\ndeapnas: interrupted while starting; nothing was done", file=sys.stderr)
        return 130
    return run()


if __name__ == "__main__":
    sys.exit(main())
