"""A run's folder of files (checkpoints, dynamics arrays, plots) on any fsspec filesystem.

A team store keeps its records in a database and each run's files at an artifacts location: a
local folder, a shared disk, or an object store (``s3://``, ``gs://``, ...). The training machine
writes into a local folder; a background shipper copies what changed, and ``epochal sync`` copies
folders between stores. Every file appears at its destination complete or not at all::

    shipped = upload_folder(Path("runs/abc123"), "s3://team-bucket/epochal/abc123")
    shipped = upload_folder(Path("runs/abc123"), "s3://team-bucket/epochal/abc123", shipped)  # only what changed
    download_folder("s3://team-bucket/epochal/abc123", Path("copy/abc123"))
    sha256_of("s3://team-bucket/epochal/abc123/checkpoints/last.pt")

Object stores need their fsspec driver: ``pip install 'epochal[s3]'`` for ``s3://`` (s3fs),
gcsfs for ``gs://``, adlfs for ``az://``. Credentials come from the driver's usual places
(for S3: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``~/.aws``, an instance role). An
S3-compatible server (MinIO, Ceph, R2, ...) is chosen without code by ``AWS_ENDPOINT_URL``
(read by botocore >= 1.31, which s3fs uses), by ``endpoint_url`` in a ``~/.aws/config`` profile,
or by fsspec's own configuration: ``FSSPEC_S3_ENDPOINT_URL=http://minio:9000`` set before Python
starts, or ``{"s3": {"endpoint_url": ...}}`` in a JSON file under ``~/.config/fsspec/``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import re
import shutil
import stat
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

import fsspec
from fsspec.asyn import AsyncFileSystem
from fsspec.core import split_protocol

from epochal.atomic import atomic_file, is_temporary, temporary_beside

__all__ = [
    "download_folder",
    "exists",
    "filesystem",
    "is_local",
    "join",
    "put_file",
    "read_bytes",
    "remove_folder",
    "sha256_of",
    "upload_folder",
]

_CHUNK = 8 * 1024 * 1024
_S3_PROTOCOLS = ("s3", "s3a")
_GLOB = re.compile(r"[*?[]")


def is_local(url: str) -> bool:
    """Whether ``url`` is a folder or file on this machine: a plain path or a ``file://`` URL."""
    protocol, _ = split_protocol(str(url))
    return protocol in (None, "file", "local")


