"""The 2D layout of every epoch at once, which the visualization model then learns to reproduce.

Each epoch is laid out like t-SNE lays out one data set (van der Maaten & Hinton, 2008): the
affinities are that epoch's fuzzy k-NN graph (UMAP's, see ``neighbours``), normalised to sum to one,
and the 2D similarities a Cauchy kernel. t-SNE's normalisation keeps near neighbours nearer than
UMAP's loss does, which is what the neighbour-preservation rate measures. The repulsion is estimated
from a few random samples of the same epoch per point and step, so a step costs O(edges), not O(n^2),
and 20,000 samples an epoch stay cheap.

Epochs are tied by temporal edges: a sample at one epoch is attracted to itself at the next when its
representation moved less between them than the run's median move (all samples, all epochs), and
left free when it moved more; the hold falls off steeply around the median (``exp(1 - (m/median)^6)``).
A held sample is not pinned to one spot: its temporal edge is a spring whose rest length is its move
over the median move times ``movement_length`` (in the layout's units, where near neighbours lie about
one apart), so that among the samples held in place the ones that moved more still move more in 2D
(pinned, their small 2D moves were the layout's noise, unrelated to how far they moved).
One median for the whole run, not one per pair of epochs, so the large moves of the first epochs
show as large moves in 2D and the small ones of the last epochs as small. Every epoch starts from
the same layout, and the result is the average of the last steps' positions, which takes out the
jitter of the sampled repulsion: a sample whose representation stays put stays where it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


def layout(
    graphs: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    moves: list[np.ndarray],
    start: np.ndarray,
    *,
    temporal_weight: float = 1.0,
    iterations: int = 500,
    negatives: int = 16,
    exaggeration: float = 12.0,
    movement_length: float = 0.85,
    seed: int = 0,
    device: Any = None,
    report: Callable[[float], None] | None = None,
) -> np.ndarray:
    """(epochs, n, 2) coordinates.

    Args:
        graphs: per epoch, the symmetric fuzzy graph as (rows, cols, weights), sample indices 0..n-1.
        moves: per pair of consecutive epochs, how far each sample moved in the representation.
        start: (n, 2) starting layout shared by every epoch (e.g. the principal components).
        temporal_weight: the share of a sample's attraction that goes to its own other epochs.
        movement_length: the 2D distance a held sample keeps from itself at the next epoch when it
            moved the median move; 0 pins it in place.
        iterations: gradient steps; the first quarter with the attraction exaggerated, the last
            fifth (at most 100) averaged.
        device: a CUDA device runs the steps there in torch; otherwise they run on the CPU, compiled.
    """
    epochs, n = len(graphs), start.shape[0]
    edges = _edges(graphs, moves, n, temporal_weight, movement_length)
    scaled = (start - start.mean(0)) / (start[:, 0].std() or 1.0) * 1e-4  # t-SNE's tiny start
    y = np.tile(scaled.astype(np.float32), (epochs, 1))
    schedule = _Schedule(iterations, exaggeration, rate=max(n / exaggeration / 4, 50.0))  # scikit-learn's 'auto' rate
    if _is_cuda(device):
        return _torch_steps(y, edges, n, epochs, schedule, negatives, seed, device, report)
    return _compiled_steps(y, edges, n, epochs, schedule, negatives, seed, report)


@dataclass(frozen=True)
class _Edges:
    """The graphs' edges one way (a graph has each edge both ways with one weight; the force acts on
    both ends), grouped by epoch, and the temporal edges from each sample to itself at the next epoch."""

    offsets: np.ndarray  # (epochs + 1,): epoch e's graph edges are [offsets[e], offsets[e + 1])
    head: np.ndarray
    tail: np.ndarray
    p: np.ndarray  # t-SNE's affinities times its gradient's factor 4
    temporal_p: np.ndarray  # ((epochs - 1) * n,): sample i of epoch e to sample i of epoch e + 1
    temporal_rest: np.ndarray  # the springs' rest lengths; 0: plain attraction


@dataclass(frozen=True)
class _Schedule:
    iterations: int
    exaggeration: float
    rate: float

    @property
    def early(self) -> int:
        """Steps with the neighbour graphs' attraction exaggerated. Only theirs: exaggerated temporal
        edges on top would put the steps past what t-SNE's learning rate keeps stable."""
        return self.iterations // 4

    @property
    def averaged(self) -> int:
        """The last steps, whose positions are averaged."""
        return min(100, self.iterations // 5)


def _edges(graphs, moves, n: int, temporal_weight: float, movement_length: float) -> _Edges:
    epochs = len(graphs)
    heads, tails, weights, counts = [], [], [], [0]
    for index, (rows, cols, values) in enumerate(graphs):
        one_way = rows < cols
        heads.append(rows[one_way] + index * n)
        tails.append(cols[one_way] + index * n)
        weights.append(4 * values[one_way] / values.sum() / epochs)  # each epoch's affinities sum to 1 / epochs
        counts.append(int(one_way.sum()))
    typical = (float(np.median(np.concatenate(moves))) if moves else 0.0) or 1.0
    temporal_p, temporal_rest = [], []
    for index in range(epochs - 1):
        # Up to e times a sample's share of its epoch's affinity mass, times the temporal weight.
        held = np.exp(1 - np.minimum(moves[index] / typical, 10.0) ** 6)
        temporal_p.append(4 * held * temporal_weight / (n * epochs))
        temporal_rest.append(movement_length * moves[index] / typical)
    joined = lambda parts, dtype: np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)  # noqa: E731
    return _Edges(
        offsets=np.cumsum(counts).astype(np.int64), head=joined(heads, np.int64), tail=joined(tails, np.int64),
        p=joined(weights, np.float32), temporal_p=joined(temporal_p, np.float32),
        temporal_rest=joined(temporal_rest, np.float32),
    )


