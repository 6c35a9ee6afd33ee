"""Files: a run's checkpoints for download.

Only files the store lists for the run are served, and of those only the ones epochal wrote (a
checkpoint another framework wrote is only recorded, see ``Run.add_checkpoint``). The request's path is used to pick one of
those records and never to build a path; the file must lie inside the run's folder once symlinks
are resolved and match the record's size and sha256 (see :mod:`epochal.server.folders`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import StreamingResponse

from epochal.run_checkpoints import EXTERNAL
from epochal.server import folders
from epochal.server.models import Problem
from epochal.server.runs import RunRef, store_of

router = APIRouter()


@router.get(
    "/runs/{run}/files/{path:path}",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "the file"},
        404: {"model": Problem},
        409: {"model": Problem},
        422: {"model": Problem},
    },
)
def get_file(
    request: Request, run: RunRef, path: Annotated[str, Path(description="a checkpoint's path as the run lists it")]
) -> StreamingResponse:
    store = store_of(request)
    record = store.run(run)
    listed = {c.path: c for c in store.checkpoints(record)}
    if path not in listed:
        raise HTTPException(404, f"run {record.name!r} ({record.id}) lists no file {path!r}")
    if listed[path].kind == EXTERNAL:
        raise HTTPException(404, f"checkpoint {path!r} of run {record.name!r} was written by another framework and "
                                 "is only recorded here: epochal serves the files it wrote")
    return folders.checkpoint_response(folders.run_folder(store, record), listed[path], path)
