"""Import a Time-Travelling Visualizer (TTV) ``training_dynamic`` folder as an epochal run.

From the shell::

    epochal import ttv training_dynamic/ --method Trustvis --trust     # one new run, project 'ttv'

The folder, as TTV's README lays it out (``epochal.compat.ttv.SummaryWriter`` writes it too)::

    training_dynamic/
        Model/model.py                        the subject model, with feature(x) and prediction(h)
        Model/Epoch_N/subject_model.pth       its state_dict at epoch N
        Training_data/training_dataset_data.pth, training_dataset_label.pth
        Testing_data/testing_dataset_data.pth, testing_dataset_label.pth
        sprites/N.png (or Sprites/)           one image per sample, training then testing (optional)
        config.json                           {method: {CLASSES, EPOCH_*, TRAINING, VISUALIZATION}}

What the import does: it loads ``Model/model.py`` by its path (``Model/`` on ``sys.path`` while it
loads, so it can import its siblings) and builds the subject model with no arguments: the function
or class that ``TRAINING.NET`` names, else the one ``nn.Module`` class with ``feature`` and
``prediction``. For each epoch, ``EPOCH_START`` to ``EPOCH_END`` by ``EPOCH_PERIOD`` (every
``Epoch_N`` folder when the config does not say), it loads the weights and records every training
and testing sample with :func:`epochal.dynamics.record.record`, as TTV's pre-processing would
(``feature`` gives the representation, ``prediction`` the logits), with that epoch's prediction
head (see :mod:`epochal.dynamics.head`: an affine ``prediction`` as its weight and bias, a deeper
one as its layers and their tensors), so the fit draws decision-boundary backgrounds and measures
PPR as for a run recorded natively. A ``prediction`` that cannot be kept as data (a layer epochal
does not support, a functional call between layers) is warned about once, naming the reason; the
representations and predictions are recorded all the same, without backgrounds and PPR. It logs
``train/loss``, ``train/accuracy``, ``test/loss`` and ``test/accuracy`` at each epoch. Beside the
recorded arrays it writes ``dynamics/sprites.npz`` (from the sprite images, else from inputs shaped
as images), ``dynamics/classes.json`` (``CLASSES``) and ``dynamics/fit.json``, the visualization
settings the projection fits with unless told otherwise: only those that mean the same in both:

    ======================  ===========================================
    fit.json                config.json, under VISUALIZATION
    ======================  ===========================================
    encoder_dims            ENCODER_DIMS's hidden widths (without its first and last entries), the first two
    decoder_dims            DECODER_DIMS likewise
    n_neighbors             N_NEIGHBORS
    reconstruction_weight   LAMBDA1
    max_epochs              MAX_EPOCH
    patience                PATIENT
    resolution              RESOLUTION
    ======================  ===========================================

The widths mean the same, the depth does not carry over: the seed's networks learn the projection
themselves from its UMAP loss, epochal's only learn a layout already made, which two hidden layers
do as well as four in half the time, so deeper dims are cut to their first two hidden widths.

The other keys are not used (``notes`` says which, and why): ``LAMBDA2`` weighs the seed's temporal
loss between its visualization models, not epochal's ``temporal_weight`` (the share of a sample's
layout attraction that holds it to its own other epochs); ``BOUNDARY.L_BOUND`` bounds the mixing
ratio of the seed's boundary samples, not the gap between the top two probabilities that
``boundary_bound`` is; ``BATCH_SIZE`` counts the edges of the seed's graph per step of its
edge sampling, not the points per step that epochal's ``batch_size`` counts; ``BOUNDARY.B_N_EPOCHS`` and ``S_N_EPOCHS`` count edge-sampling epochs, and
epochal's layout is not trained by edge sampling; ``GPU``, ``SETTING``, ``EPOCH_NAME``,
``VIS_MODEL_NAME`` and ``TRAINING``'s counts have no counterpart. The run's config holds the whole
method section as given. A folder without ``config.json`` imports too: every epoch folder, no
class names, no fit settings.

Everything that can be checked is checked before the run is created: the folder, ``model.py`` and
its model, the epoch folders and their weights files, the four data files and their lengths, the
config's method, and the first epoch's weights on the model. A failure after that (later weights
that do not fit, say) marks the run failed and keeps the epochs already recorded.

``Model/model.py`` is run as Python, and weights and data files that are more than tensors are
unpickled in full when ``weights_only`` loading refuses them, so an import needs ``trust=True``
(``--trust``): without it nothing of the folder runs and the import is refused. Give it only for
folders you trust.

Examples:
    >>> run_id = import_ttv("training_dynamic", "epochal-runs", method="DVI", trust=True)
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import math
import pickle
import re
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import epochal
from epochal.dynamics.files import CLASSES_FILE, FIT_FILE, arrays, dynamics_folder, write_json
from epochal.dynamics.projection import Params
from epochal.dynamics.record import record, represent
from epochal.dynamics.sprites import save_sprites, thumbnail_size
from epochal.errors import DynamicsError, EpochalWarning
from epochal.store.store import Store

__all__ = ["DEFAULT_PROJECT", "import_ttv"]

#: The project of imported runs unless one is given.
DEFAULT_PROJECT = "ttv"

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
_DATA = {  # split -> folder, file prefix
    "train": ("Training_data", "training"),
    "test": ("Testing_data", "testing"),
}
_EPOCH_FOLDER = re.compile(r"Epoch_(\d+)")
_WEIGHTS = "subject_model.pth"

#: Called after each recorded epoch with (epoch, epochs done, epochs in all).
Progress = Callable[[int, int, int], None]
#: Called with each line of what the import made of config.json and of the prediction head.
Notes = Callable[[str], None]


@dataclass(frozen=True, eq=False)
class _Source:
    """A training_dynamic folder, read and checked; nothing written yet."""

    root: Path
    method: str | None
    section: dict[str, Any]  # the config.json section of the method; {} without config.json
    model: Any  # the subject model, with the first epoch's weights
    epochs: list[int]
    inputs: Any  # training then testing samples, one tensor
    labels: np.ndarray
    split: np.ndarray
    indices: np.ndarray  # each sample's index in its own data set
    sprites: np.ndarray | None  # from the sprites folder
    classes: list[str] | None
    fit: dict[str, Any]
    notes: list[str]  # what was made of config.json's keys


def import_ttv(
    folder: str | Path,
    store: str | Path | Store | None = None,
    *,
    method: str | None = None,
    name: str | None = None,
    project: str | None = None,
    device: str | None = None,
    progress: Progress | None = None,
    trust: bool = False,
    notes: Notes | None = None,
) -> str:
    """Record a TTV ``training_dynamic`` folder's epochs into a new run of ``store``; the run's id.

    Args:
        folder: the ``training_dynamic`` folder.
        store: a :class:`Store`, or its directory (created if missing; None for the default,
            ``$EPOCHAL_DIR`` else ``./epochal-runs``).
        method: the section of ``config.json`` to read (``"Trustvis"``, ``"DVI"``, ...); needed
            only when it has several.
        name: the run's name; default the folder's name.
        project: the run's project; default ``'ttv'``.
        device: where the subject model runs (default ``cuda`` when there is one, else ``cpu``).
        progress: called after each recorded epoch.
        trust: run the folder's ``Model/model.py`` and unpickle its weight and data files that hold
            more than tensors. Without it nothing of the folder runs and the import is refused:
            give it only for a folder you trust (your own, or from someone you trust).
        notes: called with each line saying which config.json keys were used (as what), which were
            not and why, and how the prediction head was kept.

    Raises:
        DynamicsError: a part of the folder is missing or does not fit (the message names it and
            where it was looked for), or ``trust`` was not given; nothing is created then. A failure
            after the run was created marks it failed and keeps the epochs recorded so far.
    """
    source = _read(Path(folder), method, device, trust)
    for line in source.notes:
        if notes is not None:
            notes(line)
    if isinstance(store, Store):
        return _write(source, store, name, project, progress, notes)
    with Store(store) as opened:
        return _write(source, opened, name, project, progress, notes)


# -- reading and checking --------------------------------------------------------------------------


def _read(root: Path, method: str | None, device: str | None, trust: bool) -> _Source:
    import torch

    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise DynamicsError(f"TTV training_dynamic folder '{root}' {what}")
    method, section = _section(root, method)
    classes, fit = _classes(section), _fit(section, method)
    model_file = root / "Model" / "model.py"
    if not model_file.is_file():
        raise DynamicsError(
            f"no subject model in '{root}': '{model_file}' is missing; copy the model.py with the feature(x) and "
            "prediction(h) methods there (TTV's README, step 2)"
        )
    if not trust:  # before anything of the folder runs or is unpickled
        raise DynamicsError(
            f"importing '{root}' runs its '{model_file}' as Python and unpickles its weight and data files that "
            "hold more than tensors, with your rights; pass --trust (trust=True) if you trust this folder"
        )
    epochs = _epochs(root, section)
    missing = [f"'{path}'" for split in _DATA for path in _data_files(root, split) if not path.is_file()]
    if missing:
        raise DynamicsError(f"the training_dynamic folder '{root}' lacks {', '.join(missing)}")
    (train, train_labels), (test, test_labels) = (_data(root, split) for split in _DATA)
    if len(test) and train.shape[1:] != test.shape[1:]:
        raise DynamicsError(
            f"the training samples in '{root}' have the shape {tuple(train.shape[1:])} but the testing samples "
            f"{tuple(test.shape[1:])}; both go through the same model"
        )
    if not len(train) + len(test):
        raise DynamicsError(f"the data files in '{root}' hold no samples")
    inputs, labels = torch.cat([train, test]), np.concatenate([train_labels, test_labels])
    model = _subject_model(model_file, section)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        model.to(device)
    except (RuntimeError, AssertionError) as exc:  # no such device, or torch built without it
        raise DynamicsError(f"cannot run the subject model on {device!r}: {exc}") from exc
    _load_weights(model, _weights_file(root, epochs[0]))
    try:
        _, logits = represent(model, inputs[:2])
    except Exception as exc:
        raise DynamicsError(
            f"the subject model of '{model_file}' fails on the samples of '{root}' (shape "
            f"{tuple(inputs.shape[1:])}, {inputs.dtype}): {type(exc).__name__}: {exc}"
        ) from exc
    if labels.max() >= logits.shape[1]:
        raise DynamicsError(
            f"the labels in '{root}' run up to {labels.max()} but the model's prediction(h) gives {logits.shape[1]} "
            "classes"
        )
    return _Source(
        root=root, method=method, section=section, model=model, epochs=epochs, inputs=inputs, labels=labels,
        split=np.repeat(list(_DATA), [len(train), len(test)]),
        indices=np.concatenate([np.arange(len(train)), np.arange(len(test))]),
        sprites=_folder_sprites(root, len(labels)), classes=classes, fit=fit, notes=_notes(section, fit, method),
    )


def _section(root: Path, method: str | None) -> tuple[str | None, dict[str, Any]]:
    """The method and its section of config.json: the one named, or the only one there is."""
    path = root / "config.json"
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
    if {"TRAINING", "VISUALIZATION", "CLASSES"} & set(config):  # an older, flat config: one method's settings
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


def _epochs(root: Path, section: dict[str, Any]) -> list[int]:
    """EPOCH_START to EPOCH_END by EPOCH_PERIOD; without a period, the Epoch_N folders in that range."""
    model_folder = root / "Model"
    present = sorted(
        int(match[1]) for p in model_folder.iterdir() if p.is_dir() and (match := _EPOCH_FOLDER.fullmatch(p.name))
    )
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
            f"{_ranges(present)}"
        )
    saved = {epoch for epoch in present if _weights_file(root, epoch).is_file()}  # no more than the folders
    absent = len(epochs) - sum(1 for epoch in saved if epoch in epochs)
    if absent:
        missing = [f"'{_weights_file(root, e)}'" for e in itertools.islice((e for e in epochs if e not in saved), 5)]
        shown = ", ".join(missing) + (f" and {absent - len(missing)} more" if absent > len(missing) else "")
        raise DynamicsError(
            f"the epochs to import ({_ranges(epochs)}) need weights that are missing: {shown} (Epoch_N folders: "
            f"{_ranges(present)})"
        )
    return list(epochs)


def _setting(section: dict[str, Any], key: str, default: int, least: int = 0) -> int:
    value = section.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not least <= value <= MOST_EPOCHS:
        raise DynamicsError(
            f"config.json: {key} is {value!r:.80}; expected a whole number from {least} to {MOST_EPOCHS:,}"
        )
    return value


def _ranges(epochs: Sequence[int]) -> str:
    return ", ".join(map(str, epochs)) if len(epochs) <= 8 else f"{epochs[0]} to {epochs[-1]} ({len(epochs)} epochs)"


def _weights_file(root: Path, epoch: int) -> Path:
    return root / "Model" / f"Epoch_{epoch}" / _WEIGHTS


def _data_files(root: Path, split: str) -> tuple[Path, Path]:
    folder, prefix = _DATA[split]
    return root / folder / f"{prefix}_dataset_data.pth", root / folder / f"{prefix}_dataset_label.pth"


def _data(root: Path, split: str) -> tuple[Any, np.ndarray]:
    """One split's inputs (a tensor, as stored) and labels."""
    import torch

    data_file, label_file = _data_files(root, split)
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


