"""Training dynamics: what a run recorded, its per-sample statistics, the projection's coordinates and
backgrounds, the samples' thumbnails, and fitting the projection in a process of its own.

The files are those of :mod:`epochal.dynamics.files`. Arrays are decoded once per version of their
file (its size and modification time), so the page's repeated requests are cheap. A fit runs as

    python -m epochal dynamics fit RUN --store STORE --quiet
    python -m epochal dynamics quality RUN --store STORE

in a detached driver process, which outlives the server and leaves ``progress.json`` either ``done``
or ``failed`` with the end of the failed step's stderr.
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path as FsPath
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.responses import FileResponse

from epochal import settings
from epochal.dynamics import files
from epochal.dynamics.samples import sample_stats
from epochal.server import folders
from epochal.server.models import (
    DynamicsInfo,
    EpochCoords,
    FitProgress,
    Measures,
    Problem,
    ProjectionInfo,
    Quality,
    SampleTable,
)
from epochal.server.runs import RunRef, store_of
from epochal.store.records import RunRecord
from epochal.system import pid_alive

router = APIRouter()

#: Likely mislabeled samples listed by /samples.
MISLABELED = 50
#: Decoded arrays kept in memory, up to this many bytes in all.
CACHE_BYTES = 256 * 2**20
#: Lines of a failed step's stderr kept as the fit's message.
TAIL_LINES = 12

Epoch = Annotated[int, Path(ge=0, le=10**9, description="a recorded epoch")]
SampleIndex = Annotated[int, Path(ge=0, le=10**9, description="a sample's position in the recorded samples")]
_NOT_FOUND = {404: {"model": Problem}, 422: {"model": Problem}}
_PNG = {200: {"content": {"image/png": {}}, "description": "a PNG image"}}
_FLOATS = {200: {"content": {"application/octet-stream": {}},
                 "description": "little-endian float32 pairs (x, y), one per sample; NaN where a sample has none"}}
#: Header of the binary coordinates: how many samples the epoch has in all (the answer may hold a part).
SAMPLES_HEADER = "X-Samples"


class _Arrays:
    """Arrays of .npz files by (path, size, mtime), least recently used dropped past a byte budget."""

    def __init__(self, budget: int = CACHE_BYTES):
        self.budget = budget
        self._items: OrderedDict[tuple, dict[str, np.ndarray]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, path: FsPath, keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """``keys`` of the file (all of them by default); only those are read."""
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns, tuple(keys or ()))
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        with np.load(path) as stored:
            arrays = {name: stored[name] for name in (keys or stored.files)}
        size = sum(a.nbytes for a in arrays.values())
        with self._lock:
            if size <= self.budget:
                self._items[key] = arrays
                self._bytes += size
                while self._bytes > self.budget:
                    _, dropped = self._items.popitem(last=False)
                    self._bytes -= sum(a.nbytes for a in dropped.values())
        return arrays


_arrays = _Arrays()
_tables: OrderedDict[tuple, bytes] = OrderedDict()
_tables_lock = threading.Lock()
_starting = threading.Lock()
#: The fit drivers this server started, by their progress file. Between the fit's end (which writes
#: ``done``) and the quality step the file says done while the driver still works: it counts too.
_drivers: dict[str, subprocess.Popen] = {}


@router.get("/runs/{run}/dynamics", response_model=DynamicsInfo, responses=_NOT_FOUND)
def get_dynamics(request: Request, run: RunRef) -> DynamicsInfo:
    """The recorded epochs and samples, and the projection, its quality and the fit's progress."""
    record, folder = _recorded(request, run)
    epochs = files.recorded_epochs(folder)
    samples = _arrays.get(folder / files.SAMPLES_FILE, ("labels", "split"))
    labels, split = samples["labels"], samples["split"]
    predicted = _arrays.get(files.epoch_file(folder, epochs[-1]), ("predictions",))["predictions"]
    names = _class_names(folder)
    projection = _projection(record)
    classes = max(int(labels.max()) + 1, int(predicted.max()) + 1, len(names or ()),
                  len(projection.colors) if projection else 0)
    kinds, counts = np.unique(split, return_counts=True)
    return DynamicsInfo(
        run=record.id, epochs=epochs, samples=len(labels), splits=dict(zip(kinds.tolist(), counts.tolist(), strict=True)),
        classes=classes, class_names=names, sprites=(folder / files.SPRITES_FILE).is_file(),
        projection=projection, quality=_quality(record), progress=_progress(record),
    )


