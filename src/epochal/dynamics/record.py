"""Recording training dynamics: each epoch's representations, logits, predictions and losses.

    >>> path = run.record_dynamics(model, inputs, labels)            # hand-written loop, once per epoch
    >>> Trainer(..., callbacks=[epochal.RecordDynamics((x, y))])     # or let the Trainer do it

Files go to the run's folder, ``dynamics/``: ``samples.npz`` once (labels, split, original indices),
``sprites.npz`` once when the inputs are images (see :mod:`epochal.dynamics.sprites`), and
``epoch-NNNN.npz`` per recorded epoch. Each file is written to a temporary name and renamed,
so a crash never leaves half a file under a real name.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from epochal.atomic import atomic_write
from epochal.distributed import unwrapped
from epochal.dynamics.files import (
    FOLDER,
    SAMPLES_FILE,
    SPRITES_FILE,
    arrays,
    epoch_file,
    recorded_epochs,
)
from epochal.dynamics.head import HeadError, capture
from epochal.dynamics.sprites import image_view, save_sprites, to_sprites
from epochal.errors import DynamicsError, EpochalWarning

#: The epoch file's note of why it has no head.
HEAD_ERROR = "head_error"
_warned: set[tuple[str, str]] = set()

__all__ = [
    "FOLDER", "HEAD_ERROR", "SAMPLES_FILE", "epoch_file", "find_layer", "prediction_head", "record", "recorded_epochs",
    "represent",
]


def find_layer(model: Any, layer: str | None) -> tuple[str, Any]:
    """The module whose input is the representation: ``layer`` by name, else the last ``nn.Linear``."""
    import torch

    modules = dict(model.named_modules())
    if layer is None:
        linears = [name for name, module in modules.items() if isinstance(module, torch.nn.Linear)]
        if not linears:
            raise DynamicsError(
                f"{type(model).__name__} has no nn.Linear to take the representation before; name a layer "
                f"with layer=, one of: {', '.join(n for n in modules if n) or 'none'}"
            )
        layer = linears[-1]
    if layer not in modules or not layer:
        raise DynamicsError(
            f"{type(model).__name__} has no layer {layer!r}; its layers: {', '.join(n for n in modules if n)}"
        )
    return layer, modules[layer]


def represent(model: Any, inputs: Any, *, layer: str | None = None, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(representations, logits) of ``inputs``, in evaluation mode and without gradients.

    A model with ``feature(x)`` and ``prediction(h)`` methods (as the Time-Travelling Visualizer's
    subject models have) is used as is when no layer is named; otherwise the representation is the
    input of ``layer``, caught by a forward hook, so the model needs no change.
    """
    import torch

    split_model = layer is None and callable(getattr(model, "feature", None)) and callable(getattr(model, "prediction", None))
    caught: list[torch.Tensor] = []
    handle = None
    if not split_model:
        _, module = find_layer(model, layer)
        handle = module.register_forward_pre_hook(lambda _m, args: caught.append(args[0].detach()))
    was_training = model.training
    model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    reps, logits = [], []
    try:
        with torch.no_grad():
            for start in range(0, len(inputs), batch_size):
                batch = torch.as_tensor(inputs[start : start + batch_size]).to(device)
                if split_model:
                    hidden = model.feature(batch)
                    out = model.prediction(hidden)
                else:
                    caught.clear()
                    out = model(batch)
                    hidden = caught[-1]
                reps.append(hidden.flatten(1).float().cpu().numpy())
                logits.append(out.float().cpu().numpy())
    finally:
        if handle is not None:
            handle.remove()
        model.train(was_training)
    return np.concatenate(reps), np.concatenate(logits)


def record(
    run: Any,
    model: Any,
    inputs: Any,
    labels: Any,
    *,
    layer: str | None = None,
    split: str | Sequence[str] = "train",
    epoch: int | None = None,
    indices: Sequence[int] | None = None,
    dtype: Any = np.float16,
    batch_size: int = 1024,
    image_shape: Sequence[int] | None = None,
) -> Path:
    """Record one epoch of ``model`` on ``inputs`` into ``run``'s folder; the epoch file's path.

    Args:
        split: 'train' or 'test' for all samples, or one name per sample.
        epoch: the epoch to file it under (default: the run's epoch counter).
        indices: the samples' indices in their data set, kept so a sample can be found again.
        dtype: of the stored representations (float16 halves the size; float32 to keep them exact).
        image_shape: ``(h, w)`` or ``(h, w, 3)`` that each flat input folds into, to keep a sprite
            (thumbnail) of every sample. Inputs shaped as images, ``(n, h, w)``, ``(n, 1, h, w)``,
            ``(n, 3, h, w)`` or ``(n, h, w, 3)``, get sprites without it; other inputs get none.
            Sprites are written once per run, with ``samples.npz``.
    """
    labels = np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels).astype(np.int64).ravel()
    if len(labels) != len(inputs):
        raise DynamicsError(f"{len(inputs)} inputs but {len(labels)} labels; give one label per input")
    if len(labels) == 0:
        raise DynamicsError("no samples to record: inputs is empty")
    splits = np.full(len(labels), split) if isinstance(split, str) else np.asarray(split, dtype=str)
    if len(splits) != len(labels) or not set(splits.tolist()) <= {"train", "test"}:
        raise DynamicsError(f"split must be 'train', 'test' or one of them per sample, got {split!r:.80}")
    folder = Path(run.path) / FOLDER
    epoch = run.epochs if epoch is None else int(epoch)
    images = image_view(inputs, image_shape)
    model = unwrapped(model)
    job = getattr(run, "job", None)
    if job is None:
        reps, logits = represent(model, inputs, layer=layer, batch_size=batch_size)
        return _write(folder, model, inputs, labels, splits, reps, logits, epoch=epoch, layer=layer, indices=indices,
                      dtype=dtype, images=images, run_path=run.path)
    # Under DDP each rank represents a share of the samples; rank 0 puts them back in order and writes.
    positions = np.arange(job.rank, len(labels), job.world_size)
    share = represent(model, inputs[positions], layer=layer, batch_size=batch_size) if len(positions) else None
    shares = job.gather_to_leader((positions, share))

    def write() -> Path:
        reps, logits = _in_order(shares, len(labels))
        return _write(folder, model, inputs, labels, splits, reps, logits, epoch=epoch, layer=layer, indices=indices,
                      dtype=dtype, images=images, run_path=run.path)

    return job.leader_does(write)


