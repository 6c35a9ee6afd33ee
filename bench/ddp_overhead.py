"""DDP overhead: epochal's Trainer under DistributedDataParallel versus a hand-written DDP loop.

Run it (it starts ``torchrun`` itself, once per contender and repetition)::

    .venv/bin/python bench/ddp_overhead.py
    .venv/bin/python bench/ddp_overhead.py --repeat 5 --json bench/results/ddp.json
    .venv/bin/python bench/ddp_overhead.py --contenders hand epochal-bare --steps 100

Every contender runs on 2 CPU ranks with the gloo backend, started by PyTorch's own
``torchrun --standalone --nproc_per_node=2`` (as ``python -m torch.distributed.run``), each rank
with ``OMP_NUM_THREADS=1``. Every rank trains the same MLP (784-256-256-10, ReLU; built after
``torch.manual_seed(0)``) with SGD (lr 0.05) at batch 64 per rank for 2 epochs, on the same
synthetic data from a generator with a fixed seed: 10 classes, each a unit Gaussian cloud around
its own random centre (so that valid accuracy means something: about 0.8 after 500 steps); by
default 32,000 training samples (``--steps 500``: 250 steps per rank and epoch, 500 in all) and
4,000 valid samples.
The contenders:

1. ``hand``: the worker calls ``init_process_group("gloo")``, wraps the model in
   ``DistributedDataParallel``, shards the training set with ``DistributedSampler(shuffle=True,
   seed=0)`` and ``set_epoch(epoch)``, and after every epoch evaluates valid accuracy exactly (each
   rank takes every 2nd valid sample, without padding; correct and sample counts are all-reduced), as
   the Trainer evaluates after every epoch; the last epoch's mean train loss is all-reduced too;
2. ``epochal``: ``epochal.Trainer`` with its default callbacks (progress bars, epoch table, CSV
   tables, checkpoints, summary), given the plain model and plain DataLoaders (a shuffling one for
   training, batch 256 for validation) and ``metrics=["accuracy"]``: the Trainer itself notices
   torchrun's environment, starts the process group, wraps the model in DDP, shards the data and
   reduces the metrics;
3. ``epochal-bare``: the same with ``progress``, ``epoch_table``, ``csv_tables``, ``checkpoint``
   and ``summary`` switched off.

Timed: the training (both epochs and their evaluations) on every rank, the slowest rank's time
counting; for the Trainer also its construction and everything ``fit()`` does (opening the run,
writing checkpoints, finishing). Not timed: starting torchrun and the ranks, imports, making the data
and the model, and a warm-up of a few steps that each rank first runs through the same code (which
also starts the process group: the hand loop's ``init_process_group``, the Trainer's own in the
warm-up fit). Every figure is the median of ``--repeat`` repetitions; each runs in a fresh temporary
directory (``EPOCHAL_DIR`` points there), and the repetitions go round the contenders forwards and
then backwards. On Linux each repetition also measures how busy other processes kept the CPUs.

The table also shows the final train loss (mean over the last epoch's batches, all ranks) and the
valid accuracy as each contender computed them, so one sees that they trained the same thing (the
Trainer's DistributedSampler takes the training loader's seed, the hand loop's, so they shard alike).
A contender that fails (or makes another number of steps per rank than the hand loop, as a Trainer
that did not distribute would) is reported in the table, with the tail of its error, and the others
still run.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from targets import busy_cpu_seconds, print_columns  # bench/targets.py, beside this script
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset, TensorDataset

# epochal is imported where its contenders run, so that a checkout whose epochal is broken still
# measures the hand loop and reports the failure in the table.

CONTENDERS = {
    "hand": "hand-written DDP loop",
    "epochal": "epochal Trainer (defaults)",
    "epochal-bare": "epochal Trainer (bare)",
}
BARE = {"progress": False, "epoch_table": False, "csv_tables": False, "checkpoint": False, "summary": False}
RANKS = 2
LR = 0.05
SEED = 0
FEATURES = 784
CLASSES = 10
CENTRE_SCALE = 0.1  # the classes' centres, per feature; the clouds' spread is 1
BATCH = 64  # per rank
VALID_BATCH = 256
VALID_SAMPLES = 4_000
WARMUP_STEPS = 10  # per rank, untimed
BUSY_ELSEWHERE = 0.1  # CPUs' worth of other processes' work that marks a repetition as disturbed
STOP_GRACE_S = 30  # seconds torchrun gets to stop its ranks after a time-out
ERROR_LINES = 12  # lines of a failed contender's error shown under the table


# == the workers (one per rank, started by torchrun) ==================================================


@dataclass(frozen=True)
class Setup:
    """What every rank of every contender trains on."""

    train: TensorDataset
    valid: TensorDataset
    epochs: int


def make_setup(train_samples: int, valid_samples: int, epochs: int) -> Setup:
    """The same data on every rank and for every contender: a fixed seed, a Gaussian cloud per class."""
    generator = torch.Generator().manual_seed(SEED)
    centres = torch.randn(CLASSES, FEATURES, generator=generator) * CENTRE_SCALE
    labels = torch.randint(0, CLASSES, (train_samples + valid_samples,), generator=generator)
    inputs = torch.randn(train_samples + valid_samples, FEATURES, generator=generator) + centres[labels]
    return Setup(TensorDataset(inputs[:train_samples], labels[:train_samples]),
                 TensorDataset(inputs[train_samples:], labels[train_samples:]), epochs)


def make_model() -> torch.nn.Module:
    torch.manual_seed(SEED)
    return torch.nn.Sequential(
        torch.nn.Linear(FEATURES, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, CLASSES),
    )


@dataclass
class Outcome:
    """What one rank's run gives back; rank 0 writes it as the contender's result."""

    seconds: float  # the slowest rank's, when a process group is there to ask
    steps: int  # optimizer steps on this rank
    train_loss: float
    valid_accuracy: float
    world_size: int  # of the process group after the run; 1 without one


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", "0"))


def _start_together() -> None:
    if dist.is_initialized():
        dist.barrier()


def _slowest(seconds: float) -> tuple[float, int]:
    """The slowest rank's seconds and the world size, if a process group is there; else this rank's and 1."""
    if not dist.is_initialized():
        return seconds, 1
    slowest = torch.tensor([seconds], dtype=torch.float64)
    dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
    return float(slowest), dist.get_world_size()


def hand_loop(setup: Setup) -> Outcome:
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    model = DistributedDataParallel(make_model())
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    sampler = DistributedSampler(setup.train, shuffle=True, seed=SEED)
    train = DataLoader(setup.train, batch_size=BATCH, sampler=sampler)
    valid = DataLoader(Subset(setup.valid, range(rank, len(setup.valid), world)), batch_size=VALID_BATCH)
    gc.collect()
    _start_together()
    start = time.perf_counter()
    steps = 0
    for epoch in range(setup.epochs):
        sampler.set_epoch(epoch)
        model.train()
        loss_sum, batches = torch.zeros((), dtype=torch.float64), 0
        for inputs, labels in train:
            loss = loss_fn(model(inputs), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
            batches += 1
        steps += batches
        model.eval()
        correct, count = 0, 0
        with torch.no_grad():
            for inputs, labels in valid:
                correct += int((model.module(inputs).argmax(dim=1) == labels).sum())
                count += len(labels)
        sums = torch.stack([loss_sum, torch.tensor(float(batches), dtype=torch.float64),
                            torch.tensor(float(correct), dtype=torch.float64),
                            torch.tensor(float(count), dtype=torch.float64)])
        dist.all_reduce(sums)
    elapsed = time.perf_counter() - start
    seconds, world = _slowest(elapsed)
    loss_total, batch_total, correct_total, count_total = sums.tolist()
    return Outcome(seconds, steps, loss_total / batch_total, correct_total / count_total, world)


def epochal_fit(setup: Setup, options: dict[str, Any]) -> Outcome:
    import epochal  # here, not at the top: see there

    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    train = DataLoader(setup.train, batch_size=BATCH, shuffle=True, generator=torch.Generator().manual_seed(SEED))
    valid = DataLoader(setup.valid, batch_size=VALID_BATCH)
    gc.collect()
    _start_together()  # from the second fit on, if the Trainer's process group outlives its fit
    start = time.perf_counter()
    trainer = epochal.Trainer(model, optimizer, loss_fn=torch.nn.CrossEntropyLoss(), train_data=train,
                              valid_data=valid, metrics=["accuracy"], max_epochs=setup.epochs, device="cpu",
                              project="bench-ddp", **options)
    trainer.fit()
    elapsed = time.perf_counter() - start
    store = getattr(trainer.run, "store", None)
    if store is not None:
        store.close()
    seconds, world = _slowest(elapsed)
    last = trainer.history[-1]
    # A pass's batches are counted over every rank, as its samples are: per rank, divide by the world size.
    steps = sum(epoch["train"].batches for epoch in trainer.history) // trainer.run.world_size
    return Outcome(seconds, steps, last["train"].loss_mean,
                   last["valid"].metrics["accuracy"], world)


def run_contender(name: str, setup: Setup) -> Outcome:
    return hand_loop(setup) if name == "hand" else epochal_fit(setup, BARE if name == "epochal-bare" else {})


def worker(args: argparse.Namespace) -> int:
    """One rank of one contender: warm up, train, and on rank 0 write the outcome to ``--out``."""
    try:
        steps_per_epoch = args.steps // args.epochs
        setup = make_setup(steps_per_epoch * BATCH * RANKS, VALID_SAMPLES, args.epochs)
        few = make_setup(WARMUP_STEPS * BATCH * RANKS, VALID_BATCH * RANKS, 1)
        with contextlib.redirect_stdout(io.StringIO()):
            run_contender(args.worker, few)
        outcome = run_contender(args.worker, setup)
        if _rank() == 0:
            args.out.write_text(json.dumps(asdict(outcome)) + "\n")
        if dist.is_initialized():
            dist.destroy_process_group()
    except BaseException:
        Path(f"{args.out}.rank{_rank()}.error").write_text(traceback.format_exc())
        raise
    return 0


# == the driver: starts torchrun, collects and prints ==================================================


@dataclass
class Failure:
    """A contender's repetition that gave no result."""

    repetition: int
    returncode: int | None  # None: timed out
    error: str  # the tail of its error


