"""The cost of the per-sample ledger: a hand-written loop with ``run.record_samples`` against the same loop
without it, and a fit through ``epochal.Trainer`` with ``callbacks=[epochal.SampleLedger()]`` against the same
fit without it.

    .venv/bin/python bench/ledger_overhead.py
    .venv/bin/python bench/ledger_overhead.py --samples 20000 --epochs 3 --repeat 3 --device cuda
    .venv/bin/python bench/ledger_overhead.py --variant trainer

Both loops train the same MLP (64-256-256-10, ReLU) with SGD on the same synthetic data (20,000
Gaussian samples of 10 classes in 64-D, a shuffling ``DataLoader`` over a ``TensorDataset`` that also
yields each sample's index, batch 128), from the same seed. Both log the loss with ``run.log`` and call
``run.step()`` / ``run.epoch()``, so the difference is ``record_samples`` alone, its writer thread and the
epoch files included: each repetition ends with ``run.finish()``, which waits for the last file. The
figure is the median of ``--repeat`` repetitions, the two contenders alternating (A B, then B A, ...)
so that drift of the machine touches both alike; the issue's target is at most 5% over the plain loop.
The Trainer's fits are its defaults (a checkpoint every epoch, CSV tables) less what prints (progress bars,
epoch tables, the summary); their data set yields no index (the callback follows the loader's sampler).
Beside the wall time: the process's CPU time (every thread's, the ledger's writer included), and the
direct cost, the CPU time the training thread spends inside ``record_samples`` (in the Trainer, in
``SampleLedger``'s hook) plus the writer thread's CPU time, as a share of the plain fit's CPU time: on a
machine that other programs keep busy, the whole-loop times vary by more than the ledger costs, and that
ratio (CPU time, which waiting for a core does not inflate) is what stays put.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import torch

import epochal


def data(samples: int, seed: int = 0) -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(10, 64, generator=g) * 1.5
    y = torch.randint(0, 10, (samples,), generator=g)
    x = means[y] + torch.randn(samples, 64, generator=g)
    return torch.utils.data.TensorDataset(torch.arange(samples), x, y)


def fit(dataset: torch.utils.data.TensorDataset, *, epochs: int, batch: int, ledger: bool, device: str,
        store: Path) -> tuple[float, float, float]:
    """Wall and CPU seconds (this process's, all threads) to train and finish the run, with or without the
    ledger; and with it, the CPU seconds spent in ``record_samples`` plus those of its writer thread."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                                torch.nn.ReLU(), torch.nn.Linear(256, 10)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    run = epochal.start("bench-ledger", "ledger" if ledger else "plain", store=store)
    started, cpu, inside = time.perf_counter(), time.process_time(), 0.0
    for _ in range(epochs):
        for idx, x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            logits = model(x)
            loss = torch.nn.functional.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if ledger:
                before = time.thread_time()
                run.record_samples(idx, logits, y)
                inside += time.thread_time() - before
            run.log({"train/loss": loss})
            run.step()
        run.epoch()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    inside += _writer_cpu()
    run.finish()
    return time.perf_counter() - started, time.process_time() - cpu, inside


def fit_trainer(dataset: torch.utils.data.TensorDataset, *, epochs: int, batch: int, ledger: bool, device: str,
                store: Path) -> tuple[float, float, float]:
    """As :func:`fit`, through ``epochal.Trainer`` (with ``SampleLedger`` or not)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                                torch.nn.ReLU(), torch.nn.Linear(256, 10))
    _, x, y = dataset.tensors
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    trainer = epochal.Trainer(
        model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), loss_fn=torch.nn.CrossEntropyLoss(),
        train_data=loader, max_epochs=epochs, device=device, callbacks=[_TimedLedger()] if ledger else [],
        project="bench-ledger", name="trainer-ledger" if ledger else "trainer-plain", store=store,
        progress=False, epoch_table=False, summary=False,
    )
    started, cpu = time.perf_counter(), time.process_time()
    writer = [0.0]

    class _Writer(epochal.Callback):  # the writer thread's CPU time, read before the run's end stops it
        def on_fit_end(self, trainer):
            writer[0] = _writer_cpu()

    trainer.callbacks.append(_Writer())
    trainer.fit()
    inside = sum(c.inside for c in trainer.callbacks if isinstance(c, _TimedLedger))
    return time.perf_counter() - started, time.process_time() - cpu, writer[0] + inside


class _TimedLedger(epochal.SampleLedger):
    """SampleLedger, keeping the CPU seconds its batch hook takes on the training thread."""

    inside = 0.0

    def on_batch_end(self, trainer, batch) -> None:
        before = time.thread_time()
        super().on_batch_end(trainer, batch)
        self.inside += time.thread_time() - before


def _writer_cpu() -> float:
    """CPU seconds of the ledger's writer thread so far (Linux; 0 elsewhere)."""
    for thread in threading.enumerate():
        if thread.name.startswith("epochal-ledger") and hasattr(time, "pthread_getcpuclockid"):
            return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default: 2)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--variant", choices=["loop", "trainer", "both"], default="both")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = data(args.samples)
    for variant in ("loop", "trainer") if args.variant == "both" else (args.variant,):
        measure(fit if variant == "loop" else fit_trainer, variant, dataset, args)


