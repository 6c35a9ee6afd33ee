"""The key-name rules: best mode, better-than, and the main metrics."""

import math

import pytest

from epochal.keys import MAIN_METRICS, best_first, best_mode, best_of, is_better, main_metrics, split_of


@pytest.mark.parametrize(
    ("key", "mode"),
    [("train/loss", "min"), ("valid/NLL", "min"), ("test/error_rate", "min"), ("epoch_time", "min"),
     ("valid/accuracy", "max"), ("f1", "max"), ("loss/accuracy", "max")],  # only the leaf counts
)
def test_best_mode_reads_the_leaf(key, mode):
    assert best_mode(key) == mode


@pytest.mark.parametrize(
    ("value", "best", "mode", "delta", "better"),
    [
        (0.5, 0.6, "min", 0.0, True),
        (0.6, 0.5, "min", 0.0, False),
        (0.5, 0.5, "min", 0.0, False),  # equal is not better
        (0.6, 0.5, "max", 0.0, True),
        (0.55, 0.5, "max", 0.1, False),  # within min_delta
        (0.65, 0.5, "max", 0.1, True),
        (0.45, 0.5, "min", 0.1, False),
        (0.35, 0.5, "min", 0.1, True),
        (0.1, None, "min", 0.0, True),  # anything beats no best yet
        (0.1, math.nan, "max", 0.0, True),  # and a NaN best
        (math.nan, 0.5, "min", 0.0, False),  # NaN never improves
        (math.nan, None, "max", 0.0, False),
        (None, 0.5, "max", 0.0, False),
    ],
)
def test_is_better(value, best, mode, delta, better):
    assert is_better(value, best, mode, delta) is better


def test_best_of_and_best_first_follow_the_mode():
    assert best_of(1.0, 3.0, "min") == 1.0 and best_of(1.0, 3.0, "max") == 3.0
    assert sorted([2.0, 1.0, 3.0], key=lambda v: best_first(v, "min")) == [1.0, 2.0, 3.0]
    assert sorted([2.0, 1.0, 3.0], key=lambda v: best_first(v, "max")) == [3.0, 2.0, 1.0]


def test_main_metrics_put_evaluation_losses_first():
    keys = ["lr", "train/acc", "train/loss", "test/accuracy", "valid/loss_std", "valid/loss", "val/acc", "epoch"]
    assert main_metrics(keys, limit=len(keys)) == [
        "valid/loss", "test/accuracy", "val/acc", "valid/loss_std", "train/loss", "train/acc", "epoch", "lr",
    ]
    assert main_metrics(keys) == ["valid/loss", "test/accuracy", "val/acc"]
    assert MAIN_METRICS == 3


def test_main_metrics_prefer_the_keys_most_runs_have():
    one, two, three = ["valid/loss_a", "x"], ["valid/loss_b", "x"], ["valid/loss_b"]
    assert main_metrics([*one, *two, *three], limit=2) == ["valid/loss_b", "valid/loss_a"]
    assert main_metrics(["Valid/Loss", "valid/acc"]) == ["Valid/Loss", "valid/acc"]  # case does not matter
    assert main_metrics([]) == []
    assert main_metrics({"train/loss": 9, "valid/loss": 1}) == ["valid/loss", "train/loss"]  # a summary: its keys


def test_system_metrics_and_the_pace_of_training_are_never_main_metrics():
    keys = ["system/cpu_percent", "system/gpu0/power_w", "samples/s", "data_wait", "x", "eval/loss", "train/loss"]
    assert main_metrics(keys, limit=len(keys)) == ["eval/loss", "train/loss", "x"]
    assert main_metrics(["system/memory_percent", "samples/s"]) == []
    assert best_mode("data_wait") == "min"


@pytest.mark.parametrize(
    ("key", "split"),
    [("train/loss", "train"), ("valid/accuracy", "valid"), ("val/loss", "val"), ("test/f1", "test"),
     ("eval/bleu", "eval"), ("Train/Loss", "Train"), ("train/layer0/norm", "train"),
     ("lr", None), ("system/cpu_percent", None), ("training/loss", None), ("train/", None), ("/loss", None)],
)
def test_split_of_reads_the_first_part(key, split):
    assert split_of(key) == split