def _subject_model(path: Path, section: dict[str, Any]) -> Any:
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


def _load_weights(model: Any, path: Path) -> None:
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


def _folder_sprites(root: Path, count: int) -> np.ndarray | None:
    """Thumbnails of ``sprites/N.png`` (or ``Sprites/``) for samples 0 to count - 1; None without any.

    Images are shrunk as recorded sprites are and brought to the size most of them have; grey
    unless one of them has colour. A sample without an image gets a black one, with a warning.
    """
    folder = next((root / name for name in ("sprites", "Sprites") if (root / name).is_dir()), None)
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


def _classes(section: dict[str, Any]) -> list[str] | None:
    classes = section.get("CLASSES")
    if classes is None:
        return None
    if not isinstance(classes, list) or not all(isinstance(c, (str, int, float)) for c in classes):
        raise DynamicsError(f"config.json: CLASSES is {classes!r:.80}; expected a list of class names")
    return [str(c) for c in classes]


def _fit(section: dict[str, Any], method: str | None) -> dict[str, Any]:
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


def _notes(section: dict[str, Any], fit: dict[str, Any], method: str | None) -> list[str]:
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


def _head_note(path: Path) -> str | None:
    """How the first recorded epoch kept its prediction head; None when it has none (record warned)."""
    with arrays(path) as recorded:
        if "head_weight" in recorded.files:
            return "prediction head: affine (one Linear), kept as its weight and bias at each epoch"
        if "head_layers" in recorded.files:
            layers = json.loads(str(recorded["head_layers"]))
            return ("prediction head: " + ", ".join(layer["type"] for layer in layers)
                    + ", kept as these layers and their tensors at each epoch")
    return None


