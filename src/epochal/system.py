"""Facts about the process a run lives in: host, command, versions, git commit, liveness."""

from __future__ import annotations

import os
import secrets
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

_token: tuple[int, str] | None = None


def host() -> str:
    return socket.gethostname()


def command_line() -> str:
    """The command as typed: ``python -m pkg.mod ARGS``, ``python script.py ARGS``, or ``tool ARGS``
    for a console script installed beside the interpreter (such as ``epochal demo``). A URL's password
    in it (``--store postgresql://ana:secret@db/x``) is kept out of the run's record."""
    from epochal.redaction import redacted

    argv = [redacted(arg) for arg in getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]]
    python = Path(argv[0]).name
    script = Path(argv[1]) if len(argv) > 1 else None
    if script is not None and script.parent == Path(sys.executable).parent and script.is_file():
        return shlex.join([script.name, *argv[2:]])
    return shlex.join([python, *argv[1:]])


def python_version() -> str:
    return sys.version.split()[0]


def torch_version() -> str | None:
    torch = sys.modules.get("torch")
    return getattr(torch, "__version__", None)


#: Seconds a directory's commit is remembered: a sweep starting many runs asks git once, not for each run.
GIT_COMMIT_TTL_S = 10.0
_commits: dict[str, tuple[float, str | None]] = {}


def git_commit(directory: str | Path = ".") -> str | None:
    """The commit checked out in ``directory``'s repository, with '-dirty' if files changed (as git said
    it at most ``GIT_COMMIT_TTL_S`` seconds ago)."""
    where = os.path.abspath(directory)
    known = _commits.get(where)
    if known is not None and time.monotonic() - known[0] < GIT_COMMIT_TTL_S:
        return known[1]
    commit = _ask_git(where)
    _commits[where] = (time.monotonic(), commit)
    return commit


def _ask_git(directory: str) -> str | None:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=directory, capture_output=True, text=True, timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    dirty = status.returncode == 0 and status.stdout.strip() != ""
    return commit.stdout.strip() + ("-dirty" if dirty else "")


def process_token() -> str:
    """A random token for this process (a new one after a fork): a pid can be reused, this cannot."""
    global _token
    if _token is None or _token[0] != os.getpid():
        _token = (os.getpid(), secrets.token_hex(8))
    return _token[1]


def gone_on_this_host(processes: Sequence[tuple[str, int]]) -> list[int]:
    """Positions in ``processes`` (``(host, pid)`` each, as a DDP run's ranks) of those on this host
    that are not running any more."""
    here = host()
    return [i for i, (where, pid) in enumerate(processes) if where == here and not pid_alive(pid)]


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host (a zombie counts as dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state = stat.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return True