def _in_order(shares: list, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The ranks' ``(positions, (representations, logits))`` shares as two arrays in sample order."""
    filled = [(positions, share) for positions, share in shares if share is not None]
    first = filled[0][1]
    reps = np.empty((count, *first[0].shape[1:]), dtype=first[0].dtype)
    logits = np.empty((count, *first[1].shape[1:]), dtype=first[1].dtype)
    for positions, (rep, logit) in filled:
        reps[positions], logits[positions] = rep, logit
    return reps, logits


def _write(folder: Path, model: Any, inputs: Any, labels: np.ndarray, splits: np.ndarray, reps: np.ndarray,
           logits: np.ndarray, *, epoch: int, layer: str | None, indices: Sequence[int] | None, dtype: Any,
           images: Any, run_path: Any) -> Path:
    """Write one recorded epoch (and, the first time, the samples and their sprites); the epoch file."""
    _check_fits(folder, labels, splits, reps.shape[1], epoch)
    if not (folder / SAMPLES_FILE).exists():
        if images is not None and not (folder / SPRITES_FILE).exists():  # an importer may have written them
            save_sprites(folder, to_sprites(images))
        order = np.arange(len(labels)) if indices is None else np.asarray(indices, dtype=np.int64)
        _save(folder / SAMPLES_FILE, labels=labels, split=splits, indices=order, width=reps.shape[1],
              first_epoch=epoch)
    losses = _cross_entropy(logits, labels)
    head, reason = prediction_head(model, inputs, layer=layer)
    if reason is not None:
        head = {HEAD_ERROR: np.array(reason)}
        if (str(folder), reason) not in _warned:  # once per run and reason, not once per epoch
            _warned.add((str(folder), reason))
            warnings.warn(f"no prediction head recorded for run '{Path(run_path).name}': {reason}; its training "
                          "dynamics are recorded, but the projection's backgrounds and PPR need the head",
                          EpochalWarning, stacklevel=4)
    target = epoch_file(folder, epoch)
    _save(target, representations=reps.astype(dtype), logits=logits.astype(np.float32),
          predictions=logits.argmax(1).astype(np.int64), losses=losses, **head)
    return target


def prediction_head(model: Any, inputs: Any, *, layer: str | None = None,
                    samples: int = 64) -> tuple[dict[str, np.ndarray], str | None]:
    """(the head's arrays for the epoch file, None) or ({}, why it cannot be captured).

    The head is ``model.prediction`` for a model split into ``feature`` and ``prediction`` (and no
    layer named), else the layers the model runs from ``layer`` (default: its last ``nn.Linear``) on.
    """
    import torch

    split_model = layer is None and callable(getattr(model, "feature", None)) and callable(getattr(model, "prediction", None))
    was_training = model.training
    model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    batch = torch.as_tensor(inputs[:samples]).to(device)
    try:
        if split_model:
            with torch.no_grad():
                hidden = model.feature(batch)
            found = capture(model.prediction, model, hidden)
        else:
            _, module = find_layer(model, layer)
            found = capture(model, model, batch, start=module)
    except HeadError as exc:
        return {}, str(exc)
    finally:
        model.train(was_training)
    return found.arrays(), None


def _check_fits(folder: Path, labels: np.ndarray, splits: np.ndarray, width: int, epoch: int) -> None:
    """The samples and the representation width must be those of the run's first recorded epoch."""
    if not (folder / SAMPLES_FILE).exists():
        return
    with arrays(folder / SAMPLES_FILE) as known:
        if not np.array_equal(known["labels"], labels) or not np.array_equal(known["split"], splits):
            raise DynamicsError(
                f"the samples differ from those recorded before ({len(known['labels'])} samples); record the "
                "same samples, in the same order, at every epoch"
            )
        old, first = int(known["width"]), int(known["first_epoch"])
    if old != width:
        raise DynamicsError(
            f"representations are {width} wide at epoch {epoch} but were {old} wide at epoch {first}; "
            "record the same layer at every epoch"
        )


def _cross_entropy(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(1, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(1))
    if labels.max() >= logits.shape[1] or labels.min() < 0:
        raise DynamicsError(f"labels run from {labels.min()} to {labels.max()} but the model has {logits.shape[1]} classes")
    return (log_norm - shifted[np.arange(len(labels)), labels]).astype(np.float32)


def _save(target: Path, **arrays: np.ndarray) -> None:
    atomic_write(target, lambda file: np.savez(file, **arrays))
