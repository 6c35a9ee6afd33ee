"""The Time-Travelling Visualizer's ``training_dynamic`` folder: where each file goes, and config.json's shape.

One home for the layout that :class:`epochal.compat.ttv.SummaryWriter` writes and
:func:`epochal.interop.ttv.import_ttv` reads, as TTV's README lays it out::

    training_dynamic/
        Model/model.py                        the subject model, with feature(x) and prediction(h)
        Model/Epoch_N/subject_model.pth       its state_dict at epoch N
        Training_data/training_dataset_data.pth, training_dataset_label.pth
        Testing_data/testing_dataset_data.pth, testing_dataset_label.pth
        sprites/N.png (or Sprites/)           one image per sample, training then testing
        iteration_structure.json              the saved epochs and, for each, the one saved before it
        config.json                           {method: {CLASSES, EPOCH_*, TRAINING, VISUALIZATION}}
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from epochal.errors import DynamicsError

__all__ = [
    "CONFIG", "DATA", "EPOCH_FOLDER", "MODEL_FOLDER", "SPRITE_FOLDERS", "STRUCTURE", "WEIGHTS", "config_section",
    "data_files", "epoch_folders", "model_file", "sprite_file", "structure_entry", "weights_file",
]

MODEL_FOLDER = "Model"
#: The folder of each saved epoch, under MODEL_FOLDER.
EPOCH_FOLDER = re.compile(r"Epoch_(\d+)")
WEIGHTS = "subject_model.pth"
#: split -> folder, file prefix
DATA = {
    "train": ("Training_data", "training"),
    "test": ("Testing_data", "testing"),
}
#: The sprite folder's names: the writer writes the first, a reader takes either.
SPRITE_FOLDERS = ("sprites", "Sprites")
STRUCTURE = "iteration_structure.json"
CONFIG = "config.json"
#: Keys of a flat config.json, which holds one method's settings without the method's name above them.
_METHOD_KEYS = {"TRAINING", "VISUALIZATION", "CLASSES"}


def model_file(root: Path) -> Path:
    """The subject model's code, ``Model/model.py``."""
    return root / MODEL_FOLDER / "model.py"


def weights_file(root: Path, epoch: int) -> Path:
    return root / MODEL_FOLDER / f"Epoch_{epoch}" / WEIGHTS


def epoch_folders(root: Path) -> list[int]:
    """The epochs that have an ``Epoch_N`` folder, in order."""
    return sorted(
        int(match[1])
        for p in (root / MODEL_FOLDER).iterdir()
        if p.is_dir() and (match := EPOCH_FOLDER.fullmatch(p.name))
    )


def data_files(root: Path, split: str) -> tuple[Path, Path]:
    """The inputs file and the labels file of ``split`` ('train' or 'test')."""
    folder, prefix = DATA[split]
    return root / folder / f"{prefix}_dataset_data.pth", root / folder / f"{prefix}_dataset_label.pth"


def sprite_file(folder: Path, index: int) -> Path:
    """Sample ``index``'s image in the sprite folder (training samples first, then testing)."""
    return folder / f"{index}.png"


def structure_entry(curr_epoch: int, prev_epoch: int) -> dict[str, Any]:
    """The entry of ``iteration_structure.json`` for a checkpoint of ``curr_epoch`` saved after ``prev_epoch``."""
    return {"value": curr_epoch, "name": "Epoch", "pid": str(prev_epoch) if prev_epoch >= 1 else ""}


def config_section(root: Path, method: str | None) -> tuple[str | None, dict[str, Any]]:
    """The method and its section of config.json: the one named, or the only one there is."""
    path = root / CONFIG
    if not path.is_file():
        if method is not None:
            raise DynamicsError(f"method {method!r} was asked for, but '{path}' does not exist")
        return None, {}
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise DynamicsError(f"cannot read '{path}' as JSON: {exc}") from None
    if not isinstance(config, dict):
        raise DynamicsError(f"'{path}' holds a {type(config).__name__}; expected {{method name: settings}}")
    if _METHOD_KEYS & set(config):  # an older, flat config: one method's settings
        return method, config
    methods = [key for key, value in config.items() if isinstance(value, dict)]
    if method is None and len(methods) == 1:
        method = methods[0]
    if not methods:
        raise DynamicsError(
            f"'{path}' has no method sections; TTV's config.json is {{\"DVI\": {{\"CLASSES\": ..., \"TRAINING\": ..., "
            "\"VISUALIZATION\": ...}}, ...}"
        )
    if method is None:
        raise DynamicsError(
            f"'{path}' has several visualization methods: {', '.join(methods)}; name the one to import with "
            "--method (method=)"
        )
    if method not in methods:
        raise DynamicsError(
            f"'{path}' has no method {method!r}; it has: {', '.join(methods) or 'none'}"
        )
    return method, config[method]
