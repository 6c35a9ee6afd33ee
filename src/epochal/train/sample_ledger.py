"""SampleLedger: the Trainer callback that records every training sample at every presentation.

Each training batch's loss, logit margin and prediction per sample come from the training step's own
output (no extra forward pass) and go to the run's ledger (:meth:`epochal.Run.record_samples`, written
off the training thread). Which samples a batch holds is read from the training loader's sampler, so
a plain map-style ``DataLoader`` needs no change: the callback wraps the sampler of its batch sampler
and ties each batch to the indices drawn for it, in order (workers and prefetching keep that order).

Examples:
    >>> trainer = epochal.Trainer(model, optimizer, loss_fn, train_data=DataLoader(data, shuffle=True),
    ...                           callbacks=[epochal.SampleLedger()])
    >>> trainer.fit()
    >>> epochal.Store().samples(trainer.run).nsmallest(20, "aum")    # likely mislabeled
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from torch.utils.data import IterableDataset

from epochal.errors import DynamicsError
from epochal.train.callback import BatchResult, Callback

if TYPE_CHECKING:
    from epochal.train.callback import TrainerView


class _Drawn:
    """A sampler that also keeps what it draws, in order, for the batches to take back."""

    def __init__(self, sampler: Any):
        self.sampler = sampler
        self.drawn: deque[int] = deque()

    def __iter__(self) -> Iterator[int]:
        for index in self.sampler:
            self.drawn.append(int(index))
            yield index

    def __len__(self) -> int:
        return len(self.sampler)

    def __getattr__(self, name: str) -> Any:  # set_epoch, generator, ...: the wrapped sampler's
        return getattr(self.sampler, name)


class SampleLedger(Callback):
    """Record each training sample's loss, margin and prediction at every presentation (see
    :mod:`epochal.dynamics.ledger`); read them with :meth:`epochal.Store.samples`.

    The training step must return ``(loss, logits, target)`` with class-index targets, as the Trainer's
    default step does. The training data must be a ``DataLoader`` over a map-style data set with a batch
    size: an ``IterableDataset`` has no indices to follow, which is an error at the start of the fit
    (record from your own loop with ``run.record_samples(indices, logits, targets)`` instead).

    Examples:
        >>> trainer = Trainer(model, optimizer, loss_fn, train_data=loader, callbacks=[SampleLedger()])
    """

    def __init__(self) -> None:
        self._drawn: _Drawn | None = None
        self._batches = 0  # training batches of this pass tied to their samples so far
        self._batch_size = 0

    def on_fit_start(self, trainer: TrainerView) -> None:
        if trainer.run.world_size > 1:
            raise DynamicsError(
                f"SampleLedger records one process's training batches; under DDP ({trainer.run.world_size} ranks) the "
                "ranks' ledgers are not gathered yet: leave it out of DDP fits, or train on one process"
            )
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

    def on_stage_start(self, trainer: TrainerView, stage: str, batches: int | None) -> None:
        if stage == "train" and self._drawn is not None:
            self._drawn.drawn.clear()  # a new pass draws its order afresh
            self._batches = 0

    def on_batch_end(self, trainer: TrainerView, batch: BatchResult) -> None:
        if batch.stage != "train" or self._drawn is None:
            return
        if batch.output is None or batch.target is None:
            raise DynamicsError("SampleLedger needs the training step to return (loss, logits, target); it returned "
                                "a loss alone")
        drawn = self._drawn.drawn
        # A pass continued after a resume went past its first batches without this hook: their samples go.
        for _ in range((batch.index - self._batches) * self._batch_size):
            drawn.popleft()
        if len(drawn) < batch.size:
            raise DynamicsError(
                f"SampleLedger lost track of the training batches' samples at batch {batch.index} ({batch.size} "
                f"samples, {len(drawn)} drawn): the loader's batches are not the sampler's draws in order"
            )
        indices = np.fromiter((drawn.popleft() for _ in range(batch.size)), dtype=np.int64, count=batch.size)
        self._batches = batch.index + 1
        trainer.run.record_samples(indices, batch.output, batch.target)
