"""Several ranks of one job (DDP started by ``torchrun``): which rank this is, and the collectives epochal needs.

epochal launches nothing: ``torchrun`` (or the user's own ``init_process_group``) starts the ranks,
and everything here is ``torch.distributed``. A job is *distributed* when a process group with more
than one rank is initialized, or when ``torchrun``'s environment (``RANK``, ``WORLD_SIZE``) names more
than one rank; then :func:`job` initializes the default group itself (NCCL where CUDA is present,
else gloo), as ``torchrun`` users expect from a trainer.

What epochal exchanges between ranks (run ids, names, random states, the keys of reduced values)
goes over a gloo group of its own, on the host: exchanging it never waits for an accelerator.

Examples:
    >>> ranks = job()          # None in a single process
    >>> ranks.rank, ranks.world_size
    (0, 2)
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from epochal.errors import RankError
from epochal.logs import logger

#: What ``run.log(..., reduce=)`` accepts.
REDUCE_OPS = ("mean", "sum", "min", "max")

T = TypeVar("T")


def launched() -> bool:
    """Whether this process is one of several ranks: an initialized group or torchrun's environment."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    return _env_int("WORLD_SIZE", 1) > 1 and "RANK" in os.environ


def job() -> Ranks | None:
    """The ranks of this job, initializing the default process group from torchrun's environment
    if nobody has yet; None for a single process."""
    if not launched():
        return None
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(_env_int("LOCAL_RANK", 0))
        dist.init_process_group(backend)
    return Ranks.of_default_group()


@dataclass(frozen=True)
class Ranks:
    """The ranks of the default process group, and a gloo group for exchanging host-side objects."""

    rank: int
    world_size: int
    local_rank: int
    host_group: Any  # a gloo ProcessGroup, or None for the default group when that is gloo

    @staticmethod
    def of_default_group() -> Ranks:
        global _ranks
        import torch.distributed as dist

        if _ranks is None or _ranks.world_size != dist.get_world_size():
            # Every rank comes here at the same point (the first run of the job), so the new group,
            # itself a collective, is made by all of them together.
            group = None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")
            _ranks = Ranks(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", dist.get_rank()), group)
        return _ranks

    @property
    def leader(self) -> bool:
        return self.rank == 0

    @property
    def device(self) -> Any:
        """Where the default group reduces tensors: this rank's GPU for NCCL, else the CPU."""
        import torch
        import torch.distributed as dist

        return torch.device("cuda", self.local_rank) if dist.get_backend() == "nccl" else torch.device("cpu")

    def stacked(self, values: Sequence[Any]) -> Any:
        """``values`` (numbers, or one-element tensors) as one float64 tensor on :attr:`device`, to reduce."""
        import torch

        device = self.device
        if not any(torch.is_tensor(v) for v in values):
            return torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
        return torch.stack([
            v.detach().reshape(()).to(device, torch.float64) if torch.is_tensor(v)
            else torch.tensor(float(v), dtype=torch.float64, device=device)
            for v in values
        ])

    @property
    def connected(self) -> bool:
        """Whether the process group is still there (a program may destroy it before it exits)."""
        import torch.distributed as dist

        return dist.is_initialized()

    def gather(self, value: T) -> list[T]:
        """Every rank's ``value``, in rank order, on every rank."""
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, value, group=self.host_group)
        return out

    def gather_to_leader(self, value: T) -> list[T] | None:
        """Every rank's ``value`` in rank order on rank 0; None on the others."""
        import torch.distributed as dist

        out: list[Any] | None = [None] * self.world_size if self.leader else None
        dist.gather_object(value, out, dst=0, group=self.host_group)
        return out

    def broadcast(self, value: T) -> T:
        """Rank 0's ``value`` on every rank."""
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0, group=self.host_group)
        return box[0]

    def leader_does(self, action: Callable[[], T]) -> T:
        """Run ``action`` on rank 0 and hand its result, or the error it raised, to every rank.

        The other ranks never hang on a rank 0 that failed: they raise the same error.
        """
        outcome: tuple[str, Any] = ("", None)
        if self.leader:
            try:
                outcome = ("ok", action())
            except Exception as exc:
                outcome = ("error", exc)
        outcome = self.broadcast(outcome)
        if outcome[0] == "error":
            raise outcome[1]
        return outcome[1]

    def all_succeed(self, action: Callable[[], T], what: str) -> T:
        """Run ``action`` on every rank; if it failed on any, raise on all (naming the rank) rather
        than leave the others waiting at their next collective."""
        error: Exception | None = None
        result: Any = None
        try:
            result = action()
        except Exception as exc:
            error = exc
        errors = self.gather(None if error is None else f"{type(error).__name__}: {error}")
        if error is not None:
            raise error
        failed = [(r, e) for r, e in enumerate(errors) if e is not None]
        if failed:
            rank, message = failed[0]
            raise RankError(f"{what} failed on rank {rank}: {message}")
        return result


_ranks: Ranks | None = None


def lost_ranks(ranks: Sequence[tuple[str, int]]) -> list[str]:
    """Of a job's ``(host, pid)`` by rank, those on this host whose process is gone, in words."""
    from epochal import system

    return [f"rank {rank} (pid {ranks[rank][1]})" for rank in system.gone_on_this_host(ranks)]


def unwrapped(model: Any) -> Any:
    """The user's module inside a DistributedDataParallel wrapper (the model itself otherwise)."""
    from torch.nn.parallel import DistributedDataParallel

    return model.module if isinstance(model, DistributedDataParallel) else model


def check_reduce(reduce: str) -> str:
    if reduce not in REDUCE_OPS:
        raise ValueError(f"reduce must be one of {', '.join(map(repr, REDUCE_OPS))}, got {reduce!r}")
    return reduce


