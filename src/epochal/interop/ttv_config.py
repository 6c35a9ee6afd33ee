"""What an import makes of a TTV ``config.json`` section: the epochs, the class names, the fit settings, the notes.

See :mod:`epochal.interop.ttv` for which keys mean what.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from epochal.dynamics.projection import Params
from epochal.errors import DynamicsError
from epochal.interop.ttv_layout import MODEL_FOLDER, epoch_folders, weights_file

__all__ = ["MOST_EPOCHS", "chosen_epochs", "class_names", "config_notes", "fit_settings", "ranges"]

#: The largest epoch number (and period) config.json may give.
MOST_EPOCHS = 1_000_000
#: fit.json's names for the settings under VISUALIZATION (a path into it) that mean the same, and their kind.
_FIT = {
    "encoder_dims": (("ENCODER_DIMS",), "dims"),
    "decoder_dims": (("DECODER_DIMS",), "dims"),
    "n_neighbors": (("N_NEIGHBORS",), "int"),
    "reconstruction_weight": (("LAMBDA1",), "number"),
    "max_epochs": (("MAX_EPOCH",), "int"),
    "patience": (("PATIENT",), "int"),
    "resolution": (("RESOLUTION",), "int"),
}
#: The most hidden layers an imported ENCODER_DIMS or DECODER_DIMS keeps (epochal's own default).
_MOST_HIDDEN = 2
#: Keys of config.json that the import does not use, and why.
_IGNORED = {
    "VISUALIZATION.LAMBDA2": "the seed's weight of the temporal loss between its visualization models; epochal's "
                             "temporal_weight is the share of a sample's layout attraction held by its own other "
                             "epochs, a different quantity",
    "VISUALIZATION.BOUNDARY.L_BOUND": "bounds the mixing ratio of the seed's boundary samples; epochal's "
                                      "boundary_bound is the widest gap between the top two probabilities",
    "VISUALIZATION.BATCH_SIZE": "edges of the seed's graph per step of its edge sampling; epochal's batch_size "
                                "counts the points per step of the networks, a different quantity",
    "VISUALIZATION.BOUNDARY.B_N_EPOCHS": "edge-sampling epochs; epochal's layout is not trained by edge sampling",
    "VISUALIZATION.S_N_EPOCHS": "edge-sampling epochs; epochal's layout is not trained by edge sampling",
    "VISUALIZATION.VIS_MODEL_NAME": "epochal keeps its model in the run's dynamics/projection/",
    "GPU": "the fit's device is chosen with --device",
    "SETTING": "no counterpart",
    "EPOCH_NAME": "the folders are Epoch_N",
    "TRAINING.train_num": "the data files give the counts",
    "TRAINING.test_num": "the data files give the counts",
}
#: Keys of config.json the import reads itself, and what for.
_READ = {
    "CLASSES": "the class names (dynamics/classes.json)",
    "EPOCH_START": "the epochs imported", "EPOCH_END": "the epochs imported", "EPOCH_PERIOD": "the epochs imported",
    "TRAINING.NET": "the subject model's class or function in model.py",
}


def chosen_epochs(root: Path, section: dict[str, Any]) -> list[int]:
    """EPOCH_START to EPOCH_END by EPOCH_PERIOD; without a period, the Epoch_N folders in that range."""
    model_folder = root / MODEL_FOLDER
    present = epoch_folders(root)
    if not present:
        raise DynamicsError(f"no Epoch_N folders in '{model_folder}': there are no saved epochs to import")
    if present[-1] > MOST_EPOCHS:
        raise DynamicsError(
            f"'{model_folder}' has the folder Epoch_{present[-1]}; epochs run from 0 to {MOST_EPOCHS:,}"
        )
    start = _setting(section, "EPOCH_START", present[0])
    end = _setting(section, "EPOCH_END", present[-1])
    if "EPOCH_PERIOD" in section:
        epochs = range(start, end + 1, _setting(section, "EPOCH_PERIOD", 1, least=1))
    else:
        epochs = [epoch for epoch in present if start <= epoch <= end]
    if not epochs:
        raise DynamicsError(
            f"config.json asks for epochs {start} to {end} but '{model_folder}' has Epoch_N folders only for "
            f"{ranges(present)}"
        )
    saved = {epoch for epoch in present if weights_file(root, epoch).is_file()}  # no more than the folders
    absent = len(epochs) - sum(1 for epoch in saved if epoch in epochs)
    if absent:
        missing = [f"'{weights_file(root, e)}'" for e in itertools.islice((e for e in epochs if e not in saved), 5)]
        shown = ", ".join(missing) + (f" and {absent - len(missing)} more" if absent > len(missing) else "")
        raise DynamicsError(
            f"the epochs to import ({ranges(epochs)}) need weights that are missing: {shown} (Epoch_N folders: "
            f"{ranges(present)})"
        )
    return list(epochs)


def _setting(section: dict[str, Any], key: str, default: int, least: int = 0) -> int:
    value = section.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not least <= value <= MOST_EPOCHS:
        raise DynamicsError(
            f"config.json: {key} is {value!r:.80}; expected a whole number from {least} to {MOST_EPOCHS:,}"
        )
    return value


def ranges(epochs: Sequence[int]) -> str:
    return ", ".join(map(str, epochs)) if len(epochs) <= 8 else f"{epochs[0]} to {epochs[-1]} ({len(epochs)} epochs)"


def class_names(section: dict[str, Any]) -> list[str] | None:
    classes = section.get("CLASSES")
    if classes is None:
        return None
    if not isinstance(classes, list) or not all(isinstance(c, (str, int, float)) for c in classes):
        raise DynamicsError(f"config.json: CLASSES is {classes!r:.80}; expected a list of class names")
    return [str(c) for c in classes]


def fit_settings(section: dict[str, Any], method: str | None) -> dict[str, Any]:
    """fit.json: the settings under VISUALIZATION that the projection has, by its names."""
    visualization = section.get("VISUALIZATION") or {}
    where = f"{method}.VISUALIZATION" if method else "VISUALIZATION"
    if not isinstance(visualization, dict):
        raise DynamicsError(f"config.json: {where} is a {type(visualization).__name__}; expected an object")
    fit = {}
    for key, (path, kind) in _FIT.items():
        value: Any = visualization
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if kind == "dims":
            if not (isinstance(value, list) and len(value) >= 2
                    and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
                raise DynamicsError(
                    f"config.json: {where}.{path[0]} is {value!r:.80}; expected the layer widths, input to output"
                )
            fit[key] = value[1:-1][:_MOST_HIDDEN]  # the depth does not carry over: see the module docstring
        elif (kind == "int" and not (number and value == int(value) and value > 0)) or not number:
            what = "a whole number above 0" if kind == "int" else "a number"
            raise DynamicsError(f"config.json: {where}.{'.'.join(path)} is {value!r:.80}; expected {what}")
        else:
            fit[key] = int(value) if kind == "int" else value
        if (expected := Params.expected(key, fit[key])) is not None:  # the range the projection accepts
            raise DynamicsError(f"config.json: {where}.{'.'.join(path)} is {value!r:.80}; expected {expected}")
    return fit


def config_notes(section: dict[str, Any], fit: dict[str, Any], method: str | None) -> list[str]:
    """Which config.json keys the import used, as what, and which it did not, with why."""
    if not section:
        return ["config.json: none; every Epoch_N folder, no class names, the projection's default settings"]
    given = dict(_leaves(section))
    used = [f"{key} -> {why}" for key, why in _READ.items() if key in given]
    used += [f"VISUALIZATION.{'.'.join(path)} -> {name} {fit[name]}{_cut(given, path)}"
             for name, (path, _) in _FIT.items() if name in fit]
    ignored = [f"{key} ({why})" for key, why in _IGNORED.items() if key in given]
    known = set(_READ) | set(_IGNORED) | {f"VISUALIZATION.{'.'.join(path)}" for path, _ in _FIT.values()}
    ignored += [f"{key} (not a setting epochal knows)" for key in given if key not in known]
    where = f"config.json's {method!r}" if method else "config.json"
    lines = [f"{where}: used " + ("; ".join(used) or "nothing")]
    if ignored:
        lines.append(f"{where}: not used " + "; ".join(ignored))
    return lines


def _cut(given: dict[str, Any], path: tuple[str, ...]) -> str:
    """Says when a dims list lost hidden layers on the way, and why."""
    dims = given.get(f"VISUALIZATION.{'.'.join(path)}")
    if not isinstance(dims, list) or len(dims) - 2 <= _MOST_HIDDEN:
        return ""
    return (f" (the first {_MOST_HIDDEN} of its {len(dims) - 2} hidden layers: epochal's networks learn a finished "
            "layout, not the projection itself)")


def _leaves(section: dict[str, Any], prefix: str = "") -> Any:
    """(dotted key, value) of every setting; CLASSES and the dims lists are settings, not folders."""
    for key, value in section.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value
