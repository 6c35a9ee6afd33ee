"""The ``epochal`` command: list, show, export, import, plot and delete the runs of a store, or serve them.

Run ``epochal --help`` or ``epochal COMMAND --help`` (``python -m epochal.cli`` works too).
Every command reads the store given by ``--store DIR`` (a directory, or a team's
``postgresql://`` URL), by default ``$EPOCHAL_DIR``, else ``./epochal-runs``; only ``import`` and ``demo`` create a store, and a command that reads one
that is not there says so. An error (a missing store, a damaged or refused file, a store locked
by another process for longer than the command waits) prints one line, ``epochal: <message>``,
on stderr and exits with status 2; a traceback means a bug in epochal.

Examples:
    $ epochal ls --project mnist
    $ epochal show baseline
    $ epochal export baseline -o baseline.csv
    $ epochal export baseline --format tensorboard -o tb/baseline
    $ epochal import tensorboard runs/ --project mnist
    $ epochal import ttv training_dynamic/ --method DVI --trust
    $ epochal plot baseline -o baseline.png
    $ epochal rm 3f2a9c --yes
    $ epochal ui --port 8765
    $ epochal sync epochal-runs postgresql://ana@db.example/epochal
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Sequence

from epochal import __version__
from epochal.cli.common import error, location
from epochal.cli.demo import add_demo
from epochal.cli.dynamics import add_dynamics
from epochal.cli.exchange import add_export, add_import
from epochal.cli.plotting import add_plot
from epochal.cli.runs import add_ls, add_rm, add_show
from epochal.cli.serving import add_ui
from epochal.cli.syncing import add_sync
from epochal.errors import EpochalError

_EXAMPLES = """\
examples:
  epochal ls --project mnist                 runs of one project, newest first
  epochal show baseline                      a run's record, config, summary and checkpoints
  epochal export baseline -o baseline.csv    every series, losslessly (or .json, or -o - for stdout)
  epochal export baseline -o tb/baseline     TensorBoard event files in a directory
  epochal import tensorboard runs/           every TensorBoard run under runs/, into the store
  epochal import ttv td/ --trust             a Time-Travelling Visualizer folder; runs its model.py
  epochal plot baseline -o baseline.png      one panel per metric
  epochal rm 3f2a9c --yes                    delete a run and its files
  epochal demo                               train a small demo run into the store
  epochal ui                                 the web dashboard on http://127.0.0.1:8765/
  epochal dynamics samples baseline          hard, ambiguous, forgotten and likely mislabeled samples
  epochal dynamics fit baseline              the 2D projection of every recorded epoch, with backgrounds
  epochal dynamics quality baseline          its NPR, trustworthiness, PPR and temporal correlations
  epochal dynamics plot baseline             a PNG per epoch and an animated GIF
  epochal sync epochal-runs postgresql://db/epochal   copy runs to a team's store (or back)

A run is named by its id, an unambiguous id prefix, or its name (the newest run of that name).
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.handler(args)
    except EpochalError as exc:
        return error(str(exc))
    except BrokenPipeError:  # the reader went away (`epochal export RUN -o - | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:  # the second file of a rename is the one the user named; the first, a temporary
        named = exc.filename2 or exc.filename
        return error(f"{exc.strerror or exc}: '{named}'" if named else str(exc))
    except sqlite3.Error as exc:  # the store's database refused: locked too long, damaged, full
        return error(_database_error(location(args), exc))
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    """The ``epochal`` parser with every command."""
    parser = argparse.ArgumentParser(
        prog="epochal",
        description="Look at the runs that epochal recorded: list, show, export, import, plot and delete them.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"epochal {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    # Each command is an `add_<name>` that registers its parser and handler through `common.command`.
    for add in (add_ls, add_show, add_export, add_import, add_plot, add_rm, add_demo, add_ui, add_dynamics, add_sync):
        add(commands)
    return parser


def _database_error(where: str, exc: sqlite3.Error) -> str:
    if "locked" in str(exc) or "busy" in str(exc):
        return (f"the store in '{where}' is locked by another process ({exc}) for longer than this command "
                "waits; try again when it is done")
    return f"the store in '{where}' cannot be read or written: {type(exc).__name__}: {exc}"
