"""Fit a run's projection and keep it in the run's folder: coordinates, backgrounds, the model.

    >>> projection = epochal.dynamics.fit(run)            # a Run, a RunRecord or a run's folder
    >>> projection = epochal.dynamics.load(run)           # later, without fitting again

Settings come from, in order: the keyword arguments, the run's ``dynamics/fit.json`` (written by
``epochal import ttv`` from the seed's config.json), then :class:`~epochal.dynamics.projection.Params`.
While it runs, ``projection/progress.json`` says how far it got, for the dashboard; a failed fit
leaves ``failed`` there with its message, and the previous projection's files stay as they were
until the new ones replace them.
"""

from __future__ import annotations

import datetime
import os
import time
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from epochal.atomic import atomic_write
from epochal.dynamics import files
from epochal.dynamics.background import background, class_colors, extent_of, grid, save_png
from epochal.dynamics.head import from_arrays
from epochal.dynamics.projection import Params, Progress, Projection
from epochal.dynamics.record import HEAD_ERROR
from epochal.errors import DynamicsError, EpochalWarning

#: What a projection saved with NumPy arrays needs beyond weights_only's defaults: arrays and
#: scalars are rebuilt from their bytes, and any object they hold is itself restricted.
_MULTIARRAY = (getattr(np, "_core", None) or np.core).multiarray  # numpy._core from NumPy 2 on
_NUMPY_ARRAYS = [_MULTIARRAY._reconstruct, _MULTIARRAY.scalar, np.ndarray, np.dtype,
                 *{type(np.dtype(code)) for code in "?bhilqBHILQefdgFDG"}]  # numeric dtypes only: no objects


def run_folder(run: Any) -> Path:
    """The folder of a Run, a RunRecord, or a path."""
    return Path(getattr(run, "path", run))


def recorded(run: Any) -> tuple[Path, list[int]]:
    """(dynamics folder, recorded epochs); a DynamicsError saying how to record when there are none."""
    folder = files.dynamics_folder(run_folder(run))
    epochs = files.recorded_epochs(folder)
    if not epochs:
        raise DynamicsError(
            f"the run in '{run_folder(run)}' has no recorded dynamics; record them while training with "
            "epochal.RecordDynamics(...) or run.record_dynamics(model, inputs, labels) once per epoch"
        )
    return folder, epochs


def fit(
    run: Any, *, random_state: int | None = 0, progress: Progress | None = None, device: Any = None, **params: Any
) -> Projection:
    """Fit the projection of every recorded epoch of ``run`` and write its files; the fitted projection."""
    folder, epochs = recorded(run)
    target = folder / files.PROJECTION_FOLDER
    settings = {**(files.read_json(folder / files.FIT_FILE) or {}), **params}
    unknown = sorted(set(settings) - set(Params.names()))
    if unknown:
        raise DynamicsError(f"unknown projection setting(s) {', '.join(unknown)}; known: {', '.join(Params.names())}")
    reporter = _Reporter(target / files.PROGRESS_FILE, progress)
    started = time.perf_counter()
    try:
        reporter("load", 0.0, f"loading {len(epochs)} epochs")
        heads, reasons, classes = [], {}, class_count(folder)
        for epoch in epochs:
            with files.arrays(files.epoch_file(folder, epoch)) as arrays:
                heads.append(from_arrays(arrays))
                if heads[-1] is None:
                    reasons[epoch] = str(arrays[HEAD_ERROR]) if HEAD_ERROR in arrays.files else None
                classes = max(classes, arrays["logits"].shape[1])
        missing = _missing_heads(reasons, epochs) if reasons else None
        if missing is not None:
            warnings.warn(missing, EpochalWarning, stacklevel=2)
            reporter("load", 0.0, missing)
        projection = Projection(random_state=random_state, device=device, **settings)
        projection.fit(EpochRepresentations(folder, epochs), epochs=epochs, heads=None if reasons else heads, progress=reporter)
        reporter("save", 0.97, "writing coordinates and backgrounds")
        _save(target, projection, epochs, time.perf_counter() - started, classes, missing)
    except BaseException as error:
        reporter.fail(error)
        raise
    reporter.done(f"fitted {len(epochs)} epochs in {time.perf_counter() - started:.1f} s"
                  + (f"; {missing}" if missing else ""))
    return projection


class EpochRepresentations(Sequence):
    """A run's recorded representations, one epoch read from its file each time it is asked for: the fit
    copies each into its one float32 array, so the run's epochs are never all in memory twice."""

    def __init__(self, folder: Path, epochs: list[int]):
        self.folder, self.epochs = folder, epochs

    def __len__(self) -> int:
        return len(self.epochs)

    def __getitem__(self, index: int) -> np.ndarray:  # type: ignore[override]
        with files.arrays(files.epoch_file(self.folder, self.epochs[index])) as arrays:
            return arrays["representations"]


def class_count(folder: Path) -> int:
    """The classes of a run's samples, from their labels and the class names: what gets a colour each."""
    with files.arrays(folder / files.SAMPLES_FILE) as samples:
        labels = samples["labels"]
    names = files.read_json(folder / files.CLASSES_FILE)
    return max(int(labels.max()) + 1 if len(labels) else 0, len(names) if isinstance(names, list) else 0)


