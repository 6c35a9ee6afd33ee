"""Where a run's training dynamics live in its folder, and the small JSON files beside the arrays.

    <run folder>/dynamics/
        samples.npz              labels, split ('train'/'test'), indices, width, first_epoch
        sprites.npz              images: uint8 (samples, h, w) or (samples, h, w, 3), when recorded
        classes.json             the class names, by label (written by an import that knows them)
        fit.json                 the projection's parameters to fit with unless told otherwise (imported)
        epoch-NNNN.npz           representations, logits, predictions, losses, and the prediction head:
                                 head_weight, head_bias (affine) or head_layers (JSON) and head.* arrays,
                                 or head_error (why none was kept)
        projection/
            projection.json      epochs, extent, resolution, colors, params, seconds
            model.pt             the visualization model (encoder and decoder)
            epoch-NNNN.npz       coords: float32 (samples, 2), in samples.npz order
            background-NNNN.png  the decoded and classified grid over `extent`, row 0 at the top (max y)
            quality.json         the quality measures, per epoch and split
            progress.json        state of a fit: running / done / failed, stage, fraction, message
            epoch-NNNN.png, dynamics.gif   pictures made by `epochal dynamics plot`

Every file is written to a temporary name and renamed, so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from epochal.atomic import atomic_write
from epochal.errors import DynamicsError

FOLDER = "dynamics"
SAMPLES_FILE = "samples.npz"
SPRITES_FILE = "sprites.npz"
CLASSES_FILE = "classes.json"
FIT_FILE = "fit.json"
PROJECTION_FOLDER = "projection"
META_FILE = "projection.json"
MODEL_FILE = "model.pt"
QUALITY_FILE = "quality.json"
PROGRESS_FILE = "progress.json"
ANIMATION_FILE = "dynamics.gif"


class DamagedFileError(DynamicsError, ValueError):
    """A dynamics file that cannot be read: damaged, holding pickled objects, or not written by epochal."""


def dynamics_folder(run_path: str | Path) -> Path:
    return Path(run_path) / FOLDER


def projection_folder(run_path: str | Path) -> Path:
    return dynamics_folder(run_path) / PROJECTION_FOLDER


def epoch_file(folder: Path, epoch: int) -> Path:
    """The recorded arrays of ``epoch`` in ``folder`` (the coordinates, in the projection folder)."""
    return folder / f"epoch-{epoch:04d}.npz"


def background_file(folder: Path, epoch: int) -> Path:
    return folder / f"background-{epoch:04d}.png"


def picture_file(folder: Path, epoch: int) -> Path:
    return folder / f"epoch-{epoch:04d}.png"


def recorded_epochs(folder: Path) -> list[int]:
    """The epochs recorded in a dynamics folder; none without its samples file, which the first one writes."""
    if not (folder / SAMPLES_FILE).is_file():
        return []
    return sorted(int(p.stem.split("-")[1]) for p in folder.glob("epoch-[0-9][0-9][0-9][0-9].npz"))


def write_json(target: Path, value: Any) -> None:
    atomic_write(target, json.dumps(value, indent=1))


def read_json(target: Path) -> Any | None:
    """The JSON in ``target``; None when it does not exist, a DamagedFileError naming it when it is damaged."""
    try:
        return json.loads(target.read_text())
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DamagedFileError(f"cannot read '{target}' as JSON (damaged, or not written by epochal): {exc}") from None


@contextmanager
def arrays(path: Path) -> Iterator[Any]:
    """The arrays of a ``.npz`` file, read as they are used and never unpickled.

    A damaged file, one that holds objects, or one without an array that is read, is a
    DamagedFileError naming it; a missing file is the FileNotFoundError it is.
    """
    try:
        with np.load(path, allow_pickle=False) as loaded:
            yield loaded
    except (ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DamagedFileError(
            f"cannot read '{path}' (damaged, or not written by epochal): {type(exc).__name__}: {exc}"
        ) from None
