"""A :class:`~epochal.store.query.RunQuery` as SQL (SQLite's or PostgreSQL's): one statement for the page,
one for the count.

Filters become ``WHERE`` clauses (a config condition a list of the run ids a covering index of the
flattened ``config`` table gives, a metric condition one of ``series``, whose rows hold each key's last,
lowest and highest value). A sort by a config value or a metric reads that key's rows in the order of
their index (see :class:`Segment`), so that the first page of 100,000 runs sorted by a validation loss
reads a hundred index entries. Runs without a value sort last, whichever way the sort goes; ties go
newest first.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from epochal.store.query import Column, RunGroup, RunQuery, stat

_RUN_SORT = {
    "started": "runs.started", "name": "runs.name", "project": "projects.name", "status": "runs.status",
    "duration": "(COALESCE(runs.ended, runs.heartbeat, runs.started) - runs.started)", "steps": "runs.steps",
    "epochs": "runs.epochs", "id": "runs.id",
}


@dataclass(frozen=True)
class Dialect:
    """What the SQL of the two relational backends differs in."""

    unindexed: str  # prefixed to a column to keep the planner from driving a query by it (SQLite's unary '+')
    no_limit: str  # a LIMIT clause that limits nothing
    like: str  # the case-insensitive LIKE


SQLITE = Dialect("+", "LIMIT -1", "LIKE")
POSTGRES = Dialect("", "LIMIT ALL", "ILIKE")


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _metric_column(column: Column, alias: str) -> str:
    if column.part == "last":
        return f"{alias}.last"
    return f"{alias}.min" if column.best_is_lowest else f"{alias}.max"


def where(query: RunQuery, dialect: Dialect = SQLITE, *, counting: bool = False) -> tuple[str, list[Any]]:
    """The ``WHERE`` clause (with its leading keyword, or empty) and its parameters. ``counting``: for a
    count, which has no order to keep, the first condition's list of runs drives the query."""
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
        like = f"{dialect.like} ? ESCAPE '\\'"
        clauses.append(f"(runs.name {like} OR runs.id {like} OR runs.description {like} OR projects.name {like} "
                       f"OR {dialect.unindexed}runs.id IN (SELECT run_id FROM run_tags WHERE tag {like}))")
        params += [pattern] * 5
    if query.started_before is not None:
        clauses.append("runs.started <= ?")
        params.append(query.started_before)
    if query.started_after is not None:
        clauses.append("runs.started > ?")
        params.append(query.started_after)
    for index, condition in enumerate(query.conditions):
        column, op, value = condition.column, condition.op, condition.value
        probe = "runs.id" if counting and index == 0 else f"{dialect.unindexed}runs.id"
        if column.kind == "config":
            # Each condition's runs are one range scan of a covering index, probed as a list (`+runs.id`
            # keeps SQLite from driving the query by the list: the runs are read in the sort's order and
            # the page ends after `limit` matches). A run without the key matches no condition on it.
            if isinstance(value, str):
                clauses.append(f"{probe} IN (SELECT run_id FROM config WHERE key = ? AND value {op} ?)")
                params += [column.name, json.dumps(value)]
            else:
                clauses.append(f"{probe} IN (SELECT run_id FROM config WHERE key = ? AND num {op} ?)")
                params += [column.name, value]
        else:
            clauses.append(f"{probe} IN (SELECT run_id FROM series s WHERE s.key = ? "
                           f"AND {_metric_column(column, 's')} {op} ?)")
            params += [column.name, value]
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


@dataclass(frozen=True)
class Segment:
    """Part of a sorted list of runs: the runs ``source`` and ``condition`` select, in ``order``. A sort by a
    config value or a metric is two or three segments one after the other (numbers, then text, then runs
    without the key), each read in the order of its index, so that the first page of 100,000 runs sorted
    by a validation loss reads a hundred index entries instead of sorting 100,000 runs."""

    source: str  # what to select from, joined to runs and projects
    condition: str  # more of the WHERE clause, or ""
    order: str
    params: tuple = ()  # the condition's


