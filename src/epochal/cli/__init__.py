"""The ``epochal`` command line: one module per group of commands, the parser in :mod:`epochal.cli.parser`."""

from epochal.cli.parser import main

__all__ = ["main"]
