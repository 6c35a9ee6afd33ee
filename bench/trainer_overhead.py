"""Trainer overhead: epochal's Trainer versus a hand-written PyTorch loop and Lightning's Trainer.

Run it after installing the ``bench`` extra (``make bench`` does, or
``.venv/bin/pip install -c constraints.txt -e '.[bench]'``)::

    .venv/bin/python bench/trainer_overhead.py
    .venv/bin/python bench/trainer_overhead.py --repeat 5 --json bench/results/trainer.json
    .venv/bin/python bench/trainer_overhead.py --skip-lightning

Every contender trains the same MLP (784-256-256-10, ReLU) with SGD on the same synthetic
data (random inputs and labels made once with a fixed seed, a ``TensorDataset`` in a
shuffling ``DataLoader``, batch 64), for the same number of epochs: by default 64,000
samples x 2 epochs = 2,000 optimizer steps, on ``torch.set_num_threads(2)``. Each contender
starts from the same seed, so all of them see the same initial weights and the same batch
order, and the table shows how far their final weights are from the hand-written loop's.
The contenders:

1. a hand-written loop: forward, loss, ``zero_grad``, backward, step; nothing else;
2. ``epochal.Trainer`` with its default callbacks (metric logger, progress bars, epoch table,
   CSV tables, best and last checkpoints), and the same with ``progress=False``;
3. Lightning's ``Trainer``, bare (no logger, checkpointing, progress bar or model summary)
   and with its defaults (TensorBoard logger if installed, else a CSV logger; a checkpoint
   per epoch; progress bar; model summary); that one's ``training_step`` also calls
   ``self.log("train/loss", loss)``, as a module under a logger would; and the same defaults
   with epochal's ``EpochalLogger`` in place of the default logger (its run's checkpoints and
   system metrics included), which tells what recording a Lightning fit in epochal costs.

Only training is timed: not imports (every contender first runs once on a few batches,
untimed), not making the data, the model or the optimizer; the tool's own per-fit work is
(constructing the trainer, opening its run or logger, writing checkpoints, finishing). Every
figure is the median of ``--repeat`` repetitions, each contender in a fresh temporary
directory; the repetitions go round all contenders, forwards and then backwards, so slow
drift of the machine touches them alike. On Linux each repetition also measures how busy
other processes kept the CPUs, and names the repetitions they disturbed.

Progress bars are drawn where the tools draw them: epochal's on stdout (a tqdm bar on a
terminal, else a line every 10 s), Lightning's tqdm bar on stdout; their cost depends on
where stdout goes. Lightning needs ``pip install epochal[bench]``; without it, it is skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import torch
from targets import (  # bench/targets.py, beside this script
    Target,
    busy_cpu_seconds,
    import_lightning,
    print_columns,
    print_targets,
)
from torch.utils.data import DataLoader, TensorDataset

import epochal

HAND = "hand-written loop"
EPOCHAL = "epochal Trainer (defaults)"
EPOCHAL_QUIET = "epochal Trainer (progress=False)"
LIGHTNING_BARE = "Lightning Trainer (bare)"
LIGHTNING = "Lightning Trainer (defaults)"
LIGHTNING_EPOCHAL = "Lightning Trainer (defaults, EpochalLogger)"

TARGET_OVERHEAD_PCT = 3.0  # epochal with its default callbacks, over the hand-written loop
BUSY_ELSEWHERE = 0.1  # CPUs' worth of other processes' work that marks a repetition as disturbed
LR = 0.01
SEED = 0


@dataclass
class Row:
    """One line of the result table: medians over the repetitions."""

    tool: str
    steps: int
    total_s: float
    ms_per_step: float
    spread_pct: float  # (slowest - fastest) / median over the repetitions, in %
    overhead_pct: float | None = None  # over the hand-written loop's median total
    max_weight_diff: float | None = None  # largest |w - w_hand| of the final weights, first repetition
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Setup:
    """What every contender trains on."""

    dataset: TensorDataset
    batch_size: int
    epochs: int
    steps: int


# -- shared pieces ---------------------------------------------------------------------------------


def make_data(samples: int, seed: int = SEED) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(samples, 784, generator=generator)
    labels = torch.randint(0, 10, (samples,), generator=generator)
    return TensorDataset(inputs, labels)


def make_model(seed: int = SEED) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(784, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 10),
    )


def make_loader(setup: Setup, seed: int = SEED) -> DataLoader:
    """A fresh loader whose shuffling starts from ``seed``: every contender sees the same batches."""
    return DataLoader(setup.dataset, batch_size=setup.batch_size, shuffle=True,
                      generator=torch.Generator().manual_seed(seed))


def weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().cpu().clone() for p in model.parameters()]


def max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b))


# A contender trains a fresh model on a fresh loader in ``tmp``; it returns the seconds it
# took and the model it trained (for the weight check, which is not timed).
Contender = Callable[[Setup, Path], tuple[float, torch.nn.Module]]


# -- hand-written loop ------------------------------------------------------------------------------


def hand_loop(setup: Setup, tmp: Path) -> tuple[float, torch.nn.Module]:
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    loader = make_loader(setup)
    gc.collect()
    start = time.perf_counter()
    model.train()
    for _ in range(setup.epochs):
        for inputs, labels in loader:
            loss = loss_fn(model(inputs), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return time.perf_counter() - start, model


# -- epochal ----------------------------------------------------------------------------------------


def has_trainer() -> bool:
    try:
        return epochal.Trainer is not None
    except AttributeError:
        print("epochal.Trainer is not importable in this checkout; skipping the epochal contenders.")
        return False


def epochal_trainer(**options: Any) -> Contender:
    def contender(setup: Setup, tmp: Path) -> tuple[float, torch.nn.Module]:
        model = make_model()
        optimizer = torch.optim.SGD(model.parameters(), lr=LR)
        loss_fn = torch.nn.CrossEntropyLoss()
        loader = make_loader(setup)
        gc.collect()
        start = time.perf_counter()
        trainer = epochal.Trainer(model, optimizer, loss_fn=loss_fn, train_data=loader, max_epochs=setup.epochs,
                                  device="cpu", project="bench", store=tmp / "store", **options)
        trainer.fit()
        elapsed = time.perf_counter() - start
        trainer.run.store.close()
        return elapsed, model

    return contender


# -- Lightning ---------------------------------------------------------------------------------------


def load_lightning() -> SimpleNamespace | None:
    """``lightning`` (or the older ``pytorch_lightning`` package), quietened; None if neither is installed."""
    imported = import_lightning()
    if imported is None:
        return None
    pl, package = imported

    class LitMLP(pl.LightningModule):
        def __init__(self, net: torch.nn.Module, log_loss: bool) -> None:
            super().__init__()
            self.net = net
            self.loss_fn = torch.nn.CrossEntropyLoss()
            self.log_loss = log_loss

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            inputs, labels = batch
            loss = self.loss_fn(self.net(inputs), labels)
            if self.log_loss:
                self.log("train/loss", loss)
            return loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.net.parameters(), lr=LR)

    version = getattr(sys.modules.get(package), "__version__", "?")
    return SimpleNamespace(pl=pl, LitMLP=LitMLP, package=package, version=version, logger_names=set())


def lightning_trainer(lit: SimpleNamespace, bare: bool, epochal_logger: bool = False) -> Contender:
    options = (
        {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False, "enable_model_summary": False}
        if bare else {}
    )

    def contender(setup: Setup, tmp: Path) -> tuple[float, torch.nn.Module]:
        net = make_model()
        module = lit.LitMLP(net, log_loss=not bare)
        loader = make_loader(setup)
        gc.collect()
        start = time.perf_counter()
        chosen = dict(options)
        if epochal_logger:  # in the timing: a logger's run is opened by the fit
            from epochal.integrations.lightning import EpochalLogger

            chosen["logger"] = EpochalLogger(project="bench", store=tmp / "store")
        trainer = lit.pl.Trainer(max_epochs=setup.epochs, accelerator="cpu", devices=1, default_root_dir=tmp,
                                 **chosen)
        trainer.fit(module, train_dataloaders=loader)
        elapsed = time.perf_counter() - start
        if trainer.global_step != setup.steps:
            raise RuntimeError(f"Lightning made {trainer.global_step} steps, not {setup.steps}")
        if not epochal_logger:
            lit.logger_names.update(type(logger).__name__ for logger in trainer.loggers)
        return elapsed, net

    return contender


# -- measuring -----------------------------------------------------------------------------------------


@dataclass
class Measured:
    """Seconds of each repetition per contender, the first repetition's final weights, notes."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    elsewhere: dict[str, list[float]] = field(default_factory=dict)  # CPUs busy outside this process, on average
    weights: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)


