"""Runs: the table of runs, one run's details, and the changes a user may make (tags, notes, delete).

Who may make a change is decided before the request's body is read (:mod:`epochal.server.guard`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request

from epochal.keys import main_metrics
from epochal.server import folders, models
from epochal.server.models import Deleted, Problem, RunDetail, RunGroups, RunIds, RunList, RunPatch, Status
from epochal.store.query import MAX_LIMIT, Column, RunQuery, parse_column, parse_condition
from epochal.store.records import RunRecord
from epochal.store.store import Store

router = APIRouter()

RunRef = Annotated[str, Path(description="a run's id, an unambiguous id prefix, or its name")]


def store_of(request: Request) -> Store:
    return request.app.state.store


def run_filter(
    request: Request,
    q: Annotated[str | None, Query(max_length=200, description="text in the name, id, project, tags or notes")] = None,
    project: Annotated[str | None, Query(max_length=200)] = None,
    tag: Annotated[str | None, Query(max_length=200)] = None,
    status: Status | None = None,
    where: Annotated[list[str], Query(max_length=20, description=(
        "conditions every run meets: a config key or a metric's `:last` / `:best`, an operator "
        "(< <= > >= = !=) and a value, such as `lr<0.01`, `optim.name=adam`, `valid/loss:best<=0.3`"))] = [],  # noqa: B006
    as_of: Annotated[float | None, Query(description=(
        "only runs started at this time (seconds since the epoch) or earlier: a list that new runs do not "
        "shift"))] = None,
) -> RunQuery:
    """The filters ``/runs``, ``/run-ids`` and ``/run-groups`` share, as a query (its conditions checked)."""
    return RunQuery(project=project, status=status, tag=tag, text=q or None, started_before=as_of,
                    conditions=_known(store_of(request), tuple(map(parse_condition, where))))


RunFilter = Annotated[RunQuery, Depends(run_filter)]


@router.get("/runs", response_model=RunList, responses={422: {"model": Problem}})
def list_runs(
    request: Request,
    chosen: RunFilter,
    sort: Annotated[str, Query(max_length=300, description=(
        "a run's column (started, name, project, status, duration, steps, epochs, id), a config key "
        "(`lr`, or `config.name` for a key named like a column) or a metric (`valid/loss:best`, "
        "`train/loss:last`); runs without a value come last"))] = "started",
    order: Literal["asc", "desc"] = "desc",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="runs in the page")] = 100,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    metric: Annotated[list[str], Query(max_length=50, description="keys whose last and best to include")] = [],  # noqa: B006
) -> RunList:
    """A page of the runs the filters select, in the order asked for; ``newer`` counts those started after ``as_of``."""
    store = store_of(request)
    query = replace(chosen, sort=_known(store, (parse_column(sort),))[0], descending=order == "desc", limit=limit,
                    offset=offset)
    records, total = store.query_runs(query)
    as_of = query.started_before
    newer = 0 if as_of is None else store.query_runs(
        replace(query, started_before=None, started_after=as_of, sort=Column("run", "started"), limit=0, offset=0))[1]
    summaries = store.key_summaries(metric, [r.id for r in records]) if metric else {}
    logged = store.keys_by_run([r.id for r in records])
    counts = store.key_counts(query.project)
    return models.json_response({  # type: ignore[return-value]
        "runs": [models.run_row(r, summaries.get(r.id), logged.get(r.id, [])) for r in records],
        "total": total, "offset": offset, "limit": limit, "newer": newer,
        "metric_keys": list(counts),
        "main_metrics": main_metrics(counts, counts=counts),
        "config_keys": store.config_keys(),
    })


def _known(store: Store, columns: tuple) -> tuple:
    """``columns`` (or conditions), each naming a config key or a metric some run has: else a ValueError (422)."""
    config_keys = metric_keys = None
    for item in columns:
        column = getattr(item, "column", item)
        if column.kind == "config":
            config_keys = store.config_keys() if config_keys is None else config_keys
            known = config_keys
        elif column.kind == "metric":
            metric_keys = store.key_counts() if metric_keys is None else metric_keys
            known = metric_keys
        else:
            continue
        if column.name not in known:
            what = "config key" if column.kind == "config" else "logged key"
            sample = ", ".join(list(known)[:20]) + (f", ... ({len(known)} in all)" if len(known) > 20 else "")
            raise ValueError(f"no run has the {what} {column.name!r}; the {what}s are: {sample or 'none'}")
    return columns


@router.get("/run-ids", response_model=RunIds, responses={422: {"model": Problem}})
def list_run_ids(request: Request, chosen: RunFilter) -> RunIds:
    """The ids of every run the same filters as ``/runs`` select, newest first: "select all matching"."""
    records, total = store_of(request).query_runs(chosen)
    return RunIds(ids=[r.id for r in records], total=total)


@router.get("/run-groups", response_model=RunGroups, responses={422: {"model": Problem}})
def list_run_groups(
    request: Request,
    group_by: Annotated[list[str], Query(min_length=1, max_length=20, description="config keys whose equal values make a group")],
    chosen: RunFilter,
    metric: Annotated[list[str], Query(max_length=50, description=(
        "metric columns (`valid/loss:best`, `train/loss:last`) whose mean and standard deviation each group gets"))] = [],  # noqa: B006
) -> RunGroups:
    """The runs the same filters as ``/runs`` select, in groups of equal values of ``group_by``, largest
    first: each group's values, its count, and per metric column the mean and sample standard deviation."""
    store = store_of(request)
    keys = [parse_column(k) for k in group_by]
    if any(k.kind != "config" for k in keys):
        raise ValueError(f"group_by takes config keys, got {group_by!r}; the config keys are: "
                         f"{', '.join(store.config_keys()) or 'none'}")
    _known(store, tuple(keys))
    columns = [parse_column(m) for m in metric]
    if any(c.kind != "metric" for c in columns):
        raise ValueError(f"metric takes a logged key and ':last' or ':best', such as 'valid/loss:best'; got {metric!r}")
    groups = store.group_runs(chosen, [k.name for k in keys], _known(store, tuple(columns)))
    return RunGroups(group_by=[k.name for k in keys], metrics=[c.text for c in columns], groups=[
        {"values": list(g.values), "count": g.count,
         "stats": {name: {"count": s.count, "mean": s.mean, "std": s.std} for name, s in g.stats.items()}}
        for g in groups])


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
    if store.keeps_files:
        folders.run_folder(store, record)  # an id that leads outside the store deletes nothing
    return Deleted(deleted=store.delete(record).id)


def _detail(store: Store, record: RunRecord) -> RunDetail:
    return models.run_detail(record, store.summary(record), store.checkpoints(record))
