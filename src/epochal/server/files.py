"""Files: a run's checkpoints for download.

Only files the store lists for the run are served. The request's path is used to pick one of
those records and never to build a path, and the file must still lie inside the run's folder
once symlinks are resolved.
"""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import FileResponse

from epochal.server.models import Problem
from epochal.server.runs import RunRef, store_of

router = APIRouter()


@router.get(
    "/runs/{run}/files/{path:path}",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "the file"},
        404: {"model": Problem},
        422: {"model": Problem},
    },
)
def get_file(
    request: Request, run: RunRef, path: Annotated[str, Path(description="a checkpoint's path as the run lists it")]
) -> FileResponse:
    store = store_of(request)
    record = store.run(run)
    listed = {c.path: c for c in store.checkpoints(record)}
    if path not in listed:
        raise HTTPException(404, f"run {record.name!r} ({record.id}) lists no file {path!r}")
    folder = FsPath(record.path).resolve()
    target = FsPath(record.path, listed[path].path)
    resolved = target.resolve()
    if target.is_symlink() or not resolved.is_relative_to(folder) or not resolved.is_file():
        raise HTTPException(404, f"the file {path!r} of run {record.name!r} is missing from the run's folder")
    return FileResponse(resolved, media_type="application/octet-stream", filename=resolved.name)
