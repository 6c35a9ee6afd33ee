"""Reading a TTV ``training_dynamic`` folder's files: the subject model and its weights, the data, the sprites.

``model.py`` is run as Python, and files that hold more than tensors are unpickled in full: call
these only for a folder the user trusts (``import_ttv(..., trust=True)``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import pickle
import sys
import warnings
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from epochal.dynamics.sprites import thumbnail_size
from epochal.errors import DynamicsError, EpochalWarning
from epochal.interop.ttv_layout import SPRITE_FOLDERS, data_files

__all__ = ["folder_sprites", "load_weights", "read_data", "subject_model"]


def read_data(root: Path, split: str) -> tuple[Any, np.ndarray]:
    """One split's inputs (a tensor, as stored) and labels."""
    import torch

    data_file, label_file = data_files(root, split)
    data, labels = _load(data_file), _load(label_file)
    try:
        data = torch.as_tensor(data)
    except (TypeError, ValueError, RuntimeError):
        raise DynamicsError(f"'{data_file}' holds a {type(data).__name__}, not a tensor of samples") from None
    labels = np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels).reshape(-1)
    if data.dim() == 0 or len(data) != len(labels):
        raise DynamicsError(
            f"'{data_file}' holds {len(data) if data.dim() else 'no'} samples but '{label_file}' {len(labels)} labels"
        )
    if labels.dtype.kind not in "iu" and not (labels.dtype.kind == "f" and np.array_equal(labels, np.round(labels))):
        raise DynamicsError(f"'{label_file}' holds {labels.dtype} values; labels are class numbers 0, 1, 2, ...")
    if len(labels) and labels.min() < 0:
        raise DynamicsError(f"'{label_file}' holds the label {labels.min()}; labels are class numbers 0, 1, 2, ...")
    return data, labels.astype(np.int64)


def _load(path: Path) -> Any:
    """``torch.load`` on the CPU, weights only unless the file holds more than tensors."""
    import torch

    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:  # more than tensors; the caller trusts the folder (trust=True)
            return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise DynamicsError(f"cannot load '{path}': {type(exc).__name__}: {exc}") from exc


def subject_model(path: Path, section: dict[str, Any]) -> Any:
    """The model that TRAINING.NET names in model.py, else its one nn.Module with feature and prediction."""
    import torch

    module = _module(path)
    training = section.get("TRAINING")
    net = training.get("NET") if isinstance(training, dict) else None
    chosen = None
    if isinstance(net, str) and net:  # TTV's configs name nets in any case: resnet18 for ResNet18
        names = [key for key, value in vars(module).items() if callable(value) and not key.startswith("__")]
        matches = [n for n in names if n == net] or [n for n in names if n.lower() == net.lower()]
        chosen = matches[0] if len(matches) == 1 else None
    if chosen is None:
        classes = {key: value for key, value in vars(module).items()
                   if isinstance(value, type) and issubclass(value, torch.nn.Module)}
        split = [key for key, value in classes.items() if _has_feature_and_prediction(value)]
        split = [key for key in split if not any(o != key and issubclass(classes[o], classes[key]) for o in split)]
        named = f"TRAINING.NET {net!r} names nothing in it, and it" if isinstance(net, str) and net else "it"
        if not split:
            raise DynamicsError(
                f"'{path}' has no nn.Module class with feature(x) and prediction(h) methods ({named} has "
                f"{'the nn.Module classes ' + ', '.join(classes) if classes else 'no nn.Module classes'}); split "
                "the model's forward into the two as TTV's README shows (step 2)"
            )
        if len(split) > 1:
            raise DynamicsError(
                f"'{path}' has several nn.Module classes with feature and prediction ({', '.join(split)}); name "
                "the one to use, or a function that builds it, in config.json's TRAINING.NET"
            )
        chosen = split[0]
    try:
        model = getattr(module, chosen)()
    except Exception as exc:
        raise DynamicsError(
            f"cannot build the subject model with {chosen}() from '{path}': {type(exc).__name__}: {exc}; name a "
            "function of model.py that builds it with no arguments in config.json's TRAINING.NET"
        ) from exc
    if not isinstance(model, torch.nn.Module) or not _has_feature_and_prediction(model):
        raise DynamicsError(
            f"{chosen}() from '{path}' gives a {type(model).__name__}, not an nn.Module with feature(x) and "
            "prediction(h) methods"
        )
    return model


