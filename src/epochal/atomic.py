"""Atomic file writes: the one place in epochal that puts a finished file under its real name.

Every file epochal writes (checkpoints, CSV tables, exports, charts, dynamics arrays, a seed tool's
folder) is written to a temporary file beside its target, synced, and renamed over the target, so a
reader or a crash sees the old file or the new one, never half of one::

    atomic_write(path, b"bytes")                          # bytes or text
    atomic_write(path, lambda file: torch.save(obj, file))
    with atomic_file(path, "w") as out:                   # a stream for writers that want one
        csv.writer(out).writerows(rows)

A temporary file is named after the process writing it: a tag of its host, its pid and the
process's random token, so that :func:`clean_stale_temporaries` can tell a file left by a killed
writer from one a live writer is still filling, even when a restarted container reuses the pid.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from epochal import system

__all__ = ["atomic_file", "atomic_write", "clean_stale_temporaries", "is_temporary", "replace_folder", "temporary_beside"]

_TEMPORARY = re.compile(r"\..+\.(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]{1,10})-(?P<token>[0-9a-f]{8,32})\.tmp")
_OLD_TEMPORARY = re.compile(r"\..+\.(?P<pid>[0-9]{1,10})\.tmp")  # what epochal wrote before the above


def _host_tag() -> str:
    return hashlib.sha256(system.host().encode("utf-8", "surrogateescape")).hexdigest()[:8]


def temporary_beside(target: str | os.PathLike) -> Path:
    """The name this process writes ``target``'s temporary file (or folder) under, beside it."""
    target = Path(target)
    return target.with_name(f".{target.name[:120]}.{_host_tag()}-{os.getpid()}-{system.process_token()}.tmp")


def is_temporary(name: str) -> bool:
    """Whether the file name ``name`` is one of epochal's temporaries: a file a writer is still filling
    (or a killed one left), never to be copied or read as a finished file."""
    return name.endswith(".tmp") and bool(_TEMPORARY.fullmatch(name) or _OLD_TEMPORARY.fullmatch(name))


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the platform lets a folder be opened)."""
    try:
        directory = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(directory)
    except OSError:
        pass  # some file systems cannot sync a folder; the rename itself has happened
    finally:
        os.close(directory)


@contextmanager
def atomic_file(target: str | os.PathLike, mode: str = "wb", *, sync: bool = True) -> Iterator[IO[Any]]:
    """An open temporary file beside ``target`` that replaces it when the block ends without error.

    Args:
        target: the file to write; its folder is created when missing.
        mode: ``"wb"`` for bytes or ``"w"`` for UTF-8 text (newlines written as given).
        sync: fsync the file and its folder, so the new file survives a power cut.

    Raises:
        OSError: the file cannot be written (disk full, no permission, ...); ``target`` is unchanged
            and the temporary file is gone.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    target = Path(target)
    temporary = temporary_beside(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "wb") as raw:
            if mode == "w":
                text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
                yield text
                text.flush()
                text.detach()  # the binary file stays open, to be synced and closed below
            else:
                yield raw
            raw.flush()
            if sync:
                os.fsync(raw.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if sync:
        _sync_folder(target.parent)


def atomic_write(target: str | os.PathLike, data: bytes | str | Callable[[IO[bytes]], Any], *, sync: bool = True) -> None:
    """Write ``data`` to ``target`` atomically: bytes, text (UTF-8), or a function given the open binary file.

    Raises:
        OSError: as :func:`atomic_file`; ``target`` is unchanged.
    """
    with atomic_file(target, "wb", sync=sync) as file:
        if isinstance(data, str):
            file.write(data.encode("utf-8"))
        elif isinstance(data, (bytes, bytearray, memoryview)):
            file.write(data)
        else:
            data(file)


def replace_folder(staging: str | os.PathLike, target: str | os.PathLike) -> None:
    """Put the finished folder ``staging`` in the place of ``target``, whose old contents are removed.

    The old folder is first renamed aside, so ``target`` is missing only between two renames and
    never holds a mix of old and new files.
    """
    staging, target = Path(staging), Path(target)
    retired = temporary_beside(target).with_suffix(".old")
    if target.exists():
        os.replace(target, retired)
    os.replace(staging, target)
    shutil.rmtree(retired, ignore_errors=True)
    _sync_folder(target.parent)


def clean_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that writers killed mid-write left in ``folder`` and below.

    A temporary file is stale when its writer is gone: its pid runs no process on this host,
    or it is this process's pid with another process's token. Files of live writers, of other
    hosts (a shared disk) and every other file are left alone. Returns the files deleted.
    """
    host, me, token, removed = _host_tag(), os.getpid(), system.process_token(), []
    for directory, _, files in os.walk(folder):
        for name in files:
            if not name.endswith(".tmp"):
                continue
            if match := _TEMPORARY.fullmatch(name):
                pid = int(match["pid"])
                stale = match["host"] == host and (
                    match["token"] != token if pid == me else not system.pid_alive(pid)
                )
            elif match := _OLD_TEMPORARY.fullmatch(name):
                stale = not system.pid_alive(int(match["pid"]))
            else:
                continue
            if stale:
                path = Path(directory) / name
                try:
                    path.unlink()
                except OSError:
                    continue  # gone already, or not ours to delete
                removed.append(path)
    return removed