@router.get("/runs/{run}/dynamics/samples", response_model=SampleTable, responses=_NOT_FOUND)
def get_samples(request: Request, run: RunRef) -> Response:
    """Every sample's prediction history and data-map statistics, and the likely mislabeled ones."""
    _, folder = _recorded(request, run)
    version = _version(folder)
    with _tables_lock:
        body = _tables.get(version)
    if body is None:
        stats = sample_stats(folder)
        body = json.dumps({
            "epochs": stats.epochs.tolist(), "labels": stats.labels.tolist(), "split": stats.split.tolist(),
            "indices": stats.indices.tolist(), "predictions": stats.predictions.tolist(),
            "confidence": _rounded(stats.confidence, 6), "variability": _rounded(stats.variability, 6),
            "correctness": _rounded(stats.correctness, 4), "forgetting": stats.forgetting.tolist(),
            "first_learned": stats.first_learned.tolist(), "learned_from": stats.learned_from.tolist(),
            "category": stats.category.tolist(), "likely_mislabeled": stats.likely_mislabeled(MISLABELED).tolist(),
        }, allow_nan=False, separators=(",", ":")).encode()
        with _tables_lock:
            _tables[version] = body
            while len(_tables) > 8:
                _tables.popitem(last=False)
    return Response(body, media_type="application/json")


@router.get("/runs/{run}/dynamics/epochs/{epoch}", response_model=EpochCoords, responses=_NOT_FOUND)
def get_epoch(request: Request, run: RunRef, epoch: Epoch) -> EpochCoords:
    """The samples' 2D coordinates at ``epoch``, in the order of the recorded samples."""
    projection, path = _fitted_file(request, run, epoch, files.epoch_file, "projection")
    coords = _arrays.get(path, ("coords",))["coords"]
    xmin, xmax, ymin, ymax = projection.extent
    digits = 6 - math.ceil(math.log10(max(xmax - xmin, ymax - ymin, 1e-12)))
    return EpochCoords(epoch=epoch, x=_rounded(coords[:, 0], digits), y=_rounded(coords[:, 1], digits))


@router.get("/runs/{run}/dynamics/epochs/{epoch}/coords.bin", response_class=Response, responses={**_FLOATS, **_NOT_FOUND})
def get_epoch_floats(
    request: Request, run: RunRef, epoch: Epoch,
    offset: Annotated[int, Query(ge=0, le=10**9, description="the first sample sent, by position")] = 0,
    limit: Annotated[int | None, Query(ge=1, le=10**9, description="the most samples sent; all by default")] = None,
) -> Response:
    """The coordinates of .../epochs/{epoch} as the page draws them: float32 (x, y) pairs of the samples from
    ``offset`` on, 8 bytes a sample, which the browser reads without parsing (the JSON answer of 50,000 samples
    is about 1.1 MB to parse; this is 400 KB to copy). ``X-Samples`` says how many the epoch has in all."""
    _, path = _fitted_file(request, run, epoch, files.epoch_file, "projection")
    coords = _arrays.get(path, ("coords",))["coords"]
    end = len(coords) if limit is None else min(len(coords), offset + limit)
    body = np.ascontiguousarray(coords[offset:end], dtype="<f4").tobytes()
    return Response(body, media_type="application/octet-stream",
                    headers={SAMPLES_HEADER: str(len(coords)), "Cache-Control": "no-cache"})


@router.get(
    "/runs/{run}/dynamics/epochs/{epoch}/background.png",
    response_class=FileResponse,
    responses={**_PNG, **_NOT_FOUND},
)
def get_background(request: Request, run: RunRef, epoch: Epoch) -> FileResponse:
    """The projection's background at ``epoch``: the decoded grid over ``extent``, row 0 at max y."""
    _, path = _fitted_file(request, run, epoch, files.background_file, "background")
    served = folders.plain_file(path.parent.resolve(), path)
    if served is None:
        raise HTTPException(404, f"the background of epoch {epoch} is not a plain file of the run's folder")
    # A new fit rewrites the file: the browser must ask again (its ETag saves the transfer).
    return FileResponse(served, media_type="image/png", headers={"Cache-Control": "no-cache"})


