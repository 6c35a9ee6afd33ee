"""The Time-Travelling Visualizer's ``SummaryWriter`` (recording side), over epochal.

A script written for the visualizer moves over by changing one import line::

    from summary_writer import SummaryWriter        # before
    from epochal.compat.ttv import SummaryWriter    # after

It writes the visualizer's ``training_dynamic`` folder as the tool's README documents it::

    training_dynamic/
        sprites/0.png, 1.png, ...          one thumbnail per sample, training samples first
        Model/Epoch_N/subject_model.pth    the state dict given at epoch N
        Training_data/training_dataset_data.pth, training_dataset_label.pth
        Testing_data/testing_dataset_data.pth, testing_dataset_label.pth
        iteration_structure.json           the saved epochs and, for each, the one saved before it

``config.json`` and ``Model/model.py`` are the user's to write (README steps 2 and 3); the writer
never touches them. Every file is written to a temporary name and renamed into place, and every
``.pth`` loads with ``torch.load(path, weights_only=True)``. Each writer also records an epochal
run (project ``ttv``) whose config holds the folder, ``batch_size`` and ``num_worker`` and which logs
``epoch`` at every checkpoint, so ``epochal ls`` lists it. Drawing the training dynamics is not done
here.
"""

from __future__ import annotations

import json
import operator
import os
import shutil
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

import epochal
from epochal.atomic import atomic_write, replace_folder, temporary_beside
from epochal.checkpoint import write_atomic
from epochal.errors import CheckpointError, EpochalError, RunStateError
from epochal.interop import ttv_layout

_SPRITE_SIZE = 64  # longest side of a sprite in pixels; larger images are shrunk to it
_PLAIN = (type(None), bool, int, float, str)


class SummaryWriter:
    """Records a dataset and per-epoch model weights for the Time-Travelling Visualizer.

    Args:
        save_dir: the ``training_dynamic`` folder; created if missing.
        batch_size, num_worker: kept as the original tool keeps them (in the run's config).
        project, name, store: where the epochal run goes (see :func:`epochal.start`).

    Examples:
        >>> summary_writer = SummaryWriter("training_dynamic", 128, 2)
        >>> summary_writer.write_meta_data(train_loader, test_loader)
        >>> summary_writer.write_checkpoint(model.state_dict(), 1, 0)
        >>> summary_writer.close()
    """

    def __init__(self, save_dir: str | os.PathLike, batch_size: int = 1000, num_worker: int = 2, *,
                 project: str = "ttv", name: str | None = None, store: Any = None):
        self.log_dir = str(save_dir)
        self.batch_size = batch_size
        self.num_worker = num_worker
        self._root = Path(save_dir).resolve()
        if self._root.exists() and not self._root.is_dir():
            raise EpochalError(f"save_dir {self._root} is a file; the training dynamics need a folder")
        config = {"save_dir": str(self._root), "batch_size": batch_size, "num_worker": num_worker}
        self.run = epochal.start(project=project, name=name, config=config, store=store)
        self._closed = False

    def get_logdir(self) -> str:
        return self.log_dir

    def write_meta_data(self, train_loader: Iterable, test_loader: Iterable) -> None:
        """Write both data sets (in the loaders' order) and a sprite per sample.

        Each loader yields ``(inputs, labels)`` batches of tensors. Both are read once, before
        anything is written, so a shuffled loader's data files and sprites agree, and a loader
        that fails leaves the folder as it was. Inputs shaped ``(N, H, W)`` or ``(N, C, H, W)``
        with 1, 3 or 4 channels get sprites; other inputs (feature vectors, token ids) get none.
        """
        self._check_open()
        train_data, train_labels = _concatenate(train_loader, "train_loader")
        test_data, test_labels = _concatenate(test_loader, "test_loader")
        self.train_num, self.test_num = len(train_data), len(test_data)
        if _is_image(train_data) and _is_image(test_data):
            self._write_sprites([*_images(train_data), *_images(test_data)])
        for split, data, labels in (("train", train_data, train_labels), ("test", test_data, test_labels)):
            data_file, label_file = ttv_layout.data_files(self._root, split)
            write_atomic(data_file, data)
            write_atomic(label_file, labels)

    def write_checkpoint(self, state_dict: Mapping[str, Any], curr_epoch: int, prev_epoch: int) -> None:
        """Save ``state_dict`` as ``Model/Epoch_{curr_epoch}/subject_model.pth`` and log the epoch.

        Args:
            curr_epoch: this checkpoint's epoch, counted from 1.
            prev_epoch: the epoch of the checkpoint saved before this one (``curr_epoch - k`` when
                saving every k epochs); below 1 when this is the first.

        Raises:
            CheckpointError: ``prev_epoch`` names an epoch with no saved checkpoint, or
                ``iteration_structure.json`` cannot be read. Nothing is written then.
        """
        self._check_open()
        curr_epoch, prev_epoch = _epoch("curr_epoch", curr_epoch), _epoch("prev_epoch", prev_epoch)
        if curr_epoch < 1:
            raise ValueError(f"curr_epoch counts from 1, got {curr_epoch}")
        if prev_epoch >= curr_epoch:
            raise ValueError(f"prev_epoch ({prev_epoch}) must come before curr_epoch ({curr_epoch})")
        structure = self._structure(curr_epoch, prev_epoch)
        write_atomic(ttv_layout.weights_file(self._root, curr_epoch), _cpu_state(state_dict))
        _write_json(self._root / ttv_layout.STRUCTURE, structure)
        if curr_epoch > self.run.epochs:
            self.run.epoch(curr_epoch - self.run.epochs)
        self.run.log({"epoch": curr_epoch}, step=curr_epoch, epoch=curr_epoch)

    def close(self) -> None:
        """Finish the epochal run (also done when the interpreter exits)."""
        self._closed = True
        self.run.finish()

    def __enter__(self) -> SummaryWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        self._closed = True
        self.run.__exit__(exc_type, exc, tb)

    # -- helpers -------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RunStateError(f"this SummaryWriter for {self._root} is closed")

    def _structure(self, curr_epoch: int, prev_epoch: int) -> list[dict[str, Any]]:
        """``iteration_structure.json`` with this epoch added, as the original tool lays it out."""
        path = self._root / ttv_layout.STRUCTURE
        entry = ttv_layout.structure_entry(curr_epoch, prev_epoch)
        if prev_epoch < 1:
            return [entry]
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
            saved = {int(e["value"]) for e in entries}
        except FileNotFoundError:
            raise CheckpointError(
                f"prev_epoch={prev_epoch}, but {path} does not exist: no checkpoint was written before; "
                "pass prev_epoch=0 for the first one"
            ) from None
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise CheckpointError(f"{path} is not a list of epochs as SummaryWriter writes it: {exc}") from exc
        if prev_epoch not in saved:
            raise CheckpointError(
                f"prev_epoch={prev_epoch} was never saved; {path} lists epochs {sorted(saved)}"
            )
        return sorted((e for e in entries if int(e["value"]) != curr_epoch), key=lambda e: int(e["value"])) + [entry]

    def _write_sprites(self, images: list[torch.Tensor]) -> None:
        """``sprites/{i}.png`` for every sample, built in a temporary folder and swapped in."""
        from PIL import Image

        target = self._root / ttv_layout.SPRITE_FOLDERS[0]
        staging = temporary_beside(target)
        shutil.rmtree(staging, ignore_errors=True)
        try:
            staging.mkdir(parents=True)
            for i, pixels in enumerate(image.numpy() for image in images):
                picture = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
                picture.thumbnail((_SPRITE_SIZE, _SPRITE_SIZE))
                picture.save(ttv_layout.sprite_file(staging, i))
            replace_folder(staging, target)
        except OSError as exc:
            raise EpochalError(f"cannot write the sprites into {target}: {exc}") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _concatenate(loader: Iterable, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """All inputs and all labels of ``loader``, each concatenated into one CPU tensor."""
    inputs, labels = [], []
    for index, batch in enumerate(loader):
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2
                and all(isinstance(part, torch.Tensor) for part in batch)):
            raise TypeError(
                f"{name} batch {index} is a {type(batch).__name__}; SummaryWriter needs (inputs, labels) "
                "pairs of tensors, as a DataLoader over (image, label) samples gives"
            )
        inputs.append(batch[0].detach().cpu())
        labels.append(batch[1].detach().cpu())
    if not inputs:
        raise ValueError(f"{name} yielded no batches")
    try:
        return torch.cat(inputs), torch.cat(labels)
    except RuntimeError as exc:
        raise ValueError(f"{name}'s batches do not stack into one tensor: {exc}") from None


