"""The layout's gradient steps on the CPU, compiled by numba: one pass over the edges and the sampled
repulsion per step, in parallel, without the temporary arrays the same arithmetic makes in torch
(which spends most of a step allocating and scattering: 20,000 samples x 20 epochs took minutes).

The arithmetic is the one ``layout`` describes; a CUDA device runs the same steps in torch instead.
The repulsion's random partners come from a counter-based hash of (seed, step, sample, draw), so a
layout is the same for a seed whatever the number of threads.
"""

from __future__ import annotations

import numba
import numpy as np

_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@numba.njit(inline="always")
def _draw(seed: np.uint64, counter: np.uint64, n: int) -> int:
    """A uniform draw from 0..n-1 for one counter value: splitmix64's finaliser."""
    z = seed + counter * _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    z = z ^ (z >> np.uint64(31))
    return int(z % np.uint64(n))


def _steps(
    y, update, gains, averaged_sum,            # (epochs * n, 2) float32, changed in place
    offsets, head, tail, p,                    # graph edges one way, grouped by epoch: offsets (epochs + 1,)
    t_p, t_rest,                               # temporal edges, sample i of epoch e to sample i of e + 1
    n, epochs, first_step, last_step, iterations, early, averaged, exaggeration, rate, negatives, seed,
):
    """Steps ``first_step`` to ``last_step`` (exclusive) of ``iterations``."""
    total = epochs * n
    grad = np.zeros((total, 2), np.float32)
    w_sum = np.zeros(total, np.float64)
    push = np.zeros((total, 2), np.float64)
    scales = np.zeros(epochs, np.float64)
    seed64 = np.uint64(seed) * _GOLDEN + np.uint64(1)
    for step in range(first_step, last_step):
        momentum = np.float32(0.5 if step < early else 0.8)
        graph_factor = exaggeration if step < early else 1.0
        grad[:] = 0.0
        # Attraction along each epoch's graph: the edges of an epoch touch only its own samples,
        # so epochs run in parallel without races.
        for epoch in numba.prange(epochs):
            for e in range(offsets[epoch], offsets[epoch + 1]):
                a, b = head[e], tail[e]
                dx, dy = y[a, 0] - y[b, 0], y[a, 1] - y[b, 1]
                q = p[e] * graph_factor / (1.0 + dx * dx + dy * dy)
                grad[a, 0] += q * dx
                grad[a, 1] += q * dy
                grad[b, 0] -= q * dx
                grad[b, 1] -= q * dy
        # Temporal edges: a spring toward its rest length, or the same attraction when it has none.
        for epoch in range(epochs - 1):
            for i in range(n):
                e = epoch * n + i
                a, b = e, e + n
                dx, dy = y[a, 0] - y[b, 0], y[a, 1] - y[b, 1]
                if t_rest[e] > 0:
                    q = t_p[e] * (1.0 - t_rest[e] / max(np.sqrt(dx * dx + dy * dy), 1e-6))
                else:
                    q = t_p[e] / (1.0 + dx * dx + dy * dy)
                grad[a, 0] += q * dx
                grad[a, 1] += q * dy
                grad[b, 0] -= q * dx
                grad[b, 1] -= q * dy
        # Repulsion from `negatives` random samples of the same epoch, each sample on its own.
        for i in numba.prange(total):
            base = (i // n) * n
            sx, sy, ws = 0.0, 0.0, 0.0
            counter = (np.uint64(step) * np.uint64(total) + np.uint64(i)) * np.uint64(negatives)
            for k in range(negatives):
                j = base + _draw(seed64, counter + np.uint64(k), n)
                dx, dy = y[i, 0] - y[j, 0], y[i, 1] - y[j, 1]
                w = 1.0 / (1.0 + dx * dx + dy * dy)
                ws += w
                sx += w * w * dx
                sy += w * w * dy
            w_sum[i], push[i, 0], push[i, 1] = ws, sx, sy
        # Each epoch's normaliser, then every sample's step: three parallel regions a step, no more
        # (each costs a wake-up of every thread).
        for epoch in range(epochs):
            z = w_sum[epoch * n : (epoch + 1) * n].sum() / (n * negatives) * n * (n - 1)
            scales[epoch] = 4.0 * ((n - 1) / negatives) / z / epochs
        average = step >= iterations - averaged
        for i in numba.prange(total):
            scale = scales[i // n]
            for c in range(2):
                g = grad[i, c] - push[i, c] * scale
                u = update[i, c]
                # t-SNE's gains and momentum.
                gain = gains[i, c] * 0.8 if np.sign(g) == np.sign(u) else gains[i, c] + 0.2
                gain = max(gain, 0.01)
                gains[i, c] = gain
                u = momentum * u - rate * epochs * gain * g
                update[i, c] = u
                y[i, c] += u
                if average:
                    averaged_sum[i, c] += y[i, c]


#: Threads pay off only when a step has enough work: each parallel region wakes every thread, and
#: on a busy machine a small layout spends more time waiting for threads than computing.
PARALLEL_FROM = 50_000  # samples x epochs
_parallel = numba.njit(parallel=True, fastmath=True, cache=True)(_steps)
_serial = numba.njit(parallel=False, fastmath=True, cache=True)(_steps)


def run_steps(y, *args) -> None:
    """Steps ``first_step`` to ``last_step`` of the layout, in place (see ``_steps``)."""
    (_parallel if len(y) >= PARALLEL_FROM else _serial)(y, *args)
