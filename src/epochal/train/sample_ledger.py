"""SampleLedger: the Trainer callback that records every training sample at every presentation.

Each training batch's loss, logit margin and prediction per sample come from the training step's own
output (no extra forward pass) and go to the run's ledger (:meth:`epochal.Run.record_samples`, written
off the training thread). Which samples a batch holds is read from the training loader's sampler, so
a plain map-style ``DataLoader`` needs no change: the callback wraps the sampler of its batch sampler
and ties each batch to the indices drawn for it, in order (workers and prefetching keep that order).

Under DDP each rank records the presentations of its own share (the dataset indices its
``DistributedSampler`` draws); a sample the sampler repeats to make the shares even is left out of the
ledger at its repeat (the sample is recorded once per epoch, as in one process). Rank 0 writes its rows
into the run's ledger as in one process; the other ranks hold theirs, and at the end of every training
pass every rank hands its rows to rank 0 (a gather over the ranks), which writes them beside its own as
``epoch-<E>-s<session>-r<rank>.npz``: the run's ledger then holds every sample once per epoch, keyed by its
dataset index, however many ranks trained it. A rank that dies mid-pass loses its rows of that pass; the
resumed run trains that epoch again and records it whole.

Examples:
    >>> trainer = epochal.Trainer(model, optimizer, loss_fn, train_data=DataLoader(data, shuffle=True),
    ...                           callbacks=[epochal.SampleLedger()])
    >>> trainer.fit()
    >>> epochal.Store().samples(trainer.run).nsmallest(20, "aum")    # likely mislabeled
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import IterableDataset
from torch.utils.data.distributed import DistributedSampler

from epochal.dynamics.ledger import FOLDER, LedgerRecorder, write_epoch
from epochal.errors import DynamicsError, RankError
from epochal.train.callback import BatchResult, Callback, StageResult

if TYPE_CHECKING:
    from epochal.train.callback import TrainerView


#: The draws that batches took are dropped once this many pile up (a list's head is dear to drop one by one).
TRIM_DRAWS = 1 << 16
#: What :class:`_Drawn` keeps for a draw that only repeats a sample to even out the ranks' shares.
REPEAT = -1


class _Drawn:
    """A sampler that also keeps what it draws, in order, for the batches to take back; a draw that a
    ``DistributedSampler`` adds to make the ranks' shares even is kept as ``REPEAT``."""

    def __init__(self, sampler: Any):
        self.sampler = sampler
        self.drawn: list[int] = []

    def __iter__(self) -> Iterator[int]:
        own, keep = _own_draws(self.sampler), self.drawn.append
        if own is None:
            for index in self.sampler:
                keep(int(index))
                yield index
            return
        for position, index in enumerate(self.sampler):
            keep(int(index) if position < own else REPEAT)
            yield index

    def __len__(self) -> int:
        return len(self.sampler)

    def __getattr__(self, name: str) -> Any:  # set_epoch, generator, ...: the wrapped sampler's
        return getattr(self.sampler, name)


def _own_draws(sampler: Any) -> int | None:
    """How many of a ``DistributedSampler``'s draws for its rank are samples of its own, before the
    repeats that even out the shares; None for a sampler that repeats nothing.

    The sampler pads its (shuffled) list of ``len(dataset)`` indices with repeats up to a multiple of the
    ranks and gives rank r the positions r, r + ranks, ...; those past ``len(dataset)`` are the repeats, and
    they come last in each rank's share.
    """
    if not isinstance(sampler, DistributedSampler) or sampler.drop_last:
        return None
    size = len(sampler.dataset)
    own = len(range(sampler.rank, size, sampler.num_replicas))
    return None if own >= sampler.num_samples else own


