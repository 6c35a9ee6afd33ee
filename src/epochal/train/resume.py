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

from epochal.checkpoint import rng_state, set_rng_state
from epochal.errors import CheckpointError
from epochal.train.callback import StageResult

PHASES = ("start", "stages", "evaluated", "ended")
_END = object()  # what next() gives past a loader's last batch


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

    def describe(self) -> str:
        """Where in its epoch this point lies, as a resume message says it."""
        if self.phase == "stages" and self.progress is not None:
            return f"{self.progress.stage} batch {self.progress.batches + 1}"
        if self.phase == "stages":
            return "after " + (", ".join(self.results) or "on_epoch_start")
        return {"start": "at the start of the epoch", "evaluated": "after evaluation",
                "ended": "at the end of the epoch"}[self.phase]

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


class ResumeState:
    """Everything a fit needs to continue from where it stands, mid-epoch included.

    The Trainer holds one and tells it each point it passes (:meth:`passed`), each stage it starts
    (:meth:`start_stage`) and, in its hot loop, the batches done (``done``) and the random states
    before the next batch (``rewind``). On Ctrl-C, :meth:`settle` goes back to the last whole batch,
    and :meth:`state_dict` is then what a checkpoint keeps: the position in the epoch and, for a stage
    part-way, its random and generator states, the batches done, their partial sums and the metrics'
    state. :meth:`load_state_dict` checks that every required key is there.

    Examples:
        >>> state = ResumeState(model, loaders, torch.device("cpu"))
        >>> saved = state.state_dict()
        >>> ResumeState(model, loaders, torch.device("cpu")).load_state_dict(saved)
    """

    def __init__(self, model: torch.nn.Module, loaders: Mapping[str, Any], device: torch.device):
        self.model, self.loaders, self.device = model, loaders, device
        self.position = Position("start", 0)  # the last well-defined point passed
        self.stop: str | None = None  # a stop asked for (early stopping) that the fit has not acted on yet
        self.stage: str | None = None  # the stage part-way, if any
        self.metric_set: Any = None  # its metrics (a MetricSet)
        self.start_rng: dict | None = None  # every random state just before that stage's loader was iterated
        self.start_generators: dict | None = None
        # Written for every batch, so kept as plain tuples: (batches done, samples, loss sum, loss sum of
        # squares, the run's step count once they are) and (batches done, torch random states before the next).
        self.done: tuple = (0, 0, 0.0, 0.0, 0)
        self.rewind: tuple = (0, None)
        self.grads_pending = False  # gradients accumulated towards an optimizer step not yet taken

    def passed(self, position: Position) -> None:
        """A well-defined point is passed; a part-way stage left behind is then never run twice."""
        self.position = position
        self.stage = None

    def start_stage(self, stage: str, loader: Any, metric_set: Any, progress: Progress | None, steps: int) -> tuple:
        """Begin iterating ``loader`` for ``stage``, or continue it from ``progress`` (a stage cut part-way).

        A stage continued draws its data order again from the states it started with, goes past the
        batches already done, then takes up the random states, sums, metrics and gradients of the cut.

        Returns:
            (iterator, batches done, samples done, loss sum, loss sum of squares) to go on from.
        """
        zero = torch.zeros((), dtype=torch.float64, device=self.device)
        count, samples, loss_sum, loss_squares = 0, 0, zero, zero.clone()
        if progress is None:
            self.start_rng, self.start_generators = rng_state(), generator_states(self.loaders)
            iterator = iter(loader)
        else:
            self.start_rng, self.start_generators = progress.start_rng, progress.start_generators
            set_rng_state(progress.start_rng)
            set_generator_states(self.loaders, progress.start_generators)
            iterator = iter(loader)
            for done in range(progress.batches):
                if next(iterator, _END) is _END:
                    raise CheckpointError(
                        f"the checkpoint continues the {stage} pass after batch {progress.batches}, but the "
                        f"{stage} data now gives only {done} batches; give the data the run was trained on"
                    )
            set_rng_state(progress.rng)
            count, samples = progress.batches, progress.samples
            loss_sum, loss_squares = (t.to(self.device) for t in (progress.loss_sum, progress.loss_squares))
            metric_set.load_state_dict(progress.metrics)
            if progress.grads is not None:
                for parameter, grad in zip(self.model.parameters(), progress.grads):
                    parameter.grad = None if grad is None else grad.to(parameter.device)
                self.grads_pending = True
        self.stage, self.metric_set = stage, metric_set
        self.done = (count, samples, loss_sum, loss_squares, steps)
        self.rewind = (count, batch_rng(self.device))
        return iterator, count, samples, loss_sum, loss_squares

    def settle(self, run: Any) -> None:
        """On Ctrl-C: go back to the last whole batch of a stage cut part-way.

        The random draws of a batch that was cut are undone, and the run's step counter counts every
        batch done (a cut in a batch's hooks comes before its step was counted).
        """
        if self.position.phase != "stages" or self.stage is None:
            return
        batches, steps = self.done[0], self.done[4]
        rewind_at, rewind_rng = self.rewind
        if rewind_at == batches:
            set_batch_rng(rewind_rng, self.device)
        if run.steps < steps:
            run.step(steps - run.steps)

    def state_dict(self) -> dict:
        """The position, with the part-way stage's state when there is one. Takes the random states now."""
        progress = None
        if self.position.phase == "stages" and self.stage is not None:
            batches, samples, loss_sum, loss_squares, _ = self.done
            progress = Progress(
                stage=self.stage, batches=batches, samples=samples,
                loss_sum=torch.as_tensor(loss_sum, dtype=torch.float64).cpu(),
                loss_squares=torch.as_tensor(loss_squares, dtype=torch.float64).cpu(),
                start_rng=self.start_rng, start_generators=self.start_generators, rng=rng_state(),
                metrics=self.metric_set.state_dict(),
                grads=[None if p.grad is None else p.grad.detach().cpu() for p in self.model.parameters()]
                if self.grads_pending else None,
            )
        return dataclasses.replace(self.position, progress=progress, stop=self.stop).state_dict()

    def load_state_dict(self, state: Mapping) -> None:
        """Take up a saved position (checked: a missing key or an unknown phase is a CheckpointError)."""
        self.position = Position.from_state(state)
        self.stop = self.position.stop
        self.stage = None


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