@dataclass
class Row:
    """One line of the result table: medians over the repetitions."""

    contender: str
    description: str
    steps: int | None = None  # optimizer steps per rank
    ms_per_step: float | None = None
    spread_pct: float | None = None  # (slowest - fastest) / median over the repetitions, in %
    overhead_pct: float | None = None  # ms/step over the hand loop's
    train_loss: float | None = None  # first repetition
    valid_accuracy: float | None = None  # first repetition
    notes: list[str] = field(default_factory=list)


@dataclass
class Measured:
    """Each contender's outcomes over the repetitions, its failures, and how busy other processes were."""

    outcomes: dict[str, list[Outcome]]
    failures: dict[str, list[Failure]]
    elsewhere: dict[str, list[float]]


def _own_cpu_seconds() -> float:
    """CPU seconds of this process and of the children it has waited for (torchrun, and through it the ranks)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + usage.ru_utime + usage.ru_stime


def _error_tail(out: Path, stderr: str) -> str:
    """The first rank's own traceback if a worker wrote one, else the end of torchrun's stderr."""
    written = sorted(out.parent.glob(out.name + ".rank*.error"))
    text = written[0].read_text() if written else stderr
    return "\n".join(text.rstrip().splitlines()[-ERROR_LINES:])


def launch(name: str, args: argparse.Namespace, repetition: int) -> Outcome | Failure:
    """One run of a contender under torchrun, in a fresh temporary directory."""
    with tempfile.TemporaryDirectory(prefix="epochal-bench-ddp-") as tmp:
        out = Path(tmp) / "result.json"
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={RANKS}",
                   str(Path(__file__).resolve()), "--worker", name, "--out", str(out),
                   "--steps", str(args.steps), "--epochs", str(args.epochs)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "EPOCHAL_DIR": str(Path(tmp) / "store")}
        torchrun = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            stdout, stderr = torchrun.communicate(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            # torchrun stops its ranks on SIGTERM (they run in sessions of their own: killing it would orphan them)
            torchrun.terminate()
            try:
                _, stderr = torchrun.communicate(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                torchrun.kill()
                _, stderr = torchrun.communicate()
            return Failure(repetition, None, f"timed out after {args.timeout:g} s\n" + _error_tail(out, stderr))
        if torchrun.returncode != 0 or not out.exists():
            return Failure(repetition, torchrun.returncode, _error_tail(out, stderr or stdout))
        return Outcome(**json.loads(out.read_text()))


def measure_all(names: list[str], args: argparse.Namespace, began: float) -> Measured:
    """Each contender ``--repeat`` times, forwards then backwards; one that failed is not run again."""
    measured = Measured({n: [] for n in names}, {n: [] for n in names}, {n: [] for n in names})
    for rep in range(args.repeat):
        for name in names if rep % 2 == 0 else list(reversed(names)):
            if measured.failures[name]:
                continue
            busy, ours, wall = busy_cpu_seconds(), _own_cpu_seconds(), time.perf_counter()
            result = launch(name, args, rep + 1)
            busy_after, ours_after, wall_after = busy_cpu_seconds(), _own_cpu_seconds(), time.perf_counter()
            elsewhere = None
            if busy is not None and busy_after is not None:
                ours = ours_after - ours
                elsewhere = max(0.0, (busy_after - busy) - ours) / (wall_after - wall)
                measured.elsewhere[name].append(elsewhere)
            others = "" if elsewhere is None else f", other processes busy {elsewhere:.2f} CPUs"
            if isinstance(result, Failure):
                measured.failures[name].append(result)
                what = "timed out" if result.returncode is None else f"failed (exit status {result.returncode})"
                print(f"  repetition {rep + 1}/{args.repeat}  {name:<13} {what}; not run again", flush=True)
                continue
            measured.outcomes[name].append(result)
            print(f"  repetition {rep + 1}/{args.repeat}  {name:<13} {result.seconds:7.3f} s   "
                  f"(torchrun {wall_after - wall:5.1f} s, at {wall_after - began:6.1f} s{others})", flush=True)
    return measured


def make_rows(measured: Measured, expected_steps: int) -> list[Row]:
    hand = measured.outcomes.get("hand") or []
    hand_ms = statistics.median(o.seconds / o.steps for o in hand) * 1e3 if hand else None
    rows = []
    for name, outcomes in measured.outcomes.items():
        row = Row(name, CONTENDERS[name])
        rows.append(row)
        for failure in measured.failures[name]:
            what = "timed out" if failure.returncode is None else f"exit status {failure.returncode}"
            row.notes.append(f"failed in repetition {failure.repetition} ({what}):\n" +
                             "\n".join("      " + line for line in failure.error.splitlines()))
        if not outcomes:
            continue
        ms = [o.seconds / o.steps * 1e3 for o in outcomes]
        row.steps = outcomes[0].steps
        row.ms_per_step = statistics.median(ms)
        row.spread_pct = (max(ms) - min(ms)) / row.ms_per_step * 100
        row.train_loss, row.valid_accuracy = outcomes[0].train_loss, outcomes[0].valid_accuracy
        if name != "hand" and hand_ms is not None and row.steps == expected_steps:
            row.overhead_pct = (row.ms_per_step / hand_ms - 1.0) * 100
        world = outcomes[0].world_size
        if row.steps != expected_steps:
            group = f"a process group of {world} ranks" if world > 1 else "no process group"
            row.notes.append(
                f"made {row.steps:,} steps per rank, not {expected_steps:,}, with {group} after the fit: it did not "
                f"train one model on {RANKS} shards of the data, so its figures do not compare with the hand loop's "
                "(no overhead shown)")
        elif world != RANKS:
            row.notes.append(
                "no process group was left after the fit, so its time is rank 0's own (not the slowest rank's), "
                "and it includes starting the process group again")
        disturbed = [x for x in measured.elsewhere[name] if x >= BUSY_ELSEWHERE]
        if disturbed:
            row.notes.append(f"{len(disturbed)} of {len(outcomes)} repetitions ran while other processes kept up "
                             f"to {max(disturbed):.2f} CPUs busy: its figures are less reliable")
    return rows


def print_table(rows: list[Row]) -> None:
    headers = ("contender", "steps/rank", "ms/step", "spread", "overhead", "train loss", "valid acc")
    lines = []
    for row in rows:
        if row.ms_per_step is None:
            lines.append((row.description, "failed", "-", "-", "-", "-", "-"))
            continue
        overhead = "-" if row.overhead_pct is None else f"{row.overhead_pct:+.1f}%"
        lines.append((row.description, f"{row.steps:,}", f"{row.ms_per_step:.3f}", f"{row.spread_pct:.1f}%",
                      overhead, f"{row.train_loss:.4f}", f"{row.valid_accuracy:.4f}"))
    print_columns(headers, lines)
    print("  ms/step = the slowest rank's seconds / its optimizer steps, median of the repetitions; spread = "
          "(slowest - fastest) / median;\n  overhead = ms/step over the hand loop's; train loss (last epoch, "
          "all ranks) and valid accuracy (whole valid set) as each contender computed them, first repetition")
    for row in rows:
        for note in row.notes:
            print(f"  {row.description}: {note}")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "torch": torch.__version__}
    try:
        import epochal  # here, not at the top: see there
        found["epochal"] = epochal.__version__
    except Exception as exc:  # noqa: BLE001 - a broken checkout still gets its table, failures and all
        found["epochal"] = f"not importable ({type(exc).__name__}: {exc})"
    return found


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="repetitions; figures are medians (default 3)")
    parser.add_argument("--steps", type=int, default=500,
                        help=f"optimizer steps per rank over all epochs (default 500: 32,000 samples at batch "
                             f"{BATCH} on {RANKS} ranks, 2 epochs)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs (default 2)")
    parser.add_argument("--contenders", nargs="+", choices=list(CONTENDERS), default=list(CONTENDERS),
                        metavar="NAME", help=f"which to run, of {', '.join(CONTENDERS)} (default all)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one torchrun may take (default 600)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON here")
    parser.add_argument("--worker", choices=list(CONTENDERS), help=argparse.SUPPRESS)  # set when torchrun starts us
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("repeat", "steps", "epochs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.steps % args.epochs:
        parser.error(f"--steps ({args.steps}) must be a multiple of --epochs ({args.epochs})")
    if args.worker is not None and args.out is None:
        parser.error("--worker needs --out")
    args.contenders = list(dict.fromkeys(args.contenders))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker is not None:
        return worker(args)
    began = time.perf_counter()
    train_samples = args.steps // args.epochs * BATCH * RANKS
    print(f"DDP overhead on {os.cpu_count()} CPUs, {RANKS} ranks (gloo, 1 thread each), {platform.platform()}")
    print("  " + ", ".join(f"{k} {v}" for k, v in versions().items()))
    print(f"  MLP {FEATURES}-256-256-{CLASSES}, SGD lr {LR:g}, batch {BATCH} per rank, {train_samples:,} samples x "
          f"{args.epochs} epochs = {args.steps:,} steps per rank, {VALID_SAMPLES:,} valid samples; figures are "
          f"medians over {args.repeat} repetition(s), each a fresh torchrun in a fresh temporary directory\n",
          flush=True)
    measured = measure_all(args.contenders, args, began)
    rows = make_rows(measured, args.steps)
    print()
    print_table(rows)
    if any(x >= BUSY_ELSEWHERE for values in measured.elsewhere.values() for x in values):
        print("  (other processes were busy during some repetitions: the figures are noisier than usual; run again "
              "on a quiet machine)")
    total = time.perf_counter() - began
    print(f"\nTotal time {total:.1f} s")

    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "settings": {"repeat": args.repeat, "steps": args.steps, "epochs": args.epochs, "ranks": RANKS,
                         "batch_per_rank": BATCH, "lr": LR, "train_samples": train_samples,
                         "valid_samples": VALID_SAMPLES, "contenders": args.contenders},
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "versions": versions()},
            "rows": [asdict(row) for row in rows],
            "outcomes": {name: [asdict(o) for o in outcomes] for name, outcomes in measured.outcomes.items()},
            "failures": {name: [asdict(f) for f in failures] for name, failures in measured.failures.items()},
            "other_processes_cpus": measured.elsewhere,
            "total_s": total,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"Results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