def _is_image(data: torch.Tensor) -> bool:
    return data.dim() == 3 or (data.dim() == 4 and data.shape[1] in (1, 3, 4))


def _images(data: torch.Tensor) -> torch.Tensor:
    """``(N, H, W, C)`` uint8 pixels. Floats in [0, 1] are scaled by 255, other ranges per image."""
    pixels = data.unsqueeze(1) if data.dim() == 3 else data
    if pixels.dtype == torch.uint8:
        return pixels.permute(0, 2, 3, 1).contiguous()
    pixels = torch.nan_to_num(pixels.double())
    if pixels.numel() and (pixels.min() < 0 or pixels.max() > 1):
        flat = pixels.flatten(1)
        low, high = flat.min(1).values, flat.max(1).values
        pixels = (pixels - low.view(-1, 1, 1, 1)) / (high - low).clamp_min(1e-12).view(-1, 1, 1, 1)
    return (pixels * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def _cpu_state(state_dict: Mapping[str, Any]) -> OrderedDict:
    """The state dict with every tensor on the CPU; anything weights_only cannot load refused."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a model's state_dict() (a mapping), got a {type(state_dict).__name__}")

    def safe(value: Any, where: str) -> Any:
        if isinstance(value, torch.Tensor):
            return value.detach().cpu()
        if isinstance(value, _PLAIN):
            return value
        if isinstance(value, Mapping):
            return {k: safe(v, f"{where}[{k!r}]") for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(safe(v, f"{where}[{i}]") for i, v in enumerate(value))
        raise TypeError(f"state_dict{where} is a {type(value).__name__}; only tensors and plain values are saved")

    state = OrderedDict((key, safe(value, f"[{key!r}]")) for key, value in state_dict.items())
    if hasattr(state_dict, "_metadata"):
        state._metadata = state_dict._metadata  # module versions, which load_state_dict reads
    return state


def _epoch(name: str, value: Any) -> int:
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer epoch, got {value!r}") from None


def _write_json(path: Path, data: Any) -> None:
    try:
        atomic_write(path, json.dumps(data))
    except OSError as exc:
        raise EpochalError(f"cannot write {path}: {exc}") from exc
