"""The JSON shapes of the dashboard API. They are the OpenAPI schema, so every field is typed."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Annotated, Any, Literal, get_type_hints
from urllib.parse import quote

from fastapi import Response
from pydantic import BaseModel, ConfigDict, Field, create_model

from epochal.keys import main_metrics, split_of
from epochal.store.records import Checkpoint, KeySummary, RunRecord
from epochal.store.store import MAX_TAG_LENGTH

Status = Literal["running", "finished", "failed", "interrupted", "crashed"]
#: A config leaf as JSON carries it; lists and other objects are shown as their JSON text.
ConfigValue = bool | int | float | str | None
XAxis = Literal["step", "epoch", "time"]


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
    main_metrics: list[str] = Field(description="the run's main metrics (epochal.keys.main_metrics), best first")
    world_size: int = Field(description="processes that record the run: more than 1 for a DDP job")


class RunList(BaseModel):
    runs: list[RunRow] = Field(description="one page of the runs selected, in the order asked for")
    total: int = Field(description="how many runs the filters select, on every page")
    offset: int
    limit: int
    newer: int = Field(description="runs that match but started after `as_of` (0 without it)")
    metric_keys: list[str] = Field(description="every key a run (of the project) has logged")
    main_metrics: list[str] = Field(description="the main metrics of those runs together, as `epochal ls` shows")
    config_keys: list[str] = Field(description="every dotted config key of any run")


class RunIds(BaseModel):
    ids: list[str] = Field(description="every run the filters select, newest first")
    total: int


class GroupStat(BaseModel):
    count: int = Field(description="the group's runs that have a value")
    mean: float | None
    std: float | None = Field(description="sample standard deviation; 0 for one value")


class RunGroup(BaseModel):
    values: list[Any] = Field(description="the group's value of each group_by key, in order; null where its runs lack the key")
    count: int
    stats: dict[str, GroupStat] = Field(description="per metric column asked for")


class RunGroups(BaseModel):
    group_by: list[str]
    metrics: list[str]
    groups: list[RunGroup] = Field(description="largest first")


class SummaryRow(BaseModel):
    key: str
    count: int
    last: float | None
    last_step: int
    min: float | None
    max: float | None
    best: float | None
    mode: Literal["min", "max"]
    split: str | None = Field(description="the data split the key's first part names (epochal.keys.split_of): "
                                          "keys that differ only by it are one metric on several splits")


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


class RankOut(BaseModel):
    """One process of a DDP job."""

    rank: int
    host: str
    pid: int


#: RunDetail's fields that are RunRecord's own, sent as stored: their types are the dataclass's.
_AS_STORED = ("host", "pid", "command", "git_commit", "python", "torch")


def _record_fields(names: tuple[str, ...]) -> dict[str, Any]:
    hints = get_type_hints(RunRecord)
    return {name: (hints[name], ...) for name in names}


RunDetail = create_model(
    "RunDetail",
    __base__=RunRow,
    __module__=__name__,
    **_record_fields(_AS_STORED),
    segment=(int, Field(description="how many times the run was resumed")),
    heartbeat=(float | None, ...),
    ranks=(list[RankOut], Field(description="each rank's process, by rank; empty for a single-process run")),
    config_tree=(dict[str, object], ...),
    summary=(list[SummaryRow], ...),
    checkpoints=(list[CheckpointOut], ...),
)


_NO_NUL = r"^[^\x00]*$"
# The store's tag rule (checked_tag), stated in the schema only: the store checks it, so that its
# error is the one start() gives. Python's str.strip() also removes \x1c-\x1f, which \s does not name.
Tag = Annotated[str, Field(json_schema_extra={
    "minLength": 1, "maxLength": MAX_TAG_LENGTH, "pattern": r"^[^\x00]*[^\s\x00\x1c-\x1f][^\x00]*$"})]


class RunPatch(BaseModel):
    """What a user may change on a run. Fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    # Each tag is checked by the store's own rule, the one `epochal.start` applies (a 422 names it);
    # the schema states that rule (something besides spaces, no NUL), so what it calls valid is accepted.
    tags: list[Tag] | None = Field(None, max_length=100)
    notes: str | None = Field(None, max_length=100_000, pattern=_NO_NUL)


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
    smoothed: list[float | None] | None = Field(
        default=None,
        description="with `smoothing`: the smoothed value at each point sent (smoothed over every stored point, so "
                    "it does not depend on `points`, `min` or `max`); null where the point's value is not finite",
    )


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


