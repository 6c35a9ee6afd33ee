"""GPU overhead: epochal's Trainer on a CUDA GPU versus a hand-written loop and Lightning's Trainer.

Run it from the project's root on a machine with a CUDA GPU (it imports epochal from the installed
package, or from ``src/`` with ``PYTHONPATH=src``)::

    .venv/bin/python bench/gpu_overhead.py
    .venv/bin/python bench/gpu_overhead.py --workload cnn --repeat 5 --json bench/results/gpu.json
    .venv/bin/python bench/gpu_overhead.py --contenders hand epochal --steps 1000
    .venv/bin/python bench/gpu_overhead.py --device cpu --steps 20 --repeat 1 --workload mlp  # smoke test

Without a CUDA device it says so in one line and exits (status 0). ``--device cpu`` runs the same
code on the CPU, as a smoke test of the script only: there the Trainer takes its CPU path (it reads
the loss after every step, which costs nothing on a CPU), so those figures say nothing about a GPU.

The workloads (``--workload``, default all), each on synthetic data made once on the device from a
seeded generator, outside the timed part: 10 classes, each a unit Gaussian cloud around its own
random centre, so that accuracy means something:

1. ``mlp``: an MLP 784-256-256-10 (ReLU), batch 64, float32, SGD lr 0.05;
2. ``cnn``: 8 conv layers in 4 stages of 64-512 channels (3x3, BatchNorm, ReLU; stride 2 from the
   second stage), global average pooling and a linear layer, on 32x32x3 inputs, batch 128, float32,
   channels-last weights, ``cudnn.benchmark`` on, SGD lr 0.05 with momentum 0.9;
3. ``cnn-amp``: the same CNN in mixed precision: the hand loop under bfloat16 autocast (no
   GradScaler: bfloat16 needs none), the Trainer with ``amp=True`` (bfloat16 where the device
   computes it; on a GPU that does not, the workload is skipped), Lightning with
   ``precision="bf16-mixed"``.

The contenders (``--contenders``, default all), each starting from the same weights (the model is
built after ``torch.manual_seed(0)``) and seeing the same batches in the same order:

1. ``hand``: forward, loss, ``zero_grad``, backward, step; it also adds up the loss and the correct
   predictions of every batch on the device and reads both once per epoch, as the Trainer does;
2. ``epochal``: ``epochal.Trainer`` with its default callbacks (metric logger, progress, epoch
   table, CSV tables, best and last checkpoints, summary) and ``metrics=["accuracy"]``;
3. ``epochal-bare``: the same with ``progress``, ``epoch_table``, ``csv_tables``, ``checkpoint`` and
   ``summary`` switched off;
4. ``lightning``: Lightning's ``Trainer`` with its defaults (TensorBoard logger if installed, else a
   CSV logger; a checkpoint per epoch; progress bar; model summary), its ``training_step`` calling
   ``self.log("train/loss", loss)`` as a module under a logger would;
5. ``lightning-bare``: the same without logger, checkpointing, progress bar or model summary.
   Lightning's ``training_step`` adds up the loss and the correct predictions as the hand loop does.
   Without Lightning installed (``pip install epochal[bench]``) both are skipped with a note.

The data stay on the device: a loader like a DataLoader's shuffling one, but it draws each epoch's
order from a CPU generator with a fixed seed, moves those indices to the device (one copy an epoch)
and gives batches by indexing the device tensors; no host work per batch. Every contender gets a
fresh such loader, the Trainer and Lightning the loader itself.

Per-step and fixed costs are measured apart. Each contender's whole fit is timed at two lengths,
both of 2 epochs so that the per-epoch work (tables, checkpoints, reading the sums) is the same:
2 epochs of N/2 steps and 2 epochs of N steps (``--steps N``, default 500). The per-step cost is
``(t(2N) - t(N)) / N``, the fixed cost ``t(N) - N x per-step``: for the Trainer, its construction,
opening and finishing its run, its per-epoch work. The timed part is the whole fit, from just before
the Trainer (or Lightning's) is constructed to its end, ``torch.cuda.synchronize()`` before each
reading of the clock; making the model, the optimizer and the loader is not timed. Every contender
is first run once, untimed, on a few batches (imports, first calls, cuDNN's autotuning). Every figure
is the median of ``--repeat`` repetitions; each fit runs in a fresh temporary directory with its
standard output captured (progress bars write lines, as they would into a log file), and the
repetitions go round the contenders forwards, then backwards. The per-step figure is as precise as
the fixed cost is steady from fit to fit, divided by N: where the spread is wide, raise ``--steps``.

The table also shows the last epoch's train loss and accuracy as each contender computed them, and
how far its final weights are from the hand loop's, so one sees that they trained the same thing
(cuDNN's and cuBLAS's kernels need not add up in the same order from run to run, so on a GPU the
weights differ a little even between two runs of the same loop).

Then, on CUDA, the host-device synchronisations of a one-epoch fit (at N/2 and at N steps, so that
the per-step ones are told from the fixed ones), counted with ``torch.cuda.set_sync_debug_mode("warn")``
and grouped by the line of Python that made them, for the hand loop (for reference), ``epochal-bare``
and ``epochal``; the loader's copy of each epoch's order to the device is one of them, for every
contender. The issue's target: the Trainer with its defaults at most 3% over the hand loop,
per step and over the whole fit, for ``mlp`` and ``cnn``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import linecache
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from targets import Target, import_lightning, print_columns, print_targets  # bench/targets.py, beside this script

import epochal

CONTENDERS = {
    "hand": "hand-written loop",
    "epochal": "epochal Trainer (defaults)",
    "epochal-bare": "epochal Trainer (bare)",
    "lightning": "Lightning Trainer (defaults)",
    "lightning-bare": "Lightning Trainer (bare)",
}
BARE = {"progress": False, "epoch_table": False, "csv_tables": False, "checkpoint": False, "summary": False}
SYNC_CONTENDERS = ("hand", "epochal-bare", "epochal")
TARGET_WORKLOADS = ("mlp", "cnn")
TARGET_OVERHEAD_PCT = 3.0  # epochal with its defaults, over the hand loop, per step and whole fit
EPOCHS = 2
SEED = 0
CLASSES = 10
CENTRE_SCALE = 0.1  # the classes' centres, per input value; the clouds' spread is 1
WARMUP_STEPS = 10  # per epoch of the untimed warm-up fit
SYNC_SITES_SHOWN = 8
ERROR_LINES = 12  # lines of a failed contender's error shown under the table


# -- workloads and data ------------------------------------------------------------------------------------


def _mlp() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Linear(784, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, CLASSES),
    )


def _conv_stage(cin: int, cout: int, stride: int) -> torch.nn.Module:
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _cnn() -> torch.nn.Module:
    nn = torch.nn
    return nn.Sequential(_conv_stage(3, 64, 1), _conv_stage(64, 128, 2), _conv_stage(128, 256, 2),
                         _conv_stage(256, 512, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, CLASSES))


@dataclass(frozen=True)
class Workload:
    """What the contenders train, and how."""

    name: str
    description: str
    build: Callable[[], torch.nn.Module]
    input_shape: tuple[int, ...]  # of one sample
    batch: int
    lr: float
    momentum: float
    amp: bool  # bfloat16 autocast (hand loop), amp=True (Trainer), "bf16-mixed" (Lightning)
    channels_last: bool


CNN_TEXT = "CNN 8 conv 64-512 channels, 32x32x3, batch 128, SGD lr 0.05 momentum 0.9"
WORKLOADS = {
    "mlp": Workload("mlp", "MLP 784-256-256-10, batch 64, float32, SGD lr 0.05", _mlp, (784,), 64, 0.05, 0.0,
                    amp=False, channels_last=False),
    "cnn": Workload("cnn", f"{CNN_TEXT}, float32", _cnn, (3, 32, 32), 128, 0.05, 0.9, amp=False, channels_last=True),
    "cnn-amp": Workload("cnn-amp", f"{CNN_TEXT}, bfloat16 autocast", _cnn, (3, 32, 32), 128, 0.05, 0.9, amp=True,
                        channels_last=True),
}


@dataclass(frozen=True)
class Data:
    """A workload's samples, on the device."""

    inputs: torch.Tensor
    labels: torch.Tensor


