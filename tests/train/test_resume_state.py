"""ResumeState: everything a fit needs to continue mid-epoch, saved and taken up again."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from epochal.errors import CheckpointError
from epochal.train.metrics import MetricSet
from epochal.train.resume import Position, ResumeState


def _state(seed: int = 0) -> tuple[ResumeState, DataLoader]:
    torch.manual_seed(seed)
    data = TensorDataset(torch.arange(40, dtype=torch.float32).reshape(20, 2), torch.arange(20) % 3)
    loader = DataLoader(data, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(seed))
    model = torch.nn.Linear(2, 3)
    state = ResumeState(model, {"train": loader}, torch.device("cpu"))
    state.metrics = MetricSet(["accuracy"])  # the train stage's, as the Trainer hands it to start_stage
    return state, loader


def _cut_after(state: ResumeState, loader: DataLoader, batches: int) -> list[torch.Tensor]:
    """Start the train stage and do ``batches`` batches the way the Trainer's loop records them."""
    state.passed(Position("stages", 0))
    state.metrics.reset()  # as the Trainer does before each stage
    iterator, count, samples, loss_sum, squares = state.start_stage("train", loader, state.metrics, None, steps=0)
    seen = []
    for _ in range(batches):
        x, y = next(iterator)
        seen.append(x)
        count, samples, loss_sum, squares = count + 1, samples + len(x), loss_sum + 0.5, squares + 0.25
        state.metrics.update(torch.nn.functional.one_hot(y, 3).float(), y)
        state.done = (count, samples, loss_sum, squares, count)
    return seen


def test_a_stage_cut_part_way_round_trips_and_continues_with_the_same_batches():
    straight, loader = _state()
    whole = [x for x, _ in straight.start_stage("train", loader, straight.metrics, None, steps=0)[0]]  # a straight pass

    state, loader = _state()
    done = _cut_after(state, loader, 2)
    saved = state.state_dict()
    assert saved["phase"] == "stages" and saved["progress"]["batches"] == 2 and saved["progress"]["samples"] == 8

    # A fresh process: another generator state, another global seed; the saved state decides.
    again, other_loader = _state(seed=7)
    again.load_state_dict(saved)
    assert again.position.phase == "stages" and again.position.progress.batches == 2
    again.metrics.reset()
    iterator, count, samples, loss_sum, squares = again.start_stage("train", other_loader, again.metrics, again.position.progress, 2)
    rest = [x for x, _ in iterator]
    assert (count, samples, float(loss_sum), float(squares)) == (2, 8, 1.0, 0.5)
    assert again.metrics.compute() == state.metrics.compute()
    assert all(torch.equal(a, b) for a, b in zip(done + rest, whole)) and len(done + rest) == len(whole)


@pytest.mark.parametrize("missing", ["phase", "epoch", "stop", "results", "progress"])
def test_a_saved_position_without_a_required_key_is_refused_naming_it(missing):
    state, loader = _state()
    _cut_after(state, loader, 1)
    saved = state.state_dict()
    del saved[missing]
    with pytest.raises(CheckpointError, match=f"lacks {missing}"):
        _state()[0].load_state_dict(saved)


@pytest.mark.parametrize("missing", ["rng", "start_generators", "metrics", "loss_sum"])
def test_a_part_way_stage_without_a_required_key_is_refused_naming_it(missing):
    state, loader = _state()
    _cut_after(state, loader, 1)
    saved = state.state_dict()
    del saved["progress"][missing]
    with pytest.raises(CheckpointError, match=f"part-way stage in the checkpoint lacks {missing}"):
        _state()[0].load_state_dict(saved)


def test_an_unknown_phase_is_refused():
    state, _ = _state()
    saved = state.state_dict()
    saved["phase"] = "halfway"
    with pytest.raises(CheckpointError, match="phase 'halfway'"):
        _state()[0].load_state_dict(saved)


def test_between_stages_nothing_part_way_is_saved_and_a_stop_is_kept():
    state, loader = _state()
    _cut_after(state, loader, 2)
    state.passed(Position("evaluated", 0))
    state.stop = "valid/loss did not improve"
    saved = state.state_dict()
    assert saved["progress"] is None and saved["phase"] == "evaluated"
    again = _state()[0]
    again.load_state_dict(saved)
    assert again.stop == "valid/loss did not improve" and again.position.phase == "evaluated"
