"""Where the dashboard may read, write and delete: a run's folder inside the store, files inside that folder.

A store may have been written by someone else (shared, downloaded, crafted), so nothing read from its
database is trusted to name a path: a run's folder must be a plain name directly inside the store's runs
folder, and a file must lie inside its run's folder, both once symlinks are resolved. A checkpoint is
served only when its bytes are the ones its record describes (size and sha256): a hard link or a
swapped file cannot pass for it.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from fastapi import HTTPException
from fastapi.responses import StreamingResponse

from epochal import settings
from epochal.redaction import redacted
from epochal.store import artifacts
from epochal.store.records import Checkpoint, RunRecord, valid_run_id
from epochal.store.store import Store

#: Bytes read at a time when hashing and sending a file.
_BLOCK = 1 << 20


def run_folder(store: Store, record: RunRecord) -> Path:
    """The run's folder with symlinks resolved; 409 when the database's id would lead outside the store.

    A team store keeps records only; a run's files are where its record says. They are read when that is
    ``<id>`` in a folder of this machine where runs bound for a team store keep files (the spool's runs
    folder, a local ``$EPOCHAL_ARTIFACTS``): a record in a shared database names no other folder to read.
    """
    if not store.keeps_files:
        return _team_run_folder(record)
    root = store.files_root
    plain = valid_run_id(record.id) and Path(record.path) == root / record.id
    folder = _resolved(Path(record.path)) if plain else None
    if folder is None or folder.parent != _resolved(root):
        raise HTTPException(
            409, f"run {record.name!r} has the id {record.id!r:.80}, whose folder is not inside the store's "
                 "runs folder: its files are neither served nor deleted",
        )
    return folder


def _team_run_folder(record: RunRecord) -> Path:
    roots = [settings.spool_path() / "runs"]
    local_artifacts = settings.artifacts_location()
    if local_artifacts and artifacts.is_local(local_artifacts):
        roots.append(Path(local_artifacts))
    folder = _resolved(Path(record.path)) if valid_run_id(record.id) and artifacts.is_local(record.path) else None
    if folder is None or folder.name != record.id or folder.parent not in {_resolved(r) for r in roots}:
        raise HTTPException(
            404, f"run {record.name!r} keeps its files at {redacted(record.path)!r}, which this dashboard does not "
                 "read: it reads the runs folder of this machine's spool and a local $EPOCHAL_ARTIFACTS",
        )
    return folder


def inside(folder: Path, path: Path) -> Path | None:
    """``path`` with symlinks resolved, if it lies inside ``folder`` (itself resolved); else None."""
    resolved = _resolved(path)
    return resolved if resolved is not None and resolved.is_relative_to(folder) and resolved != folder else None


def link_outside(folder: Path, root: Path) -> Path | None:
    """The first thing in ``folder`` (itself included, subfolders too) that leads outside ``root`` through a
    symlink; None when there is none. For files read by code that takes a folder, not a file."""
    if folder.is_symlink() and inside(root, folder) is None:
        return folder
    pending = [folder]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError:
            continue
        for entry in entries:
            if entry.is_symlink():
                if inside(root, Path(entry.path)) is None:
                    return Path(entry.path)
            elif entry.is_dir(follow_symlinks=False):
                pending.append(Path(entry.path))
    return None


def plain_file(folder: Path, path: Path) -> Path | None:
    """``path`` if it is a regular file with one link, inside ``folder`` once symlinks are resolved; else None.

    For files served byte for byte that have no record to check them against: a second link could be
    a file from anywhere on the disk.
    """
    resolved = inside(folder, path)
    try:
        info = os.stat(resolved) if resolved is not None else None
    except OSError:
        return None
    return resolved if info is not None and stat.S_ISREG(info.st_mode) and info.st_nlink == 1 else None


def checkpoint_response(folder: Path, checkpoint: Checkpoint, shown: str) -> StreamingResponse:
    """The checkpoint's file for download, checked against its record before the first byte is sent.

    ``shown`` names the file in the 404 message. The file is opened once; the checks and the download
    read that same open file, so it cannot be swapped between them.
    """
    missing = HTTPException(404, f"the file {shown!r} is missing from the run's folder")
    path = inside(folder, folder / checkpoint.path)
    if path is None:
        raise missing
    try:
        file = open(os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)), "rb")  # noqa: SIM115
    except OSError:
        raise missing from None
    try:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise missing
        if info.st_size != checkpoint.size or _sha256(file, info) != checkpoint.sha256:
            raise HTTPException(
                409, f"the file {shown!r} does not match its record (size {checkpoint.size}, sha256 "
                     f"{checkpoint.sha256[:12]}...): it was changed or replaced, and is not served",
            )
    except BaseException:
        file.close()
        raise
    return StreamingResponse(
        _blocks(file), media_type="application/octet-stream",
        headers={"Content-Length": str(info.st_size), "Content-Disposition": _attachment(path.name)},
    )


def _resolved(path: Path) -> Path | None:
    try:
        return path.resolve()
    except (OSError, ValueError, RuntimeError):  # a NUL byte, a symlink loop
        return None


class _Verified:
    """sha256 of files already hashed, by the identity of their content (inode, size, mtime, ctime).

    A change to a file changes its ctime, which no user can set back, so a hit is the same bytes.
    """

    def __init__(self, size: int = 256):
        self.size = size
        self._items: OrderedDict[tuple, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> str | None:
        with self._lock:
            return self._items.get(key)

    def put(self, key: tuple, digest: str) -> None:
        with self._lock:
            self._items[key] = digest
            while len(self._items) > self.size:
                self._items.popitem(last=False)


_verified = _Verified()


def _sha256(file: BinaryIO, info: os.stat_result) -> str:
    key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
    digest = _verified.get(key)
    if digest is None:
        digest = hashlib.file_digest(file, "sha256").hexdigest()  # type: ignore[arg-type]
        _verified.put(key, digest)
    file.seek(0)
    return digest


def _blocks(file: BinaryIO) -> Iterator[bytes]:
    with file:
        while block := file.read(_BLOCK):
            yield block


def _attachment(name: str) -> str:
    quoted = quote(name)
    return f'attachment; filename="{name}"' if quoted == name else f"attachment; filename*=utf-8''{quoted}"
