"""Which runs, in what order, how many: a query the store answers a page at a time.

A query names its filters (project, stored status, tag, text), conditions on config values and on
metrics (``lr<0.01``, ``valid/loss:best<=0.3``), one sort column and a page (``limit``, ``offset``).
The SQLite backend turns it into one SQL statement (:mod:`epochal.store.sql_query`); the in-memory
backend evaluates it here (:func:`matches`, :func:`sort_key`), with the same meaning.

Columns and conditions are written as a user types them:

- a run's own column: ``started``, ``name``, ``project``, ``status``, ``duration``, ``steps``, ``epochs``, ``id``;
- a config value by its dotted key: ``lr``, ``optim.momentum`` (or ``config.lr`` where a config key has
  the name of a run's column);
- a metric's last or best value: ``valid/loss:last``, ``valid/accuracy:best`` (best is the lowest for
  keys naming a loss or an error, else the highest; see :mod:`epochal.keys`).

Examples:
    >>> parse_condition("lr<0.01")
    Condition(column=Column(kind='config', name='lr', part=''), op='<', value=0.01)
    >>> parse_column("valid/loss:best")
    Column(kind='metric', name='valid/loss', part='best')
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from epochal.keys import best_mode

#: A run's own columns, as they sort.
RUN_COLUMNS = ("started", "name", "project", "status", "duration", "steps", "epochs", "id")
OPERATORS = ("<=", ">=", "!=", "<", ">", "=")
#: The most runs one page holds.
MAX_LIMIT = 1000

_CONDITION = re.compile(r"^\s*(?P<column>.+?)\s*(?P<op><=|>=|!=|<|>|=)\s*(?P<value>[^<>=!]*?)\s*$")


@dataclass(frozen=True)
class Column:
    """What a run is sorted or filtered by: ``kind`` 'run', 'config' or 'metric'; ``part`` 'last' or
    'best' for a metric."""

    kind: str
    name: str
    part: str = ""

    @property
    def text(self) -> str:
        return {"run": self.name, "config": f"config.{self.name}", "metric": f"{self.name}:{self.part}"}[self.kind]

    @property
    def best_is_lowest(self) -> bool:
        return best_mode(self.name) == "min"


@dataclass(frozen=True)
class Condition:
    column: Column
    op: str
    value: float | str


@dataclass(frozen=True)
class RunQuery:
    """Runs matching every filter, sorted by ``sort`` (then newest first), ``limit`` of them from ``offset``."""

    project: str | None = None
    status: str | None = None  # as stored: 'running' for crashed runs too
    tag: str | None = None
    text: str | None = None  # in the name, id, project, tags or notes; ASCII letters in either case
    started_before: float | None = None  # runs started at this time or earlier: a list that new runs don't shift
    started_after: float | None = None  # runs started after this time: how many are new since a list was made
    conditions: tuple[Condition, ...] = ()
    sort: Column = Column("run", "started")
    descending: bool = True
    limit: int | None = None
    offset: int = 0


def parse_column(text: str) -> Column:
    """A sort column or a condition's left side, as described in the module's docstring.

    Raises:
        ValueError: an empty name, or a metric part other than 'last' or 'best'.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"a column is a run's column ({', '.join(RUN_COLUMNS)}), a config key such as 'lr' or "
                         f"a metric such as 'valid/loss:best', got {text!r}")
    text = text.strip()
    if text in RUN_COLUMNS:
        return Column("run", text)
    if text.startswith("config."):
        return Column("config", text[len("config."):])
    key, colon, part = text.rpartition(":")
    if colon and "/" not in part:
        if part not in ("last", "best"):
            raise ValueError(f"a metric column ends in ':last' or ':best', got {text!r}")
        if not key:
            raise ValueError(f"a metric column names its key before ':{part}', got {text!r}")
        return Column("metric", key, part)
    return Column("config", text)


