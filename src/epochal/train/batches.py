"""What the Trainer does with a batch and its data: device choice and moves, step outputs, sizes."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

import torch

__all__ = ["batch_size", "data_size", "describe", "first_tensor", "input_of", "pick_device", "to_device", "unpack_step"]


def pick_device(device: str | torch.device) -> torch.device:
    if str(device) != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def to_device(batch: Any, device: torch.device) -> Any:
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return type(batch)((k, to_device(v, device)) for k, v in batch.items())
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(to_device(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def unpack_step(step_output: Any) -> tuple[torch.Tensor, Any, Any]:
    if torch.is_tensor(step_output):
        return step_output, None, None
    if isinstance(step_output, Mapping) and "loss" in step_output:
        return step_output["loss"], step_output.get("output"), step_output.get("target")
    if isinstance(step_output, (tuple, list)) and len(step_output) == 3 and torch.is_tensor(step_output[0]):
        return step_output[0], step_output[1], step_output[2]
    raise TypeError(
        "training_step/evaluation_step must return the loss tensor, (loss, output, target) or "
        f"{{'loss': ..., 'output': ..., 'target': ...}}; got {describe(step_output)}"
    )


def input_of(trainer: Any, batch: Any) -> Any:
    try:
        return trainer.split_batch(batch)[0]
    except TypeError:
        return None


def batch_size(target: Any, batch: Any) -> int:
    for candidate in (target, batch):
        found = first_tensor(candidate)
        if found is not None:
            return int(found.shape[0]) if found.ndim else 1
    return 1


def first_tensor(value: Any) -> torch.Tensor | None:
    if torch.is_tensor(value):
        return value
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        for item in value:
            found = first_tensor(item)
            if found is not None:
                return found
    return None


def describe(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"


def data_size(loader: Any) -> str:
    dataset = getattr(loader, "dataset", None)
    samples = f"{len(dataset):,} samples" if hasattr(dataset, "__len__") else "? samples"
    batches = f"{len(loader):,} batches" if hasattr(loader, "__len__") else "? batches"
    return f"{samples} ({batches})"



def timed(iterator: Iterator, trainer: Any) -> Iterator:
    """``iterator``'s batches, adding the time each took to arrive to ``trainer.data_seconds``."""
    clock, end = time.perf_counter, object()
    while True:
        asked = clock()
        batch = next(iterator, end)
        trainer.data_seconds += clock() - asked
        if batch is end:
            return
        yield batch
