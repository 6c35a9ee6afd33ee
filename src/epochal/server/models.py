"""The JSON shapes of the dashboard API. They are the OpenAPI schema, so every field is typed."""

from __future__ import annotations

import json
import math
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from epochal.store.records import Checkpoint, KeySummary, RunRecord

Status = Literal["running", "finished", "failed", "interrupted", "crashed"]
#: A config leaf as JSON carries it; lists and other objects are shown as their JSON text.
ConfigValue = bool | int | float | str | None
XAxis = Literal["step", "epoch", "time"]
#: A tag as the store accepts it: 1 to 100 characters, not only spaces.
Tag = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"\S")]


class Problem(BaseModel):
    """The body of every 4xx answer."""

    detail: str


class StoreInfo(BaseModel):
    path: str
    runs: int
    projects: list[str]
    tags: list[str]
    read_only: bool
    version: str


class MetricCell(BaseModel):
    """Last and best value of one key of one run."""

    last: float | None
    best: float | None
    mode: Literal["min", "max"]
    count: int
    last_step: int


class RunRow(BaseModel):
    """A run as the runs table shows it."""

    id: str
    name: str
    project: str
    status: Status
    tags: list[str]
    started: float = Field(description="seconds since the epoch")
    ended: float | None
    duration: float = Field(description="seconds")
    steps: int
    epochs: int
    notes: str
    config: dict[str, ConfigValue] = Field(description="config leaves under their dotted keys")
    metrics: dict[str, MetricCell] = Field(description="the keys asked for with metric=")


class RunList(BaseModel):
    runs: list[RunRow]
    metric_keys: list[str] = Field(description="every key a listed run has logged")
    config_keys: list[str] = Field(description="every dotted config key of the listed runs")


class SummaryRow(BaseModel):
    key: str
    count: int
    last: float | None
    last_step: int
    min: float | None
    max: float | None
    best: float | None
    mode: Literal["min", "max"]


class CheckpointOut(BaseModel):
    path: str
    step: int
    epoch: int
    size: int
    sha256: str
    created: float
    metric_key: str | None
    metric_value: float | None
    mode: str | None
    kind: str
    url: str = Field(description="where the file is downloaded")


class RunDetail(RunRow):
    host: str
    pid: int
    command: str
    git_commit: str | None
    python: str
    torch: str | None
    segment: int = Field(description="how many times the run was resumed")
    heartbeat: float | None
    config_tree: dict[str, object]
    summary: list[SummaryRow]
    checkpoints: list[CheckpointOut]


class RunPatch(BaseModel):
    """What a user may change on a run. Fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    tags: list[Tag] | None = Field(None, max_length=100)
    notes: str | None = Field(None, max_length=100_000)


class Deleted(BaseModel):
    deleted: str


class Series(BaseModel):
    """A key's points for a chart, downsampled to about ``points`` keeping each bucket's min and max."""

    key: str
    x_axis: XAxis
    total: int = Field(description="points the key has in all")
    in_range: int = Field(description="points between min and max of x")
    downsampled: bool
    x: list[float]
    y: list[float | None] = Field(description="null where the value is NaN or infinite")
    nonfinite: int = Field(description="NaN and infinite values among the points sent")


def finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def config_leaf(value: object) -> ConfigValue:
    if value is None or isinstance(value, (bool, int, str)):
        return value  # type: ignore[return-value]
    if isinstance(value, float):
        return finite_or_none(value)
    return json.dumps(value, default=str)


def metric_cell(summary: KeySummary) -> dict:
    return {
        "last": finite_or_none(summary.last), "best": finite_or_none(summary.best), "mode": summary.mode,
        "count": summary.count, "last_step": summary.last_step,
    }


def run_row(record: RunRecord, metrics: dict[str, KeySummary] | None = None) -> dict:
    """A :class:`RunRow` as plain JSON data: the runs table of a big store is a thousand of them,
    built from the store's own typed records, so they skip pydantic's validation."""
    return {**_row_fields(record), "metrics": {k: metric_cell(s) for k, s in (metrics or {}).items()}}


def json_response(data: object) -> Response:
    """JSON as declared by the route's response model, without FastAPI validating it once more."""
    return Response(json.dumps(data, allow_nan=False, separators=(",", ":")), media_type="application/json")


def _row_fields(record: RunRecord) -> dict:
    return dict(
        id=record.id, name=record.name, project=record.project, status=record.status, tags=list(record.tags),
        started=record.started, ended=record.ended, duration=record.duration, steps=record.steps,
        epochs=record.epochs, notes=record.description,
        config={key: config_leaf(value) for key, value in record.config.flat().items()},
    )


def run_detail(record: RunRecord, summary: dict[str, KeySummary], checkpoints: list[Checkpoint]) -> RunDetail:
    return RunDetail(
        **_row_fields(record), metrics={},
        host=record.host, pid=record.pid, command=record.command, git_commit=record.git_commit,
        python=record.python, torch=record.torch, segment=record.segment, heartbeat=record.heartbeat,
        config_tree=_json_safe(record.config.to_dict()),
        summary=[
            SummaryRow(
                key=s.key, count=s.count, last=finite_or_none(s.last), last_step=s.last_step,
                min=finite_or_none(s.min), max=finite_or_none(s.max), best=finite_or_none(s.best),
                mode=s.mode,  # type: ignore[arg-type]
            )
            for s in summary.values()
        ],
        checkpoints=[
            CheckpointOut(
                path=c.path, step=c.step, epoch=c.epoch, size=c.size, sha256=c.sha256, created=c.created,
                metric_key=c.metric_key, metric_value=finite_or_none(c.metric_value), mode=c.mode, kind=c.kind,
                url=f"/api/runs/{quote(record.id)}/files/{quote(c.path)}",
            )
            for c in checkpoints
        ],
    )


def _json_safe(value: object) -> object:
    """The config tree with non-finite floats as null, which JSON cannot carry otherwise."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float):
        return finite_or_none(value)
    return value