def parse_condition(text: str) -> Condition:
    """``lr<0.01``, ``optim.name=adam``, ``valid/loss:best<=0.3``: a column, an operator, a value.

    Raises:
        ValueError: naming the text and the accepted form.
    """
    found = _CONDITION.match(text) if isinstance(text, str) else None
    if found is None or not found["value"] or found["column"].endswith(("<", ">", "=", "!")):
        raise ValueError(f"a condition is a column, an operator ({' '.join(OPERATORS)}) and a value, such as "
                         f"'lr<0.01', 'optim.name=adam' or 'valid/loss:best<=0.3'; got {text!r}")
    column = parse_column(found["column"])
    if column.kind == "run":
        raise ValueError(f"conditions are on config values and metrics; filter {column.name!r} with its own "
                         f"parameter (project, status, tag, q), got {text!r}")
    value = _number(found["value"])
    if value is None:
        if column.kind == "metric" or found["op"] not in ("=", "!="):
            raise ValueError(f"{text!r} compares with {found['value']!r}, which is not a number; only config "
                             "values are compared with text, by = or !=")
        value = found["value"]
    return Condition(column, found["op"], value)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


# -- the in-memory evaluation ------------------------------------------------------------------------


def cell(record: Any, column: Column, summaries: dict[str, Any]) -> Any:
    """A run's value in ``column``: a number, text, or None where it has none. ``summaries``: key -> KeySummary."""
    if column.kind == "run":
        return record.project if column.name == "project" else getattr(record, column.name)
    if column.kind == "config":
        value = record.config.flat().get(column.name)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else (
            None if value is None else json.dumps(value))
    summary = summaries.get(column.name)
    if summary is None:
        return None
    if column.part == "last":
        return summary.last
    return summary.min if column.best_is_lowest else summary.max


def matches(record: Any, condition: Condition, summaries: dict[str, Any]) -> bool:
    value = cell(record, condition.column, summaries)
    wanted = condition.value
    if isinstance(wanted, str):
        if value is None or condition.column.kind != "config":
            return False
        equal = value == json.dumps(wanted)
        return equal if condition.op == "=" else not equal
    if not isinstance(value, float) or math.isnan(value):
        return False
    return {"<": value < wanted, "<=": value <= wanted, ">": value > wanted, ">=": value >= wanted,
            "=": value == wanted, "!=": value != wanted}[condition.op]


def sort_key(value: Any) -> tuple:
    """Numbers before text, None (and NaN) last whichever way the sort goes: a key for one direction."""
    if value is None or isinstance(value, float) and math.isnan(value):
        return (2, 0.0, "")
    if isinstance(value, (int, float)):
        return (0, float(value), "")
    return (1, 0.0, str(value))


# -- groups of runs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stat:
    """A metric column over a group's runs: how many have a value, their mean and sample standard
    deviation (None without values; 0 for one)."""

    count: int
    mean: float | None
    std: float | None


@dataclass(frozen=True)
class RunGroup:
    """Runs with equal values of the grouping keys: the values (None where the runs lack the key), how
    many runs, and a :class:`Stat` per metric column (by its ``Column.text``)."""

    values: tuple[Any, ...]
    count: int
    stats: dict[str, Stat]


def stat(count: int, total: float, squares: float) -> Stat:
    """A :class:`Stat` from a count, a sum and a sum of squares: the form SQL aggregates give."""
    if not count:
        return Stat(0, None, None)
    mean = total / count
    var = max(0.0, (squares - count * mean * mean) / (count - 1)) if count > 1 else 0.0
    return Stat(count, mean, math.sqrt(var))


def group_records(records: Iterable[Any], group_by: Sequence[str], metrics: Sequence[Column],
                  summaries: dict[str, dict[str, Any]]) -> list[RunGroup]:
    """The groups of ``records`` by the config keys ``group_by``, largest first (then by values).
    ``summaries``: run id -> key -> KeySummary. The in-memory answer the SQL one matches."""
    found: dict[tuple, list[Any]] = {}
    for r in records:
        flat = r.config.flat()
        key = tuple(json.dumps(flat[k]) if k in flat else None for k in group_by)
        found.setdefault(key, []).append(r)
    groups = []
    for key, runs in found.items():
        stats = {}
        for column in metrics:
            values = [v for v in (cell(r, column, summaries.get(r.id, {})) for r in runs)
                      if isinstance(v, float) and not math.isnan(v)]
            stats[column.text] = stat(len(values), sum(values), sum(v * v for v in values))
        groups.append(RunGroup(tuple(None if v is None else json.loads(v) for v in key), len(runs), stats))
    return sorted(groups, key=lambda g: (-g.count, json.dumps(g.values)))
