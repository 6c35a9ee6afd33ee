"""Plain text for a terminal: aligned tables, compact numbers, times, durations and sizes, and the
tables of runs, summaries and checkpoints that ``epochal ls`` and ``epochal show`` print (the demo
prints the runs table too).

Examples:
    >>> print(table(["key", "count"], [["loss", "3"]], right={1}))
    key   count
    loss      3
    >>> duration(3725), number(0.123456), size(2048)
    ('1h02m', '0.1235', '2.0 KiB')
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from epochal.keys import main_metrics
from epochal.store.records import Checkpoint, KeySummary, RunRecord


def runs_table(
    runs: Sequence[RunRecord], summaries: Sequence[Mapping[str, KeySummary]], keys: Sequence[str] | None = None
) -> str:
    """A line per run: id, name, project, status, start (local time), duration and the last value of
    each of ``keys`` (default: the runs' main metrics, by :func:`epochal.keys.main_metrics`)."""
    keys = keys or main_metrics(key for summary in summaries for key in summary)
    header = ["id", "name", "project", "status", "start", "duration", *keys]
    rows = [
        [run.id, run.name, run.project, run.status, when(run.started, seconds=False), duration(run.duration),
         *(number(summary[key].last) if key in summary else "-" for key in keys)]
        for run, summary in zip(runs, summaries)
    ]
    return table(header, rows, right=set(range(5, len(header))))


def record_fields(record: RunRecord) -> str:
    """A run's record, a field a line: status, times, host, command, versions, tags, folder."""
    fields = [
        ("id", record.id),
        ("name", record.name),
        ("project", record.project),
        ("status", record.status),
        ("started", when(record.started)),
        ("ended", "-" if record.ended is None else when(record.ended)),
    ]
    if record.status in ("running", "crashed") and record.heartbeat is not None:
        fields.append(("last heartbeat", when(record.heartbeat)))
    fields += [
        ("duration", duration(record.duration)),
        ("host", record.host),
        ("pid", str(record.pid)),
    ]
    if record.world_size > 1:
        processes = ", ".join(f"{host} pid {pid}" for host, pid in record.ranks)
        fields.append(("ranks", f"{record.world_size} ({processes})"))
    fields += [
        ("command", record.command),
        ("git commit", record.git_commit or "-"),
        ("python", record.python),
        ("torch", record.torch or "-"),
        ("tags", ", ".join(record.tags) or "-"),
        ("description", record.description or "-"),
        ("steps", str(record.steps)),
        ("epochs", str(record.epochs)),
    ]
    if record.segment:
        fields.append(("resumed", f"{record.segment} time{'s' * (record.segment != 1)}"))
    fields.append(("folder", record.path))
    width = max(len(name) for name, _ in fields) + 2
    return "\n".join(
        name.ljust(width) + value.replace("\n", "\n" + " " * width) for name, value in fields
    )


def summary_table(summaries: Sequence[KeySummary]) -> str:
    """Per key: count, last, min, max and best value (with its mode)."""
    rows = [
        [s.key, str(s.count), number(s.last, 6), number(s.min, 6), number(s.max, 6),
         f"{number(s.best, 6)} ({s.mode})"]
        for s in summaries
    ]
    return table(["key", "count", "last", "min", "max", "best"], rows, right={1, 2, 3, 4, 5})


def checkpoint_table(checkpoints: Sequence[Checkpoint]) -> str:
    """Per checkpoint: file, step, epoch, metric, size and the start of its SHA-256."""
    rows = [
        [c.path, str(c.step), str(c.epoch),
         "-" if c.metric_key is None else f"{c.metric_key}={number(c.metric_value, 6)}",
         size(c.size), c.sha256[:12] or "-"]
        for c in checkpoints
    ]
    return table(["file", "step", "epoch", "metric", "size", "sha256"], rows, right={1, 2, 4})


def table(header: Sequence[str], rows: Sequence[Sequence[str]], *, right: set[int] = frozenset()) -> str:
    """Columns two spaces apart, those in ``right`` aligned right."""
    widths = [max(map(len, column)) for column in zip(header, *rows)]
    return "\n".join(
        "  ".join(
            cell.rjust(width) if index in right else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(line, widths))
        ).rstrip()
        for line in (header, *rows)
    )


def indent(text: str) -> str:
    """``text`` with every line indented by two spaces."""
    return "\n".join("  " + line for line in text.splitlines())


def number(value: float | None, digits: int = 4) -> str:
    """``value`` in ``digits`` significant digits; '-' for None."""
    return "-" if value is None else f"{value:.{digits}g}"


def when(timestamp: float, *, seconds: bool = True) -> str:
    """A local date and time, to the second or to the minute."""
    return time.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M", time.localtime(timestamp))


def duration(seconds: float) -> str:
    """1m05s, 2h03m, 3d04h: the two largest units."""
    total = int(seconds)
    minutes, secs = divmod(total, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def size(nbytes: float) -> str:
    """Bytes in B, KiB, MiB or GiB."""
    if nbytes < 1024:
        return f"{int(nbytes)} B"
    for unit in ("KiB", "MiB", "GiB"):
        nbytes /= 1024
        if nbytes < 1024:
            break
    return f"{nbytes:.1f} {unit}"