def warm_up(contenders: dict[str, Contender], setup: Setup, threads: int) -> None:
    """Each contender once on a few batches, untimed and unprinted: imports and first calls are paid here."""
    batches = min(10, setup.steps // setup.epochs)
    few = TensorDataset(*(tensor[: batches * setup.batch_size] for tensor in setup.dataset.tensors))
    small = Setup(few, setup.batch_size, 1, batches)
    for contender in contenders.values():
        torch.set_num_threads(threads)
        with tempfile.TemporaryDirectory(prefix="epochal-bench-") as tmp, contextlib.redirect_stdout(io.StringIO()):
            contender(small, Path(tmp))


def measure_all(contenders: dict[str, Contender], setup: Setup, repeat: int, threads: int, began: float) -> Measured:
    """Each contender ``repeat`` times, each time in a fresh temporary directory.

    The repetitions go round all contenders, in the given order and then in reverse, so that
    none is always first or last in a round.
    """
    measured = Measured(seconds={name: [] for name in contenders}, elsewhere={name: [] for name in contenders})
    for rep in range(repeat):
        order = list(contenders) if rep % 2 == 0 else list(reversed(contenders))
        for name in order:
            torch.set_num_threads(threads)
            with tempfile.TemporaryDirectory(prefix="epochal-bench-") as tmp:
                busy, own, wall = busy_cpu_seconds(), time.process_time(), time.perf_counter()
                elapsed, model = contenders[name](setup, Path(tmp))
                busy_after, own_after, wall_after = busy_cpu_seconds(), time.process_time(), time.perf_counter()
            measured.seconds[name].append(elapsed)
            elsewhere = None
            if busy is not None and busy_after is not None:
                elsewhere = max(0.0, (busy_after - busy) - (own_after - own)) / (wall_after - wall)
                measured.elsewhere[name].append(elsewhere)
            if rep == 0:
                measured.weights[name] = weights(model)
            if torch.get_num_threads() != threads:
                measured.notes.setdefault(name, []).append(f"left torch at {torch.get_num_threads()} threads")
            others = "" if elsewhere is None else f", other processes busy {elsewhere:.2f} CPUs"
            print(f"  repetition {rep + 1}/{repeat}  {name:<34} {elapsed:7.3f} s   "
                  f"(at {time.perf_counter() - began:6.1f} s{others})", flush=True)
    return measured


def make_rows(measured: Measured, steps: int) -> list[Row]:
    hand = statistics.median(measured.seconds[HAND])
    rows = []
    for name, seconds in measured.seconds.items():
        total = statistics.median(seconds)
        row = Row(name, steps, total, total / steps * 1e3, (max(seconds) - min(seconds)) / total * 100,
                  notes=measured.notes.get(name, []))
        if name != HAND:
            row.overhead_pct = (total / hand - 1.0) * 100
            row.max_weight_diff = max_diff(measured.weights[name], measured.weights[HAND])
        disturbed = [x for x in measured.elsewhere.get(name, []) if x >= BUSY_ELSEWHERE]
        if disturbed:
            row.notes.append(
                f"{len(disturbed)} of {len(seconds)} repetitions ran while other processes kept up to "
                f"{max(disturbed):.2f} CPUs busy: its figures are less reliable"
            )
        rows.append(row)
    return rows


def disturbed(measured: Measured) -> bool:
    return any(x >= BUSY_ELSEWHERE for values in measured.elsewhere.values() for x in values)


# -- report ----------------------------------------------------------------------------------------------


def print_table(rows: list[Row]) -> None:
    headers = ("contender", "steps", "total (s)", "ms/step", "spread", "overhead", "max |w - w_hand|")
    lines = []
    for row in rows:
        overhead = "-" if row.overhead_pct is None else f"{row.overhead_pct:+.1f}%"
        diff = "-" if row.max_weight_diff is None else f"{row.max_weight_diff:.1e}"
        lines.append((row.tool, f"{row.steps:,}", f"{row.total_s:.3f}", f"{row.ms_per_step:.3f}",
                      f"{row.spread_pct:.1f}%", overhead, diff))
    print_columns(headers, lines)
    print("  spread = (slowest - fastest) / median of the repetitions; overhead = median total over the "
          "hand-written loop's")
    for row in rows:
        for note in row.notes:
            print(f"  {row.tool}: {note}")


def check_targets(rows: dict[str, Row]) -> list[Target]:
    what = f"{EPOCHAL}: <= {TARGET_OVERHEAD_PCT:g}% over the hand-written loop"
    row = rows.get(EPOCHAL)
    if row is None:
        return [Target(what, "epochal.Trainer not available", None)]
    return [Target(what, f"{row.overhead_pct:+.1f}%", row.overhead_pct <= TARGET_OVERHEAD_PCT)]


def versions(lit: SimpleNamespace | None) -> dict[str, str]:
    found = {"python": platform.python_version(), "epochal": epochal.__version__, "torch": torch.__version__}
    if lit is not None:
        found[lit.package] = lit.version
    for name in ("tqdm", "tensorboard"):
        module = sys.modules.get(name)
        if module is not None:
            found[name] = getattr(module, "__version__", "?")
    return found


# -- tensor operations per step ----------------------------------------------------------------------------

OPS_TARGET = 4  # tensor operations the Trainer may add per training step, with one metric
OPS_STEPS = 100


def count_ops(setup: Setup) -> tuple[float, dict[str, float], float]:
    """Tensor operations (aten calls on the training thread) that the Trainer adds to a hand-written
    loop, with ``metrics=["accuracy"]`` and its default callbacks: per training step, which ones, and
    the fixed ones per fit (per-epoch and per-fit work: tables, checkpoints, reading the sums).

    On a GPU each is a kernel launch (or a copy), so this CPU-measurable count is a proxy for the
    Trainer's per-step cost there. Each loop runs one epoch of ``OPS_STEPS`` and one of ``2 * OPS_STEPS``
    steps; what the second adds over the first, per step, is the per-step count, and the rest is fixed.
    """
    from collections import Counter

    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.ops: Counter = Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            self.ops[str(func.overloadpacket.__name__)] += 1
            return func(*args, **(kwargs or {}))

    added: dict[int, Counter] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for steps in (OPS_STEPS, 2 * OPS_STEPS):
            small = Setup(TensorDataset(*setup.dataset[: steps * setup.batch_size]), setup.batch_size, 1, steps)
            counted = {}
            for name, run in (("hand", lambda: hand_loop(small, Path(tmp))),
                              ("epochal", lambda: epochal_trainer(metrics=["accuracy"], progress=False)(small, Path(tmp)))):
                with Count() as count:
                    run()
                counted[name] = count.ops
            added[steps] = Counter(counted["epochal"])
            added[steps].subtract(counted["hand"])
    per_step = {op: (added[2 * OPS_STEPS][op] - added[OPS_STEPS].get(op, 0)) / OPS_STEPS
                for op in added[2 * OPS_STEPS]}
    per_step = {op: n for op, n in per_step.items() if n}
    fixed = sum(added[OPS_STEPS].values()) - OPS_STEPS * sum(per_step.values())
    return sum(per_step.values()), dict(sorted(per_step.items(), key=lambda kv: -kv[1])), fixed


# -- main ------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=64_000, help="samples per epoch (default 64,000)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs (default 2: 2,000 steps at batch 64)")
    parser.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions; figures are medians (default 3)")
    parser.add_argument("--skip-lightning", action="store_true", help="leave Lightning out")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON here")
    args = parser.parse_args(argv)
    for name in ("samples", "epochs", "batch_size", "threads", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.samples % args.batch_size:
        parser.error(f"--samples ({args.samples}) must be a multiple of --batch-size ({args.batch_size}), "
                     "so that every step is a full batch")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    torch.set_num_threads(args.threads)
    lit = None if args.skip_lightning else load_lightning()

    steps = args.epochs * args.samples // args.batch_size
    setup = Setup(make_data(args.samples), args.batch_size, args.epochs, steps)
    contenders: dict[str, Contender] = {HAND: hand_loop}
    if has_trainer():
        contenders[EPOCHAL] = epochal_trainer()
        contenders[EPOCHAL_QUIET] = epochal_trainer(progress=False)
    if lit is not None:
        contenders[LIGHTNING_BARE] = lightning_trainer(lit, bare=True)
        contenders[LIGHTNING] = lightning_trainer(lit, bare=False)
        if lit.package == "lightning":
            contenders[LIGHTNING_EPOCHAL] = lightning_trainer(lit, bare=False, epochal_logger=True)

    print(f"Trainer overhead on {os.cpu_count()} CPUs ({args.threads} torch threads), {platform.platform()}")
    print("  " + ", ".join(f"{k} {v}" for k, v in versions(lit).items()))
    print(f"  MLP 784-256-256-10, SGD lr {LR:g}, batch {args.batch_size}, {args.samples:,} samples x {args.epochs} "
          f"epochs = {steps:,} steps; figures are medians over {args.repeat} repetition(s), each in a fresh "
          "temporary directory\n")

    warm_up(contenders, setup, args.threads)
    print(f"  warmed up every contender on a few batches (untimed) at {time.perf_counter() - began:.1f} s", flush=True)
    measured = measure_all(contenders, setup, args.repeat, args.threads, began)
    if lit is not None:
        loggers = ", ".join(sorted(lit.logger_names)) or "none"
        measured.notes.setdefault(LIGHTNING, []).append(f"default logger: {loggers}; training_step calls self.log")
        for name in (LIGHTNING_BARE, LIGHTNING):
            measured.notes.setdefault(name, []).append(
                "its second epoch comes in another batch order than the loop's from the same loader (the first "
                "is identical), so its weights end elsewhere; the work per step is the same")
    rows = make_rows(measured, steps)

    print()
    print_table(rows)
    targets = check_targets({row.tool: row for row in rows})
    if EPOCHAL in contenders:
        ops, which, fixed = count_ops(setup)
        shown = ", ".join(f"{op} {n:g}" for op, n in list(which.items())[:8])
        print(f"\nTensor operations the Trainer adds per training step (metrics=['accuracy']): {ops:.2f} ({shown}); "
              f"fixed, per fit of one epoch: {fixed:.0f}")
        targets.append(Target(f"{EPOCHAL_QUIET}: <= {OPS_TARGET} tensor operations added per step, one metric",
                              f"{ops:.2f}", ops <= OPS_TARGET))
    print_targets(targets)
    if disturbed(measured):
        print("  (other processes were busy during some repetitions, see the notes above: the figures are "
              "noisier than usual; run again on a quiet machine)")
    total = time.perf_counter() - began
    print(f"\nTotal time {total:.1f} s")

    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "versions": versions(lit)},
            "rows": [asdict(row) for row in rows],
            "seconds": measured.seconds,
            "other_processes_cpus": measured.elsewhere,
            "targets": [asdict(t) for t in targets],
            "total_s": total,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"Results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
