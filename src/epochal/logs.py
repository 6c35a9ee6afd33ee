"""The ``epochal`` logger: where the library's own messages go.

Library code writes ``logger.info(...)`` or ``logger.warning(...)``, never ``print``. By default a
message reaches the console as ``epochal: <message>``: information on standard output, warnings and
errors on standard error, each looked up when the message is written so that redirected streams are
honoured. To send epochal's messages into your own logging set-up instead::

    import logging
    logging.getLogger("epochal").handlers.clear()
    logging.getLogger("epochal").propagate = True

What a user asked to see (the Trainer's tables and progress bars, the command line's output, a seed
tool's own lines in ``compat``) is printed, not logged.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["logger"]


class _ConsoleHandler(logging.Handler):
    """Information to standard output, warnings and errors to standard error."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stdout if record.levelno < logging.WARNING else sys.stderr
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # a closed stream must not break training
            self.handleError(record)


logger = logging.getLogger("epochal")
if not any(isinstance(h, _ConsoleHandler) for h in logger.handlers):
    _handler = _ConsoleHandler()
    _handler.setFormatter(logging.Formatter("epochal: %(message)s"))
    logger.addHandler(_handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
