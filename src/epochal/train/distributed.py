"""The Trainer under DDP: the model wrapped, each rank's share of the data, and totals summed over ranks.

Under ``torchrun`` the Trainer is given the same plain model and DataLoaders as in a single process.
The training loader gets a ``DistributedSampler`` with the user's shuffle and seed (every rank the
same number of batches, as DDP needs; the sampler repeats a few samples to make the shares equal).
Validation and test loaders are split without repeats (rank r takes samples r, r + world, ...), so
that sums and counts added over the ranks are those of the whole data set: metrics and loss means
equal what one process computes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, Sampler
from torch.utils.data.distributed import DistributedSampler

from epochal.distributed import Ranks, unwrapped

__all__ = ["EvaluationShard", "shard", "shard_all", "sum_over_ranks", "unwrapped", "wrap"]


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` in DistributedDataParallel, unless it already is."""
    from torch.nn.parallel import DistributedDataParallel

    if isinstance(model, DistributedDataParallel):
        return model
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


class EvaluationShard(Sampler[int]):
    """Rank ``rank``'s share of ``size`` samples, in order and without repeats: r, r + world, ..."""

    def __init__(self, size: int, rank: int, world_size: int):
        self.size, self.rank, self.world_size = size, rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.size, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.size, self.world_size))


def shard(stage: str, loader: Any, ranks: Ranks) -> Any:
    """This rank's loader for ``stage``: the user's own if it already shards, else a copy that does.

    Raises:
        ValueError: a training loader that cannot be sharded (not a DataLoader, or one with a
            batch sampler of its own).
    """
    sampler = getattr(loader, "sampler", None)
    if isinstance(sampler, (DistributedSampler, EvaluationShard)):
        return loader  # the user's own distributed sampler, used as is
    if not isinstance(loader, DataLoader) or type(loader.batch_sampler) is not BatchSampler:
        if stage != "train":
            return loader  # every rank evaluates all of it: sums and counts over ranks still give its means
        own = " with its own batch_sampler" if isinstance(loader, DataLoader) else ""
        raise ValueError(
            f"under DDP the Trainer gives train_data a DistributedSampler, which needs a torch DataLoader with a "
            f"batch_size; got {type(loader).__name__}{own}. "
            "Give each rank its share yourself (a DataLoader with a DistributedSampler is used as is)"
        )
    if stage == "train":
        shuffle = isinstance(sampler, RandomSampler)
        generator = loader.generator or getattr(sampler, "generator", None)
        # Every rank must shuffle alike: rank 0's seed for all.
        seed = ranks.broadcast(int(generator.initial_seed() if generator is not None else torch.initial_seed()) % 2**63)
        new_sampler: Sampler = DistributedSampler(loader.dataset, num_replicas=ranks.world_size, rank=ranks.rank,
                                                  shuffle=shuffle, seed=seed, drop_last=False)
    else:
        new_sampler = EvaluationShard(len(loader.dataset), ranks.rank, ranks.world_size)
    return DataLoader(
        loader.dataset, batch_size=loader.batch_size, sampler=new_sampler, num_workers=loader.num_workers,
        collate_fn=loader.collate_fn, pin_memory=loader.pin_memory, drop_last=loader.drop_last,
        timeout=loader.timeout, worker_init_fn=loader.worker_init_fn, generator=loader.generator,
        persistent_workers=loader.persistent_workers, multiprocessing_context=loader.multiprocessing_context,
        **({"prefetch_factor": loader.prefetch_factor} if loader.num_workers > 0 else {}),
    )


def shard_all(loaders: Mapping[str, Any], ranks: Ranks) -> dict[str, Any]:
    return {stage: shard(stage, loader, ranks) for stage, loader in loaders.items()}


def sum_over_ranks(values: list[Any], ranks: Ranks) -> list[float]:
    """Each of ``values`` (numbers, or one-element tensors) summed over the ranks, in one all_reduce."""
    import torch.distributed as dist

    stacked = ranks.stacked(values)
    dist.all_reduce(stacked)
    return stacked.tolist()
