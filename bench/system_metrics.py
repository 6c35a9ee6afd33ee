"""System metrics: what sampling the machine costs a training step, beside Lightning's DeviceStatsMonitor.

    .venv/bin/python bench/system_metrics.py
    .venv/bin/python bench/system_metrics.py --steps 4000 --repeat 5

Target (issue 16): under 0.1% of a training step, and no work on the training thread.

1. **One sample**: ``SystemSampler.sample()`` (CPU, memory, disk and network; GPUs where this process
   uses one), timed ``--samples`` times; its median is what the run's writer thread spends every
   ``system_metrics`` seconds (10 by default).
2. **A training step**: the hand-written MLP loop of ``trainer_overhead.py`` (784-256-256-10, batch 64,
   two threads) logging its loss to an open run every step, with ``system_metrics=False``, with the
   default 10 s, and with 0.1 s (a hundred times the default, to make the cost large enough to see above
   the noise). The median step time of each, over ``--repeat`` repetitions in turn.
3. **The cost per step** at the default interval: a sample's time shared out over the steps of 10 s,
   as a share of the step; and the measured difference of (2), which on a noisy machine is mostly noise.
4. **The peer**: Lightning's ``DeviceStatsMonitor(cpu_stats=True)`` reads the CPU on the training thread
   at the start and at the end of every logged batch (every 50 steps by default); its reading
   (``lightning.pytorch.accelerators.cpu.get_cpu_stats``) timed alike, shared out per step.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from targets import Target, print_columns, print_targets

import epochal
from epochal.system_metrics import DEFAULT_INTERVAL_S, SystemSampler

TARGET_SHARE = 0.001  # of a training step
_sample = SystemSampler.sample
#: The threads samples were taken on while training ran: never the training (main) thread.
sampled_on: set[str] = set()


def _watched_sample(self: SystemSampler) -> dict[str, float]:
    sampled_on.add(threading.current_thread().name)
    return _sample(self)


def sample_cost(samples: int) -> tuple[float, float]:
    """Median and largest seconds of one SystemSampler.sample()."""
    sampler = SystemSampler(DEFAULT_INTERVAL_S)
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        sampler.sample()
        times.append(time.perf_counter() - started)
        time.sleep(0.002)
    return statistics.median(times), max(times)


def step_time(steps: int, system_metrics: float | bool, store: Path) -> float:
    """Median seconds per step of the hand-written loop logging its loss to an open run."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(64, 784), torch.randint(0, 10, (64,))
    times = []
    with epochal.start(store=store, system_metrics=system_metrics) as run:
        for _ in range(steps):
            started = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            run.log({"train/loss": loss.item()})
            run.step()
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def lightning_cost(samples: int) -> float | None:
    """Median seconds of the CPU reading Lightning's DeviceStatsMonitor makes on the training thread."""
    try:
        from lightning.pytorch.accelerators.cpu import get_cpu_stats
    except ImportError:
        return None
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        get_cpu_stats()
        times.append(time.perf_counter() - started)
        time.sleep(0.002)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3000, help="training steps per measurement (default 3000)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of each setting (default 3)")
    parser.add_argument("--samples", type=int, default=200, help="samples timed (default 200)")
    args = parser.parse_args()
    torch.set_num_threads(2)

    sample, worst = sample_cost(args.samples)
    settings = {"off": False, "every 10 s (default)": DEFAULT_INTERVAL_S, "every 0.1 s": 0.1}
    measured: dict[str, list[float]] = {name: [] for name in settings}
    SystemSampler.sample = _watched_sample
    with tempfile.TemporaryDirectory() as tmp:
        step_time(200, False, Path(tmp) / "warm")
        for repetition in range(args.repeat):
            for name, interval in settings.items():
                measured[name].append(step_time(args.steps, interval, Path(tmp) / f"{repetition}-{len(name)}"))
    SystemSampler.sample = _sample
    step = {name: statistics.median(times) for name, times in measured.items()}
    base = step["off"]
    steps_per_interval = DEFAULT_INTERVAL_S / base
    share = sample / steps_per_interval / base
    peer = lightning_cost(args.samples)

    print(f"One sample on the writer thread: median {sample * 1e6:.0f} us, largest {worst * 1e6:.0f} us "
          f"({args.samples} samples)\n")
    print_columns(["system metrics", "step (ms)", "vs off"],
                  [[name, f"{t * 1e3:.3f}", f"{(t / base - 1) * 100:+.2f}%"] for name, t in step.items()])
    print(f"\nAt the default {DEFAULT_INTERVAL_S:g} s, one sample is shared by {steps_per_interval:,.0f} steps of "
          f"{base * 1e3:.3f} ms: {sample / steps_per_interval * 1e9:.1f} ns a step, {share * 100:.4f}% of a step, "
          "on the writer thread (none on the training thread)")
    if peer is not None:
        peer_share = 2 * peer / 50 / base
        print(f"Lightning's DeviceStatsMonitor(cpu_stats=True): one CPU reading {peer * 1e6:.0f} us, two every 50 "
              f"steps on the training thread: {2 * peer / 50 * 1e6:.2f} us a step, {peer_share * 100:.3f}% of a step")
    print_targets([
        Target("system metrics, share of a training step (default 10 s)", f"{share * 100:.4f}%", share < TARGET_SHARE),
        Target("samples taken on the training thread", "yes" if "MainThread" in sampled_on else "none",
               bool(sampled_on) and "MainThread" not in sampled_on),
    ])
    return 0


if __name__ == "__main__":
    sys.exit(main())