def join(url: str, *parts: str) -> str:
    """``url`` with ``parts`` appended, one ``/`` between each: ``join("s3://b/runs/", "a", "x.pt")``
    is ``"s3://b/runs/a/x.pt"``. Empty parts are dropped; slashes inside a part are kept (collapsed)."""
    pieces = [re.sub("/+", "/", part.strip("/")) for part in parts]
    pieces = [piece for piece in pieces if piece]
    if not pieces:
        return url
    base = url if url.endswith("://") else url.rstrip("/")
    separator = "" if base.endswith("://") else "/"
    return f"{base}{separator}{'/'.join(pieces)}"


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem that holds ``url`` and the path of ``url`` on it.

    Filesystems are cached by fsspec, so repeated calls reuse one connection pool.

    Raises:
        ImportError: the driver for ``url``'s protocol is not installed; the message says what to install.
        ValueError: ``url``'s protocol is unknown to fsspec.
    """
    url = str(url)
    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as error:
        protocol, _ = split_protocol(url)
        if protocol in _S3_PROTOCOLS:
            raise ImportError(f"{url!r} needs s3fs: pip install 'epochal[s3]'") from error
        raise ImportError(f"{url!r} needs a filesystem driver that is not installed: {error}") from error
    except ValueError as error:
        if "Protocol not known" not in str(error):
            raise
        raise ValueError(
            f"cannot open {url!r}: {error}; give a folder or an fsspec URL such as 's3://bucket/prefix'"
        ) from error


def put_file(local: Path, url: str) -> None:
    """Copy the file ``local`` to ``url``, which shows either the whole new file or what it showed before.

    A local target is written beside itself and renamed over (:func:`epochal.atomic.atomic_file`). A
    remote one is uploaded under a temporary name beside it and moved to its name (on an object
    store a server-side copy, which readers see all at once); the temporary is removed when anything fails.
    Missing parent folders are created (a missing bucket is not).

    Raises:
        FileNotFoundError: ``local`` does not exist (or the bucket does not).
        OSError: the copy failed; the target is unchanged.
    """
    fs, target = filesystem(url)
    if is_local(url):
        with open(local, "rb") as source, atomic_file(target, "wb") as out:
            shutil.copyfileobj(source, out, _CHUNK)
        return
    parent, name = posixpath.split(target.rstrip("/"))
    temporary = posixpath.join(parent, temporary_beside(name).name)
    try:
        try:
            fs.put_file(str(local), temporary)
        except FileNotFoundError:
            if not os.path.exists(local) or isinstance(fs, AsyncFileSystem):
                raise  # an object store has no folders to make: its bucket is missing, and is not created here
            fs.makedirs(parent, exist_ok=True)
            fs.put_file(str(local), temporary)
        _move(fs, temporary, target)
    except BaseException:
        with contextlib.suppress(Exception):  # never uploaded, or moved already; the first error is the one to see
            fs.rm_file(temporary)
        raise


def _move(fs: fsspec.AbstractFileSystem, source: str, target: str) -> None:
    """Give the file ``source`` the name ``target``.

    Object stores (fsspec's async filesystems: S3, GCS, Azure) copy on the server, which readers see
    all at once, and delete the source: what ``fs.mv`` does, less its listings and its reading of
    ``*?[`` in names as glob patterns. Other filesystems (SFTP, HDFS, ...) rename with ``fs.mv``.
    """
    if isinstance(fs, AsyncFileSystem) or _GLOB.search(source) or _GLOB.search(target):
        fs.cp_file(source, target)
        fs.rm_file(source)
    else:
        fs.mv(source, target)


def upload_folder(
    local_dir: Path, url: str, shipped: Mapping[str, tuple[int, int]] | None = None
) -> dict[str, tuple[int, int]]:
    """Put every file under ``local_dir`` that changed since ``shipped`` at the same place under ``url``.

    Args:
        local_dir: the folder to copy, walked recursively; symlinks, files that vanish meanwhile and
            epochal's temporary files (still being written) are left out.
        url: the folder to copy into.
        shipped: what an earlier call returned: each file's POSIX path relative to ``local_dir``
            mapped to the ``(size, mtime_ns)`` it had when it was put.

    Returns:
        The same map for the files under ``local_dir`` now: pass it to the next call, which then puts
        only new or changed files. A file that changes while it is put is recorded with its
        old stat, so the next call puts it again.
    """
    shipped = shipped or {}
    local_dir = Path(local_dir)
    now: dict[str, tuple[int, int]] = {}
    for directory, folders, files in os.walk(local_dir):
        folders.sort()
        for name in sorted(files):
            if is_temporary(name):
                continue
            path = Path(directory, name)
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(info.st_mode):
                continue
            relative = path.relative_to(local_dir).as_posix()
            key = (info.st_size, info.st_mtime_ns)
            if shipped.get(relative) != key:
                try:
                    put_file(path, join(url, relative))
                except FileNotFoundError:
                    if os.path.lexists(path):
                        raise  # the destination is missing, not the file
                    continue
            now[relative] = key
    return now


def _modified_ns(info: Mapping[str, Any]) -> int | None:
    """A remote file's modification time in whole microseconds (as ns), from its listing, when it has one."""
    for field in ("mtime", "LastModified", "last_modified", "updated", "modified"):
        value = info.get(field)
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
        if isinstance(value, datetime):
            value = value.timestamp()
        if isinstance(value, (int, float)):
            return round(value * 1e6) * 1000
    return None


def _local_name(root: str, path: str) -> str:
    """``path`` relative to the listed folder ``root``, refused when it would leave the folder it lands in."""
    if path == root:
        raise ValueError(f"{root!r} is a file; give the folder that holds it")
    relative = path[len(root) :].lstrip("/") if path.startswith(root + "/") else path
    posix, native = PurePosixPath(relative), Path(relative)  # on Windows, "\\" and "C:" matter too
    if posix.is_absolute() or native.anchor or ".." in posix.parts or ".." in native.parts:
        raise ValueError(f"remote file {path!r} under {root!r} would be written outside the local folder")
    return relative


def download_folder(url: str, local_dir: Path) -> int:
    """Copy every file under ``url`` to the same place under ``local_dir``, each atomically.

    A file whose local copy has the same size and modification time (set from the remote file when
    it was copied) is skipped; so are temporary files a writer is still uploading. S3 keeps whole
    seconds, so a remote file replaced by one of the same size within the second it was copied
    is missed until it changes again. Returns how many files were copied.

    Raises:
        ValueError: a remote name would land outside ``local_dir`` (``..``, absolute); nothing is copied.
    """
    fs, root = filesystem(url)
    root = root.rstrip("/")
    fs.invalidate_cache(root)  # another process may have added files since this filesystem last listed
    listing = fs.find(root, detail=True)
    local_dir = Path(local_dir)
    plan = []
    for path, info in sorted(listing.items()):
        if info.get("type", "file") != "file" or is_temporary(posixpath.basename(path)):
            continue
        plan.append((path, info, local_dir / _local_name(root, path)))
    copied = 0
    for path, info, target in plan:
        modified = _modified_ns(info)
        try:
            have = target.stat()
        except FileNotFoundError:
            have = None
        if have is not None and have.st_size == info.get("size") and modified in (None, have.st_mtime_ns):
            continue
        with fs.open(path, "rb") as source, atomic_file(target, "wb") as out:
            shutil.copyfileobj(source, out, _CHUNK)
        if modified is not None:
            os.utime(target, ns=(modified, modified))
        copied += 1
    return copied


def sha256_of(url: str) -> str:
    """The SHA-256 of the file at ``url`` (hex), read in chunks."""
    fs, path = filesystem(url)
    digest = hashlib.sha256()
    with fs.open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_bytes(url: str) -> bytes:
    """The whole file at ``url``."""
    fs, path = filesystem(url)
    return fs.cat_file(path)


def exists(url: str) -> bool:
    """Whether a file or folder is at ``url``."""
    fs, path = filesystem(url)
    return fs.exists(path)


def remove_folder(url: str) -> None:
    """Delete the folder at ``url`` and everything under it; a missing folder is not an error."""
    fs, path = filesystem(url)
    try:
        fs.rm(path, recursive=True)
    except FileNotFoundError:
        pass
