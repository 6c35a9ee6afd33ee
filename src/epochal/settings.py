"""Every environment variable epochal reads, and the defaults they override."""

from __future__ import annotations

import os
from pathlib import Path

#: Directory of the default store, used when no ``store=`` argument is given.
STORE_DIR_ENV = "EPOCHAL_DIR"
#: Where the store lives when neither ``store=`` nor ``EPOCHAL_DIR`` says otherwise.
DEFAULT_STORE_DIR = "epochal-runs"


def default_store_path() -> Path:
    return Path(os.environ.get(STORE_DIR_ENV) or DEFAULT_STORE_DIR)
