"""Every environment variable epochal reads, and the defaults they override."""

from __future__ import annotations

import os
from pathlib import Path

#: Directory of the default store, used when no ``store=`` argument is given.
STORE_DIR_ENV = "EPOCHAL_DIR"
#: Where the store lives when neither ``store=`` nor ``EPOCHAL_DIR`` says otherwise.
DEFAULT_STORE_DIR = "epochal-runs"


def default_store_path() -> Path | str:
    """``$EPOCHAL_DIR`` (a directory, or a URL such as a team's ``postgresql://...``), else ``./epochal-runs``."""
    where = os.environ.get(STORE_DIR_ENV) or DEFAULT_STORE_DIR
    return where if "://" in where else Path(where)

#: The local spool a run bound for a team store (PostgreSQL) is written to before it is shipped.
SPOOL_DIR_ENV = "EPOCHAL_SPOOL"
#: Where a team store's runs keep their files (an fsspec URL such as ``s3://bucket/prefix``, or a folder)
#: when ``start(artifacts=)`` does not say; unset: they stay in the spool's folder on the training machine.
ARTIFACTS_ENV = "EPOCHAL_ARTIFACTS"


def spool_path() -> Path:
    """``$EPOCHAL_SPOOL``, else ``epochal/spool`` in the user's cache folder (``$XDG_CACHE_HOME``, ``~/.cache``)."""
    if os.environ.get(SPOOL_DIR_ENV):
        return Path(os.environ[SPOOL_DIR_ENV])
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "epochal" / "spool"


def artifacts_location() -> str | None:
    return os.environ.get(ARTIFACTS_ENV) or None