def _is_cuda(device: Any) -> bool:
    return device is not None and str(device).startswith("cuda")


def _compiled_steps(y, edges: _Edges, n, epochs, schedule: _Schedule, negatives, seed, report) -> np.ndarray:
    from epochal.dynamics.layout_steps import run_steps

    update, gains, averaged_sum = np.zeros_like(y), np.ones_like(y), np.zeros_like(y)
    for first in range(0, schedule.iterations, _REPORT_EVERY):
        last = min(first + _REPORT_EVERY, schedule.iterations)
        run_steps(y, update, gains, averaged_sum, edges.offsets, edges.head, edges.tail, edges.p, edges.temporal_p,
                  edges.temporal_rest, n, epochs, first, last, schedule.iterations, schedule.early, schedule.averaged,
                  schedule.exaggeration, schedule.rate, negatives, seed)
        if report is not None:
            report(last / schedule.iterations)
    if schedule.averaged:
        y = averaged_sum / schedule.averaged
    return y.reshape(epochs, n, 2)


def _torch_steps(y, edges: _Edges, n, epochs, schedule: _Schedule, negatives, seed, device, report) -> np.ndarray:
    """The same steps in torch, on ``device``."""
    import torch

    generator = torch.Generator(device=device).manual_seed(seed)
    tensor = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
    graph_edges = len(edges.head)
    temporal = torch.arange((epochs - 1) * n, device=device)
    head = torch.cat([tensor(edges.head), temporal])
    tail = torch.cat([tensor(edges.tail), temporal + n])
    p = torch.cat([tensor(edges.p), tensor(edges.temporal_p)])
    rest = torch.cat([torch.zeros(graph_edges, device=device), tensor(edges.temporal_rest)])
    in_graph = torch.arange(len(head), device=device) < graph_edges
    springs = ~in_graph & (rest > 0)
    y = tensor(y)
    total = epochs * n
    epoch_start = torch.arange(epochs, device=device).repeat_interleave(n) * n
    update, gains, total_positions = torch.zeros_like(y), torch.ones_like(y), torch.zeros_like(y)
    exaggerated = torch.where(in_graph, schedule.exaggeration, 1.0) * p
    for step in range(schedule.iterations):
        momentum = 0.5 if step < schedule.early else 0.8
        # Attraction: 4 * sum_j p_ij * w_ij * (y_i - y_j), over the edges.
        diff = y[head] - y[tail]
        w = 1 / (1 + diff.pow(2).sum(1))
        pull = ((exaggerated if step < schedule.early else p) * w)[:, None] * diff
        stretch = 1 - rest / diff.norm(dim=1).clamp_min(1e-6)  # temporal edges: a spring toward its rest length
        pull = torch.where(springs[:, None], (p * stretch)[:, None] * diff, pull)
        grad = torch.zeros_like(y).index_add_(0, head, pull).index_add_(0, tail, -pull)
        # Repulsion: -4 / Z * sum_j w_ij^2 (y_i - y_j), from `negatives` random samples of the same epoch.
        others = epoch_start.repeat_interleave(negatives) + torch.randint(
            0, n, (total * negatives,), generator=generator, device=device)
        diff = y.repeat_interleave(negatives, 0) - y[others]
        w = 1 / (1 + diff.pow(2).sum(1))
        z = w.view(epochs, n * negatives).mean(1) * n * (n - 1)  # per epoch's normaliser
        push = (w * w)[:, None] * diff
        push = push.view(total, negatives, 2).sum(1) * ((n - 1) / negatives)
        grad -= 4 * push / z.repeat_interleave(n)[:, None] / epochs
        # t-SNE's gains and momentum.
        same = torch.sign(grad) == torch.sign(update)
        gains = torch.where(same, gains * 0.8, gains + 0.2).clamp_min(0.01)
        update = momentum * update - schedule.rate * epochs * gains * grad
        y += update
        if step >= schedule.iterations - schedule.averaged:
            total_positions += y
        if report is not None and (step + 1) % _REPORT_EVERY == 0:
            report((step + 1) / schedule.iterations)
    if schedule.averaged:
        y = total_positions / schedule.averaged
    return y.view(epochs, n, 2).cpu().numpy()


_REPORT_EVERY = 50
