"""How the Trainer shares data between ranks, checked without starting ranks (see test_ddp.py for that)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

from epochal.distributed import Ranks
from epochal.train.distributed import EvaluationShard, shard

RANK_1_OF_3 = Ranks(rank=1, world_size=3, local_rank=1, host_group=None)
DATA = TensorDataset(torch.arange(10.0), torch.arange(10))


def test_evaluation_shares_cover_every_sample_once():
    shares = [list(EvaluationShard(10, rank, 3)) for rank in range(3)]
    assert shares == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert [len(EvaluationShard(10, rank, 3)) for rank in range(3)] == [4, 3, 3]


def test_a_validation_loader_is_split_keeping_its_settings():
    loader = DataLoader(DATA, batch_size=2, drop_last=False)
    mine = shard("valid", loader, RANK_1_OF_3)
    assert isinstance(mine.sampler, EvaluationShard)
    assert mine.batch_size == 2 and mine.dataset is DATA
    assert [batch[1].tolist() for batch in mine] == [[1, 4], [7]]


def test_a_users_own_distributed_sampler_is_used_as_is():
    loader = DataLoader(DATA, batch_size=2, sampler=DistributedSampler(DATA, num_replicas=3, rank=1, shuffle=False))
    assert shard("train", loader, RANK_1_OF_3) is loader


def test_training_data_that_cannot_be_sharded_is_refused_naming_what_would_do():
    with pytest.raises(ValueError, match="DataLoader with a DistributedSampler is used as is"):
        shard("train", [(torch.zeros(2), torch.zeros(2))], RANK_1_OF_3)
    custom = DataLoader(DATA, batch_sampler=[[0, 1], [2, 3]])
    with pytest.raises(ValueError, match="with its own batch_sampler"):
        shard("train", custom, RANK_1_OF_3)


def test_evaluation_data_that_is_not_a_loader_is_evaluated_whole_on_every_rank():
    batches = [(torch.zeros(2), torch.zeros(2))]
    assert shard("valid", batches, RANK_1_OF_3) is batches
