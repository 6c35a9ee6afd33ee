"""Rebuilding a model from a description of plain values, so that loading a file never runs its code.

:func:`describe_model` records a model's class (module and qualified name) and its constructor
arguments when they can be read back from the instance as plain values. :func:`build` makes the
model again, only from a class that the loading process has already imported and that is a
``torch.nn.Module``: it never imports a module the description names, never calls anything else it
names, and passes only plain values. A file is data someone else may have written.
"""

from __future__ import annotations

import inspect
import re
import sys
from typing import Any

#: The description's format (the value ``trace.Sys`` has stored since it first wrote descriptions).
DESCRIPTION_FORMAT = "epochal.compat.trace/model"


class Refused(Exception):
    """Why a model cannot be captured or rebuilt; turned into the caller's error."""


_PLAIN_TYPES = (type(None), bool, int, float, str)
_PLAIN_DEPTH = 16
_PLAIN_WORDS = "numbers, strings, booleans, None, and lists, tuples and dicts (with string keys) of them"


def describe_model(model: Any) -> dict:
    """What ``sys_load`` needs to rebuild ``model``: its class's module and qualified name, and its
    constructor arguments when they can be captured as plain values.

    The arguments are read back from the instance: for each parameter of the class's ``__init__``
    (``*args`` and ``**kwargs`` aside), the attribute of the same name, as the model holds it when
    saved. The capture is accepted only when every parameter without a default is found and is a
    plain value (numbers, strings, booleans, None, and lists, tuples and dicts with string keys of
    them). A parameter with a default is passed when its attribute is found and plain, and otherwise
    left to its default: an option the model keeps under another name (``self.drop =
    nn.Dropout(p)``) is rebuilt with the default, and only a difference in the weights' names or
    shapes shows on load. When the capture is refused, ``why`` says what was missing.

    Examples:
        >>> describe_model(nn.Linear(6, 4))["kwargs"]
        {'in_features': 6, 'out_features': 4}
    """
    import torch

    kind = type(model)
    description = {"format": DESCRIPTION_FORMAT, "module": kind.__module__, "qualname": kind.__qualname__,
                   "args": None, "kwargs": None, "why": None, "training": getattr(model, "training", None)}
    if not isinstance(model, torch.nn.Module):
        description["why"] = f"the model saved was a {kind.__module__}.{kind.__qualname__}, not a torch.nn.Module"
        return description
    try:
        args, kwargs = _constructor_arguments(model)
    except Refused as exc:
        description["why"] = str(exc)
    else:
        description.update(args=args, kwargs=kwargs)
    return description


def _constructor_arguments(model: Any) -> tuple[list, dict]:
    """Positional-only and keyword arguments that rebuild ``model``; Refused saying why there are none."""
    kind = type(model)
    try:
        parameters = list(inspect.signature(kind.__init__).parameters.values())[1:]  # without self
    except (TypeError, ValueError) as exc:
        raise Refused(f"the signature of {kind.__qualname__}.__init__ cannot be read ({exc})") from exc
    args: list = []
    kwargs: dict = {}
    positional_gap = False  # a skipped positional-only default: later positional-only ones cannot be passed
    for parameter in parameters:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        required = parameter.default is parameter.empty
        try:
            value = getattr(model, parameter.name)
        except Exception:  # noqa: BLE001 - an attribute that is not there, or a property that fails
            problem = "is not an attribute of the model"
        else:
            problem = None if _is_plain(value) else (f"is held as a {type(value).__module__}."
                                                     f"{type(value).__qualname__}, not a plain value")
        if problem is None and not (parameter.kind is parameter.POSITIONAL_ONLY and positional_gap):
            if parameter.kind is parameter.POSITIONAL_ONLY:
                args.append(value)
            else:
                kwargs[parameter.name] = value
        elif required:
            raise Refused(f"the required argument {parameter.name!r} of {kind.__qualname__}.__init__ "
                          f"{problem or 'follows a positional-only argument that was not captured'}")
        elif parameter.kind is parameter.POSITIONAL_ONLY:
            positional_gap = True
    return args, kwargs


def _is_plain(value: Any, depth: int = 0) -> bool:
    """Numbers, strings, booleans and None, in lists, tuples and string-keyed dicts; exact types only."""
    if depth > _PLAIN_DEPTH:
        return False
    if type(value) in _PLAIN_TYPES:
        return True
    if type(value) in (list, tuple):
        return all(_is_plain(item, depth + 1) for item in value)
    if type(value) is dict:
        return all(type(key) is str and _is_plain(item, depth + 1) for key, item in value.items())
    return False