def segments(query: RunQuery) -> list[Segment]:
    """The segments that make up ``query``'s order, first to last."""
    column = query.sort
    direction = "DESC" if query.descending else "ASC"
    tie = "runs.started DESC, runs.rowid DESC"
    runs = "runs JOIN projects ON projects.id = runs.project_id"
    if column.kind == "run":
        return [Segment(runs, "", f"ORDER BY {_RUN_SORT[column.name]} {direction}, {tie}")]
    if column.kind == "config":
        source = f"config sort_by JOIN {runs.replace('runs JOIN', 'runs ON runs.id = sort_by.run_id JOIN', 1)}"
        return [
            Segment(source, "sort_by.key = ? AND sort_by.num IS NOT NULL", f"ORDER BY sort_by.num {direction}, {tie}",
                    (column.name,)),
            Segment(source, "sort_by.key = ? AND sort_by.num IS NULL", f"ORDER BY sort_by.value {direction}, {tie}",
                    (column.name,)),
            Segment(runs, "runs.id NOT IN (SELECT run_id FROM config WHERE key = ?)", f"ORDER BY {tie}", (column.name,)),
        ]
    source = f"series sort_by JOIN {runs.replace('runs JOIN', 'runs ON runs.id = sort_by.run_id JOIN', 1)}"
    value = _metric_column(column, "sort_by")
    # NaN is stored as NULL in SQLite's REAL columns: such runs sort with those that lack the key.
    return [
        Segment(source, f"sort_by.key = ? AND {value} IS NOT NULL", f"ORDER BY {value} {direction}, {tie}",
                (column.name,)),
        Segment(runs, f"runs.id NOT IN (SELECT run_id FROM series s WHERE s.key = ? AND {_metric_column(column, 's')} "
                      "IS NOT NULL)", f"ORDER BY {tie}", (column.name,)),
    ]


def page(conn: Any, query: RunQuery, runs: str, dialect: Dialect = SQLITE) -> tuple[list[str], int]:
    """The ids of ``query``'s page, in order, and how many runs it selects. ``runs``: the runs table
    joined to its projects.

    The page is picked by narrow queries (ids, not whole records with their config), one segment of the
    order after the other, each read in its index's order; a segment is counted only when the page
    starts past its end.
    """
    where_clause, params = where(query, dialect)
    counting, _ = where(query, dialect, counting=True)
    counted = runs if "projects." in where_clause else "runs"  # the join only where the filters need it
    (total,) = conn.execute(f"SELECT count(*) FROM {counted} {counting}", params).fetchone()
    ids: list[str] = []
    skip, wanted = query.offset, query.limit
    for segment in segments(query):
        if wanted is not None and wanted <= 0:
            break
        both = " AND ".join(c for c in (where_clause.removeprefix("WHERE "), segment.condition) if c)
        clause = f"WHERE {both}" if both else ""
        arguments = (*params, *segment.params)  # the WHERE clause first, then the segment's condition
        found = [run_id for (run_id,) in conn.execute(
            f"SELECT runs.id FROM {segment.source} {clause} {segment.order} "
            f"{dialect.no_limit if wanted is None else f'LIMIT {int(wanted)}'} OFFSET {int(skip)}", arguments)]
        if not found and skip:
            (count,) = conn.execute(f"SELECT count(*) FROM {segment.source} {clause}", arguments).fetchone()
            skip = max(skip - count, 0)
            continue
        ids += found
        skip = 0
        wanted = None if wanted is None else wanted - len(found)
    return ids, total


def groups(conn: Any, query: RunQuery, runs: str, group_by: Sequence[str], metrics: Sequence[Column],
           dialect: Dialect = SQLITE) -> list[RunGroup]:
    """The runs ``query`` selects grouped by their config values of ``group_by``, in one statement: each
    grouping key and each metric a LEFT JOIN on its covering index, then count, sum and sum of squares
    per group. ``runs``: the runs table joined to its projects."""
    where_clause, where_params = where(query, dialect)
    joins, params, columns = [], [], []
    for i, key in enumerate(group_by):
        joins.append(f"LEFT JOIN config g{i} ON g{i}.run_id = runs.id AND g{i}.key = ?")
        params.append(key)
    for i, column in enumerate(metrics):
        joins.append(f"LEFT JOIN series m{i} ON m{i}.run_id = runs.id AND m{i}.key = ?")
        params.append(column.name)
        value = _metric_column(column, f"m{i}")
        columns += [f"count({value})", f"sum({value})", f"sum({value} * {value})"]
    keys = [f"g{i}.value" for i in range(len(group_by))]
    rows = conn.execute(
        f"SELECT {', '.join([*keys, 'count(*)', *columns])} FROM {runs} {' '.join(joins)} {where_clause} "
        f"GROUP BY {', '.join(keys)}", [*params, *where_params]).fetchall()
    out = []
    for row in rows:
        values, rest = row[:len(group_by)], row[len(group_by):]
        stats = {column.text: stat(rest[1 + 3 * i] or 0, rest[2 + 3 * i] or 0.0, rest[3 + 3 * i] or 0.0)
                 for i, column in enumerate(metrics)}
        out.append(RunGroup(tuple(None if v is None else json.loads(v) for v in values), rest[0], stats))
    return sorted(out, key=lambda g: (-g.count, json.dumps(g.values)))
