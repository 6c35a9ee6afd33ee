"""Epoch metrics that are exact over the whole data set: sums and counts, never means of batch means.

A metric is a name (``accuracy``, ``top5`` or any ``topK``, ``mse``, ``mae``), a function
``fn(output, target)`` returning ``(sum, count)`` for the batch, or a torchmetrics ``Metric``.
Each batch's sum stays on the device, kept rather than added up: on a GPU an addition per batch is
one more kernel launch per step. They are added up, and read, once, when the pass ends.

Examples:
    >>> metrics = MetricSet(["accuracy", "top5"])
    >>> metrics.update(logits, labels)
    >>> metrics.compute()
    {'accuracy': 0.93, 'top5': 0.998}
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import torch

_TOPK = re.compile(r"top(\d+)$")


def _labels(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Predicted labels: argmax over classes, or a threshold at 0 for one logit per sample."""
    if output.ndim == target.ndim + 1 and output.shape[-1] > 1:
        return output.argmax(dim=-1)
    return (output.reshape(target.shape) > 0).to(target.dtype)


def accuracy(output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Correct predictions and samples in the batch."""
    return (_labels(output, target) == target).sum(), target.numel()


def _top_k(k: int) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, int]]:
    def top_k(output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, int]:
        best = output.topk(min(k, output.shape[-1]), dim=-1).indices
        return (best == target.unsqueeze(-1)).any(dim=-1).sum(), target.numel()

    top_k.__name__ = f"top{k}"
    return top_k


def mse(output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Squared errors summed over every element, and the number of elements."""
    difference = output.reshape(target.shape).float() - target.float()
    return difference.square().sum(), target.numel()


def mae(output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Absolute errors summed over every element, and the number of elements."""
    return (output.reshape(target.shape).float() - target.float()).abs().sum(), target.numel()


BUILT_IN = {"accuracy": accuracy, "mse": mse, "mae": mae}
KNOWN_NAMES = ("accuracy", "top5 (any topK)", "mse", "mae")


def _is_torchmetric(metric: Any) -> bool:
    return all(callable(getattr(metric, name, None)) for name in ("update", "compute", "reset", "to"))


class MetricSet:
    """Named metrics accumulated over one pass (train, valid or test) of a data set."""

    def __init__(self, metrics: Sequence[str | Callable | Any] = ()):
        self._functions: dict[str, Callable] = {}
        self._torchmetrics: dict[str, Any] = {}
        for metric in metrics:
            if isinstance(metric, str):
                name, function = metric, _named(metric)
                self._functions[name] = function
            elif _is_torchmetric(metric):
                self._torchmetrics[_name_of(metric)] = metric
            elif callable(metric):
                self._functions[_name_of(metric)] = metric
            else:
                raise TypeError(
                    f"a metric is a name ({', '.join(KNOWN_NAMES)}), a function fn(output, target) -> "
                    f"(sum, count) or a torchmetrics Metric; got {metric!r}"
                )
        self.names = [*self._functions, *self._torchmetrics]
        self._sums: dict[str, list] = {}  # name -> each batch's sum (numbers or device tensors)
        self._counts: dict[str, list] = {}

    def to(self, device: torch.device) -> MetricSet:
        for metric in self._torchmetrics.values():
            metric.to(device)
        return self

    def reset(self) -> None:
        self._sums = {name: [] for name in self._functions}
        self._counts = {name: [] for name in self._functions}
        for metric in self._torchmetrics.values():
            metric.reset()

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        """Add one batch. Nothing here reads a value from the device.

        Under ``no_grad`` nothing computed here is recorded for autograd, so nothing needs detaching:
        each tensor operation saved is a kernel launch saved on a GPU.
        """
        with torch.no_grad():
            for name, function in self._functions.items():
                total, count = function(output, target)
                self._sums[name].append(total)
                self._counts[name].append(count)
            for metric in self._torchmetrics.values():
                metric.update(output, target)

    def totals(self) -> list[Any]:
        """Every metric's sum, then every count (numbers or device tensors), to add up over ranks."""
        return [*map(_added_up, self._sums.values()), *map(_added_up, self._counts.values())]

    def set_totals(self, totals: list[Any]) -> None:
        """Put back :meth:`totals`, added up (torchmetrics objects sync themselves in ``compute``)."""
        names = list(self._functions)
        self._sums = {name: [total] for name, total in zip(names, totals[:len(names)])}
        self._counts = {name: [count] for name, count in zip(names, totals[len(names):])}

    def compute(self) -> dict[str, float]:
        """Each metric over everything added since the last reset."""
        out = {}
        for name in self._functions:
            count = float(_added_up(self._counts[name]))
            total = float(_added_up(self._sums[name]))
            out[name] = total / count if count else float("nan")
        for name, metric in self._torchmetrics.items():
            value = metric.compute()
            out[name] = float(value.item() if torch.is_tensor(value) else value)
        return out

    def state_dict(self) -> dict:
        """Each batch's sums, so a pass interrupted part-way can be continued and add up exactly as
        one not interrupted (torchmetrics objects keep their own state and start again)."""
        return {"sums": {k: list(v) for k, v in self._sums.items()},
                "counts": {k: list(v) for k, v in self._counts.items()}}

    def load_state_dict(self, state: dict) -> None:
        for mine, saved in ((self._sums, state["sums"]), (self._counts, state["counts"])):
            for name, parts in saved.items():
                mine[name] = list(parts) if isinstance(parts, (list, tuple)) else [parts]  # older: one running sum


def _added_up(parts: list) -> Any:
    """The sum of a pass's per-batch parts: a number, or a float64 tensor where the parts are tensors."""
    tensors = [p for p in parts if torch.is_tensor(p)]
    numbers = sum(p for p in parts if not torch.is_tensor(p))
    if not tensors:
        return numbers
    last = tensors[-1]
    if any(t.device != last.device or t.dtype != last.dtype for t in tensors):  # some loaded from a checkpoint
        tensors = [t.to(last.device, torch.float64) for t in tensors]
    # One stack and one sum for the whole pass, not an operation per batch.
    return torch.stack(tensors).reshape(-1).sum(dtype=torch.float64) + numbers


def _named(name: str) -> Callable:
    if name in BUILT_IN:
        return BUILT_IN[name]
    match = _TOPK.match(name)
    if match and int(match.group(1)) >= 1:
        return _top_k(int(match.group(1)))
    raise ValueError(f"unknown metric {name!r}; known names: {', '.join(KNOWN_NAMES)}, or pass a function or a "
                     "torchmetrics Metric")


def _name_of(metric: Any) -> str:
    """A function's name without a '_func' suffix (the TorchExpManager style), or the class name."""
    name = getattr(metric, "__name__", None)
    return name.removesuffix("_func") if name else type(metric).__name__.lower()
