"""Runs still open when the interpreter exits are finished: 'finished', or 'failed' (or
'interrupted' after Ctrl-C) when an uncaught exception ended the program."""

from __future__ import annotations

import atexit
import sys
import threading
import weakref
from typing import Any

from epochal.errors import EpochalError
from epochal.logs import logger

#: Every Run not finished yet; a Run adds itself when opened and leaves when it ends.
open_runs: weakref.WeakSet[Any] = weakref.WeakSet()
_uncaught: list[type] = []
_previous_hook = sys.excepthook


def _remember_uncaught(exc_type, exc, tb):  # type: ignore[no-untyped-def]
    _uncaught.append(exc_type)
    _previous_hook(exc_type, exc, tb)


def _finish_open_runs() -> None:
    if not open_runs:
        return
    status = "finished"
    if _uncaught:
        status = "interrupted" if issubclass(_uncaught[-1], KeyboardInterrupt) else "failed"
    for run in list(open_runs):
        try:
            run.finish(status, timeout=10.0)
        except EpochalError as exc:
            logger.warning(str(exc))


if threading.current_thread() is threading.main_thread():
    sys.excepthook = _remember_uncaught
atexit.register(_finish_open_runs)