class Reducer:
    """Values logged with ``reduce=``, held until every rank reduces them together.

    Reducing is a collective, so it happens where every rank passes anyway (``Run.step`` every
    ``REDUCE_EVERY_STEPS`` steps, ``epoch``, ``flush``, ``save_checkpoint``, ``finish``), never in
    ``log`` itself. First the ranks compare what they hold (keys, steps, operations) over the host
    group; if they differ, every rank raises the same error instead of waiting for a value that
    never comes. Then one ``all_reduce`` per operation reduces all held values at once; values on an
    accelerator stay there (the run's writer thread reads them), so reducing never waits for the device.
    """

    def __init__(self, ranks: Ranks):
        self.ranks = ranks
        self.held: list[tuple[int, int, float, str, str, Any]] = []  # (step, epoch, time, key, op, value)

    def add(self, step: int, epoch: int, time: float, values: Mapping[str, Any], op: str) -> None:
        """Hold ``values`` (checked as ``run.log`` checks them) to be reduced with ``op``.

        Raises:
            TypeError, ValueError: as ``run.log``; nothing of the call is held then.
        """
        from epochal.checks import check_key, to_float

        if not isinstance(values, Mapping):
            raise TypeError(f"run.log takes a dict of key -> number, got {type(values).__name__} ({values!r:.60})")
        checked = []
        for key, value in values.items():
            check_key(key)
            number = to_float(key, value)
            # A device tensor stays on the device: a copy, so later in-place changes don't leak in.
            kept = value.detach().reshape(()).clone() if number is None else number
            checked.append((step, epoch, time, key, op, kept))
        self.held += checked

    def reduce(self) -> list[tuple[int, int, float, tuple[str, ...], Any]]:
        """Reduce everything held on every rank: ``(step, epoch, time, keys, values)`` records, values
        as a list of floats or a float64 tensor on the accelerator. Raises RankError if the ranks
        hold different keys or steps (nothing is reduced then, and nothing is held any more)."""
        import torch
        import torch.distributed as dist

        held, self.held = self.held, []
        signature = sorted(Counter((s, e, k, op) for s, e, _, k, op, _ in held).items())
        signatures = self.ranks.gather(signature)
        if any(other != signature for other in signatures):
            raise RankError(_disagreement(signatures))
        if not held:
            return []
        held.sort(key=lambda h: (h[0], h[1], h[3], h[4]))
        values = self.ranks.stacked([h[5] for h in held])
        ops = [h[4] for h in held]
        single = len(set(ops)) == 1
        for op in dict.fromkeys(ops):
            if single:
                part = values
            else:
                index = torch.tensor([i for i, o in enumerate(ops) if o == op], device=values.device)
                part = values.index_select(0, index)
            dist.all_reduce(part, op={"mean": dist.ReduceOp.SUM, "sum": dist.ReduceOp.SUM,
                                      "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}[op])
            if op == "mean":
                part /= self.ranks.world_size
            if part is not values:
                values.index_copy_(0, index, part)
        values = values.tolist() if values.device.type == "cpu" else values
        records = []
        start = 0
        for i in range(1, len(held) + 1):
            if i == len(held) or held[i][:2] != held[start][:2]:
                step, epoch, time = held[start][:3]
                records.append((step, epoch, time, tuple(h[3] for h in held[start:i]), values[start:i]))
                start = i
        return records

    def at_finish(self, status: str, run: str, reduce_held: Callable[[], None],
                  ranks: Sequence[tuple[str, int]]) -> RankError | None:
        """The end of ``run`` (in words) on this rank. Ending well, every rank reduces what it holds
        (``reduce_held``) together; the RankError of ranks that disagree is returned, to raise once the
        run is closed. Ending badly, it says which ranks on this host are gone (killed, crashed), and
        nothing waits for the others. Values still held then are not stored, with a warning."""
        rank_error = None
        if status == "finished" and self.ranks.connected:
            try:
                reduce_held()
            except RankError as exc:
                rank_error = exc
            except Exception as exc:  # another rank is gone: record the end all the same
                logger.warning(f"{run}: values logged with reduce= since the last reduction are not stored: {exc}")
        elif lost := lost_ranks(ranks):
            logger.error(f"{run}: {', '.join(lost)} of the DDP job ended without finishing the run; the job stops")
        if self.held:
            logger.warning(f"{run}: {len(self.held)} values logged with reduce= on rank {self.ranks.rank} since the "
                           "last reduction are not stored")
            self.held = []
        return rank_error


def _disagreement(signatures: list[list]) -> str:
    """What the ranks' reduced values differ in, in words."""
    held = [{entry for entry, _ in signature} for signature in signatures]
    every = set().union(*held)
    for entry in sorted(every):
        missing = [r for r, h in enumerate(held) if entry not in h]
        if missing:
            step, epoch, key, op = entry
            having = [r for r, h in enumerate(held) if entry in h]
            return (f"run.log(..., reduce={op!r}) of {key!r} at step {step} (epoch {epoch}) came from rank(s) "
                    f"{', '.join(map(str, having))} but not from rank(s) {', '.join(map(str, missing))}; under DDP "
                    "every rank logs the same keys with reduce= at the same steps (log on rank 0 alone "
                    "without reduce=)")
    counts = [dict(signature) for signature in signatures]
    for entry in sorted(every):
        numbers = [c.get(entry, 0) for c in counts]
        if len(set(numbers)) > 1:
            step, epoch, key, op = entry
            return (f"run.log(..., reduce={op!r}) of {key!r} at step {step} (epoch {epoch}) was logged "
                    f"{' / '.join(map(str, numbers))} times on ranks {', '.join(map(str, range(len(numbers))))}; "
                    "every rank logs it as often")
    return "the ranks hold different reduced values"


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default