def run_row(record: RunRecord, metrics: dict[str, KeySummary] | None = None, keys: Iterable[str] = ()) -> dict:
    """A :class:`RunRow` as plain JSON data (``keys``: every key the run logged): the runs table of a big
    store is a thousand of them, built from the store's own typed records, so they skip pydantic's validation."""
    return {**_row_fields(record), "metrics": {k: metric_cell(s) for k, s in (metrics or {}).items()},
            "main_metrics": main_metrics(keys)}


def json_response(data: object) -> Response:
    """JSON as declared by the route's response model, without FastAPI validating it once more."""
    return Response(json.dumps(data, allow_nan=False, separators=(",", ":")), media_type="application/json")


def _row_fields(record: RunRecord) -> dict:
    return dict(
        id=record.id, name=record.name, project=record.project, status=record.status, tags=list(record.tags),
        started=record.started, ended=record.ended, duration=record.duration, steps=record.steps,
        epochs=record.epochs, notes=record.description, world_size=record.world_size,
        config={key: config_leaf(value) for key, value in record.config.flat().items()},
    )


def run_detail(record: RunRecord, summary: dict[str, KeySummary], checkpoints: list[Checkpoint]) -> RunDetail:
    return RunDetail(
        **_row_fields(record), metrics={}, main_metrics=main_metrics(summary),
        **{name: getattr(record, name) for name in _AS_STORED}, segment=record.segment, heartbeat=record.heartbeat,
        ranks=[RankOut(rank=rank, host=host, pid=pid) for rank, (host, pid) in enumerate(record.ranks)],
        config_tree=_json_safe(record.config.to_dict()),
        summary=[
            SummaryRow(
                key=s.key, count=s.count, last=finite_or_none(s.last), last_step=s.last_step,
                min=finite_or_none(s.min), max=finite_or_none(s.max), best=finite_or_none(s.best),
                mode=s.mode, split=split_of(s.key),  # type: ignore[arg-type]
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


# -- training dynamics ------------------------------------------------------------------------------

#: measure name -> value, for one split of one epoch (or of one pair of epochs); null where not finite.
Measures = dict[str, float | None]


class ProjectionInfo(BaseModel):
    """``projection.json``: what the fitted projection covers and how to draw it."""

    model_config = ConfigDict(extra="allow")

    epochs: list[int] = Field(description="the fitted epochs")
    extent: list[float] = Field(
        min_length=4, max_length=4, description="xmin, xmax, ymin, ymax of every epoch's coordinates and background"
    )
    resolution: int = Field(description="pixels on each side of a background image")
    colors: list[str] = Field(description="one colour per class, by class number")
    backgrounds: bool = Field(True, description="whether each epoch has a background image")
    params: dict[str, object] = Field(default_factory=dict, description="the projection's settings")
    seconds: float | None = Field(None, description="how long the fit took")


class Quality(BaseModel):
    """``quality.json``: how faithful the projection is, per epoch and split, and between epochs."""

    epochs: dict[str, dict[str, Measures]] = Field(description="epoch -> split -> measure -> value")
    temporal: dict[str, dict[str, Measures]] = Field(description="'a-b' (two epochs) -> split -> measure -> value")
    mean: dict[str, Measures] = Field(description="split -> measure -> its mean over the epochs")


class FitProgress(BaseModel):
    """``progress.json`` of the latest fit of a run's projection."""

    state: Literal["running", "done", "failed"]
    stage: str
    fraction: float = Field(ge=0, le=1, description="of the whole fit done")
    message: str
    pid: int | None
    started: str | None = Field(description="ISO 8601")
    updated: str | None = Field(description="ISO 8601")
    running: bool = Field(description="state running and its process alive (a killed fit is not running)")


class DynamicsInfo(BaseModel):
    """What a run recorded of its training dynamics, and the state of their projection."""

    run: str = Field(description="the run's id")
    epochs: list[int] = Field(description="the recorded epochs")
    samples: int
    splits: dict[str, int] = Field(description="samples per split ('train', 'test')")
    classes: int
    class_names: list[str] | None = Field(description="from dynamics/classes.json, when it is there")
    sprites: bool = Field(description="whether each sample has a thumbnail")
    projection: ProjectionInfo | None = Field(description="null until a projection is fitted")
    quality: Quality | None
    progress: FitProgress | None = Field(description="null when no fit was ever started")


class SampleTable(BaseModel):
    """Per-sample statistics over the recorded epochs; every list is in the recorded samples' order."""

    epochs: list[int]
    labels: list[int]
    split: list[Literal["train", "test"]]
    indices: list[int] = Field(description="each sample's index in its data set")
    predictions: list[list[int]] = Field(description="per recorded epoch, the class predicted for each sample")
    confidence: list[float] = Field(description="mean probability of the given label")
    variability: list[float] = Field(description="its standard deviation over the epochs")
    correctness: list[float] = Field(description="share of epochs predicted right")
    forgetting: list[int] = Field(description="right -> wrong transitions between consecutive recorded epochs")
    first_learned: list[int] = Field(description="first epoch predicted right; -1 if never")
    learned_from: list[int] = Field(description="epoch from which it stays right; -1 if wrong at the end")
    category: list[Literal["easy", "ambiguous", "hard"]]
    likely_mislabeled: list[int] = Field(description="positions of the hard-to-learn samples, least confident first")


class EpochCoords(BaseModel):
    """The 2D position of every sample at one epoch, in the projection's coordinates."""

    epoch: int
    x: list[float | None]
    y: list[float | None]


class LedgerEpoch(BaseModel):
    """What happened to the samples in one epoch, against the epoch before (see epochal.dynamics.ledger_events)."""

    epoch: int
    last_step: int = Field(description="the step of the epoch's last recorded batch: where charts by step mark it")
    samples: int
    flips: int = Field(description="samples whose predicted class changed")
    forgotten: int = Field(description="right at the end of the epoch before, wrong at the end of this one")
    learned: int
    confidence_jumps: int = Field(description="samples whose probability of their target moved by 0.5 or more")
    class_changes: dict[str, int] = Field(description="class -> samples predicted as it gained (+) or lost (-)")
    burst: bool = Field(description="the epoch forgot unusually many samples")


class LedgerInfo(BaseModel):
    """A run's sample ledger: its epochs with their events, and the classes' names when the run has them."""

    classes: int
    class_names: list[str] | None
    samples: int
    sprites: bool = Field(description="the run recorded thumbnails of its samples: a listed sample with a "
                                      "`position` has one at /dynamics/sprites/{position}.png")
    projection: bool = Field(description="the run's training dynamics have a fitted projection")
    epochs: list[LedgerEpoch]


class LedgerSample(BaseModel):
    sample: int
    label: int
    aum: float
    forgetting_events: int
    mislabeled_score: float
    position: int | None = Field(description="its position among the run's recorded dynamics samples (the train "
                                             "sample with this index): its thumbnail and projection point; null if none")


class EventSamples(BaseModel):
    """The samples behind one kind of event of an epoch, most likely mislabeled first."""

    epoch: int
    kind: Literal["flips", "forgotten", "learned", "confidence_jumps"]
    count: int
    samples: list[LedgerSample]


class CellSamples(BaseModel):
    """The samples of one cell of an epoch's confusion matrix, most likely mislabeled first."""

    epoch: int
    label: int
    predicted: int
    count: int
    samples: list[LedgerSample]


class ConfusionCell(BaseModel):
    label: int
    predicted: int
    count: int
    samples: list[int] = Field(description="its samples (indices in the data set), at most `limit` of them")


class Confusion(BaseModel):
    """An epoch's confusion matrix (rows: the target; columns: the predicted class) and its cells' samples."""

    epoch: int
    classes: int
    matrix: list[list[int]]
    cells: list[ConfusionCell]


class SampleEpoch(BaseModel):
    epoch: int
    target: int
    predicted: int
    right: bool
    probability: float = Field(description="the epoch's mean probability of the target")


class SampleHistory(BaseModel):
    sample: int
    epochs: list[SampleEpoch]
