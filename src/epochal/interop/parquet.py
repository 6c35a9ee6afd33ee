"""A run's series as a Parquet file: the CSV export's long format, typed and compressed.

One row per point, columns ``key`` (string), ``step`` and ``epoch`` (int64), ``value`` (float64,
NaN and infinities as logged) and ``time`` (float64 seconds since the epoch), so it reads back bit
for bit; the run's record is kept as JSON in the file's metadata under ``epochal.run``. pandas,
polars and DuckDB read it as it is. Needs pyarrow (``pip install 'epochal[parquet]'``).

    >>> export_parquet(store, "swift-otter-3", "run.parquet")
    >>> pandas.read_parquet("run.parquet")
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from epochal.atomic import atomic_write
from epochal.interop.export import chosen_keys, history_of, json_value, run_dict
from epochal.store.records import History, RunRecord
from epochal.store.store import Store

#: The key of the run's record in the file's metadata.
RUN_METADATA = b"epochal.run"


def export_parquet(store: Store, ref: str | RunRecord, path: str | os.PathLike, *,
                   keys: Sequence[str] | None = None, superseded: bool = False) -> int:
    """Write a run's series to ``path`` (atomically); the number of points. Arguments and errors as
    :func:`epochal.interop.export.export_csv`, but the target is a path only (Parquet is binary)."""
    pa, pq = _pyarrow()
    record = store.run(ref)
    columns: dict[str, list[Any]] = {"key": [], "step": [], "epoch": [], "value": [], "time": []}
    for key in chosen_keys(store, record, keys):
        h = store.history(record, key, superseded=superseded)
        columns["key"].append(np.full(len(h), key, dtype=object))
        for name, array in (("step", h.steps), ("epoch", h.epochs), ("value", h.values), ("time", h.times)):
            columns[name].append(array)
    types = {"key": pa.string(), "step": pa.int64(), "epoch": pa.int64(), "value": pa.float64(), "time": pa.float64()}
    table = pa.table({
        name: pa.array(np.concatenate(parts) if parts else [], type=types[name]) for name, parts in columns.items()
    })
    table = table.replace_schema_metadata({RUN_METADATA: json.dumps(json_value(run_dict(record)))})
    atomic_write(path, lambda file: pq.write_table(table, file))
    return table.num_rows


def read_parquet(path: str | os.PathLike) -> dict[str, History]:
    """The series of a file written by :func:`export_parquet`, by key."""
    _, pq = _pyarrow()
    table = pq.read_table(path)
    keys = table.column("key").to_pylist()
    arrays = {name: table.column(name).to_numpy() for name in ("step", "epoch", "value", "time")}
    out: dict[str, History] = {}
    for key in dict.fromkeys(keys):
        rows = np.flatnonzero(np.asarray(keys, dtype=object) == key)
        out[key] = history_of(key, *(arrays[name][rows].tolist() for name in ("step", "epoch", "value", "time")))
    return out


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise ImportError("Parquet export needs pyarrow: pip install 'epochal[parquet]'") from exc
    return pyarrow, pyarrow.parquet
