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

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import epochal
from epochal.dynamics.files import CLASSES_FILE, FIT_FILE, arrays, dynamics_folder, write_json
from epochal.dynamics.record import record, represent
from epochal.dynamics.sprites import save_sprites
from epochal.errors import DynamicsError
from epochal.interop.ttv_config import chosen_epochs, class_names, config_notes, fit_settings, ranges
from epochal.interop.ttv_folder import folder_sprites, load_weights, read_data, subject_model
from epochal.interop.ttv_layout import DATA, config_section, data_files, model_file, weights_file
from epochal.store.store import Store

__all__ = ["DEFAULT_PROJECT", "import_ttv"]

#: The project of imported runs unless one is given.
DEFAULT_PROJECT = "ttv"

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
    method, section = config_section(root, method)
    classes, fit = class_names(section), fit_settings(section, method)
    code = model_file(root)
    if not code.is_file():
        raise DynamicsError(
            f"no subject model in '{root}': '{code}' is missing; copy the model.py with the feature(x) and "
            "prediction(h) methods there (TTV's README, step 2)"
        )
    if not trust:  # before anything of the folder runs or is unpickled
        raise DynamicsError(
            f"importing '{root}' runs its '{code}' as Python and unpickles its weight and data files that "
            "hold more than tensors, with your rights; pass --trust (trust=True) if you trust this folder"
        )
    epochs = chosen_epochs(root, section)
    missing = [f"'{path}'" for split in DATA for path in data_files(root, split) if not path.is_file()]
    if missing:
        raise DynamicsError(f"the training_dynamic folder '{root}' lacks {', '.join(missing)}")
    (train, train_labels), (test, test_labels) = (read_data(root, split) for split in DATA)
    if len(test) and train.shape[1:] != test.shape[1:]:
        raise DynamicsError(
            f"the training samples in '{root}' have the shape {tuple(train.shape[1:])} but the testing samples "
            f"{tuple(test.shape[1:])}; both go through the same model"
        )
    if not len(train) + len(test):
        raise DynamicsError(f"the data files in '{root}' hold no samples")
    inputs, labels = torch.cat([train, test]), np.concatenate([train_labels, test_labels])
    model = subject_model(code, section)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        model.to(device)
    except (RuntimeError, AssertionError) as exc:  # no such device, or torch built without it
        raise DynamicsError(f"cannot run the subject model on {device!r}: {exc}") from exc
    load_weights(model, weights_file(root, epochs[0]))
    try:
        _, logits = represent(model, inputs[:2])
    except Exception as exc:
        raise DynamicsError(
            f"the subject model of '{code}' fails on the samples of '{root}' (shape "
            f"{tuple(inputs.shape[1:])}, {inputs.dtype}): {type(exc).__name__}: {exc}"
        ) from exc
    if labels.max() >= logits.shape[1]:
        raise DynamicsError(
            f"the labels in '{root}' run up to {labels.max()} but the model's prediction(h) gives {logits.shape[1]} "
            "classes"
        )
    return _Source(
        root=root, method=method, section=section, model=model, epochs=epochs, inputs=inputs, labels=labels,
        split=np.repeat(list(DATA), [len(train), len(test)]),
        indices=np.concatenate([np.arange(len(train)), np.arange(len(test))]),
        sprites=folder_sprites(root, len(labels)), classes=classes, fit=fit, notes=config_notes(section, fit, method),
    )


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
                    load_weights(source.model, weights_file(source.root, epoch))
                path = record(run, source.model, source.inputs, source.labels, split=source.split,
                              epoch=epoch, indices=source.indices)
            except Exception as exc:
                kept = f"epochs {ranges(done)} are kept" if done else "no epoch was recorded"
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
    for name in DATA:
        mine = split == name
        if mine.any():
            values[f"{name}/loss"] = float(losses[mine].mean())
            values[f"{name}/accuracy"] = float(right[mine].mean())
    run.log(values, step=epoch, epoch=epoch)
