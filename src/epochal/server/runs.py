"""Runs: the table of runs, one run's details, and the changes a user may make (tags, notes, delete).

Who may make a change is decided before the request's body is read (:mod:`epochal.server.guard`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from epochal.keys import main_metrics
from epochal.server import folders, models
from epochal.server.models import Deleted, Problem, RunDetail, RunList, RunPatch, Status
from epochal.store.records import RunRecord
from epochal.store.store import Store

router = APIRouter()

RunRef = Annotated[str, Path(description="a run's id, an unambiguous id prefix, or its name")]


def store_of(request: Request) -> Store:
    return request.app.state.store


@router.get("/runs", response_model=RunList, responses={422: {"model": Problem}})
def list_runs(
    request: Request,
    q: Annotated[str | None, Query(max_length=200, description="text in the name, id, tags or notes")] = None,
    project: Annotated[str | None, Query(max_length=200)] = None,
    tag: Annotated[str | None, Query(max_length=200)] = None,
    status: Status | None = None,
    metric: Annotated[list[str], Query(max_length=50, description="keys whose last and best to include")] = [],  # noqa: B006
) -> RunList:
    store = store_of(request)
    records = store.runs(project, status=status, tag=tag)
    if q:
        records = [r for r in records if _matches(r, q)]
    summaries = store.key_summaries(metric) if metric else {}
    logged = store.keys_by_run([r.id for r in records] if len(records) < 500 else None)  # one read either way
    keys = {r.id: logged.get(r.id, []) for r in records}
    rows = [models.run_row(r, summaries.get(r.id), keys[r.id]) for r in records]
    filtered = any(f is not None for f in (q, project, tag, status))
    return models.json_response({  # type: ignore[return-value]
        "runs": rows,
        "metric_keys": _keys_of(store, records) if filtered else store.all_keys(),
        "main_metrics": main_metrics(key for run_keys in keys.values() for key in run_keys),
        "config_keys": sorted({key for row in rows for key in row["config"]}),
    })


@router.get("/runs/{run}", response_model=RunDetail, responses={404: {"model": Problem}, 422: {"model": Problem}})
def get_run(request: Request, run: RunRef) -> RunDetail:
    store = store_of(request)
    return _detail(store, store.run(run))


@router.patch(
    "/runs/{run}",
    response_model=RunDetail,
    responses={403: {"model": Problem}, 404: {"model": Problem}, 413: {"model": Problem}, 422: {"model": Problem},
               503: {"model": Problem}},
)
def update_run(request: Request, run: RunRef, patch: RunPatch) -> RunDetail:
    store = store_of(request)
    return _detail(store, store.update(run, tags=patch.tags, notes=patch.notes))


@router.delete(
    "/runs/{run}",
    response_model=Deleted,
    responses={403: {"model": Problem}, 404: {"model": Problem}, 409: {"model": Problem}, 422: {"model": Problem},
               503: {"model": Problem}},
)
def delete_run(request: Request, run: RunRef) -> Deleted:
    store = store_of(request)
    record = store.run(run)
    folders.run_folder(store, record)  # an id that leads outside the store deletes nothing
    return Deleted(deleted=store.delete(record).id)


def _detail(store: Store, record: RunRecord) -> RunDetail:
    return models.run_detail(record, store.summary(record), store.checkpoints(record))


def _matches(record: RunRecord, text: str) -> bool:
    needle = text.lower()
    haystack = (record.name, record.id, record.project, record.description, *record.tags)
    return any(needle in part.lower() for part in haystack)


def _keys_of(store: Store, records: list[RunRecord]) -> list[str]:
    return store.keys_of(r.id for r in records)
