"""Small typed records passed between the store and its callers."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from epochal.keys import best_of, is_better

RUN_STATUSES = ("running", "finished", "failed", "interrupted", "crashed")

# A run id names the run's folder, so it must be one harmless path component.
_RUN_ID = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,63}")


def valid_run_id(run_id: object) -> bool:
    """Whether ``run_id`` can name a folder inside the store: letters, digits, '-', '_', '.', not
    starting with a dot, at most 64 characters. Ids read from a store someone else wrote are checked."""
    return isinstance(run_id, str) and _RUN_ID.fullmatch(run_id) is not None


def checked_ranks(value: object) -> tuple[tuple[str, int], ...]:
    """A run's ranks as the store keeps them: a (host, pid) pair per rank, from any sequence of pairs
    (JSON's lists included). Anything else is a ValueError."""
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"ranks are a list of (host, pid) pairs, got {value!r:.60}")
    ranks = []
    for pair in value:
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2 or not isinstance(pair[0], str)
                or type(pair[1]) is not int):
            raise ValueError(f"a rank is a (host, pid) pair of a string and an int, got {pair!r:.60}")
        ranks.append((pair[0], pair[1]))
    return tuple(ranks)


class Config(Mapping):
    """A run's configuration: the nested dict as given, also readable by dotted key.

    Examples:
        >>> cfg = Config({"optim": {"lr": 0.1}})
        >>> cfg["optim.lr"], cfg["optim"]["lr"]
        (0.1, 0.1)
    """

    def __init__(self, data: Mapping[str, Any] | None = None):
        self._data = dict(data or {})

    def __getitem__(self, key: str) -> Any:
        if key in self._data:
            return self._data[key]
        node: Any = self._data
        for part in key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                raise KeyError(key)
            node = node[part]
        return node

    def __contains__(self, key: object) -> bool:
        try:
            self[key]  # type: ignore[index]
        except (KeyError, TypeError):
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def to_dict(self) -> dict[str, Any]:
        return dict(self._data)

    def merged(self, new: Mapping[str, Any]) -> dict[str, Any]:
        """This config's dict with ``new`` added: nested dicts merged, other values replaced."""
        return _merged(self._data, new)

    def flat(self) -> dict[str, Any]:
        """Leaves of the nested dict under their dotted keys."""
        return flatten(self._data)

    def __repr__(self) -> str:
        return f"Config({self._data!r})"


def config_number(value: Any) -> float | None:
    """A config value as the number filters and sorts use; None for text and ints past a float64."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def _merged(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(old)
    for key, value in new.items():
        out[key] = _merged(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) else value
    return out


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


@dataclass(frozen=True, eq=False)
class RunRecord:
    """What the store knows about one run."""

    id: str
    name: str
    project: str
    status: str  # one of RUN_STATUSES; 'crashed' is derived from a dead pid or a stale heartbeat
    started: float  # seconds since the epoch
    ended: float | None
    heartbeat: float | None
    host: str  # rank 0's in a DDP job
    pid: int  # rank 0's in a DDP job
    command: str
    git_commit: str | None
    python: str
    torch: str | None
    description: str
    tags: tuple[str, ...]
    config: Config
    steps: int  # the run's step counter at its last flush
    epochs: int  # the run's epoch counter at its last flush
    segment: int  # 0 for the first session, +1 at every resume
    path: str  # the run's folder for files (checkpoints, plots, ...)
    token: str = ""  # random per writing process, so a reused pid is not taken for the run's own process
    ranks: tuple[tuple[str, int], ...] = ()  # (host, pid) of each DDP rank, by rank; empty for one process

    @property
    def world_size(self) -> int:
        """How many processes record this run: 1 unless it is a distributed (DDP) job."""
        return max(1, len(self.ranks))

    @property
    def duration(self) -> float:
        end = self.ended if self.ended is not None else (self.heartbeat or self.started)
        if self.status == "running":
            end = time.time()
        return max(0.0, end - self.started)


@dataclass(frozen=True, eq=False)
class History:
    """One key's series: NumPy arrays of equal length, ordered by step."""

    key: str
    steps: np.ndarray  # int64
    epochs: np.ndarray  # int64
    values: np.ndarray  # float64; NaN and inf kept as logged
    times: np.ndarray  # float64 seconds since the epoch (microsecond resolution)

    def __len__(self) -> int:
        return len(self.steps)


@dataclass(frozen=True)
class KeySummary:
    """Last and best value of a key. min/max/best ignore NaN; None when every value is NaN."""

    key: str
    count: int
    last: float
    last_step: int
    min: float | None
    max: float | None
    mode: str  # 'min' or 'max': which of the two is best for this key

    @property
    def best(self) -> float | None:
        return best_of(self.min, self.max, self.mode)


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint file of a run, as recorded in the store."""

    run_id: str
    path: str  # relative to the run's folder
    step: int
    epoch: int
    size: int  # bytes
    sha256: str
    created: float
    metric_key: str | None = None
    metric_value: float | None = None
    mode: str | None = None  # 'min' or 'max' for the metric
    kind: str = "resume"  # 'resume': everything to continue the run; 'weights': model weights only
    seq: int = 0  # the run's save sequence: a checkpoint saved later has a higher one (the clock may step back)

    def better_than(self, other: Checkpoint) -> bool:
        return is_better(self.metric_value, other.metric_value, self.mode or "max")


@dataclass(frozen=True, eq=False)
class SeriesChunk:
    """Points of one key from one flush, columns as NumPy arrays."""

    run_id: str
    key: str
    segment: int
    steps: np.ndarray
    epochs: np.ndarray
    values: np.ndarray
    times_us: np.ndarray
    #: The chunk's place in its key's series, for copies between stores (sync, a team store's shipper): a
    #: backend stores a chunk whose place it already holds once. None for a chunk logged here and now.
    seq: int | None = None


#: The fields of a run's record that a :class:`RunUpdate` sets as they are (the others it names need care).
UPDATABLE = (
    "steps", "epochs", "heartbeat", "status", "ended", "pid", "host", "command", "segment", "description", "token",
)


@dataclass(frozen=True)
class RunUpdate:
    """Changes to a run's row; None leaves a field as it is."""

    run_id: str
    steps: int | None = None
    epochs: int | None = None
    heartbeat: float | None = None
    status: str | None = None
    ended: float | None = None
    pid: int | None = None
    host: str | None = None
    command: str | None = None
    segment: int | None = None
    tags: tuple[str, ...] | None = None
    description: str | None = None
    token: str | None = None
    ranks: tuple[tuple[str, int], ...] | None = None  # a resumed DDP job's new processes
    config: Config | None = None  # the whole new config (Run.update_config merges before it sends)
    reopen: bool = False  # clear 'ended' (a resumed run)
    if_segment: int | None = None  # apply only if the run is still at this segment (claiming a run to resume)


@dataclass(frozen=True)
class WriteBatch:
    """Everything one transaction writes. Every write of the store goes through one of these."""

    new_runs: tuple[RunRecord, ...] = ()
    run_updates: tuple[RunUpdate, ...] = ()
    chunks: tuple[SeriesChunk, ...] = ()
    new_checkpoints: tuple[Checkpoint, ...] = ()
    removed_checkpoints: tuple[Checkpoint, ...] = ()
    refresh_summaries: tuple[str, ...] = ()  # run ids whose summaries are recomputed from history
    deleted_runs: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return any(
            (self.new_runs, self.run_updates, self.chunks, self.new_checkpoints,
             self.removed_checkpoints, self.refresh_summaries, self.deleted_runs)
        )
