"""Exact nearest neighbours and UMAP's fuzzy neighbour graph, in numpy and torch.

The graph is the one umap-learn builds (McInnes et al., 2018; ``umap.umap_.fuzzy_simplicial_set``,
which the tests compare against): each sample's distances to its k nearest neighbours become
memberships ``exp(-(d - rho) / sigma)``, with ``rho`` the distance to the nearest one and ``sigma``
chosen so the memberships sum to log2(k); the graph is their fuzzy union ``A + A' - A * A'``.

It is computed here rather than by umap-learn because umap-learn compiles its numba code in every
new process (about 10 s, and NN-descent another 50 s), a large part of a digits-sized fit; exact
neighbours by matrix products take well under a second there and a few seconds for 20,000 samples.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse

from epochal.errors import DynamicsError


def nearest_neighbours(
    points: np.ndarray, k: int, *, among: np.ndarray | None = None, chunk: int = 2048, device: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """(indices, distances), each (n, k): every point's k nearest by Euclidean distance, nearest first.

    Without ``among``, the neighbours are the other points; with it, rows of ``among``. The products
    run on ``device`` (default: the CPU).
    """
    import torch

    queries = torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32)).to(device or "cpu")
    x = queries if among is None else torch.from_numpy(np.ascontiguousarray(among, dtype=np.float32)).to(queries.device)
    n, available = len(queries), len(x) - (1 if among is None else 0)
    if k > available:
        raise DynamicsError(f"{k} neighbours need at least {k + (1 if among is None else 0)} samples, got {len(x)}")
    if among is None:
        found, d2 = _among_themselves(queries, k, chunk)
        return found.cpu().numpy(), d2.clamp_min(0).sqrt().cpu().numpy()
    squares = x.pow(2).sum(1)
    query_squares = queries.pow(2).sum(1)
    indices = np.empty((n, k), dtype=np.int64)
    distances = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, chunk):
        rows = queries[start : start + chunk]
        d2 = torch.addmm(squares[None, :], rows, x.T, alpha=-2).add_(query_squares[start : start + chunk, None])
        values, found = torch.topk(d2, k, dim=1, largest=False, sorted=True)
        indices[start : start + len(rows)] = found.cpu().numpy()
        distances[start : start + len(rows)] = values.clamp_min(0).sqrt().cpu().numpy()
    return indices, distances


def _among_themselves(x, k: int, chunk: int):
    """(indices, squared distances) of each row's k nearest other rows. Each block of distances serves
    the rows of both its sides (d(a, b) = d(b, a)), so only half the products are computed: the
    products are the whole cost, 20,000 x 512 floats take seconds per epoch."""
    import torch

    n = len(x)
    squares = x.pow(2).sum(1)
    best = torch.full((n, k), float("inf"), device=x.device)
    best_at = torch.zeros((n, k), dtype=torch.int64, device=x.device)

    def merge(rows: slice, d2, columns_start: int) -> None:
        values, found = torch.topk(d2, min(k, d2.shape[1]), dim=1, largest=False, sorted=False)
        values = torch.cat([best[rows], values], 1)
        at = torch.cat([best_at[rows], found + columns_start], 1)
        kept, order = torch.topk(values, k, dim=1, largest=False, sorted=True)
        best[rows], best_at[rows] = kept, torch.gather(at, 1, order)

    for a in range(0, n, chunk):
        rows = slice(a, min(a + chunk, n))
        for b in range(a, n, chunk):
            columns = slice(b, min(b + chunk, n))
            d2 = torch.addmm(squares[None, columns], x[rows], x[columns].T, alpha=-2).add_(squares[rows, None])
            if a == b:
                d2.fill_diagonal_(float("inf"))  # not itself
            merge(rows, d2, b)
            if a != b:
                merge(columns, d2.T, a)
    return best_at, best


def fuzzy_graph(indices: np.ndarray, distances: np.ndarray) -> sparse.coo_matrix:
    """UMAP's symmetric fuzzy k-NN graph from each point's neighbours (self excluded), as (n, n) COO."""
    n, k = indices.shape
    rho, sigma = _smooth_distances(distances.astype(np.float64), k + 1)  # umap-learn counts the point itself
    memberships = np.exp(-np.maximum(distances - rho[:, None], 0.0) / sigma[:, None])
    memberships[distances - rho[:, None] <= 0] = 1.0
    directed = sparse.csr_matrix((memberships.ravel(), (np.repeat(np.arange(n), k), indices.ravel())), shape=(n, n))
    transposed = directed.T.tocsr()
    product = directed.multiply(transposed)
    return (directed + transposed - product).tocoo()


def _smooth_distances(distances: np.ndarray, k: int, iterations: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Per point, rho (distance to the nearest neighbour) and sigma by bisection, as umap-learn does."""
    target = np.log2(k)
    positive = np.where(distances > 0, distances, np.inf)
    rho = positive.min(1)
    rho[~np.isfinite(rho)] = 0.0
    low, high = np.zeros(len(distances)), np.full(len(distances), np.inf)
    mid = np.ones(len(distances))
    excess = np.maximum(distances - rho[:, None], 0.0)
    for _ in range(iterations):
        total = np.exp(-excess / mid[:, None]).sum(1)
        done = np.abs(total - target) < 1e-5
        too_big = total > target
        high = np.where(too_big & ~done, mid, high)
        low = np.where(~too_big & ~done, mid, low)
        mid = np.where(done, mid, np.where(np.isinf(high), mid * 2, (low + high) / 2))
    # umap-learn's floor: sigma at least a thousandth of the mean distance, per point and overall.
    mean_all = distances.mean()
    mean_each = distances.mean(1)
    floor = np.where(rho > 0, 1e-3 * mean_each, 1e-3 * mean_all)
    return rho, np.maximum(mid, floor)