class SampleLedger(Callback):
    """Record each training sample's loss, margin and prediction at every presentation (see
    :mod:`epochal.dynamics.ledger`); read them with :meth:`epochal.Store.samples`.

    The training step must return ``(loss, logits, target)`` with class-index targets, as the Trainer's
    default step does. The training data must be a ``DataLoader`` over a map-style data set with a batch
    size: an ``IterableDataset`` has no indices to follow, which is an error at the start of the fit
    (record from your own loop with ``run.record_samples(indices, logits, targets)`` instead). Under DDP
    every rank records its share and rank 0 writes them all (see the module's docstring).

    Examples:
        >>> trainer = Trainer(model, optimizer, loss_fn, train_data=loader, callbacks=[SampleLedger()])
    """

    def __init__(self) -> None:
        self._drawn: _Drawn | None = None
        self._batches = 0  # training batches of this pass tied to their samples so far
        self._taken = 0  # draws of the sampler those batches took
        self._batch_size = 0
        self._held: LedgerRecorder | None = None  # under DDP, on ranks other than 0: their rows, for rank 0

    def on_fit_start(self, trainer: TrainerView) -> None:
        loader = trainer.loaders.get("train")
        batch_sampler = getattr(loader, "batch_sampler", None)
        sampler = getattr(batch_sampler, "sampler", None)
        iterable = isinstance(getattr(loader, "dataset", None), IterableDataset)
        if iterable or sampler is None or getattr(loader, "batch_size", None) is None:
            raise DynamicsError(
                f"SampleLedger cannot tie the batches of {type(loader).__name__} to sample indices: it follows the "
                "sampler of a DataLoader over a map-style data set with a batch_size (an IterableDataset has no "
                "indices); give such a loader, or record from your own loop with "
                "run.record_samples(indices, logits, targets)"
            )
        if not isinstance(sampler, _Drawn):
            self._drawn = batch_sampler.sampler = _Drawn(sampler)
        else:
            self._drawn = sampler
        self._batch_size = int(loader.batch_size)
        run = trainer.run
        if run.world_size > 1 and run.rank != 0:
            self._held = LedgerRecorder(None, f"s{run.segment}-r{run.rank}")

    def on_stage_start(self, trainer: TrainerView, stage: str, batches: int | None) -> None:
        if stage == "train" and self._drawn is not None:
            self._drawn.drawn.clear()  # a new pass draws its order afresh
            self._batches = self._taken = 0

    def on_batch_end(self, trainer: TrainerView, batch: BatchResult) -> None:
        if batch.stage != "train" or self._drawn is None:
            return
        if batch.output is None or batch.target is None:
            raise DynamicsError("SampleLedger needs the training step to return (loss, logits, target); it returned "
                                "a loss alone")
        drawn = self._drawn.drawn
        # A pass continued after a resume went past its first batches without this hook: their samples go.
        taken = self._taken + (batch.index - self._batches) * self._batch_size
        if taken >= TRIM_DRAWS:  # what the batches took goes (the loader's prefetched draws stay)
            del drawn[:taken]
            taken = 0
        end = taken + batch.size
        if end > len(drawn):
            raise DynamicsError(
                f"SampleLedger lost track of the training batches' samples at batch {batch.index} ({batch.size} "
                f"samples, {len(drawn) - taken} drawn): the loader's batches are not the sampler's draws in order"
            )
        self._batches, self._taken = batch.index + 1, end
        output, target = batch.output, batch.target
        if drawn[end - 1] == REPEAT:  # a DistributedSampler's repeats, at the end of the rank's share
            own = drawn.index(REPEAT, taken, end) - taken
            if not own:
                return
            end, output, target = taken + own, output[:own], target[:own]
        indices = torch.tensor(drawn[taken:end], dtype=torch.int64)
        if self._held is not None:
            self._held.record(indices, output, target, trainer.run.epochs, trainer.run.steps)
        else:
            trainer.run.record_samples(indices, output, target)

    def on_stage_end(self, trainer: TrainerView, result: StageResult) -> None:
        run = trainer.run
        if result.stage != "train" or self._drawn is None or run.world_size == 1:
            return
        # Every rank passes here together (the pass's totals were just summed over the ranks). A rank
        # whose recorder failed sends its error instead: every rank then raises it, none waits.
        try:
            held = (self._held.take() if self._held is not None else [], None)
        except Exception as exc:
            held = ([], f"{type(exc).__name__}: {exc}")
        gathered = run.job.gather_to_leader(held)

        def write() -> None:
            folder = run.path / FOLDER
            for rank, (files, error) in enumerate(gathered):
                if error is not None:
                    raise RankError(f"the sample ledger failed on rank {rank}: {error}")
                for name, arrays in files:
                    write_epoch(folder, name, arrays)

        run.job.leader_does(write)

    def on_fit_end(self, trainer: TrainerView) -> None:
        self._close()

    def on_interrupt(self, trainer: TrainerView) -> None:
        self._close()

    def _close(self) -> None:
        if self._held is not None:
            self._held.close()
            self._held = None
