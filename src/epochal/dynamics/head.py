"""A prediction head: the layers that turn a recorded representation into the model's logits.

The projection needs each epoch's head to classify decoded points exactly as the subject model
would: that is what draws the decision-boundary backgrounds and measures PPR. A head is captured
by running it once: every leaf module it calls, in the order it calls them, must be one of the
supported layers, and running those layers one after another on the recorded (flattened)
representation must give the model's own output. Anything else (an unsupported layer, a
functional call between the layers that changes the result) is a :class:`HeadError` that names it.

A head is kept as data, never as pickled code: a description of its layers (plain JSON values)
and their tensors, by name. An affine head (one ``nn.Linear``, with dropout, identities or a
final (log-)softmax around it) is also offered as its weight and bias, which is how the
recorded files keep it (``head_weight``, ``head_bias``); other heads go into the epoch file as
``head_layers`` (the JSON text) and ``head.<layer>.<tensor>`` arrays.

    >>> head = capture(model.prediction, model, representations[:2])
    >>> head.affine()                       # (weight, bias), or None for a deeper head
    >>> head.logits(representations)        # what the model's prediction gives them
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from epochal.errors import DynamicsError

__all__ = ["SUPPORTED", "Head", "HeadError", "capture", "from_arrays"]

#: The layers a head may have, and the settings each keeps (its tensors are kept by name).
SUPPORTED: dict[str, tuple[str, ...]] = {
    "Linear": ("in_features", "out_features"),
    "ReLU": (),
    "GELU": ("approximate",),
    "Tanh": (),
    "Sigmoid": (),
    "LeakyReLU": ("negative_slope",),
    "Dropout": ("p",),
    "Identity": (),
    "Flatten": ("start_dim", "end_dim"),
    "BatchNorm1d": ("num_features", "eps", "affine", "track_running_stats"),
    "LayerNorm": ("normalized_shape", "eps", "elementwise_affine"),
    "Softmax": ("dim",),
    "LogSoftmax": ("dim",),
}
#: Layers that leave a flat representation as it is in evaluation mode.
_PASS_THROUGH = {"Dropout", "Identity", "Flatten"}
#: Final layers that keep the order of the logits (and, for LogSoftmax, their softmax).
_FINAL = {"Softmax", "LogSoftmax"}
_LAYERS_KEY, _TENSOR_PREFIX = "head_layers", "head."


class HeadError(DynamicsError):
    """A prediction head that cannot be captured as supported layers; the message says why."""


@dataclass(frozen=True, eq=False)
class Head:
    """One epoch's prediction head as data: its layers' descriptions and their tensors."""

    layers: tuple[dict[str, Any], ...]  # {"type": "Linear", "in_features": 32, ...}, in the order they run
    tensors: dict[str, np.ndarray] = field(default_factory=dict)  # "0.weight", "2.bias", ...

    @property
    def classes(self) -> int:
        return next(int(layer["out_features"]) for layer in reversed(self.layers) if layer["type"] == "Linear")

    def affine(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(weight, bias) when the head is one Linear layer as far as its logits' softmax goes; else None."""
        kinds = [layer["type"] for layer in self.layers]
        while kinds and kinds[-1] in _FINAL | _PASS_THROUGH:
            kinds.pop()
        core = [(i, k) for i, k in enumerate(kinds) if k not in _PASS_THROUGH]
        if len(core) != 1 or core[0][1] != "Linear":
            return None
        index, layer = core[0][0], self.layers[core[0][0]]
        weight = self.tensors[f"{index}.weight"].astype(np.float32)
        bias = self.tensors.get(f"{index}.bias")
        return weight, (np.zeros(layer["out_features"], np.float32) if bias is None else bias.astype(np.float32))

    def module(self, device: Any = None) -> Any:
        """The head as a ``torch.nn.Sequential`` in evaluation mode, float32, without its final softmax."""
        import torch

        layers = [_build(layer) for layer in self.layers]
        model = torch.nn.Sequential(*layers)
        state = {key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in self.tensors.items()}
        model.load_state_dict(state, strict=True)
        while len(model) and type(model[-1]).__name__ in _FINAL:  # the logits, not their (log-)probabilities
            del model[-1]
        return model.float().to(device or "cpu").eval().requires_grad_(False)

    def logits(self, representations: np.ndarray, batch_size: int = 65536) -> np.ndarray:
        """The head's logits of (samples, width) representations."""
        import torch

        model = self.module()
        x = np.asarray(representations, dtype=np.float32)
        with torch.no_grad():
            out = [model(torch.from_numpy(x[i : i + batch_size])).numpy() for i in range(0, len(x), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.classes), np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        """The head as arrays of an epoch file: weight and bias when it is affine, else layers and tensors."""
        affine = self.affine()
        if affine is not None:
            return {"head_weight": affine[0], "head_bias": affine[1]}
        return {_LAYERS_KEY: np.array(json.dumps(list(self.layers))),
                **{_TENSOR_PREFIX + key: value for key, value in self.tensors.items()}}

    def state(self) -> dict[str, Any]:
        """Plain values and tensors, which ``torch.load(weights_only=True)`` reads."""
        import torch

        return {"layers": [dict(layer) for layer in self.layers],
                "tensors": {key: torch.from_numpy(np.ascontiguousarray(v)) for key, v in self.tensors.items()}}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Head:
        tensors = {key: value.numpy() if hasattr(value, "numpy") else np.asarray(value)
                   for key, value in state["tensors"].items()}
        return checked(cls(tuple(dict(layer) for layer in state["layers"]), tensors))


def from_arrays(arrays: Mapping[str, np.ndarray] | Any) -> tuple[np.ndarray, np.ndarray] | Head | None:
    """The head kept in an epoch file's arrays: (weight, bias), a Head, or None when it has none."""
    names = list(getattr(arrays, "files", arrays))
    if "head_weight" in names:
        weight = arrays["head_weight"].astype(np.float32)
        bias = arrays["head_bias"].astype(np.float32) if "head_bias" in names else np.zeros(len(weight), np.float32)
        return weight, bias
    if _LAYERS_KEY not in names:
        return None
    try:
        layers = json.loads(str(arrays[_LAYERS_KEY]))
    except ValueError as exc:
        raise HeadError(f"the recorded head's description is not JSON: {exc}") from None
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        raise HeadError("the recorded head's description is not a list of layers")
    tensors = {name[len(_TENSOR_PREFIX):]: arrays[name] for name in names if name.startswith(_TENSOR_PREFIX)}
    return checked(Head(tuple(layers), tensors))


def checked(head: Head) -> Head:
    """``head`` when every layer is supported and its tensors fit them; a HeadError naming what is not."""
    if not head.layers:
        raise HeadError("the head has no layers")
    for index, layer in enumerate(head.layers):
        kind = layer.get("type")
        if kind not in SUPPORTED:
            raise HeadError(f"layer {index} of the recorded head is {kind!r}; supported: {', '.join(SUPPORTED)}")
    if not any(layer["type"] == "Linear" for layer in head.layers):
        raise HeadError("the head has no Linear layer, so it has no classes")
    try:
        head.module()
    except Exception as exc:  # tensors that do not fit the layers, settings of the wrong kind
        raise HeadError(f"the recorded head's tensors do not fit its layers: {type(exc).__name__}: {exc}") from None
    return head


def capture(run: Callable[[Any], Any], model: Any, representations: Any, *, start: Any = None) -> Head:
    """The head that ``run(representations)`` goes through, as supported layers; a HeadError naming why not.

    Args:
        run: what gives the logits: ``model.prediction``, or ``model`` itself with ``start``.
        model: the module whose leaf modules ``run`` calls.
        representations: a few representations (or, with ``start``, inputs of the model), in
            evaluation mode on the model's device.
        start: the module whose input is the representation: only the layers from it on belong to
            the head, and the representation is what it receives, flattened.
    """
    import torch

    calls: list[tuple[str, Any]] = []
    caught: list[Any] = []
    names = {id(module): name for name, module in model.named_modules()}
    hooks = [module.register_forward_hook(lambda m, _args, _out: calls.append((names[id(m)], m)))
             for module in model.modules() if not list(module.children())]
    if start is not None:
        def mark(_module: Any, args: tuple) -> None:
            caught.append(args[0])
            calls.clear()  # only what runs from here on is the head
        hooks.append(start.register_forward_pre_hook(mark))
    try:
        with torch.no_grad():
            expected = run(representations)
    except Exception as exc:
        raise HeadError(f"running the prediction head failed: {type(exc).__name__}: {exc}") from None
    finally:
        for hook in hooks:
            hook.remove()
    flat = (caught[-1] if start is not None else representations).flatten(1)
    if not calls:
        raise HeadError("the prediction head calls no layers")
    unsupported = sorted({f"{name or 'the model'} ({type(m).__name__})" for name, m in calls
                          if type(m).__name__ not in SUPPORTED or not isinstance(m, getattr(torch.nn, type(m).__name__))})
    if unsupported:
        raise HeadError(f"the prediction head uses {', '.join(unsupported)}, which epochal cannot keep as data; "
                        f"supported layers: {', '.join(SUPPORTED)}")
    layers, tensors = [], {}
    for index, (name, module) in enumerate(calls):
        problem = _refused(module)
        if problem:
            raise HeadError(f"the prediction head's {name} ({type(module).__name__}) {problem}")
        layers.append(_settings(module))
        for key, value in module.state_dict().items():
            tensors[f"{index}.{key}"] = value.detach().cpu().numpy().copy()
    head = checked(Head(tuple(layers), tensors))
    replayed = head.module(flat.device)
    with torch.no_grad():
        got = replayed(flat.float())
        if type(calls[-1][1]).__name__ in _FINAL:  # the model gives (log-)probabilities; compare like with like
            got = calls[-1][1](got)
    expected = expected.float().flatten(1) if isinstance(expected, torch.Tensor) else None
    if expected is None or expected.shape != got.shape or not torch.allclose(
            got, expected, rtol=1e-4, atol=1e-5 * max(1.0, float(expected.nan_to_num().abs().max())), equal_nan=True):
        called = ", ".join(f"{name} ({type(m).__name__})" for name, m in calls)
        raise HeadError(f"the prediction head is not its layers run one after another ({called}): running them so "
                        "gives other logits; a call between them that is not a layer (torch.relu, a skip "
                        "connection, ...) cannot be kept as data, so write it as a module (nn.ReLU, ...)")
    return head


def _settings(module: Any) -> dict[str, Any]:
    kind = type(module).__name__
    layer = {"type": kind, **{key: _plain(getattr(module, key)) for key in SUPPORTED[kind]}}
    if kind in ("Linear", "LayerNorm"):
        layer["bias"] = getattr(module, "bias", None) is not None
    return layer


def _refused(module: Any) -> str | None:
    kind = type(module).__name__
    if kind == "BatchNorm1d" and not module.track_running_stats:
        return "keeps no running statistics, so it would classify a point by the batch it comes in"
    if kind in _FINAL and module.dim not in (1, -1):
        return f"works along dimension {module.dim}; only the classes' dimension (1 or -1) is supported"
    if kind == "Linear" and module.weight.dim() != 2:
        return "has a weight that is not a matrix"
    return None


def _build(layer: Mapping[str, Any]) -> Any:
    import torch

    kind = layer["type"]
    settings = {key: layer[key] for key in SUPPORTED[kind] if key in layer}
    if kind == "Linear":
        return torch.nn.Linear(settings["in_features"], settings["out_features"], bias=layer.get("bias", True))
    if kind == "LayerNorm":
        return torch.nn.LayerNorm(tuple(settings["normalized_shape"]), eps=settings["eps"],
                                  elementwise_affine=settings["elementwise_affine"], bias=layer.get("bias", True))
    return getattr(torch.nn, kind)(**settings)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
