"""RecordDynamics: the Trainer callback that records each epoch's representations and predictions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from epochal.distributed import unwrapped
from epochal.dynamics.record import DynamicsError, record
from epochal.dynamics.sprites import image_view
from epochal.train.callback import Callback, StageResult

if TYPE_CHECKING:
    from epochal.train.callback import TrainerView


class RecordDynamics(Callback):
    """Record the representations, logits, predictions and losses of fixed samples every few epochs.

    Args:
        samples: ``(inputs, labels)``, a data set of ``(input, label)`` pairs, or a dict
            ``{"train": ..., "test": ...}`` of either.
        layer: the module whose input is the representation (default: the last ``nn.Linear``).
        every_n_epochs: record after every n-th epoch (and after the last one).
        max_samples: keep at most this many samples, chosen stratified by label (fixed by ``seed``).
        image_shape: ``(h, w)`` or ``(h, w, 3)`` that each flat input folds into, to keep a sprite
            (thumbnail) of every sample; inputs shaped as images get sprites without it.

    Examples:
        >>> trainer = Trainer(model, optimizer, loss_fn, train_data=loader,
        ...                   callbacks=[RecordDynamics({"train": (x_train, y_train), "test": (x_test, y_test)})])
        >>> RecordDynamics((digits_x, digits_y), image_shape=(8, 8))  # 64 flat values: 8x8 sprites
    """

    def __init__(self, samples: Any, layer: str | None = None, every_n_epochs: int = 1,
                 max_samples: int | None = None, dtype: Any = np.float16, seed: int = 0,
                 image_shape: Sequence[int] | None = None):
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be at least 1, got {every_n_epochs}")
        if max_samples is not None and max_samples < 1:
            raise ValueError(f"max_samples must be at least 1, got {max_samples}")
        self.layer, self.every_n_epochs, self.dtype = layer, every_n_epochs, dtype
        self.inputs, self.labels, self.split, self.indices = _gather(samples, max_samples, seed)
        self.image_shape = image_shape
        image_view(self.inputs, image_shape)  # a wrong image_shape fails here, not after the first epoch

    def on_epoch_end(self, trainer: TrainerView, results: dict[str, StageResult]) -> None:
        last = trainer.max_epochs is not None and trainer.epoch + 1 >= trainer.max_epochs
        if (trainer.epoch + 1) % self.every_n_epochs and not last:
            return
        record(trainer.run, unwrapped(trainer.model), self.inputs, self.labels, layer=self.layer, split=self.split,
               epoch=trainer.epoch, indices=self.indices, dtype=self.dtype, image_shape=self.image_shape)


def _gather(samples: Any, max_samples: int | None, seed: int) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
    import torch

    parts = samples.items() if isinstance(samples, Mapping) else [("train", samples)]
    inputs, labels, split, indices = [], [], [], []
    for name, part in parts:
        if name not in ("train", "test"):
            raise DynamicsError(f"samples are grouped as 'train' and 'test', got {name!r}")
        x, y = part if isinstance(part, tuple) and len(part) == 2 else _unzip(part)
        x, y = torch.as_tensor(x), torch.as_tensor(y).reshape(-1)
        inputs.append(x)
        labels.append(y)
        split += [name] * len(y)
        indices.append(np.arange(len(y)))
    x, y = torch.cat(inputs), torch.cat(labels).numpy()
    split_arr, index_arr = np.asarray(split), np.concatenate(indices)
    if max_samples is not None and len(y) > max_samples:
        keep = _stratified(y, split_arr, max_samples, seed)
        x, y, split_arr, index_arr = x[torch.as_tensor(keep)], y[keep], split_arr[keep], index_arr[keep]
    return x, y, split_arr, index_arr


def _unzip(dataset: Any) -> tuple[Any, Any]:
    import torch

    pairs = [dataset[i] for i in range(len(dataset))]
    return torch.stack([torch.as_tensor(p[0]) for p in pairs]), torch.as_tensor([int(p[1]) for p in pairs])


def _stratified(labels: np.ndarray, split: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Sorted positions of ``count`` samples, each (split, label) group kept in proportion."""
    rng = np.random.default_rng(seed)
    groups = {}
    for position, key in enumerate(zip(split.tolist(), labels.tolist())):
        groups.setdefault(key, []).append(position)
    share = count / len(labels)
    keep = [rng.choice(members, max(1, round(len(members) * share)), replace=False) for members in groups.values()]
    chosen = np.sort(np.concatenate(keep))
    return chosen[:count] if len(chosen) > count else chosen