def make_data(work: Workload, samples: int, device: torch.device) -> Data:
    """Samples made on ``device`` from a seeded generator: a unit Gaussian cloud around each class's centre."""
    generator = torch.Generator(device=device).manual_seed(SEED)
    centres = torch.randn(CLASSES, *work.input_shape, generator=generator, device=device) * CENTRE_SCALE
    labels = torch.randint(0, CLASSES, (samples,), generator=generator, device=device)
    inputs = torch.randn(samples, *work.input_shape, generator=generator, device=device)
    inputs += centres[labels]
    return Data(inputs, labels)


class DeviceLoader:
    """Batches of tensors already on the device, in an order drawn each epoch from a CPU generator.

    ``generator`` is where the Trainer looks for a loader's generator (to resume its order exactly).
    The first ``batches x batch`` samples of ``data`` are used.
    """

    def __init__(self, data: Data, batch: int, batches: int, seed: int = SEED) -> None:
        self.inputs, self.labels = data.inputs[: batches * batch], data.labels[: batches * batch]
        self.batch, self.batches = batch, batches
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.batches

    def __iter__(self):
        order = torch.randperm(len(self.labels), generator=self.generator).to(self.labels.device)
        for start in range(0, self.batches * self.batch, self.batch):
            index = order[start:start + self.batch]
            yield self.inputs[index], self.labels[index]