def _missing_heads(reasons: dict[int, str | None], epochs: list[int]) -> str:
    """Says plainly that the fit draws no backgrounds and measures no PPR, and why."""
    which = "no epoch has a" if len(reasons) == len(epochs) else f"epoch(s) {sorted(reasons)} have no"
    why = next((r for r in reasons.values() if r), None)
    because = f": {why}" if why else " (recorded before epochal kept heads of this kind)"
    return (f"no decision-boundary backgrounds and no PPR: {which} recorded prediction head{because}; the "
            "backgrounds and PPR need the head")


def load(run: Any) -> Projection:
    """The projection last fitted for ``run``, read with ``weights_only=True``: nothing in it is unpickled
    but tensors, NumPy arrays (of projections fitted before they were saved as tensors) and plain values.

    Raises:
        DynamicsError: there is no fitted projection, or its file is damaged or holds anything else.
    """
    import pickle

    import torch

    path = files.projection_folder(run_folder(run)) / files.MODEL_FILE
    if not path.exists():
        raise DynamicsError(f"the run in '{run_folder(run)}' has no fitted projection; fit one with `epochal dynamics fit RUN`")
    refit = "fit it again with `epochal dynamics fit RUN`"
    try:
        with torch.serialization.safe_globals(_NUMPY_ARRAYS):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # weights_only refused a global: the file holds more than weights
        raise DynamicsError(
            f"refused to load the fitted projection '{path}': it holds objects other than tensors, arrays and "
            f"plain values, which epochal never unpickles; {refit}"
        ) from None
    except Exception as exc:  # torch reports a damaged file as RuntimeError, EOFError, ValueError, ...
        raise DynamicsError(f"cannot load the fitted projection '{path}' ({_first_line(exc)}); {refit}") from None
    try:
        return Projection.from_state(state)
    except Exception as exc:  # a readable file that is not a projection's state
        raise DynamicsError(
            f"'{path}' is not a fitted projection of this epochal ({_first_line(exc)}); {refit}"
        ) from None


def coordinates(run: Any, epoch: int) -> np.ndarray:
    """The recorded samples' (samples, 2) coordinates at ``epoch`` from the fitted projection's files."""
    target = files.epoch_file(files.projection_folder(run_folder(run)), epoch)
    if not target.exists():
        meta = files.read_json(files.projection_folder(run_folder(run)) / files.META_FILE) or {}
        raise DynamicsError(f"no coordinates for epoch {epoch}; fitted epochs: {meta.get('epochs', [])}")
    with files.arrays(target) as arrays:
        return arrays["coords"]


def _save(target: Path, projection: Projection, epochs: list[int], seconds: float, classes: int,
          missing: str | None) -> None:
    import torch

    resolution = projection.params.resolution
    extent = extent_of(np.concatenate([projection.embedding_.reshape(-1, 2), projection.boundary_[1]]))
    classes = max(classes, projection.classes_)  # colours by the labels and names, whether or not there is a head
    colors = class_colors(max(classes, 1))
    pixels = grid(extent, resolution)
    for index, epoch in enumerate(epochs):
        coords = projection.embedding_[index]
        atomic_write(files.epoch_file(target, epoch), lambda file, c=coords: np.savez(file, coords=c))
        if projection.heads_ is not None:
            probabilities = projection.predict_proba(projection.inverse_transform(pixels, epoch), epoch)
            image = background(probabilities, resolution, colors)
            atomic_write(files.background_file(target, epoch), lambda file, i=image: save_png(i, file))
    atomic_write(target / files.MODEL_FILE, lambda file: torch.save(projection.state(), file))
    files.write_json(target / files.META_FILE, {
        "epochs": epochs, "extent": extent, "resolution": resolution, "colors": colors, "classes": classes,
        "backgrounds": projection.heads_ is not None, "no_backgrounds": missing,
        "samples": int(projection.embedding_.shape[1]),
        "boundary_samples": len(projection.boundary_[0]), "params": _jsonable(projection.params),
        "random_state": projection.random_state, "seconds": round(seconds, 2),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    })
    (target / files.QUALITY_FILE).unlink(missing_ok=True)  # measured on the old projection


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def _jsonable(params: Params) -> dict[str, Any]:
    return {name: list(v) if isinstance(v, tuple) else v for name, v in vars(params).items()}


class _Reporter:
    """Passes progress on and keeps progress.json current, at most twice a second."""

    def __init__(self, path: Path, forward: Progress | None):
        self.path, self.forward = path, forward
        self.started = _now()
        self.last = 0.0

    def __call__(self, stage: str, fraction: float, message: str) -> None:
        if self.forward is not None:
            self.forward(stage, fraction, message)
        if time.monotonic() - self.last >= 0.5 or fraction == 0.0:
            self._write("running", stage, fraction, message)

    def done(self, message: str) -> None:
        self._write("done", "done", 1.0, message)

    def fail(self, error: BaseException) -> None:
        message = str(error) if isinstance(error, DynamicsError) else "".join(traceback.format_exception_only(error)).strip()
        self._write("failed", "failed", 0.0, message)

    def _write(self, state: str, stage: str, fraction: float, message: str) -> None:
        self.last = time.monotonic()
        files.write_json(self.path, {
            "state": state, "stage": stage, "fraction": round(float(fraction), 4), "message": message,
            "pid": os.getpid(), "started": self.started, "updated": _now(),
        })


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
