"""The store as a whole: where it is, how many runs, which projects and tags."""

from __future__ import annotations

from fastapi import APIRouter, Request

import epochal
from epochal.server.models import StoreInfo
from epochal.server.runs import store_of

router = APIRouter()


@router.get("/store", response_model=StoreInfo)
def get_store(request: Request) -> StoreInfo:
    store = store_of(request)
    count, projects, tags = store.overview()
    return StoreInfo(
        path=store.where,
        runs=count,
        projects=projects,
        tags=tags,
        read_only=request.app.state.access.read_only,
        version=epochal.__version__,
    )