# -- writing ---------------------------------------------------------------------------------------


def _write(source: _Source, store: Store, name: str | None, project: str | None, progress: Progress | None,
           notes: Notes | None) -> str:
    section = f" (config.json's {source.method!r} section)" if source.method else ""
    with epochal.start(
        DEFAULT_PROJECT if project is None else project, source.root.resolve().name if name is None else name,
        config=source.section, store=store,
        description=f"imported from the Time-Travelling Visualizer folder {source.root.resolve()}{section}",
    ) as run:
        folder = dynamics_folder(run.path)
        if source.classes is not None:
            write_json(folder / CLASSES_FILE, source.classes)
        if source.fit:
            write_json(folder / FIT_FILE, source.fit)
        if source.sprites is not None:
            save_sprites(folder, source.sprites)
        done: list[int] = []
        for epoch in source.epochs:
            try:
                if done:  # the first epoch's weights are loaded already
                    _load_weights(source.model, _weights_file(source.root, epoch))
                path = record(run, source.model, source.inputs, source.labels, split=source.split,
                              epoch=epoch, indices=source.indices)
            except Exception as exc:
                kept = f"epochs {_ranges(done)} are kept" if done else "no epoch was recorded"
                raise DynamicsError(
                    f"importing epoch {epoch} of '{source.root}' failed: {type(exc).__name__}: {exc}; run "
                    f"{run.name!r} ({run.id}) is marked failed, {kept}"
                ) from exc
            if not done and notes is not None and (note := _head_note(path)) is not None:
                notes(note)
            done.append(epoch)
            _log_epoch(run, path, source, epoch)
            if progress is not None:
                progress(epoch, len(done), len(source.epochs))
        return run.id


def _log_epoch(run: Any, path: Path, source: _Source, epoch: int) -> None:
    """Each split's mean loss and accuracy at ``epoch``, from the recorded file."""
    with np.load(path) as recorded:
        losses, right = recorded["losses"], recorded["predictions"] == source.labels
    split = source.split
    if epoch > run.epochs:
        run.epoch(epoch - run.epochs)
    values = {}
    for name in _DATA:
        mine = split == name
        if mine.any():
            values[f"{name}/loss"] = float(losses[mine].mean())
            values[f"{name}/accuracy"] = float(right[mine].mean())
    run.log(values, step=epoch, epoch=epoch)
