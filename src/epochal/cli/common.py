"""What every ``epochal`` command shares: its parser with ``--store`` (and ``RUN``), opening the store
without creating it, the one-line error, and the types of the arguments."""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Callable
from pathlib import Path

from epochal import settings
from epochal.errors import StoreNotFoundError
from epochal.store.records import RunRecord
from epochal.store.store import Store

#: Seconds a command waits while another process writes to the store (``epochal rm --wait`` sets it).
BUSY_TIMEOUT_S = 10.0

Handler = Callable[[argparse.Namespace], int]


def command(
    commands: argparse._SubParsersAction, name: str, handler: Handler, summary: str, description: str | None = None,
    *, run: bool = False,
) -> argparse.ArgumentParser:
    """Register the command ``name``: its parser with ``--store`` (and, with ``run``, the ``RUN`` it acts on).

    ``summary`` is its line in ``epochal --help``; its ``--help`` text is ``description``, by default
    the handler's docstring (as in click: the text a user reads sits on the code it describes).
    """
    description = description or inspect.cleandoc(handler.__doc__ or "")
    parser = commands.add_parser(
        name, help=summary, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--store", metavar="DIR",
        help=f"the store's directory or a team's postgresql://USER:PASSWORD@HOST/DB URL (default: "
             f"${settings.STORE_DIR_ENV}, else ./{settings.DEFAULT_STORE_DIR})",
    )
    if run:
        parser.add_argument("run", metavar="RUN", type=run_ref, help="run id, id prefix or name")
    parser.set_defaults(handler=handler)
    return parser


def location(args: argparse.Namespace) -> str:
    """The store's directory: ``--store``, else ``$EPOCHAL_DIR``, else ``./epochal-runs``."""
    return str(getattr(args, "store", None) or settings.default_store_path())


def open_store(where: str, *, wait: float = BUSY_TIMEOUT_S) -> Store:
    """The store at ``where``, waiting up to ``wait`` seconds for another process's write.

    No command that reads creates a store: a directory given by mistake stays as it was.
    """
    try:
        return Store(where, create=False, busy_timeout=wait)
    except StoreNotFoundError as exc:
        raise StoreNotFoundError(f"{exc}; give --store DIR or set {settings.STORE_DIR_ENV}") from None


def named_run(args: argparse.Namespace) -> RunRecord:
    """The record of the run that ``RUN`` names in the command's store."""
    with open_store(location(args)) as store:
        return store.run(args.run)


def error(message: str, *, status: int = 2) -> int:
    """Print ``epochal: <message>`` as one line on stderr; the exit status."""
    print(f"epochal: {' '.join(message.splitlines())}", file=sys.stderr)
    return status


def unwritable(path: str) -> str | None:
    """Why a file cannot be written at ``path`` (its folder is missing), or None."""
    folder = Path(path).parent
    return None if folder.is_dir() else f"cannot write {path!r}: the folder '{folder}' does not exist"


def run_ref(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("a run is named by its id, an id prefix or its name, got ''")
    return text


def run_name(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("a run's name is a non-empty string, got ''")
    return text


def project(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("a project is a non-empty name, got ''")
    return text


def port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 0 to 65535, got {text!r}")
    return int(text)


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"expected seconds from 0 to 3600, got {text!r}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value
