"""model_summary: a table of a model's modules, their output shapes and parameter counts.

Run it on any ``torch.nn.Module``; give an example input to see output shapes (one forward
pass without gradients, in eval mode, leaves the model as it was):

    >>> from epochal.train.summary import model_summary
    >>> print(model_summary(model, torch.zeros(8, 20), depth=2))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from epochal.distributed import unwrapped
from epochal.train.batches import data_size

_MAX_ITEMS = 3  # elements of a tuple, list or dict output shown before "..."
_MAX_SHAPE_WIDTH = 48  # characters of the output shape column


@dataclass
class _Row:
    name: str
    module: nn.Module
    level: int  # 0 for the model itself
    collapsed: bool  # at the depth limit with children of its own: its params include theirs


def model_summary(model: nn.Module, example_input: Any = None, depth: int = 2) -> str:
    """A torchinfo-like table: module, type, output shape, parameters; totals at the bottom.

    Args:
        model: the model to describe.
        example_input: one input for a forward pass that records each shown module's output
            shape: a tensor (``model(x)``), a tuple (``model(*x)``) or a dict (``model(**x)``).
            Without it the output shape column is left out.
        depth: how many levels of submodules to show; a module at the last level counts the
            parameters of everything below it.

    Returns:
        The table as text. A module's params are its own, plus its descendants' where they
        are not shown. Shared parameters are counted once in the totals.

    Examples:
        >>> print(model_summary(nn.Sequential(nn.Linear(4, 8), nn.ReLU()), torch.zeros(2, 4)))
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model_summary needs a torch.nn.Module, got {type(model).__name__}")
    if type(depth) is not int or depth < 0:
        raise ValueError(f"depth must be an int of 0 or more, got {depth!r}")

    rows = _rows(model, depth)
    shapes = _output_shapes(model, rows, example_input) if example_input is not None else None

    header = ["Layer", "Type"] + (["Output shape"] if shapes is not None else []) + ["Params"]
    table = []
    for row in rows:
        cells = ["  " * row.level + row.name, type(row.module).__name__]
        if shapes is not None:
            cells.append(shapes.get(id(row.module), "-"))
        cells.append(f"{_count(_params(row.module, recurse=row.collapsed)):,}")
        table.append(cells)

    widths = [max(len(line[i]) for line in [header, *table]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        # Text columns left-aligned, the params column right-aligned.
        parts = [cell.ljust(w) for cell, w in zip(cells[:-1], widths[:-1])] + [cells[-1].rjust(widths[-1])]
        return "  ".join(parts).rstrip()

    total_params = _params(model, recurse=True)
    total = _count(total_params)
    trainable = _count([p for p in total_params if p.requires_grad])
    size_mb = sum(p.numel() * p.element_size() for p in total_params if not _uninitialized(p)) / 1e6
    body = [line(header)] + [line(cells) for cells in table]
    rule = "=" * max(len(text) for text in body)
    totals = [
        f"Total params: {total:,}",
        f"Trainable params: {trainable:,}",
        f"Non-trainable params: {total - trainable:,}",
        f"Params size (MB): {size_mb:.2f}",
    ]
    return "\n".join([rule, body[0], rule, *body[1:], rule, *totals, rule])


def _rows(model: nn.Module, depth: int) -> list[_Row]:
    rows = []

    def visit(name: str, module: nn.Module, level: int) -> None:
        children = list(module.named_children())
        rows.append(_Row(name, module, level, collapsed=level == depth and bool(children)))
        if level < depth:
            for child_name, child in children:
                visit(child_name, child, level + 1)

    visit("(root)", model, 0)
    return rows


def _params(module: nn.Module, recurse: bool) -> list[nn.Parameter]:
    # parameters() already yields a parameter shared by several submodules only once.
    return list(module.parameters(recurse=recurse))


def _uninitialized(p: nn.Parameter) -> bool:
    return isinstance(p, nn.parameter.UninitializedParameter)


def _count(params: list[nn.Parameter]) -> int:
    return sum(p.numel() for p in params if not _uninitialized(p))


def _output_shapes(model: nn.Module, rows: list[_Row], example_input: Any) -> dict[int, str]:
    """One no-grad, eval-mode forward pass; module id -> its first output's description."""
    shapes: dict[int, str] = {}
    handles = []
    seen: set[int] = set()
    for row in rows:
        if id(row.module) in seen:  # a module registered under two names is hooked once
            continue
        seen.add(id(row.module))

        def hook(module: nn.Module, args: Any, output: Any, key: int = id(row.module)) -> None:
            if key not in shapes:  # a module called several times shows its first call
                shapes[key] = _describe(output)

        handles.append(row.module.register_forward_hook(hook))

    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with torch.no_grad():
            if isinstance(example_input, tuple):
                model(*example_input)
            elif isinstance(example_input, Mapping):
                model(**example_input)
            else:
                model(example_input)
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes:
            module.training = training
    return shapes


def _describe(output: Any) -> str:
    text = _shape_text(output, top=True)
    if len(text) > _MAX_SHAPE_WIDTH:
        text = text[: _MAX_SHAPE_WIDTH - 3] + "..."
    return text


def _shape_text(value: Any, top: bool = False) -> str:
    if isinstance(value, torch.Tensor):
        try:
            return str(list(value.shape))
        except RuntimeError:  # a nested tensor has no single shape
            return "-"
    if value is None:
        return "-" if top else "None"
    if isinstance(value, (tuple, list)):
        if not value:
            return "-" if top else "()"
        parts = [_shape_text(v) for v in value[:_MAX_ITEMS]] + (["..."] if len(value) > _MAX_ITEMS else [])
        return ", ".join(parts) if top else "(" + ", ".join(parts) + ")"
    if isinstance(value, Mapping):
        items = list(value.items())
        parts = [f"{k}: {_shape_text(v)}" for k, v in items[:_MAX_ITEMS]]
        return "{" + ", ".join(parts + (["..."] if len(items) > _MAX_ITEMS else [])) + "}"
    shape = getattr(value, "shape", None)  # NumPy arrays and tensor-likes
    if isinstance(shape, tuple) and all(isinstance(n, int) for n in shape):
        return str(list(shape))
    return "-"


def fit_summary(trainer: Any) -> str:
    """What a fit prints when it starts: the run, device, parameters, model, data and monitored key."""
    model = unwrapped(trainer.model)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    run = trainer.run
    lines = [
        f"epochal: run {run.name} ({run.id}), project {run.project}, folder {run.path}",
        f"device: {trainer.device}" + (f" | amp: {str(trainer.amp_dtype).removeprefix('torch.')}"
                                       + (" with a GradScaler" if trainer.scaler is not None else "")
                                       if trainer.amp_dtype is not None else ""),
        f"parameters: {total:,} ({trainable:,} trainable)",
        model_summary(model),
        "data: " + " | ".join(f"{stage} {data_size(loader)}" for stage, loader in trainer.loaders.items()),
        f"monitor: {trainer.monitor} ({trainer.mode}) | epochs: {run.epochs} done of {trainer.max_epochs}",
    ]
    return "\n".join(lines)
