"""Plot a run's series into an image file: one panel per metric, its splits drawn together.

A key's panel is named by what follows its first '/': ``train/loss`` and ``valid/loss``
share the 'loss' panel, ``train/acc`` and ``valid/acc`` the 'acc' panel; a key without
'/' (``lr``) is a panel of its own, named by the key. NaN and infinite values are left out
of the lines, so they show as gaps. Rendering uses matplotlib's Agg canvas and no pyplot
state: nothing opens a window, and it works on a machine without a display.

From the shell: ``epochal plot RUN -o run.png``.

Examples:
    >>> plot_run(store, "baseline", "baseline.png")
    PosixPath('baseline.png')
    >>> fig = run_figure(store, "baseline", keys=["train/loss", "valid/loss"])
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from epochal.atomic import atomic_write
from epochal.errors import SeriesNotFoundError
from epochal.store.records import History, RunRecord
from epochal.store.store import Store

PANEL_SIZE = (5.5, 3.6)  # inches per panel: width, height
DPI = 100


def panel_of(key: str) -> str:
    """The panel a key is drawn in: the part after its first '/', or the key itself.

    The Trainer's per-epoch training loss (``train/epoch_loss``) joins the 'loss' panel.
    """
    _, slash, rest = key.partition("/")
    return rest.removeprefix("epoch_") if slash and rest else key


def run_figure(
    store: Store, ref: str | RunRecord, *, keys: Sequence[str] | None = None, max_points: int = 2000
) -> Figure:
    """A figure of a run's series, one panel per :func:`panel_of` group, x axis the step.

    Args:
        keys: the keys to draw, panels in the order of their first key; default every key of the run.
        max_points: read each series downsampled to about this many points (spikes and NaNs kept).

    Raises:
        RunNotFoundError: no run matches ``ref``.
        SeriesNotFoundError: the run has not logged one of ``keys``, or nothing at all.
    """
    record = store.run(ref)
    if keys is None:  # panels of split metrics (train/loss, ...) first, single keys (lr, ...) after
        # Spreads (the Trainer's */loss_std) are left out unless asked for: they crowd the chart.
        chosen = sorted((k for k in store.keys(record) if not k.endswith("_std")), key=lambda key: "/" not in key)
    else:
        chosen = list(dict.fromkeys(keys))
    if not chosen:
        raise SeriesNotFoundError(f"run {record.name!r} ({record.id}) has logged no values to plot")
    panels: dict[str, list[History]] = {}
    for key in chosen:
        panels.setdefault(panel_of(key), []).append(store.history(record, key, max_points=max_points))

    count = len(panels)
    columns = 2 if count in (2, 4) else min(count, 3)
    rows = math.ceil(count / columns)
    width = PANEL_SIZE[0] * columns if count > 1 else 8.0
    figure = Figure(figsize=(width, PANEL_SIZE[1] * rows + 0.5), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(f"{record.name} ({record.project})")
    for index, (title, members) in enumerate(panels.items(), start=1):
        _draw_panel(figure.add_subplot(rows, columns, index), title, members)
    return figure


def plot_run(
    store: Store,
    ref: str | RunRecord,
    path: str | os.PathLike,
    *,
    keys: Sequence[str] | None = None,
    max_points: int = 2000,
) -> Path:
    """Draw :func:`run_figure` into ``path`` and return the path.

    The image is PNG, or another format matplotlib writes (svg, pdf, ...) when the file's
    extension names one. The file is written atomically: a temporary file, then a rename.

    Raises:
        RunNotFoundError: no run matches ``ref``.
        SeriesNotFoundError: the run has not logged one of ``keys``, or nothing at all.
        ValueError: matplotlib cannot write the format the extension names.
    """
    figure = run_figure(store, ref, keys=keys, max_points=max_points)
    target = Path(path)
    atomic_write(target, lambda file: figure.savefig(file, format=target.suffix[1:].lower() or "png"))
    return target


def _draw_panel(axes: Axes, title: str, members: list[History]) -> None:
    # A run that only counted epochs has every point at one step: spread it by epoch instead.
    by_epoch = all(len(np.unique(h.steps)) <= 1 for h in members) and any(len(np.unique(h.epochs)) > 1 for h in members)
    for h in members:
        x = h.epochs if by_epoch else h.steps
        (line,) = axes.plot(x, h.values, label=h.key, linewidth=1.2)
        lone = _isolated(h.values)
        if lone.any():  # a point between gaps has no line to be part of: mark it
            axes.plot(x[lone], h.values[lone], linestyle="none", marker="o", markersize=3, color=line.get_color())
    axes.set_title(title)
    axes.set_xlabel("epoch" if by_epoch else "step")
    axes.grid(True, alpha=0.3)
    if len(members) > 1 or members[0].key != title:
        axes.legend(fontsize="small")


def _isolated(values: np.ndarray) -> np.ndarray:
    """Finite values whose neighbours are both missing or non-finite."""
    finite = np.isfinite(values)
    padded = np.concatenate(([False], finite, [False]))
    return finite & ~padded[:-2] & ~padded[2:]