def measure(run_fit, variant: str, dataset: torch.utils.data.TensorDataset, args: argparse.Namespace) -> None:
    times: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "store"
        run_fit(dataset, epochs=1, batch=args.batch, ledger=True, device=args.device, store=store)  # warm up
        for repetition in range(args.repeat):
            for ledger in ((False, True) if repetition % 2 == 0 else (True, False)):
                times[ledger].append(run_fit(dataset, epochs=args.epochs, batch=args.batch, ledger=ledger,
                                             device=args.device, store=store))
    steps = args.epochs * -(-args.samples // args.batch)
    print(f"{variant}: {args.samples:,} samples x {args.epochs} epochs, batch {args.batch} ({steps:,} steps), "
          f"{args.device}, {args.threads} threads, median of {args.repeat}")
    print(f"{'loop':30s}{'wall s':>8s}{'per step':>11s}{'overhead':>10s}{'CPU s':>8s}{'overhead':>10s}")
    plain = [statistics.median(t[k] for t in times[False]) for k in (0, 1)]
    names = (("plain (run.log only)", "with run.record_samples") if variant == "loop"
             else ("Trainer", "Trainer + SampleLedger"))
    for name, ledger in zip(names, (False, True)):
        wall, cpu = (statistics.median(t[k] for t in times[ledger]) for k in (0, 1))
        over = ("", "") if not ledger else (f"{wall / plain[0] - 1:.1%}", f"{cpu / plain[1] - 1:.1%}")
        print(f"{name:30s}{wall:8.2f}{wall / steps * 1e3:9.3f}ms{over[0]:>10s}{cpu:8.2f}{over[1]:>10s}")
    best = [min(t[k] for t in times[True]) / min(t[k] for t in times[False]) - 1 for k in (0, 1)]
    print(f"fastest repetition against fastest: wall {best[0]:+.1%}, CPU {best[1]:+.1%} (noise only ever adds time)")
    direct = statistics.median(t[2] / p[1] for t, p in zip(times[True], times[False]))
    what = "record_samples" if variant == "loop" else "SampleLedger's batch hook"
    print(f"direct cost, CPU time in {what} + the ledger's writer thread: {direct:.1%} of the plain fit's CPU time "
          "(median over the paired repetitions; what a busy shared machine disturbs least)")
    for ledger in (False, True):
        print(f"wall s, {'ledger' if ledger else 'plain '}: " + ", ".join(f"{t[0]:.2f}" for t in times[ledger]))


if __name__ == "__main__":
    main()