@router.get("/runs/{run}/dynamics/sprites/{index}.png", response_class=Response, responses={**_PNG, **_NOT_FOUND})
def get_sprite(request: Request, run: RunRef, index: SampleIndex) -> Response:
    """The thumbnail of the sample at position ``index`` of the recorded samples."""
    from PIL import Image

    record, folder = _recorded(request, run)
    path = folder / files.SPRITES_FILE
    if not path.is_file():
        raise HTTPException(404, f"run {record.name!r} ({record.id}) recorded no thumbnails of its samples")
    images = _arrays.get(path, ("images",))["images"]
    if index >= len(images):
        raise HTTPException(404, f"no sample {index}: run {record.name!r} ({record.id}) has {len(images)} thumbnails")
    out = io.BytesIO()
    Image.fromarray(_as_uint8(images[index])).save(out, format="PNG")
    return Response(out.getvalue(), media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.post(
    "/runs/{run}/dynamics/fit",
    status_code=202,
    response_model=FitProgress,
    responses={403: {"model": Problem}, 409: {"model": Problem}, **_NOT_FOUND},
)
def start_fit(request: Request, run: RunRef) -> FitProgress:
    """Fit the run's projection and measure its quality, in the background; poll GET .../dynamics."""
    record, _ = _recorded(request, run)
    target = files.projection_folder(record.path) / files.PROGRESS_FILE
    with _starting:
        current = _progress(record)
        if current is not None and current.running:
            raise HTTPException(409, f"a fit of run {record.name!r} ({record.id}) is already running "
                                     f"(pid {current.pid}, {current.stage}, {current.fraction:.0%} done)")
        started = _now()
        # The store goes by the environment, not the command line, where `ps` would show a URL's password.
        driver = subprocess.Popen(
            [sys.executable, "-c", _DRIVER, record.id, str(target), started],
            env={**os.environ, settings.STORE_DIR_ENV: store_of(request).location}, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        # Reaped when it ends, so that no zombie is left behind by a long-running server.
        threading.Thread(target=driver.wait, name=f"fit-{record.id}", daemon=True).start()
        _drivers[str(target)] = driver
        _write_progress(target, "running", "starting", 0.0, "starting the fit", driver.pid, started)
        return _progress(record)  # type: ignore[return-value]


_DRIVER = "import sys; from epochal.server.dynamics import drive_fit; sys.exit(drive_fit(*sys.argv[1:]))"


def drive_fit(run_id: str, progress_file: str, started: str) -> int:
    """Fit ``run_id``'s projection, then its quality measures, with the CLI; the exit status.

    ``progress_file`` ends ``done``, or ``failed`` with the last lines of the failed step's stderr.
    """
    target = FsPath(progress_file)
    summary = ""
    for step in ("fit", "quality"):
        code, tail = _run_step(step, run_id)
        last = files.read_json(target) or {}
        stage, fraction = str(last.get("stage") or step), _fraction(last.get("fraction"))
        if code != 0:
            message = tail or f"`epochal dynamics {step}` exited with status {code}"
            _write_progress(target, "failed", stage, fraction, message, None, started)
            return code
        if step == "fit":
            summary = str(last.get("message") or "")  # "fitted 3 epochs in 8.8 s"
            _write_progress(target, "running", "quality", fraction, "measuring the projection's quality", None, started)
    _write_progress(target, "done", "done", 1.0, summary, None, started)
    return 0


def _run_step(step: str, run_id: str) -> tuple[int, str]:
    command = [sys.executable, "-m", "epochal", "dynamics", step, run_id]  # the store: $EPOCHAL_DIR
    if step == "fit":
        command.append("--quiet")  # progress goes to progress.json; stderr keeps only what went wrong
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    with subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, errors="replace") as process:
        assert process.stderr is not None
        for line in process.stderr:
            shown = line.rstrip().rsplit("\r", 1)[-1].strip()  # a progress bar's last state
            if shown:
                tail.append(shown)
    return process.returncode, "\n".join(tail)


def _write_progress(target: FsPath, state: str, stage: str, fraction: float, message: str, pid: int | None,
                    started: str) -> None:
    files.write_json(target, {
        "state": state, "stage": stage, "fraction": fraction, "message": message,
        "pid": os.getpid() if pid is None else pid, "started": started, "updated": _now(),
    })


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# -- reading a run's files ---------------------------------------------------------------------------


def _recorded(request: Request, run: str) -> tuple[RunRecord, FsPath]:
    """The run and its dynamics folder; 404 when it recorded none.

    The record's path is its folder resolved inside the store (every path here is built from it), and
    nothing in the dynamics folder may lead outside that folder through a symlink.
    """
    store = store_of(request)
    record = store.run(run)
    record = replace(record, path=str(folders.run_folder(store, record)))
    folder = files.dynamics_folder(record.path)
    outside = folders.link_outside(folder, FsPath(record.path))
    if outside is not None:
        raise HTTPException(409, f"run {record.name!r} ({record.id}) has a link to outside its folder at "
                                 f"{outside.relative_to(record.path).as_posix()!r}: its dynamics are not read")
    if not files.recorded_epochs(folder):
        raise HTTPException(
            404, f"run {record.name!r} ({record.id}) has no recorded training dynamics: record them with the "
                 "Trainer callback epochal.RecordDynamics, or with run.record_dynamics(model, inputs, labels) "
                 "once per epoch",
        )
    return record, folder


def _version(folder: FsPath) -> tuple:
    """Changes whenever samples.npz or an epoch's file is written."""
    paths = [folder / files.SAMPLES_FILE, *(files.epoch_file(folder, e) for e in files.recorded_epochs(folder))]
    return tuple((p.name, s.st_size, s.st_mtime_ns) for p in paths for s in [p.stat()])


def _class_names(folder: FsPath) -> list[str] | None:
    names = _read_json(folder / files.CLASSES_FILE)
    if isinstance(names, list) and names and all(isinstance(n, (str, int)) for n in names):
        return [str(n) for n in names]
    return None


def _projection(record: RunRecord) -> ProjectionInfo | None:
    meta = _read_json(files.projection_folder(record.path) / files.META_FILE)
    return None if meta is None else ProjectionInfo.model_validate(meta)


def _fitted_file(
    request: Request, run: str, epoch: int, name: Callable[[FsPath, int], FsPath], what: str
) -> tuple[ProjectionInfo, FsPath]:
    """The fitted projection and its file ``name(folder, epoch)``; 404 when the epoch has none."""
    record, _ = _recorded(request, run)
    projection = _fitted(record)
    path = name(files.projection_folder(record.path), epoch)
    if not path.is_file():
        raise HTTPException(404, f"epoch {epoch} of run {record.name!r} ({record.id}) has no {what}; "
                                 f"the fitted epochs are {projection.epochs}")
    return projection, path


def _fitted(record: RunRecord) -> ProjectionInfo:
    projection = _projection(record)
    if projection is None:
        raise HTTPException(404, f"run {record.name!r} ({record.id}) has no fitted projection yet: fit it with "
                                 f"`epochal dynamics fit {record.id}` or the dashboard's Fit projection button")
    return projection


def _quality(record: RunRecord) -> Quality | None:
    raw = _read_json(files.projection_folder(record.path) / files.QUALITY_FILE)
    if not isinstance(raw, dict):
        return None
    mean = _by_split({"mean": raw.get("mean")}).get("mean", {})
    return Quality(epochs=_by_split(raw.get("epochs")), temporal=_by_split(raw.get("temporal")), mean=mean)


def _by_split(raw: Any) -> dict[str, dict[str, Measures]]:
    """key -> split -> measure -> value, keeping only numbers: the measures are whatever the fit wrote."""
    if not isinstance(raw, dict):
        return {}
    return {
        str(key): {
            str(split): {str(name): _number(value) for name, value in measures.items() if _is_number(value)}
            for split, measures in splits.items() if isinstance(measures, dict)
        }
        for key, splits in raw.items() if isinstance(splits, dict)
    }


def _progress(record: RunRecord) -> FitProgress | None:
    path = files.projection_folder(record.path) / files.PROGRESS_FILE
    raw = _read_json(path)
    if not isinstance(raw, dict):
        return None
    pid = raw.get("pid")
    pid = pid if isinstance(pid, int) and not isinstance(pid, bool) else None
    state, stage, message = raw.get("state"), str(raw.get("stage") or ""), str(raw.get("message") or "")
    driving = _driving(path)
    if driving and state == "done":  # the fit is, the quality measures are not
        state, stage, message = "running", "quality", "measuring the projection's quality"
    return FitProgress(
        state=state, stage=stage, fraction=_fraction(raw.get("fraction")), message=message, pid=pid,
        started=_text_or_none(raw.get("started")), updated=_text_or_none(raw.get("updated")),
        running=driving or (state == "running" and pid is not None and pid_alive(pid)),
    )


def _driving(progress_file: FsPath) -> bool:
    """Whether a fit driver this server started for that progress file still runs."""
    driver = _drivers.get(str(progress_file))
    if driver is None:
        return False
    if driver.poll() is None:
        return True
    _drivers.pop(str(progress_file), None)
    return False


def _read_json(path: FsPath) -> Any | None:
    try:
        return files.read_json(path)
    except (OSError, ValueError):
        return None


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _fraction(value: object) -> float:
    """A share done, within [0, 1]; 0 when it is not a number."""
    if not _is_number(value) or not math.isfinite(value):  # type: ignore[arg-type]
        return 0.0
    return min(1.0, max(0.0, float(value)))  # type: ignore[arg-type]


def _text_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def _rounded(values: np.ndarray, digits: int) -> list[float | None]:
    """Floats as JSON carries them, ``digits`` after the point (fewer bytes than float32's repr); NaN as null."""
    out: list[float | None] = np.round(values.astype(np.float64), digits).tolist()
    for i in np.flatnonzero(~np.isfinite(values)):
        out[i] = None
    return out


def _as_uint8(image: np.ndarray) -> np.ndarray:
    """A grey (h, w) or RGB (h, w, 3) thumbnail as Pillow takes it."""
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.dtype == np.uint8:
        return image
    scale = 255.0 if np.issubdtype(image.dtype, np.floating) and float(np.nanmax(image)) <= 1.0 else 1.0
    return np.clip(np.nan_to_num(image.astype(np.float64) * scale), 0, 255).astype(np.uint8)
