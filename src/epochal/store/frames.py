"""A store's runs and series as pandas DataFrames, for notebooks and analysis.

    >>> store.frame("swift-otter-3")           # one row per step, one column per key, with epoch and time
    >>> store.runs_frame(project="mnist")      # one row per run: its record, config and last/best values

pandas is optional (``pip install epochal[pandas]``); nothing else in epochal needs it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from epochal.store.records import RunRecord
    from epochal.store.store import Store

#: What ``frame(x=...)`` accepts: the column that becomes the index.
X_AXES = ("step", "epoch", "time")


def run_frame(store: Store, ref: str | RunRecord, keys: Iterable[str] | None = None, x: str = "step") -> Any:
    """One run's series side by side: a row per step that any key was logged at, a column per key
    (NaN where a key has no point at that step), and ``epoch`` and ``time`` (UTC) columns.

    Values are the stored float64s, unchanged (NaN and inf as logged). Where a resumed run logged a
    step again, the newest point is kept, as everywhere else.

    Raises:
        ValueError: ``x`` is not one of 'step', 'epoch', 'time'.
        SeriesNotFoundError: a key in ``keys`` was never logged by the run.
    """
    pd = _pandas()
    if x not in X_AXES:
        raise ValueError(f"x must be one of {', '.join(map(repr, X_AXES))}, got {x!r}")
    record = store.run(ref)
    keys = store.keys(record) if keys is None else list(keys)
    values, epochs, times = {}, [], []
    for key in keys:
        history = store.history(record, key)
        keep = ~pd.Index(history.steps).duplicated(keep="last")  # a step logged twice in one session: the last
        steps = history.steps[keep]
        values[key] = pd.Series(history.values[keep], index=steps)
        epochs.append(pd.Series(history.epochs[keep], index=steps))
        times.append(pd.Series(history.times[keep], index=steps))
    frame = pd.DataFrame(values, columns=keys)
    frame.index = frame.index.astype("int64")
    frame.index.name = "step"
    epoch = _first_of(pd, epochs, frame.index)
    time = _first_of(pd, times, frame.index)
    frame.insert(0, "epoch", epoch.astype("Int64"))
    frame.insert(1, "time", pd.to_datetime(time, unit="s", utc=True))
    return frame if x == "step" else frame.reset_index().set_index(x)


def runs_frame(store: Store, project: str | None = None) -> Any:
    """A row per run (newest first, indexed by id): name, project, status, times, counters, tags
    and world size; a ``config.<dotted key>`` column per config leaf; and ``<key>:last`` and
    ``<key>:best`` per logged key."""
    pd = _pandas()
    records = store.runs(project)
    summaries = store.key_summaries(store.keys_of(r.id for r in records)) if records else {}
    rows = []
    for r in records:
        row: dict[str, Any] = {
            "id": r.id, "name": r.name, "project": r.project, "status": r.status,
            "started": pd.to_datetime(r.started, unit="s", utc=True),
            "ended": None if r.ended is None else pd.to_datetime(r.ended, unit="s", utc=True),
            "duration_s": r.duration, "steps": r.steps, "epochs": r.epochs, "tags": ",".join(r.tags),
            "world_size": r.world_size,
        }
        row.update({f"config.{key}": value for key, value in r.config.flat().items()})
        for key, summary in sorted(summaries.get(r.id, {}).items()):
            row[f"{key}:last"] = summary.last
            row[f"{key}:best"] = summary.best
        rows.append(row)
    return pd.DataFrame(rows).set_index("id") if rows else pd.DataFrame(columns=["id"]).set_index("id")


def _first_of(pd: Any, parts: list, index: Any) -> Any:
    """Per step, the first of several keys' columns (epoch or time) that has it."""
    out = pd.Series(index=index, dtype="float64")
    for part in parts:
        out = out.combine_first(part.astype("float64"))
    return out.reindex(index)


def _pandas() -> Any:
    try:
        import pandas
    except ImportError as exc:
        raise ImportError("DataFrames need pandas: pip install 'epochal[pandas]'") from exc
    return pandas
