"""The command-line options every experiment script shares, and how a preset fills the rest.

The scripts import it as a sibling module (``python experiments/NAME.py`` puts this folder on
the module path).
"""
from __future__ import annotations

import argparse


def add_run_options(parser: argparse.ArgumentParser, name: str, step: str) -> None:
    """``--device``, ``--seed``, ``--out`` (default ``runs/NAME-...``) and ``--quiet`` (no
    statistics per ``step``)."""
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help=f"run directory (default runs/{name}-...)")
    parser.add_argument("--quiet", action="store_true", help=f"no per-{step} statistics")


def fill_preset(args: argparse.Namespace, preset: dict) -> None:
    """Every option left unset on the command line (None) takes the ``preset``'s value."""
    for name, value in preset.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