def _has_feature_and_prediction(model: Any) -> bool:
    return callable(getattr(model, "feature", None)) and callable(getattr(model, "prediction", None))


def _module(path: Path) -> Any:
    """model.py, run as a module of its own, with its folder on sys.path while it runs.

    Its siblings (``resnet.py`` beside it, say) are imported afresh from its folder, not taken from
    another folder imported before, and afterwards ``sys.modules`` holds what it held before.
    """
    resolved = path.resolve()
    module_name = f"_epochal_ttv_model_{hashlib.sha1(str(resolved).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    module = importlib.util.module_from_spec(spec)
    siblings = {p.stem for p in resolved.parent.glob("*.py")} | {p.name for p in resolved.parent.iterdir() if p.is_dir()}

    def theirs() -> list[str]:  # the modules that a sibling's name would import, and their submodules
        return [name for name in sys.modules if name.split(".")[0] in siblings]

    before = {name: sys.modules.pop(name) for name in theirs()}
    sys.modules[module_name] = module  # pickle and dataclasses look a class's module up there
    entry = str(resolved.parent)
    sys.path.insert(0, entry)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise DynamicsError(f"cannot load '{path}': {type(exc).__name__}: {exc}") from exc
    finally:
        if entry in sys.path:
            sys.path.remove(entry)
        for name in theirs():
            del sys.modules[name]
        sys.modules.update(before)
    return module


def load_weights(model: Any, path: Path) -> None:
    import torch

    state = _load(path)
    if isinstance(state, torch.nn.Module):
        state = state.state_dict()
    if not isinstance(state, Mapping):
        raise DynamicsError(f"'{path}' holds a {type(state).__name__}, not a state_dict")
    own = model.state_dict()
    if state and all(k.startswith("module.") for k in state) and not any(k.startswith("module.") for k in own):
        state = {key.removeprefix("module."): value for key, value in state.items()}  # saved from DataParallel
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        raise DynamicsError(f"the weights in '{path}' do not fit {type(model).__name__}: {detail}") from None


def folder_sprites(root: Path, count: int) -> np.ndarray | None:
    """Thumbnails of ``sprites/N.png`` (or ``Sprites/``) for samples 0 to count - 1; None without any.

    Images are shrunk as recorded sprites are and brought to the size most of them have; grey
    unless one of them has colour. A sample without an image gets a black one, with a warning.
    """
    folder = next((root / name for name in SPRITE_FOLDERS if (root / name).is_dir()), None)
    if folder is None:
        return None
    files = {int(p.stem): p for p in folder.glob("*.png") if p.stem.isdigit()}
    present = [i for i in range(count) if i in files]
    if not present:
        return None
    from PIL import Image, UnidentifiedImageError

    pictures = {}
    for i in present:
        try:
            with Image.open(files[i]) as opened:
                picture = opened.convert("L" if opened.mode in ("1", "L", "LA", "I", "I;16", "F") else "RGB")
        except (OSError, UnidentifiedImageError) as exc:
            raise DynamicsError(f"cannot read the sprite '{files[i]}': {exc}") from None
        pictures[i] = picture.resize(thumbnail_size(picture.height, picture.width)[::-1], Image.Resampling.BOX)
    (width, height), _ = Counter(p.size for p in pictures.values()).most_common(1)[0]
    colour = any(p.mode == "RGB" for p in pictures.values())
    images = np.zeros((count, height, width, 3) if colour else (count, height, width), np.uint8)
    for i, picture in pictures.items():
        if picture.size != (width, height):
            picture = picture.resize((width, height), Image.Resampling.BOX)
        images[i] = np.asarray(picture.convert("RGB") if colour else picture)
    if len(present) < count:
        absent = sorted(set(range(count)) - set(present))
        warnings.warn(
            f"'{folder}' has no image for {len(absent)} of {count} samples (such as {absent[0]}.png); they get a "
            "black sprite",
            EpochalWarning, stacklevel=4,
        )
    return images
