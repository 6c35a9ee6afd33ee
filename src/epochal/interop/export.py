"""Export every series of a run to CSV or JSON without losing a bit, and read such files back.

CSV is long format, one point per row, under the header ``key,step,epoch,value,time``.
Values and times are written with ``repr()``, the shortest text that reads back as the
same float64; NaN and infinities are written as ``nan``, ``inf`` and ``-inf``, which
Python's ``float()``, pandas and NumPy all read.

JSON holds the run's record and its series::

    {"run": {"id": ..., "name": ..., "config": {...nested...}, ...},
     "series": {"train/loss": {"steps": [...], "epochs": [...], "values": [...], "times": [...]}}}

JSON has no NaN or infinity, so non-finite numbers are written as the strings ``"nan"``,
``"inf"`` and ``"-inf"``: in ``values``, and also in the run's config. Times are seconds
since the epoch. A NaN's sign and payload bits are not kept by either format.

From the shell: ``epochal export RUN -o run.csv`` (or ``-o run.json``, ``-o -`` for stdout).

Examples:
    >>> export_csv(store, "baseline", "baseline.csv")
    1200
    >>> read_csv("baseline.csv")["train/loss"].values
    array([0.69, 0.52, ...])
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

import numpy as np

from epochal.atomic import atomic_file
from epochal.errors import SeriesNotFoundError
from epochal.store.records import History, RunRecord
from epochal.store.store import Store

CSV_COLUMNS = ("key", "step", "epoch", "value", "time")

_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def export_csv(
    store: Store,
    ref: str | RunRecord,
    path_or_file: str | os.PathLike | TextIO,
    *,
    keys: Sequence[str] | None = None,
    superseded: bool = False,
) -> int:
    """Write a run's series as CSV rows ``key,step,epoch,value,time``; return the number of points.

    Args:
        ref: the run's id, id prefix, name or record.
        path_or_file: a path (written atomically: a temporary file, then a rename) or an open
            text file such as ``sys.stdout``.
        keys: the keys to write, in this order; default every key of the run, sorted.
        superseded: also write points that a resumed run logged again (see ``Store.history``).

    Raises:
        RunNotFoundError: no run matches ``ref``.
        SeriesNotFoundError: the run has not logged one of ``keys``.
    """
    record = store.run(ref)
    chosen = chosen_keys(store, record, keys)
    points = 0
    with _text_file(path_or_file, "w") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for key in chosen:
            h = store.history(record, key, superseded=superseded)
            writer.writerows(
                zip([key] * len(h), h.steps.tolist(), h.epochs.tolist(),
                    map(repr, h.values.tolist()), map(repr, h.times.tolist()))
            )
            points += len(h)
    return points


def export_json(
    store: Store,
    ref: str | RunRecord,
    path_or_file: str | os.PathLike | TextIO,
    *,
    keys: Sequence[str] | None = None,
    superseded: bool = False,
) -> int:
    """Write a run's record and series as one JSON document; return the number of points.

    Non-finite numbers become the strings "nan", "inf" and "-inf" (see the module's docstring).
    The arguments and errors are those of :func:`export_csv`.
    """
    record = store.run(ref)
    chosen = chosen_keys(store, record, keys)
    series, points = {}, 0
    for key in chosen:
        h = store.history(record, key, superseded=superseded)
        series[key] = {
            "steps": h.steps.tolist(),
            "epochs": h.epochs.tolist(),
            "values": [_json_number(v) for v in h.values.tolist()],
            "times": h.times.tolist(),
        }
        points += len(h)
    document = {"run": run_dict(record), "series": series}
    with _text_file(path_or_file, "w") as out:
        json.dump(document, out, allow_nan=False)
        out.write("\n")
    return points


def run_dict(record: RunRecord) -> dict[str, Any]:
    """A run's record as plain JSON values: the config nested, tags a list, non-finite numbers as text."""
    fields = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    fields["tags"] = list(record.tags)
    fields["config"] = json_value(record.config.to_dict())
    return fields


def read_csv(path_or_file: str | os.PathLike | TextIO) -> dict[str, History]:
    """Read a file written by :func:`export_csv`: key -> History, keys in the file's order.

    Raises:
        ValueError: the file does not start with the header ``key,step,epoch,value,time``,
            or a row is not a point.
    """
    columns: dict[str, tuple[list, list, list, list]] = {}
    with _text_file(path_or_file, "r") as source:
        rows = csv.reader(source)
        header = next(rows, None)
        if header is None or tuple(header) != CSV_COLUMNS:
            raise ValueError(f"expected the CSV header {','.join(CSV_COLUMNS)!r}, got {header!r}")
        for line, row in enumerate(rows, start=2):
            try:
                key, step, epoch, value, time = row
                point = (int(step), int(epoch), float(value), float(time))
            except ValueError as exc:
                raise ValueError(f"line {line}: expected key,step,epoch,value,time, got {row!r} ({exc})") from None
            for column, item in zip(columns.setdefault(key, ([], [], [], [])), point):
                column.append(item)
    return {key: history_of(key, *lists) for key, lists in columns.items()}


def read_json(path_or_file: str | os.PathLike | TextIO) -> dict[str, History]:
    """Read the series of a file written by :func:`export_json`: key -> History.

    Raises:
        ValueError: the file is not JSON or has no ``series`` object of the expected shape.
    """
    with _text_file(path_or_file, "r") as source:
        document = json.load(source)
    series = document.get("series") if isinstance(document, Mapping) else None
    if not isinstance(series, Mapping):
        raise ValueError("expected a JSON object with a 'series' object, as written by export_json")
    out = {}
    for key, columns in series.items():
        try:
            values = [_NON_FINITE[v] if isinstance(v, str) else v for v in columns["values"]]
            out[key] = history_of(key, columns["steps"], columns["epochs"], values, columns["times"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"series {key!r}: expected equally long 'steps', 'epochs', 'values' and 'times' lists "
                f"with numbers (or 'nan', 'inf', '-inf' among the values); {type(exc).__name__}: {exc}"
            ) from None
    return out


def chosen_keys(store: Store, record: RunRecord, keys: Sequence[str] | None) -> list[str]:
    """The keys to export, checked before anything is written."""
    known = store.keys(record)
    if keys is None:
        return known
    missing = [key for key in keys if key not in known]
    if missing:
        raise SeriesNotFoundError(
            f"run {record.name!r} ({record.id}) has no key {missing[0]!r}; its keys: {', '.join(known[:20]) or 'none'}"
        )
    return list(dict.fromkeys(keys))


def history_of(key: str, steps: list, epochs: list, values: list, times: list) -> History:
    if not len(steps) == len(epochs) == len(values) == len(times):
        raise ValueError(f"columns of unequal length: {len(steps)}, {len(epochs)}, {len(values)}, {len(times)}")
    return History(
        key, np.array(steps, dtype=np.int64), np.array(epochs, dtype=np.int64),
        np.array(values, dtype=np.float64), np.array(times, dtype=np.float64),
    )


def _json_number(value: float) -> float | str:
    return value if math.isfinite(value) else repr(value)


def json_value(value: Any) -> Any:
    if isinstance(value, float):
        return _json_number(value)
    if isinstance(value, Mapping):
        return {key: json_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_value(item) for item in value]
    return value


@contextmanager
def _text_file(path_or_file: str | os.PathLike | TextIO, mode: str) -> Iterator[TextIO]:
    """An open file as it is; a path opened to read (``"r"``), or written to a temporary file beside it that
    replaces it once complete (``"w"``)."""
    if hasattr(path_or_file, "read" if mode == "r" else "write"):
        yield path_or_file  # type: ignore[misc]
        return
    opened = open(path_or_file, encoding="utf-8", newline="") if mode == "r" else atomic_file(path_or_file, "w")
    with opened as file:
        yield file
