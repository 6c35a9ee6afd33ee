"""Where a Trainer's fit stands inside an epoch, so that Ctrl-C at any point resumes exactly.

The loop moves a :class:`Position` forward at each well-defined point of an epoch: its start,
after ``on_epoch_start``, after each batch, after each stage, after ``on_eval_end``, once the
epoch is counted, and after ``on_epoch_end``. What lies before the position is done; a checkpoint
taken on Ctrl-C holds the position, and ``fit(resume=True)`` continues with exactly the next thing.

Ctrl-C itself is made to land on those points: during a fit the first press only asks the loop to
stop (:class:`Interrupts`), and the loop stops at the next point; a ``KeyboardInterrupt`` raised in a
hook lets the other callbacks of that hook run first. A second press stops at once; the checkpoint
then goes back to the last whole batch and undoes the torch random draws of the batch that was cut
(Python's and NumPy's global generators are not rolled back: reading them costs too much per batch).

A stage part-way is continued by drawing its data order again: the random states and loader
generators it started with are restored, the loader is iterated past the batches already done, and
then the random states at the cut are put back. Iterating a DataLoader draws from the global torch
generator (its base seed) even without shuffling, so this holds for validation as well as training.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from epochal.errors import CheckpointError
from epochal.train.callback import StageResult

PHASES = ("start", "stages", "evaluated", "ended")


@dataclass
class Progress:
    """A stage part-way: the sums of its finished batches and how to draw its data order again."""

    stage: str
    batches: int  # batches done
    samples: int
    loss_sum: torch.Tensor  # float64, over the batches done
    loss_squares: torch.Tensor
    start_rng: dict  # every random state just before the loader was iterated
    start_generators: dict  # the loaders' generator states then
    rng: dict  # every random state once the batches done were done
    metrics: dict  # the stage's MetricSet state
    grads: list | None = None  # gradients accumulated towards an optimizer step not yet taken

    _REQUIRED = ("stage", "batches", "samples", "loss_sum", "loss_squares", "start_rng", "start_generators", "rng",
                 "metrics")


@dataclass
class Position:
    """A well-defined point of an epoch; everything before it is done.

    phase: 'start' (nothing of epoch ``epoch`` done), 'stages' (``on_epoch_start`` done, the stages
    in ``results`` done, ``progress`` the one part-way if any), 'evaluated' (every stage and
    ``on_eval_end`` done), 'ended' (the epoch counted, its ``on_epoch_end`` not yet run).
    """

    phase: str
    epoch: int
    results: dict[str, StageResult] = field(default_factory=dict)
    progress: Progress | None = None
    stop: str | None = None  # a stop asked for (early stopping) that the fit had not yet acted on

    def state_dict(self) -> dict:
        return {
            "phase": self.phase, "epoch": self.epoch, "stop": self.stop,
            "results": {stage: dataclasses.asdict(result) for stage, result in self.results.items()},
            "progress": None if self.progress is None else dataclasses.asdict(self.progress),
        }

    @classmethod
    def from_state(cls, state: Mapping) -> Position:
        _require(state, ("phase", "epoch", "stop", "results", "progress"), "the trainer's position")
        if state["phase"] not in PHASES:
            raise CheckpointError(f"the trainer's position has phase {state['phase']!r}; known phases: {PHASES}")
        progress = state["progress"]
        if progress is not None:
            _require(progress, Progress._REQUIRED, "the trainer's part-way stage")
            progress = Progress(**{f.name: progress.get(f.name) for f in dataclasses.fields(Progress)})
        results = {stage: StageResult(**result) for stage, result in state["results"].items()}
        return cls(state["phase"], int(state["epoch"]), results, progress, state["stop"])


def _require(state: Any, keys: tuple[str, ...], what: str) -> None:
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{what} in the checkpoint is a {type(state).__name__}, expected a dict")
    missing = [key for key in keys if key not in state]
    if missing:
        raise CheckpointError(f"{what} in the checkpoint lacks {', '.join(missing)}; it has {', '.join(state)}")


# -- Ctrl-C ------------------------------------------------------------------------------------------


class Interrupts:
    """During a fit, the first Ctrl-C asks the loop to stop at its next well-defined point.

    Installed only in the main thread and only over Python's default handler, so a handler of the
    program's own is left alone. A second press raises ``KeyboardInterrupt`` at once (``forced``).
    """

    def __init__(self) -> None:
        self.requested = False
        self.forced = False
        self.active = False
        self._previous: Any = None

    def __enter__(self) -> Interrupts:
        self.requested = self.forced = False
        self.active = True
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc: object) -> None:
        self.active = False
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _on_sigint(self, signum: int, frame: object) -> None:
        if self.requested:
            self.forced = True
            raise KeyboardInterrupt
        self.requested = True
        # os.write, not print: this may run in the middle of another write to stderr (a progress bar).
        try:
            os.write(2, b"\nepochal: Ctrl-C: stopping at the end of this batch or hook to save a checkpoint; "
                        b"press Ctrl-C again to stop at once\n")
        except OSError:
            pass


# -- random states and data order ---------------------------------------------------------------------


def batch_rng(device: torch.device) -> tuple:
    """The torch random states a batch draws from (cheap enough to take before every batch)."""
    if device.type == "cuda":
        return torch.get_rng_state(), torch.cuda.get_rng_state(device)
    return torch.get_rng_state(), None


def set_batch_rng(state: tuple, device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def generators(loader: Any) -> list[torch.Generator]:
    """The torch generators a loader, its sampler and its batch sampler draw from."""
    found = []
    for owner in (loader, getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None),
                  getattr(getattr(loader, "batch_sampler", None), "sampler", None)):
        generator = getattr(owner, "generator", None)
        if isinstance(generator, torch.Generator) and all(generator is not g for g in found):
            found.append(generator)
    return found


def generator_states(loaders: Mapping[str, Any]) -> dict[str, list[torch.Tensor]]:
    return {stage: [g.get_state() for g in generators(loader)] for stage, loader in loaders.items()}


def set_generator_states(loaders: Mapping[str, Any], states: Mapping[str, list]) -> None:
    for stage, loader in loaders.items():
        for generator, state in zip(generators(loader), states.get(stage, [])):
            generator.set_state(state)