def make_model(work: Workload, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(SEED)
    model = work.build().to(device)
    return model.to(memory_format=torch.channels_last) if work.channels_last else model


def make_optimizer(work: Workload, model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=work.lr, momentum=work.momentum)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- contenders ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fit:
    """One fit to make: ``epochs`` epochs of ``batches`` steps, in the folder ``tmp``."""

    work: Workload
    data: Data
    device: torch.device
    batches: int  # per epoch
    epochs: int
    tmp: Path
    watch_syncs: bool = False  # count the device synchronisations of the timed part

    @property
    def steps(self) -> int:
        return self.batches * self.epochs

    def loader(self) -> DeviceLoader:
        return DeviceLoader(self.data, self.work.batch, self.batches)


@dataclass
class Outcome:
    seconds: float
    steps: int
    train_loss: float  # mean over the last epoch's batches
    train_accuracy: float  # over the last epoch's samples
    model: torch.nn.Module


# A contender makes its model, optimizer and loader (untimed), then times its whole fit.
Contender = Callable[[Fit], Outcome]


def start_clock(fit: Fit) -> float:
    """Collect garbage, wait for the device, then read the clock (and from here count synchronisations)."""
    gc.collect()
    synchronize(fit.device)
    if fit.watch_syncs:
        torch.cuda.set_sync_debug_mode("warn")
    return time.perf_counter()


def stop_clock(fit: Fit, start: float) -> float:
    """Seconds since ``start``, once the device has done all it was given."""
    if fit.watch_syncs:
        torch.cuda.set_sync_debug_mode("default")
    synchronize(fit.device)
    return time.perf_counter() - start


def hand_loop(fit: Fit) -> Outcome:
    device, work = fit.device, fit.work
    model = make_model(work, device)
    optimizer = make_optimizer(work, model)
    loss_fn = torch.nn.CrossEntropyLoss()
    loader = fit.loader()
    precision = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if work.amp else contextlib.nullcontext
    start = start_clock(fit)
    model.train()
    for _ in range(fit.epochs):
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        for inputs, labels in loader:
            with precision():
                output = model(inputs)
                loss = loss_fn(output, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
            correct += (output.argmax(dim=1) == labels).sum()
        train_loss, train_accuracy = loss_sum.item() / len(loader), correct.item() / (len(loader) * work.batch)
    elapsed = stop_clock(fit, start)
    return Outcome(elapsed, fit.steps, train_loss, train_accuracy, model)


def epochal_trainer(**options: Any) -> Contender:
    def contender(fit: Fit) -> Outcome:
        model = make_model(fit.work, fit.device)
        optimizer = make_optimizer(fit.work, model)
        loader = fit.loader()
        start = start_clock(fit)
        trainer = epochal.Trainer(model, optimizer, loss_fn=torch.nn.CrossEntropyLoss(), train_data=loader,
                                  metrics=["accuracy"], max_epochs=fit.epochs, device=fit.device, amp=fit.work.amp,
                                  project="bench-gpu", store=fit.tmp / "store", **options)
        trainer.fit()
        elapsed = stop_clock(fit, start)
        trainer.run.store.close()
        last = trainer.history[-1]["train"]
        steps = sum(epoch["train"].batches for epoch in trainer.history)
        return Outcome(elapsed, steps, last.loss_mean, last.metrics["accuracy"], model)

    return contender


def load_lightning() -> SimpleNamespace | None:
    """``lightning`` (or the older ``pytorch_lightning`` package), quietened; None if neither is installed."""
    imported = import_lightning()
    if imported is None:
        return None
    pl, package = imported
    warnings.filterwarnings("ignore", message=".*is not supported by the model summary.*")  # bf16-mixed

    class LitModule(pl.LightningModule):
        def __init__(self, net: torch.nn.Module, work: Workload, log_loss: bool) -> None:
            super().__init__()
            self.net, self.work, self.log_loss = net, work, log_loss
            self.loss_fn = torch.nn.CrossEntropyLoss()
            self.train_loss, self.train_accuracy = float("nan"), float("nan")

        def on_train_epoch_start(self) -> None:
            self.loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
            self.correct = torch.zeros((), dtype=torch.int64, device=self.device)
            self.batches = 0

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            inputs, labels = batch
            output = self.net(inputs)
            loss = self.loss_fn(output, labels)
            self.loss_sum += loss.detach()
            self.correct += (output.argmax(dim=1) == labels).sum()
            self.batches += 1
            if self.log_loss:
                self.log("train/loss", loss)
            return loss

        def on_train_epoch_end(self) -> None:
            self.train_loss = self.loss_sum.item() / self.batches
            self.train_accuracy = self.correct.item() / (self.batches * self.work.batch)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return make_optimizer(self.work, self.net)

    version = getattr(sys.modules.get(package), "__version__", "?")
    return SimpleNamespace(pl=pl, LitModule=LitModule, package=package, version=version, logger_names=set())


def lightning_trainer(lit: SimpleNamespace, bare: bool) -> Contender:
    options = (
        {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False, "enable_model_summary": False}
        if bare else {}
    )

    def contender(fit: Fit) -> Outcome:
        net = make_model(fit.work, fit.device)
        module = lit.LitModule(net, fit.work, log_loss=not bare)
        loader = fit.loader()
        if fit.device.type == "cuda":
            placement = {"accelerator": "gpu", "devices": [fit.device.index or 0]}
        else:
            placement = {"accelerator": "cpu", "devices": 1}
        precision = "bf16-mixed" if fit.work.amp else "32-true"
        start = start_clock(fit)
        trainer = lit.pl.Trainer(max_epochs=fit.epochs, precision=precision, default_root_dir=fit.tmp,
                                 **placement, **options)
        trainer.fit(module, train_dataloaders=loader)
        elapsed = stop_clock(fit, start)
        lit.logger_names.update(type(logger).__name__ for logger in trainer.loggers)
        return Outcome(elapsed, trainer.global_step, module.train_loss, module.train_accuracy, net)

    return contender


def make_contenders(names: list[str]) -> tuple[dict[str, Contender], SimpleNamespace | None]:
    contenders: dict[str, Contender] = {}
    lit = load_lightning() if any(n.startswith("lightning") for n in names) else None
    for name in names:
        if name == "hand":
            contenders[name] = hand_loop
        elif name == "epochal":
            contenders[name] = epochal_trainer()
        elif name == "epochal-bare":
            contenders[name] = epochal_trainer(**BARE)
        elif lit is not None:
            contenders[name] = lightning_trainer(lit, bare=name == "lightning-bare")
    return contenders, lit


# -- measuring ------------------------------------------------------------------------------------------------


@dataclass
class Measured:
    """Per contender: the seconds of each repetition at both lengths, the longer fits' first outcome, failures."""

    short: dict[str, list[float]] = field(default_factory=dict)  # 2 epochs of N/2 steps
    long: dict[str, list[float]] = field(default_factory=dict)  # 2 epochs of N steps
    first: dict[str, Outcome] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


def lengths_of(work: Workload, data: Data, device: torch.device, steps: int) -> tuple[Fit, Fit]:
    """The two fits timed: 2 epochs of N/2 steps (N in all) and 2 epochs of N steps (2N in all)."""
    return (Fit(work, data, device, steps // EPOCHS, EPOCHS, Path()),
            Fit(work, data, device, 2 * steps // EPOCHS, EPOCHS, Path()))


def run_quietly(contender: Contender, fit: Fit) -> Outcome:
    """One fit in a fresh temporary directory, its standard output captured."""
    with tempfile.TemporaryDirectory(prefix="epochal-bench-gpu-") as tmp, contextlib.redirect_stdout(io.StringIO()):
        return contender(replace(fit, tmp=Path(tmp)))


def _error_tail() -> str:
    return "\n".join(traceback.format_exc().rstrip().splitlines()[-ERROR_LINES:])


def measure(contenders: dict[str, Contender], work: Workload, data: Data, device: torch.device, steps: int,
            repeat: int, began: float) -> Measured:
    """Warm every contender up, then time each at both lengths ``repeat`` times, forwards then backwards.

    A contender that fails is reported and not run again.
    """
    measured = Measured({n: [] for n in contenders}, {n: [] for n in contenders})
    warm = Fit(work, data, device, min(WARMUP_STEPS, steps // EPOCHS), EPOCHS, Path())
    for name, contender in contenders.items():
        try:
            run_quietly(contender, warm)
        except Exception:  # noqa: BLE001 - the others still run; the table shows the error
            measured.failures[name] = "in the warm-up:\n" + _error_tail()
    print(f"  warmed up every contender on {EPOCHS} epochs of {warm.batches} steps (untimed) at "
          f"{time.perf_counter() - began:.1f} s", flush=True)
    lengths = lengths_of(work, data, device, steps)
    for rep in range(repeat):
        for name in list(contenders) if rep % 2 == 0 else list(reversed(contenders)):
            if name in measured.failures:
                continue
            try:
                outcomes = [run_quietly(contenders[name], fit) for fit in lengths]
            except Exception:  # noqa: BLE001
                measured.failures[name] = f"in repetition {rep + 1}:\n" + _error_tail()
                print(f"  repetition {rep + 1}/{repeat}  {name:<14} failed; not run again", flush=True)
                continue
            for outcome, fit in zip(outcomes, lengths):
                if outcome.steps != fit.steps:
                    measured.failures[name] = f"made {outcome.steps} steps, not {fit.steps}"
            measured.short[name].append(outcomes[0].seconds)
            measured.long[name].append(outcomes[1].seconds)
            if rep == 0:
                measured.first[name] = outcomes[1]
            print(f"  repetition {rep + 1}/{repeat}  {name:<14} {lengths[0].steps:>6,} steps {outcomes[0].seconds:8.3f} s"
                  f"  {lengths[1].steps:>6,} steps {outcomes[1].seconds:8.3f} s   (at {time.perf_counter() - began:6.1f} s)",
                  flush=True)
    return measured


def weight_diff(model: torch.nn.Module, reference: torch.nn.Module) -> float:
    return max(float((a.detach().float() - b.detach().float()).abs().max())
               for a, b in zip(model.parameters(), reference.parameters()))


@dataclass
class Row:
    """One line of a workload's table: medians over the repetitions."""

    contender: str
    description: str
    ms_per_step: float | None = None  # (t(2N) - t(N)) / N
    step_overhead_pct: float | None = None  # ms/step over the hand loop's
    fixed_ms: float | None = None  # t(N) - N x per-step
    fit_s: float | None = None  # the whole fit of 2N steps
    fit_overhead_pct: float | None = None  # over the hand loop's whole fit of 2N steps
    spread_pct: float | None = None  # of ms/step: (largest - smallest) / median over the repetitions, in %
    train_loss: float | None = None  # last epoch of the first 2N-step fit, as the contender computed it
    train_accuracy: float | None = None
    max_weight_diff: float | None = None  # largest |w - w_hand| after that fit
    notes: list[str] = field(default_factory=list)


def make_rows(measured: Measured, steps: int) -> list[Row]:
    def per_step(name: str) -> list[float]:
        return [(long - short) / steps for short, long in zip(measured.short[name], measured.long[name])]

    hand = measured.long.get("hand") and "hand" not in measured.failures
    hand_step = statistics.median(per_step("hand")) if hand else None
    hand_fit = statistics.median(measured.long["hand"]) if hand else None
    rows = []
    for name in measured.short:
        row = Row(name, CONTENDERS[name])
        rows.append(row)
        if name in measured.failures:
            row.notes.append("failed " + measured.failures[name].replace("\n", "\n      "))
            continue
        steps_s = per_step(name)
        row.ms_per_step = statistics.median(steps_s) * 1e3
        row.fixed_ms = statistics.median(short - steps * step for short, step in zip(measured.short[name], steps_s)) * 1e3
        row.fit_s = statistics.median(measured.long[name])
        row.spread_pct = (max(steps_s) - min(steps_s)) / abs(statistics.median(steps_s)) * 100
        first = measured.first[name]
        row.train_loss, row.train_accuracy = first.train_loss, first.train_accuracy
        if name != "hand" and hand:
            row.step_overhead_pct = (row.ms_per_step / (hand_step * 1e3) - 1.0) * 100
            row.fit_overhead_pct = (row.fit_s / hand_fit - 1.0) * 100
            row.max_weight_diff = weight_diff(first.model, measured.first["hand"].model)
    return rows


def _cell(value: float | None, form: str) -> str:
    return "-" if value is None else format(value, form)


def print_table(rows: list[Row], steps: int) -> None:
    headers = ("contender", "ms/step", "overhead", "fixed ms", f"fit of {2 * steps:,} (s)", "overhead", "spread",
               "train loss", "train acc", "max |w - w_hand|")
    lines = [(row.description if row.ms_per_step is not None else f"{row.description} (failed)",
              _cell(row.ms_per_step, ".3f"), _cell(row.step_overhead_pct, "+.1f") + "%" * (row.step_overhead_pct is not None),
              _cell(row.fixed_ms, ".0f"), _cell(row.fit_s, ".3f"),
              _cell(row.fit_overhead_pct, "+.1f") + "%" * (row.fit_overhead_pct is not None),
              _cell(row.spread_pct, ".1f") + "%" * (row.spread_pct is not None),
              _cell(row.train_loss, ".4f"), _cell(row.train_accuracy, ".4f"), _cell(row.max_weight_diff, ".1e"))
             for row in rows]
    print_columns(headers, lines)
    print(f"  ms/step = (t({2 * steps:,} steps) - t({steps:,} steps)) / {steps:,}, both 2 epochs; fixed = t({steps:,}) - "
          f"{steps:,} x ms/step; fit = the whole fit of {2 * steps:,} steps;\n  overheads over the hand loop's; "
          "spread = (largest - smallest) / median of ms/step over the repetitions; train loss and accuracy of the "
          "last epoch\n  as each contender computed them, and the weights, after the first repetition's longer fit")
    for row in rows:
        for note in row.notes:
            print(f"  {row.description}: {note}")


# -- host-device synchronisations ----------------------------------------------------------------------------


@dataclass
class Syncs:
    """Synchronising calls of one-epoch fits of N/2 and N steps, and where the longer one made them."""

    contender: str
    short: int
    long: int
    per_step: float
    fixed: float
    sites: dict[str, int]  # "file:line  code" -> calls, in the fit of N steps


def _site(warning: warnings.WarningMessage) -> str:
    """``epochal/train/trainer.py:412  value = loss.item() ...``: where in whose code."""
    parts = Path(warning.filename).parts
    if "epochal" in parts:
        where = "/".join(parts[len(parts) - 1 - parts[::-1].index("epochal"):])
    elif "site-packages" in parts:
        where = "/".join(parts[parts.index("site-packages") + 1:])
    else:
        where = parts[-1] if parts else "?"
    code = linecache.getline(warning.filename, warning.lineno).strip()
    return f"{where}:{warning.lineno}  {code[:70]}"


def count_syncs(contender: Contender, fit: Fit) -> Counter:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            run_quietly(contender, fit)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return Counter(_site(w) for w in caught if "synchroniz" in str(w.message).lower())


def measure_syncs(contenders: dict[str, Contender], work: Workload, data: Data, device: torch.device,
                  steps: int) -> list[Syncs]:
    """One-epoch fits of N/2 and N steps under ``torch.cuda.set_sync_debug_mode("warn")`` (the timed part only)."""
    found = []
    for name in SYNC_CONTENDERS:
        if name not in contenders:
            continue
        counted = [count_syncs(contenders[name], Fit(work, data, device, batches, 1, Path(), watch_syncs=True))
                   for batches in (steps // 2, steps)]
        short, long = sum(counted[0].values()), sum(counted[1].values())
        per_step = (long - short) / (steps - steps // 2)
        found.append(Syncs(name, short, long, per_step, short - per_step * (steps // 2),
                           dict(counted[1].most_common())))
    return found


def print_syncs(syncs: list[Syncs], steps: int) -> None:
    print("\nHost-device synchronisations of a one-epoch fit (torch.cuda.set_sync_debug_mode('warn'), the timed "
          "part only):")
    headers = ("contender", f"{steps // 2:,} steps", f"{steps:,} steps", "per step", "fixed")
    print_columns(headers, [(CONTENDERS[s.contender], f"{s.short:,}", f"{s.long:,}", f"{s.per_step:.2f}",
                             f"{s.fixed:.0f}") for s in syncs])
    for s in syncs:
        if not s.sites:
            continue
        print(f"  {CONTENDERS[s.contender]}, {steps:,} steps, where:")
        for site, calls in list(s.sites.items())[:SYNC_SITES_SHOWN]:
            print(f"    {calls:6,}  {site}")
        if len(s.sites) > SYNC_SITES_SHOWN:
            print(f"    ... and {len(s.sites) - SYNC_SITES_SHOWN} more places")


# -- report and main ------------------------------------------------------------------------------------------


def check_targets(rows: dict[str, list[Row]], on_gpu: bool) -> list[Target]:
    targets = []
    for workload in TARGET_WORKLOADS:
        row = next((r for r in rows.get(workload, []) if r.contender == "epochal"), None)
        for what, value in (("per step", None if row is None else row.step_overhead_pct),
                            ("whole fit", None if row is None else row.fit_overhead_pct)):
            label = f"{workload}: {CONTENDERS['epochal']}, {what}, <= {TARGET_OVERHEAD_PCT:g}% over the hand loop"
            if value is None:
                targets.append(Target(label, "not run", None))
            elif not on_gpu:
                targets.append(Target(label, f"{value:+.1f}% (CPU smoke test)", None))
            else:
                targets.append(Target(label, f"{value:+.1f}%", value <= TARGET_OVERHEAD_PCT))
    return targets


def versions(lit: SimpleNamespace | None) -> dict[str, str]:
    found = {"python": platform.python_version(), "epochal": epochal.__version__, "torch": torch.__version__}
    if torch.version.cuda:
        found["CUDA"] = torch.version.cuda
    if torch.backends.cudnn.is_available():
        found["cuDNN"] = str(torch.backends.cudnn.version())
    if lit is not None:
        found[lit.package] = lit.version
    return found


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} ({device})"
    return f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads), {platform.platform()}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS), metavar="NAME",
                        help=f"which to run, of {', '.join(WORKLOADS)} (default all)")
    parser.add_argument("--contenders", nargs="+", choices=list(CONTENDERS), default=list(CONTENDERS),
                        metavar="NAME", help=f"which to run, of {', '.join(CONTENDERS)} (default all; hand always "
                             "runs: it is the yardstick)")
    parser.add_argument("--steps", type=int, default=500,
                        help="N: fits of 2 epochs of N/2 steps and of 2 epochs of N steps are timed (default 500)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions; figures are medians (default 3)")
    parser.add_argument("--device", default="cuda", help="a CUDA device (default cuda), or cpu for a smoke test")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON here")
    args = parser.parse_args(argv)
    for name in ("steps", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.steps < 2 or args.steps % EPOCHS:
        parser.error(f"--steps must be a multiple of {EPOCHS} (the shorter fit is {EPOCHS} epochs of N/{EPOCHS} "
                     f"steps), got {args.steps}")
    try:
        args.device = torch.device(args.device)
    except RuntimeError as exc:
        parser.error(f"--device: {exc}")
    if args.device.type not in ("cuda", "cpu"):
        parser.error(f"--device must be a CUDA device or cpu, got {args.device}")
    args.workload = list(dict.fromkeys(args.workload))
    args.contenders = list(dict.fromkeys(["hand", *args.contenders]))  # the yardstick is always measured
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device, steps = args.device, args.steps
    on_gpu = device.type == "cuda"
    if on_gpu and not torch.cuda.is_available():
        print("gpu_overhead.py needs a CUDA device (torch.cuda.is_available() is False); nothing measured. "
              "--device cpu runs it on the CPU as a smoke test.")
        return 0
    began = time.perf_counter()
    torch.backends.cudnn.benchmark = True
    contenders, lit = make_contenders(args.contenders)
    print(f"GPU overhead on {device_name(device)}")
    print("  " + ", ".join(f"{k} {v}" for k, v in versions(lit).items()))
    print(f"  contenders: {', '.join(contenders)}; per workload, fits of {EPOCHS} epochs x {steps // EPOCHS:,} steps "
          f"and of {EPOCHS} epochs x {2 * steps // EPOCHS:,} steps; medians over {args.repeat} repetition(s)")
    if not on_gpu:
        print("  ON THE CPU: a smoke test of this script. The Trainer takes its CPU path here (it reads the loss "
              "every step); these figures say nothing about a GPU.")

    rows: dict[str, list[Row]] = {}
    results: dict[str, dict] = {}
    for name in args.workload:
        work = WORKLOADS[name]
        print(f"\n== {name}: {work.description}, on {device} ==", flush=True)
        if work.amp and on_gpu and not torch.cuda.is_bf16_supported():
            print(f"  skipped: {torch.cuda.get_device_name(device)} does not compute bfloat16")
            continue
        data = make_data(work, 2 * steps // EPOCHS * work.batch, device)
        synchronize(device)
        measured = measure(contenders, work, data, device, steps, args.repeat, began)
        rows[name] = make_rows(measured, steps)
        if lit is not None:
            for row in rows[name]:
                if row.contender == "lightning":
                    row.notes.append(f"its logger: {', '.join(sorted(lit.logger_names)) or 'none'}")
        print()
        print_table(rows[name], steps)
        syncs: list[Syncs] = []
        if on_gpu:
            syncs = measure_syncs({n: c for n, c in contenders.items() if n not in measured.failures}, work, data,
                                  device, steps)
            print_syncs(syncs, steps)
        results[name] = {
            "description": work.description,
            "rows": [asdict(row) for row in rows[name]],
            "seconds": {n: {f"{steps}_steps": measured.short[n], f"{2 * steps}_steps": measured.long[n]}
                        for n in measured.short},
            "syncs": [asdict(s) for s in syncs],
        }
        del data, measured
        gc.collect()
        if on_gpu:
            torch.cuda.empty_cache()

    targets = check_targets(rows, on_gpu)
    print_targets(targets)
    total = time.perf_counter() - began
    print(f"\nTotal time {total:.1f} s")

    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "settings": {"workloads": args.workload, "contenders": list(contenders), "steps": steps,
                         "epochs": EPOCHS, "repeat": args.repeat, "device": str(device)},
            "machine": {"device": device_name(device), "platform": platform.platform(), "versions": versions(lit)},
            "workloads": results,
            "targets": [asdict(t) for t in targets],
            "total_s": total,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"Results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
