"""A :class:`~epochal.store.query.RunQuery` as SQL: one statement for the page, one for the count.

Filters become ``WHERE`` clauses (a config condition an ``EXISTS`` on the flattened ``config`` table,
a metric condition one on ``series``, whose rows hold each key's last, lowest and highest value); the
sort column a ``LEFT JOIN`` of the one config or series row it reads, so that sorting 100,000 runs by a
learning rate or a validation loss is one indexed lookup per run. Runs without a value sort last,
whichever way the sort goes; ties go newest first.
"""

from __future__ import annotations

import json
from typing import Any

from epochal.store.query import Column, RunQuery

_RUN_SORT = {
    "started": "runs.started", "name": "runs.name", "project": "projects.name", "status": "runs.status",
    "duration": "(COALESCE(runs.ended, runs.heartbeat, runs.started) - runs.started)", "steps": "runs.steps",
    "epochs": "runs.epochs", "id": "runs.id",
}


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _metric_column(column: Column, alias: str) -> str:
    if column.part == "last":
        return f"{alias}.last"
    return f"{alias}.min" if column.best_is_lowest else f"{alias}.max"


def where(query: RunQuery) -> tuple[str, list[Any]]:
    """The ``WHERE`` clause (with its leading keyword, or empty) and its parameters."""
    clauses: list[str] = []
    params: list[Any] = []
    if query.project is not None:
        clauses.append("projects.name = ?")
        params.append(query.project)
    if query.status is not None:
        clauses.append("runs.status = ?")
        params.append(query.status)
    if query.tag is not None:
        clauses.append("EXISTS (SELECT 1 FROM run_tags t WHERE t.run_id = runs.id AND t.tag = ?)")
        params.append(query.tag)
    if query.text:
        pattern = _like(query.text)
        clauses.append("(runs.name LIKE ? ESCAPE '\\' OR runs.id LIKE ? ESCAPE '\\' OR runs.description LIKE ? "
                       "ESCAPE '\\' OR projects.name LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM run_tags t "
                       "WHERE t.run_id = runs.id AND t.tag LIKE ? ESCAPE '\\'))")
        params += [pattern] * 5
    if query.started_before is not None:
        clauses.append("runs.started <= ?")
        params.append(query.started_before)
    for condition in query.conditions:
        column, op, value = condition.column, condition.op, condition.value
        if column.kind == "config":
            if isinstance(value, str):  # a run without the key matches no condition on it, != included
                clauses.append(f"EXISTS (SELECT 1 FROM config c WHERE c.run_id = runs.id AND c.key = ? AND c.value {op} ?)")
                params += [column.name, json.dumps(value)]
            else:
                clauses.append(f"EXISTS (SELECT 1 FROM config c WHERE c.run_id = runs.id AND c.key = ? "
                               f"AND c.num {op} ?)")
                params += [column.name, value]
        else:
            clauses.append(f"EXISTS (SELECT 1 FROM series s WHERE s.run_id = runs.id AND s.key = ? "
                           f"AND {_metric_column(column, 's')} {op} ?)")
            params += [column.name, value]
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def order(query: RunQuery) -> tuple[str, str, list[Any]]:
    """The ``LEFT JOIN`` the sort needs (or empty), the ``ORDER BY`` clause, and the join's parameters."""
    column = query.sort
    direction = "DESC" if query.descending else "ASC"
    tie = "runs.started DESC, runs.rowid DESC"
    if column.kind == "run":
        return "", f"ORDER BY {_RUN_SORT[column.name]} {direction}, {tie}", []
    if column.kind == "config":
        join = "LEFT JOIN config sort_by ON sort_by.run_id = runs.id AND sort_by.key = ?"
        # Numbers first, then text, then runs without the key.
        rank = "CASE WHEN sort_by.num IS NOT NULL THEN 0 WHEN sort_by.value IS NOT NULL THEN 1 ELSE 2 END"
        return join, f"ORDER BY {rank}, sort_by.num {direction}, sort_by.value {direction}, {tie}", [column.name]
    join = "LEFT JOIN series sort_by ON sort_by.run_id = runs.id AND sort_by.key = ?"
    value = _metric_column(column, "sort_by")
    # NaN is stored as NULL in SQLite's REAL columns: such runs sort with those that lack the key.
    return join, f"ORDER BY ({value} IS NULL), {value} {direction}, {tie}", [column.name]
