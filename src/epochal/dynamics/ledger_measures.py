"""Per-sample measures from a run's ledger (see :mod:`epochal.dynamics.ledger`): which samples the model
learned, forgot, or never believed, and which look mislabeled.

    >>> stats = ledger_stats(Path(run.path) / "ledger")
    >>> stats.frame()                       # what Store().samples(run) returns
    >>> stats.likely_mislabeled(10)         # positions, highest mislabeled_score first

The epoch files are read one at a time (twice: once for the samples, once for the measures), each
reduced with NumPy to per-sample sums, so memory grows with the samples, not with the epochs.

Where a resumed run recorded an epoch again, its newer session's rows supersede an older session's rows
of that epoch from the newer session's first step in that epoch on, as a resumed run's points
supersede the old ones in the store. (A loop that never calls ``run.step()`` records every row at the
same step: the newest session's rows of an epoch then replace all of an older session's.)
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from epochal.dynamics.ledger import FOLDER, parse_file_name
from epochal.errors import DynamicsError

#: Per-sample columns of :meth:`LedgerStats.frame`, in order.
COLUMNS = ("sample", "label", "aum", "forgetting_events", "first_learned", "last_learned", "confidence",
           "variability", "correctness", "mislabeled_score", "presentations")
# MAD * this estimates the standard deviation of normally distributed values.
MAD_TO_STD = 1.4826


@dataclass(frozen=True)
class LedgerStats:
    """Per-sample measures over every recorded presentation; arrays are in the order of ``sample``.

    - ``label``: the target it was presented with (the most frequent one, should that vary; a tie goes
      to the first given).
    - ``aum``: the area under the margin (Pleiss et al., 2020, "Identifying Mislabeled Data using the
      Area Under the Margin Ranking"): the mean over its presentations of the target's logit minus the
      largest other logit. Low or negative: the model kept preferring another class; mislabeled samples
      sit at the bottom.
    - ``forgetting_events``: presentations at which it was predicted right followed by a presentation
      predicted wrong (Toneva et al., 2019, "An Empirical Study of Example Forgetting during Deep Neural
      Network Learning"), counted across epochs in the order presented. A sample never learned has 0
      events here and ``first_learned == -1``: the paper counts it as forgotten infinitely often, and
      calls "unforgettable" only samples learned and never forgotten (``first_learned >= 0`` and 0 events).
    - ``first_learned``: the epoch of its first right presentation; -1 if never right.
    - ``last_learned``: the epoch from which it stayed learned: that of the first presentation of the last
      unbroken run of right presentations; -1 if its last presentation was wrong.
    - ``confidence``, ``variability``: the mean and the (population) standard deviation over epochs of the
      probability the model gave its target (exp(-cross-entropy)), averaged first over its presentations
      within an epoch: dataset cartography's axes (Swayamdipta et al., 2020, "Dataset Cartography:
      Mapping and Diagnosing Datasets with Training Dynamics").
    - ``correctness``: the share of its presentations predicted right (Swayamdipta et al., 2020).
    - ``mislabeled_score``: how far its AUM lies below the typical sample's, in robust standard deviations:
      (median AUM - AUM) / (1.4826 * the median absolute deviation of AUM). Higher is more likely
      mislabeled; it orders the samples exactly as -AUM does (Pleiss et al. rank by AUM), and on a scale
      that compares across runs: past about 3, a sample is an outlier among its data set.
    - ``presentations``: how many rows the ledger holds for it.
    """

    sample: np.ndarray
    label: np.ndarray
    aum: np.ndarray
    forgetting_events: np.ndarray
    first_learned: np.ndarray
    last_learned: np.ndarray
    confidence: np.ndarray
    variability: np.ndarray
    correctness: np.ndarray
    mislabeled_score: np.ndarray
    presentations: np.ndarray
    epochs: np.ndarray  # the epochs the ledger holds, ascending
    classes: int

    def likely_mislabeled(self, count: int = 20) -> np.ndarray:
        """Positions of the ``count`` samples with the highest ``mislabeled_score`` (lowest AUM), highest first."""
        return np.argsort(-self.mislabeled_score, kind="stable")[:count]

    def frame(self) -> Any:
        """A pandas DataFrame: one row per sample, sorted by ``sample``, with the columns in ``COLUMNS``.

        Raises:
            ImportError: pandas is not installed (``pip install 'epochal[pandas]'``).
        """
        try:
            import pandas
        except ImportError as exc:
            raise ImportError("DataFrames need pandas: pip install 'epochal[pandas]'") from exc
        return pandas.DataFrame({name: getattr(self, name) for name in COLUMNS})


def has_ledger(run_folder: str | Path) -> bool:
    """Whether a run's folder holds any ledger file."""
    folder = Path(run_folder) / FOLDER
    return folder.is_dir() and any(parse_file_name(p.name) for p in folder.iterdir())


def ledger_stats(folder: str | Path) -> LedgerStats:
    """The per-sample measures of the ledger in ``folder`` (a run's ``ledger/``).

    Raises:
        DynamicsError: the folder holds no ledger, or its files disagree on the class count.
    """
    folder = Path(folder)
    epochs = ledger_parts(folder)
    if not epochs:
        raise DynamicsError(
            f"no sample ledger in '{folder}': record one with run.record_samples(indices, logits, targets)"
        )
    sample = np.unique(np.concatenate([epoch_rows(parts, ("sample",))["sample"] for parts in epochs.values()]))
    size = len(sample)
    presentations = np.zeros(size, np.int64)
    margin_sum = np.zeros(size)
    right = np.zeros(size, np.int64)
    probability_sum, probability_squares = np.zeros(size), np.zeros(size)
    epochs_seen = np.zeros(size, np.int64)
    forgetting = np.zeros(size, np.int64)
    first_learned = np.full(size, -1, np.int64)
    last_learned = np.full(size, -1, np.int64)
    state = np.full(size, -1, np.int8)  # the last presentation so far: -1 none, 0 wrong, 1 right
    first_label = np.full(size, -1, np.int64)
    other_labels: list[np.ndarray] = []  # position * classes + target, for targets other than the first
    classes = None
    for epoch, parts in epochs.items():
        rows = epoch_rows(parts, ("sample", "target", "correct", "loss", "margin"))
        if classes is not None and rows["classes"] != classes:
            raise DynamicsError(f"the ledger's epoch {epoch} has {rows['classes']} classes, earlier epochs {classes}")
        classes = rows["classes"]
        where = np.searchsorted(sample, rows["sample"])
        correct, target = rows["correct"], rows["target"].astype(np.int64)
        counts = np.bincount(where, minlength=size)
        present = counts > 0
        presentations += counts
        margin_sum += np.bincount(where, rows["margin"].astype(np.float64), size)
        right += np.bincount(where[correct], minlength=size)
        mean_probability = np.bincount(where, np.exp(-rows["loss"].astype(np.float64)), size)[present] / counts[present]
        probability_sum[present] += mean_probability
        probability_squares[present] += mean_probability ** 2
        epochs_seen += present
        # labels: the first seen, and every other one seen
        seen, first_row = np.unique(where, return_index=True)
        new = first_label[seen] < 0
        first_label[seen[new]] = target[first_row[new]]
        differs = target != first_label[where]
        if differs.any():
            other_labels.append(where[differs] * classes + target[differs])
        # the sequence of right and wrong, per sample, in the order presented
        order = np.argsort(where, kind="stable")
        position, ok = where[order], correct[order]
        starts = np.flatnonzero(np.r_[True, position[1:] != position[:-1]])
        ends = np.r_[starts[1:] - 1, len(position) - 1]
        inside = ok[:-1] & ~ok[1:] & (position[1:] == position[:-1])
        forgetting += np.bincount(position[1:][inside], minlength=size)
        group = position[starts]
        before = state[group]
        forgetting[group] += (before == 1) & ~ok[starts]
        all_right = np.logical_and.reduceat(ok, starts)
        any_right = np.logical_or.reduceat(ok, starts)
        first_learned[group] = np.where((first_learned[group] < 0) & any_right, epoch, first_learned[group])
        last_learned[group] = np.where(~ok[ends], -1, np.where(all_right & (before == 1), last_learned[group], epoch))
        state[group] = ok[ends]
    aum = margin_sum / presentations
    confidence = probability_sum / epochs_seen
    variability = np.sqrt(np.maximum(probability_squares / epochs_seen - confidence ** 2, 0.0))
    return LedgerStats(
        sample=sample, label=_labels(first_label, presentations, other_labels, classes), aum=aum,
        forgetting_events=forgetting, first_learned=first_learned, last_learned=last_learned,
        confidence=confidence, variability=variability, correctness=right / presentations,
        mislabeled_score=mislabeled_score(aum), presentations=presentations,
        epochs=np.array(sorted(epochs), dtype=np.int64), classes=int(classes),
    )


def mislabeled_score(aum: np.ndarray) -> np.ndarray:
    """(median - AUM) / (1.4826 * MAD): robust standard deviations below the typical AUM (see :class:`LedgerStats`)."""
    if not len(aum):
        return aum.copy()
    centre = np.median(aum)
    spread = MAD_TO_STD * np.median(np.abs(aum - centre))
    if not spread > 0:
        spread = float(np.std(aum)) or 1.0
    return (centre - aum) / spread


def _labels(first: np.ndarray, presentations: np.ndarray, others: list[np.ndarray], classes: int) -> np.ndarray:
    """Each sample's most frequent target (a tie: the first given)."""
    labels = first.copy()
    if not others:
        return labels
    keys, counts = np.unique(np.concatenate(others), return_counts=True)
    position, target = keys // classes, keys % classes
    first_count = presentations.copy()
    np.subtract.at(first_count, position, counts)
    # per sample, the most frequent other target (np.unique sorted by key; take the largest count per sample)
    order = np.lexsort((-counts, position))
    position, target, counts = position[order], target[order], counts[order]
    head = np.r_[True, position[1:] != position[:-1]]
    position, target, counts = position[head], target[head], counts[head]
    beats = counts > first_count[position]
    labels[position[beats]] = target[beats]
    return labels


def ledger_parts(folder: Path) -> dict[int, list[tuple[int, int, Path]]]:
    """Epoch -> its files as (session, rank, path), oldest session first; epochs ascending."""
    found: dict[int, list[tuple[int, int, Path]]] = defaultdict(list)
    if folder.is_dir():
        for path in folder.iterdir():
            parsed = parse_file_name(path.name)
            if parsed is not None:
                epoch, session, rank = parsed
                found[epoch].append((session, rank, path))
    return {epoch: sorted(found[epoch]) for epoch in sorted(found)}


def epoch_rows(parts: list[tuple[int, int, Path]], names: tuple[str, ...]) -> dict[str, Any]:
    """The ``names`` columns of one epoch's rows in the order presented, older sessions' rows that a newer
    session recorded again left out; and ``step`` (each row's) and ``classes``."""
    sessions: dict[int, list[dict[str, Any]]] = defaultdict(list)
    classes = None
    for session, _, path in parts:
        with np.load(path) as file:
            columns = {name: file[name] for name in names}
            ends = file["batch_end"]
            columns["step"] = np.repeat(file["batch_step"], np.diff(ends, prepend=0))
            if classes is not None and int(file["classes"]) != classes:
                raise DynamicsError(f"the ledger file '{path}' has {int(file['classes'])} classes, others {classes}")
            classes = int(file["classes"])
        sessions[session].append(columns)
    kept: list[dict[str, Any]] = []
    since = None  # the first step of the newer sessions' rows
    for session in sorted(sessions, reverse=True):
        merged = {name: np.concatenate([c[name] for c in sessions[session]]) for name in (*names, "step")}
        if since is not None:
            keep = merged["step"] < since
            merged = {name: column[keep] for name, column in merged.items()}
        if len(merged["step"]):
            since = int(merged["step"].min()) if since is None else min(since, int(merged["step"].min()))
        kept.append(merged)
    rows = {name: np.concatenate([k[name] for k in reversed(kept)]) for name in (*names, "step")}
    order = np.argsort(rows["step"], kind="stable")  # ranks' rows interleaved by step; sessions in order
    out: dict[str, Any] = {name: rows[name][order] for name in names}
    out["step"], out["classes"] = rows["step"][order], classes
    return out

