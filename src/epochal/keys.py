"""What a metric's key name says: whether lower is better, whether a value improves on the best, and
which keys are a run's main metrics.

Every part of epochal that ranks values or picks metrics asks here (the store's summaries, the
checkpoint and early-stopping callbacks, ``epochal ls``, the API the dashboard reads), so the rules
hold one way everywhere.

Examples:
    >>> best_mode("valid/loss"), best_mode("valid/accuracy")
    ('min', 'max')
    >>> is_better(0.5, 0.6, "min"), is_better(0.5, 0.6, "max"), is_better(0.5, None, "max")
    (True, False, True)
    >>> main_metrics(["train/loss", "lr", "valid/accuracy", "valid/loss"])
    ['valid/loss', 'valid/accuracy', 'train/loss']
    >>> split_of("valid/loss"), split_of("lr"), split_of("system/cpu_percent")
    ('valid', None, None)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping

#: How many main metrics a run has at most (the metric columns of ``epochal ls`` and of the dashboard).
MAIN_METRICS = 3

# Substrings that make a key's best value its lowest; every other key is best at its highest.
_LOWER_IS_BETTER = ("loss", "err", "mse", "mae", "nll", "perplexity", "ppl", "wer", "cer", "distance", "time", "wait")
#: The first parts of a key that name a data split: ``train/loss`` and ``valid/loss`` are one metric
#: measured on two splits, which the dashboard draws in one chart.
SPLITS = ("train", "valid", "val", "test", "eval")
# Keys that describe the machine or the pace of training, never what runs are compared by.
_NOT_METRICS = ("system/", "samples/s", "data_wait")


def best_mode(key: str) -> str:
    """'min' for keys that name a loss or an error, else 'max'."""
    leaf = key.rsplit("/", 1)[-1].lower()
    return "min" if any(word in leaf for word in _LOWER_IS_BETTER) else "max"


def split_of(key: str) -> str | None:
    """The split a key's first part names (one of :data:`SPLITS`, as the key writes it), or None.

    A key that is only a split and a slash (``train/``) names no metric: None.
    """
    first, slash, rest = key.partition("/")
    return first if slash and rest and first.lower() in SPLITS else None


def is_better(value: float | None, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    """Whether ``value`` improves on ``best`` by more than ``min_delta`` under ``mode`` ('min' or 'max').

    A missing or NaN ``value`` never improves; any other value improves on a missing or NaN ``best``.
    """
    if value is None or math.isnan(value):
        return False
    if best is None or math.isnan(best):
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


def best_of(lowest: float | None, highest: float | None, mode: str) -> float | None:
    """The best of a key's values under ``mode``, given the lowest and the highest."""
    return lowest if mode == "min" else highest


def best_first(value: float, mode: str) -> float:
    """A sort key under which the best values under ``mode`` come first."""
    return value if mode == "min" else -value


def main_metrics(keys: Iterable[str], limit: int = MAIN_METRICS, counts: Mapping[str, int] | None = None) -> list[str]:
    """The main metrics among ``keys``: the ``limit`` keys one usually compares runs by.

    The rule: evaluation keys (``valid/``, ``val/``, ``eval/``, ``test/``) before training keys
    (``train/``) before the rest, and system metrics (``system/``) and the pace of training
    (``samples/s``, ``data_wait``) never; within those, losses, then accuracies, then the rest, spreads (``*_std``) last;
    then the keys that occur most often in ``keys`` (give the keys of several runs together, and a
    key most runs have comes first); then by name. Case does not matter.
    """
    if counts is None:  # ``counts``: how many runs logged each key, when the caller has them already
        counts = Counter(key for key in keys)  # not Counter(keys): a mapping (a run's summary) would give counts

    def rank(key: str) -> tuple:
        lower = key.lower()
        split = 0 if lower.startswith(("valid/", "val/", "eval/", "test/")) else 1 if lower.startswith("train/") else 2
        kind = 3 if lower.endswith("_std") else 0 if "loss" in lower else 1 if "acc" in lower else 2
        return split, kind, -counts[key], key

    return sorted((key for key in counts if not key.lower().startswith(_NOT_METRICS)), key=rank)[:limit]
