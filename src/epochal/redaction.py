"""The one rule that keeps passwords out of messages, logs and run records: a URL is shown without its password.

Examples:
    >>> redacted("postgresql://ana:hunter2@db.example/epochal")
    'postgresql://ana:***@db.example/epochal'
"""

from __future__ import annotations

import re

# scheme://user:password@ : the password is whatever lies between the first ':' after '//' and the last '@'
# of the authority (a password may hold '@' and ':').
_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^/\s:@]*:)(?P<password>[^/\s]*)(?=@[^/\s@]*(?:[/\s?#]|$))")
_PASSWORD_OPTION = re.compile(r"(?P<head>\bpassword=)(?P<password>[^&\s]+)")


def redacted(text: str) -> str:
    """``text`` with the password of every URL in it (``scheme://user:password@host``, ``?password=...``)
    replaced by ``***``."""
    text = _PASSWORD.sub(lambda m: m["head"] + "***", text)
    return _PASSWORD_OPTION.sub(lambda m: m["head"] + "***", text)
