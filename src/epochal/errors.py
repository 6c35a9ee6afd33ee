"""The errors and warnings epochal raises."""

from __future__ import annotations

import warnings


class EpochalError(Exception):
    """Root of every error epochal raises on purpose."""


class StoreError(EpochalError):
    """The store cannot be opened, created or written."""


class StoreNotFoundError(StoreError):
    """There is no store where one was to be read (and creating one was not asked for)."""


class StoreUnavailableError(StoreError):
    """The store's server cannot be reached (down, wrong host, refused credentials); worth trying again."""


class RunNotFoundError(EpochalError, LookupError):
    """No run matches the id or name that was given."""


class RunStateError(EpochalError):
    """The run is in a state that does not allow the operation (finished, still running, ...)."""


class RankError(EpochalError):
    """The ranks of a DDP job disagree (a key reduced on some ranks only), or one failed where all must succeed."""


class CheckpointError(EpochalError):
    """A checkpoint cannot be written, found or loaded into the given objects."""


class EpochalWarning(UserWarning):
    """Something went wrong that epochal recovered from, such as a failed flush that will be retried."""


class SeriesNotFoundError(EpochalError, LookupError):
    """The run has logged no values under that key."""


class DynamicsError(EpochalError):
    """Recorded training dynamics that are missing or do not fit together."""


def warn(message: str, stacklevel: int = 2) -> None:
    """Warn with an :class:`EpochalWarning` that points ``stacklevel`` frames above the function calling this
    one (1: that function's line; 2, the default: the line that called it, such as a user's ``run.finish()``)."""
    warnings.warn(message, EpochalWarning, stacklevel=stacklevel + 1)
