"""What a run accepts from its caller, checked on the caller's thread before anything is buffered.

Keys, numbers, steps and epochs, names, tags and configs are refused here, with an error that names
the value and what would be accepted, when the store could not keep them as given: so a bad value
never reaches the background writer, where it would fail a whole flush.
"""

from __future__ import annotations

import math
import numbers
import sys
import warnings
from collections.abc import Mapping
from typing import Any

from epochal.store.store import storable_text

#: The longest key, project or run name.
MAX_KEY_LENGTH = 255
#: The largest step or epoch the store holds (a signed 64-bit integer).
MAX_INDEX = 2**63 - 1
#: The deepest nesting a config may have.
MAX_CONFIG_DEPTH = 100


def check_key(key: object) -> None:
    if not isinstance(key, str):
        raise TypeError(f"run.log: keys are strings, got {key!r} ({type(key).__name__})")
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"run.log: a key has 1 to {MAX_KEY_LENGTH} characters, got {len(key)}: {key[:60]!r}")
    storable_text(key, "run.log: the key")


def to_float(key: str, value: object) -> float | None:
    """The value as a float; None for a tensor on a device, which the writer reads later."""
    if isinstance(value, numbers.Real) and not isinstance(value, (str, bytes)):
        return _logged_float(key, value)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.is_complex():
            raise TypeError(
                f"run.log: value for {key!r} is a tensor of shape {tuple(value.shape)} and dtype {value.dtype}; "
                "expected a single real number (a 0-d or one-element tensor)"
            )
        if value.device.type == "cpu":
            return float(value.item())
        if value.is_meta:
            raise TypeError(f"run.log: value for {key!r} is a meta tensor, which has no value")
        return None
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.generic) and value.dtype.kind in "biuf":
        return _logged_float(key, value)
    if numpy is not None and isinstance(value, numpy.ndarray):
        if value.size == 1 and value.dtype.kind in "biuf":
            return _logged_float(key, value.reshape(())[()])
        raise TypeError(
            f"run.log: value for {key!r} is an array of shape {value.shape} and dtype {value.dtype}; "
            "expected a single real number"
        )
    raise TypeError(
        f"run.log: value for {key!r} is {type(value).__name__} ({value!r:.60}); expected a float, int, "
        "NumPy scalar or single-element tensor"
    )


def _logged_float(key: str, value: Any) -> float:
    number = _float64(value)
    if number is None:
        raise ValueError(f"run.log: value for {key!r} is {value!r:.60}, too large for a float64")
    return number


def check_index(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if not 0 <= value <= MAX_INDEX:
        raise ValueError(f"{name} must be from 0 to 2**63 - 1, got {value}")
    return int(value)


def check_time(value: object) -> float:
    """A wall time: a finite number of seconds since the epoch (0 or more)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise ValueError(f"time is a number of seconds since the epoch, 0 or more, got {value!r:.60}")
    return float(value)


def check_flush_settings(interval: object, points: object, buffered: object = 1) -> None:
    if not isinstance(interval, (int, float)) or isinstance(interval, bool) or not interval > 0:
        raise ValueError(f"flush interval must be a positive number of seconds, got {interval!r}")
    if not isinstance(points, int) or isinstance(points, bool) or points < 1:
        raise ValueError(f"flush size must be at least 1 point, got {points!r}")
    if not isinstance(buffered, int) or isinstance(buffered, bool) or buffered < 1:
        raise ValueError(f"max_buffered_points must be at least 1, got {buffered!r}")


def check_text(what: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"a run's {what} is a non-empty string, got {value!r:.80}")
    if len(value) > MAX_KEY_LENGTH:
        raise ValueError(f"a run's {what} has at most {MAX_KEY_LENGTH} characters, got {len(value)}: {value[:60]!r}")
    storable_text(value, f"a run's {what}")
    return value


def to_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config as JSON can hold it: tuples become lists, other objects their text.

    Refused, naming the place: keys that collide once made text (1 and '1'), text the store
    cannot keep, numbers past a float64, nesting deeper than MAX_CONFIG_DEPTH or a config that
    contains itself.
    """
    return _jsonable(config, "config", 0, set())


def _jsonable(value: Any, where: str, depth: int, open_containers: set[int]) -> Any:
    if value is None or isinstance(value, (bool, float)):
        return value if type(value) in (bool, float) or value is None else _config_real(value, where)
    if isinstance(value, str):
        _unicode_config(value, where)
        return value
    if isinstance(value, (Mapping, list, tuple)):
        if depth >= MAX_CONFIG_DEPTH:
            raise ValueError(f"the config is nested more than {MAX_CONFIG_DEPTH} levels deep at {where[:120]}")
        if id(value) in open_containers:
            raise ValueError(f"the config contains itself at {where[:120]}; a config is a tree of plain values")
        open_containers.add(id(value))
        try:
            if isinstance(value, Mapping):
                out: dict[str, Any] = {}
                given: dict[str, Any] = {}
                for key, item in value.items():
                    text = key if isinstance(key, str) else str(key)
                    _unicode_config(text, f"{where} key {text[:60]!r}")
                    if text in out:
                        raise ValueError(
                            f"the config keys {given[text]!r} and {key!r} at {where[:120]} both become {text!r} in "
                            "the store; rename one of them"
                        )
                    given[text] = key
                    out[text] = _jsonable(item, f"{where}.{text}", depth + 1, open_containers)
                return out
            return [_jsonable(item, f"{where}[{i}]", depth + 1, open_containers) for i, item in enumerate(value)]
        finally:
            open_containers.discard(id(value))
    if isinstance(value, numbers.Integral):
        return _config_int(int(value), where)
    if isinstance(value, numbers.Real):
        return _config_real(value, where)
    text = str(value)
    _unicode_config(text, where)
    return text


def _config_int(value: int, where: str) -> int:
    # JSON keeps any int exactly; the dashboard and filters read numbers as float64.
    try:
        float(value)
    except OverflowError:
        raise ValueError(
            f"the config value at {where[:120]} is an int of {value.bit_length()} bits, too large for a float64 "
            "(the store filters and sorts by number); store it as a string if it must be exact"
        ) from None
    return value


def _config_real(value: numbers.Real, where: str) -> float:
    number = _float64(value)
    if number is None:
        raise ValueError(f"the config value at {where[:120]} is {value!r:.60}, too large for a float64")
    return number


def _float64(value: Any) -> float | None:
    """``value`` as a float64, or None if it only becomes inf by overflowing (np.longdouble(1e5000))."""
    try:
        number = float(value)
    except OverflowError:
        return None
    if math.isinf(number):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if value * 0 == value * 0:  # inf * 0 is NaN: this was a finite value that overflowed
                return None
    return number


def _unicode_config(text: str, where: str) -> None:
    storable_text(text, f"the config at {where[:120]}:", nul=True)
