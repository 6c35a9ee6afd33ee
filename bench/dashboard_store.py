"""The store that bench/dashboard.py measures: small runs of several projects, and one long run
of 20 keys, all logged through ``epochal.start`` and ``Run.log`` with values that look like training
curves (noise, a few spikes). A store that already holds these runs at the same sizes is reused.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import epochal

#: The key whose series is timed.
SERIES_KEY = "train/loss"

#: Every bench run says this in its notes; that is how a kept store is recognized.
BENCH_NOTE = "made by epochal's bench/dashboard.py"
BIG_PROJECT = "gpt2-small-pretrain"
SMALL_PROJECTS = ("mnist-mlp", "cifar10-resnet18", "imdb-lstm", "digits-sweep")
BIG_KEYS = (
    "train/loss", "train/acc", "train/lr", "train/grad_norm", "train/weight_norm", "train/loss_scale",
    "train/throughput", "train/data_time",
    "valid/loss", "valid/accuracy", "valid/top5", "valid/f1", "valid/precision", "valid/recall",
    "sys/gpu_mem", "sys/gpu_util", "sys/cpu_util", "sys/ram", "sys/disk_read", "sys/temperature",
)
BIG_EPOCHS = 100
LOG_BLOCK = 20_000  # steps whose values are made at once


# -- values ------------------------------------------------------------------------------------------


def _f32(x: np.ndarray) -> np.ndarray:
    """Values as a float32 computation produces them, widened to float64."""
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def _bump(progress: np.ndarray, at: float, width: float) -> np.ndarray:
    """A spike at ``at`` (a fraction of the run) that fades over ``width``."""
    return np.exp(-np.abs(progress - at) / width)


def big_columns(steps: np.ndarray, total: int, seed: int) -> dict[str, np.ndarray]:
    """The 20 keys of the big run at ``steps`` of a ``total``-step run: training curves with noise
    and a few spikes (a loss spike at 13%, 41% and 77% of the run, rare single-step outliers)."""
    rng = np.random.default_rng([seed, int(steps[0]) if len(steps) else 0])
    n = len(steps)
    p = steps / max(total, 1)
    spikes = 1.5 * _bump(p, 0.13, 0.0004) + 0.8 * _bump(p, 0.41, 0.0002) + 2.5 * _bump(p, 0.77, 0.0003)
    outliers = np.where(rng.random(n) < 2e-5, rng.uniform(1.5, 4.0, n), 1.0)
    loss = (3.2 * np.exp(-4.0 * p) + 0.9) * (1.0 + spikes) * outliers + rng.normal(0.0, 0.04, n) * np.exp(-p)
    acc = np.clip(0.25 + 0.5 * (1.0 - np.exp(-5.0 * p)) - 0.1 * spikes + rng.normal(0.0, 0.02, n), 0.0, 1.0)
    warmup = np.minimum(p / 0.02, 1.0)
    valid = 1.04 * loss + rng.normal(0.0, 0.01, n)
    valid_acc = np.clip(acc - 0.015 + rng.normal(0.0, 0.004, n), 0.0, 1.0)
    columns = {
        "train/loss": loss,
        "train/acc": acc,
        "train/lr": 6e-4 * warmup * 0.5 * (1.0 + np.cos(np.pi * p)),
        "train/grad_norm": (rng.lognormal(0.0, 0.3, n) * (0.4 + 3.0 * np.exp(-10.0 * p)) * (1.0 + 4.0 * spikes)
                            * outliers),
        "train/weight_norm": 180.0 + 40.0 * np.sqrt(p) + rng.normal(0.0, 0.01, n),
        "train/loss_scale": 2.0 ** (16 - np.floor(3.0 * p) - (spikes > 0.5)),
        "train/throughput": 51_000.0 + rng.normal(0.0, 900.0, n) - 20_000.0 * (rng.random(n) < 0.001),
        "train/data_time": rng.exponential(0.003, n) + 0.001,
        "valid/loss": valid,
        "valid/accuracy": valid_acc,
        "valid/top5": np.clip(valid_acc + 0.2 * (1.0 - valid_acc), 0.0, 1.0),
        "valid/f1": np.clip(valid_acc - 0.02 + rng.normal(0.0, 0.005, n), 0.0, 1.0),
        "valid/precision": np.clip(valid_acc + rng.normal(0.0, 0.006, n), 0.0, 1.0),
        "valid/recall": np.clip(valid_acc - 0.03 + rng.normal(0.0, 0.006, n), 0.0, 1.0),
        "sys/gpu_mem": 61.5 + 0.5 * np.sin(steps / 997.0) + rng.normal(0.0, 0.05, n),
        "sys/gpu_util": np.clip(97.0 + rng.normal(0.0, 2.0, n) - 60.0 * (rng.random(n) < 0.002), 0.0, 100.0),
        "sys/cpu_util": np.clip(35.0 + rng.normal(0.0, 5.0, n), 0.0, 100.0),
        "sys/ram": 22.0 + 6.0 * p + rng.normal(0.0, 0.02, n),
        "sys/disk_read": rng.exponential(120.0, n),
        "sys/temperature": 71.0 + 6.0 * (1.0 - np.exp(-30.0 * p)) + rng.normal(0.0, 0.4, n),
    }
    return {key: _f32(columns[key]) for key in BIG_KEYS}


def log_big_run(store: epochal.Store, name: str, points: int, stride: int = 1) -> epochal.Run:
    """The big run: ``points`` steps (every ``stride``-th of a ``points * stride``-step run), 20 keys each."""
    total = points * stride
    config = {
        "model": {"name": "gpt2-small", "layers": 12, "heads": 12, "d_model": 768, "dropout": 0.1},
        "optimizer": {"name": "adamw", "lr": 6e-4, "betas": [0.9, 0.95], "weight_decay": 0.1},
        "data": {"name": "openwebtext", "seq_len": 1024, "batch_size": 512},
        "schedule": {"warmup": 0.02, "decay": "cosine"}, "precision": "fp16", "seed": 1337,
    }
    run = epochal.start(
        BIG_PROJECT, name, config=config, tags=("long", "fp16"), description=BENCH_NOTE, store=store,
        flush_points=len(BIG_KEYS) * 10_000,
    )
    names = list(BIG_KEYS)
    for first in range(0, points, LOG_BLOCK):
        index = np.arange(first, min(points, first + LOG_BLOCK), dtype=np.int64)
        steps = index * stride
        columns = big_columns(steps, total, seed=7)
        rows = np.column_stack([columns[k] for k in names]).tolist()
        epochs = (steps * BIG_EPOCHS // total).tolist()
        log = run.log
        for step, epoch, row in zip(steps.tolist(), epochs, rows):
            log(dict(zip(names, row)), step=step, epoch=epoch)
        if (first // LOG_BLOCK) % 5 == 4:
            run.flush()  # the writer keeps up; this only bounds the memory of a slow machine
    run.step(total)
    run.epoch(BIG_EPOCHS)
    run.finish()
    return run


def log_small_runs(store: epochal.Store, count: int, progress: Callable[[int], None]) -> None:
    """``count`` short runs with varied configs, tags and statuses over four projects."""
    rng = np.random.default_rng(11)
    for i in range(count):
        project = SMALL_PROJECTS[i % len(SMALL_PROJECTS)]
        lr = float(10 ** rng.uniform(-4.5, -1.5))
        config = {
            "lr": round(lr, 8), "batch_size": int(rng.choice([32, 64, 128, 256])), "seed": i,
            "optimizer": {"name": str(rng.choice(["sgd", "adam", "adamw"])), "momentum": 0.9,
                          "weight_decay": float(rng.choice([0.0, 1e-4, 5e-4]))},
            "model": {"width": int(rng.choice([64, 128, 256, 512])), "depth": int(rng.integers(2, 9)),
                      "dropout": round(float(rng.uniform(0.0, 0.5)), 2)},
            "augment": bool(rng.random() < 0.5),
        }
        tags = [str(t) for t in rng.choice(["baseline", "sweep", "ablation", "fp16", "long", "debug"],
                                           size=int(rng.integers(0, 3)), replace=False)]
        run = epochal.start(project, config=config, tags=tags, description=BENCH_NOTE, store=store)
        epochs = int(rng.integers(5, 21))
        steps_per_epoch = int(rng.integers(10, 31))
        quality = float(np.clip(1.0 - abs(np.log10(lr) + 3.0) / 2.5, 0.05, 1.0))
        step = 0
        for _ in range(epochs):
            for _ in range(steps_per_epoch):
                t = step / (epochs * steps_per_epoch)
                loss = 2.3 * np.exp(-4.0 * quality * t) + 0.1 + 0.05 * rng.standard_normal()
                run.log({"train/loss": float(loss), "train/acc": float(np.clip(1.0 - loss / 2.5, 0.0, 1.0))})
                step = run.step()
            valid_loss = 2.3 * np.exp(-4.0 * quality * step / (epochs * steps_per_epoch)) + 0.15
            run.log({"valid/loss": float(valid_loss + 0.02 * rng.standard_normal()),
                     "valid/accuracy": float(np.clip(1.0 - valid_loss / 2.4, 0.0, 1.0))})
            run.epoch()
        roll = rng.random()
        run.finish("failed" if roll < 0.04 else "interrupted" if roll < 0.06 else "finished")
        progress(i + 1)


@dataclass
class Built:
    """The store's bench runs: the big run's id and how long building took (None: reused)."""

    big_id: str
    big_name: str
    seconds: float | None
    chunks_per_key: int


def find_bench_runs(store: epochal.Store, runs: int, points: int) -> str | None:
    """The big run's id if the store holds this benchmark's runs at these sizes; None if it is empty."""
    records = store.runs()
    if not records:
        return None
    bench = [r for r in records if r.description == BENCH_NOTE]
    big = [r for r in bench if r.project == BIG_PROJECT]
    small = len(bench) - len(big)
    if len(bench) == len(records) and len(big) == 1 and small == runs and big[0].status == "finished":
        summary = store.summary(big[0])
        if sorted(summary) == sorted(BIG_KEYS) and all(s.count == points for s in summary.values()):
            return big[0].id
    raise SystemExit(
        f"the store '{store.path}' holds {len(records)} runs, not this benchmark's {runs:,} small runs and "
        f"one run of {len(BIG_KEYS)} x {points:,} points: give --store a new or empty directory"
    )


def build_store(path: Path, runs: int, points: int) -> Built:
    """Fill the store at ``path`` unless it already holds the bench runs at these sizes."""
    name = f"long-{len(BIG_KEYS)}x{points}"
    with epochal.Store(path) as store:
        big_id = find_bench_runs(store, runs, points)
        seconds = None
        if big_id is None:
            began = time.perf_counter()

            def progress(done: int) -> None:
                if done % max(1, runs // 4) == 0 or done == runs:
                    print(f"    {done:,} small runs logged at {time.perf_counter() - began:6.1f} s", flush=True)

            log_small_runs(store, runs, progress)
            mark = time.perf_counter()
            big_id = log_big_run(store, name, points).id
            print(f"    big run: {len(BIG_KEYS)} keys x {points:,} points logged in {time.perf_counter() - mark:.1f} s",
                  flush=True)
            seconds = time.perf_counter() - began
        chunks = len(store._backend.chunks(big_id, SERIES_KEY))  # how the series is stored: a bench figure only
        return Built(big_id, store.run(big_id).name, seconds, chunks)