def _imported_class(module: str, qualname: str) -> type:
    """The nn.Module class ``module.qualname`` if this process has already imported it; Refused if not.

    Nothing is imported and no code runs: the module is looked up in ``sys.modules`` and the name
    walked with ``inspect.getattr_static`` (no ``__getattr__``, no descriptors).
    """
    import torch

    name = f"{module}.{qualname}"
    found = sys.modules.get(module)
    if found is None:
        raise Refused(f"its class {name} is not imported in this process (sys_load never imports a module "
                      "named by a file); import the code that defines it first, as the saving script did")
    for part in qualname.split("."):
        if part == "<locals>":
            raise Refused(f"its class {name} was defined inside a function; only a class defined at the top "
                          "level of a module or class can be found again")
        try:
            found = inspect.getattr_static(found, part)
        except AttributeError:
            raise Refused(f"its class {name} is not imported in this process: module {module} is, but has no "
                          f"{qualname}; import the code that defines it first, as the saving script did") from None
    if not (isinstance(found, type) and issubclass(found, torch.nn.Module)):
        raise Refused(f"{name} is a {type(found).__name__}, not a subclass of torch.nn.Module; sys_load calls "
                      "nothing else a file names")
    return found


def _misfit(built: dict, saved: dict) -> str:
    """How the keys and tensor shapes of two state dicts differ; empty when they fit."""
    missing, unexpected = sorted(set(built) - set(saved)), sorted(set(saved) - set(built))
    shapes = [f"{key} saved {tuple(saved[key].shape)}, built {tuple(built[key].shape)}"
              for key in built if key in saved and hasattr(built[key], "shape") and hasattr(saved[key], "shape")
              and tuple(built[key].shape) != tuple(saved[key].shape)]
    problems = [*([f"missing {', '.join(missing[:5])}"] if missing else []),
                *([f"unexpected {', '.join(unexpected[:5])}"] if unexpected else []), *shapes[:5]]
    return "; ".join(problems)


def build(description: dict, weights: dict) -> Any:
    """The model ``description`` names, built from its plain arguments and checked against the keys and
    shapes of ``weights`` (which are not loaded); Refused saying why not.
    """
    import torch

    module, qualname = description.get("module"), description.get("qualname")
    if type(module) is not str or type(qualname) is not str or not module or not qualname:
        raise Refused(f"its description of the model names no class (module {module!r:.80}, "
                      f"name {qualname!r:.80})")
    name = f"{module}.{qualname}"
    if description.get("why") is not None:
        raise Refused(f"the constructor arguments of {name} were not captured when it was saved: "
                      f"{str(description['why'])[:300]}")
    args, kwargs = description.get("args"), description.get("kwargs")
    if (type(args) is not list or type(kwargs) is not dict or not _is_plain(args) or not _is_plain(kwargs)
            or not all(re.fullmatch(r"[A-Za-z_]\w*", key) for key in kwargs)):
        raise Refused(f"the constructor arguments it gives for {name} are not all plain values ({_PLAIN_WORDS})")
    kind = _imported_class(module, qualname)
    if not isinstance(weights, dict):
        raise Refused("it holds no weights for the model")
    shown = ", ".join([*(repr(a)[:40] for a in args), *(f"{k}={v!r:.40}" for k, v in kwargs.items())])
    # Built first on the meta device, which allocates nothing: a file that names huge arguments
    # beside small weights is refused before any memory is taken. (A constructor that cannot run
    # there is built for real and checked after.)
    try:
        with torch.device("meta"):
            trial = kind(*args, **kwargs)
    except Exception:
        trial = None
    if isinstance(trial, torch.nn.Module) and (misfit := _misfit(trial.state_dict(), weights)):
        raise Refused(f"the weights saved do not fit {name}({shown}): {misfit}")
    try:
        model = kind(*args, **kwargs)
    except Exception as exc:
        raise Refused(f"{name}({shown}) raised {type(exc).__name__}: {exc}") from exc
    misfit = _misfit(model.state_dict(), weights)
    if misfit:
        raise Refused(f"the weights saved do not fit {name}({shown}): {misfit}")
    if type(description.get("training")) is bool:
        model.train(description["training"])
    return model
