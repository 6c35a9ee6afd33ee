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
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    epochs, n = len(graphs), start.shape[0]
    heads, tails, weights = [], [], []
    for index, (rows, cols, values) in enumerate(graphs):
        heads.append(rows + index * n)
        tails.append(cols + index * n)
        weights.append(values / values.sum() / epochs)  # each epoch's affinities sum to 1 / epochs
    graph_edges = sum(len(h) for h in heads)
    typical = (float(np.median(np.concatenate(moves))) if moves else 0.0) or 1.0
    for index in range(epochs - 1):
        # Up to e times a sample's share of its epoch's affinity mass, times the temporal weight.
        held = np.exp(1 - np.minimum(moves[index] / typical, 10.0) ** 6)
        strength = held * temporal_weight / (n * epochs)
        heads.append(np.arange(n) + index * n)  # one way: the force below acts on both ends
        tails.append(np.arange(n) + (index + 1) * n)
        weights.append(strength)
    head, tail, p = np.concatenate(heads), np.concatenate(tails), np.concatenate(weights)
    rest = np.zeros(len(head), np.float32)  # the temporal springs' rest lengths; 0 on the graphs' edges
    if moves:
        rest[graph_edges:] = movement_length * np.concatenate(moves) / typical
    in_graph = np.arange(len(head)) < graph_edges
    # A graph has every edge both ways with the same weight: keep one way, the force acts on both ends.
    one_way = head < tail
    head = torch.from_numpy(head[one_way].astype(np.int64))
    tail = torch.from_numpy(tail[one_way].astype(np.int64))
    p = torch.from_numpy(4 * p[one_way].astype(np.float32))  # t-SNE's gradient has a factor 4
    in_graph = torch.from_numpy(in_graph[one_way])
    rest = torch.from_numpy(rest[one_way])
    springs = ~in_graph & (rest > 0)

    scaled = (start - start.mean(0)) / (start[:, 0].std() or 1.0) * 1e-4  # t-SNE's tiny start
    y = torch.from_numpy(np.tile(scaled.astype(np.float32), (epochs, 1)))
    total = epochs * n
    epoch_start = torch.arange(epochs).repeat_interleave(n) * n
    update = torch.zeros_like(y)
    gains = torch.ones_like(y)
    rate = max(n / exaggeration / 4, 50.0)  # scikit-learn's 'auto' learning rate, per epoch's n
    early = iterations // 4
    averaged = min(100, iterations // 5)  # the last steps, whose positions are averaged
    total_positions = torch.zeros_like(y)
    # Only the neighbour graphs' attraction is exaggerated early on; exaggerated temporal edges on
    # top of it would put the steps past what t-SNE's learning rate keeps stable.
    exaggerated = torch.where(in_graph, torch.tensor(exaggeration), torch.tensor(1.0)) * p
    for step in range(iterations):
        momentum = 0.5 if step < early else 0.8
        # Attraction: 4 * sum_j p_ij * w_ij * (y_i - y_j), over the edges.
        diff = y[head] - y[tail]
        w = 1 / (1 + diff.pow(2).sum(1))
        pull = ((exaggerated if step < early else p) * w)[:, None] * diff
        if movement_length > 0:  # temporal edges: a spring toward its rest length instead
            stretch = 1 - rest / diff.norm(dim=1).clamp_min(1e-6)
            pull = torch.where(springs[:, None], (p * stretch)[:, None] * diff, pull)
        grad = torch.zeros_like(y).index_add_(0, head, pull).index_add_(0, tail, -pull)
        # Repulsion: -4 / Z * sum_j w_ij^2 (y_i - y_j), from `negatives` random samples of the same epoch.
        others = epoch_start.repeat_interleave(negatives) + torch.randint(0, n, (total * negatives,), generator=generator)
        diff = y.repeat_interleave(negatives, 0) - y[others]
        w = 1 / (1 + diff.pow(2).sum(1))
        z = w.view(epochs, n * negatives).mean(1) * n * (n - 1)  # per epoch's normaliser
        push = (w * w)[:, None] * diff
        push = push.view(total, negatives, 2).sum(1) * ((n - 1) / negatives)
        grad -= 4 * push / z.repeat_interleave(n)[:, None] / epochs
        # t-SNE's gains and momentum.
        same = torch.sign(grad) == torch.sign(update)
        gains = torch.where(same, gains * 0.8, gains + 0.2).clamp_min(0.01)
        update = momentum * update - rate * epochs * gains * grad
        y += update
        if step >= iterations - averaged:
            total_positions += y
        if report is not None and step % 50 == 49:
            report((step + 1) / iterations)
    if averaged:
        y = total_positions / averaged
    return y.view(epochs, n, 2).numpy()
