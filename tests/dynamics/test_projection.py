"""The visualization model on its own: its neighbour graph, its fit, transform and inverse_transform."""

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors

from epochal.dynamics import DynamicsError, Projection
from epochal.dynamics.neighbours import fuzzy_graph, nearest_neighbours
from epochal.dynamics.quality import neighbour_preservation, prediction_preservation

QUICK = {"layout_iterations": 200, "max_epochs": 8, "patience": 8}


def blobs(epochs=3, n=400, width=16, classes=4, seed=0):
    """Classes that pull apart epoch by epoch, and a linear head that tells them apart: (reps, heads, labels)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, width)) * 3
    labels = np.arange(n) % classes
    noise = rng.normal(size=(n, width))
    reps, heads = [], []
    for epoch in range(epochs):
        spread = 0.4 + 0.3 * epoch
        reps.append((centres[labels] * spread + noise).astype(np.float32))
        weight = (centres * spread).astype(np.float32)
        heads.append((weight, (-0.5 * (weight**2).sum(1)).astype(np.float32)))  # nearest centre wins
    return reps, heads, labels


@pytest.fixture(scope="module")
def fitted():
    reps, heads, _ = blobs()
    return Projection(random_state=0, **QUICK).fit(reps, epochs=[1, 2, 3], heads=heads), reps, heads


def test_nearest_neighbours_are_exact():
    points = np.random.default_rng(1).normal(size=(500, 12)).astype(np.float32)
    indices, distances = nearest_neighbours(points, 10, chunk=128)
    expected_distances, expected = NearestNeighbors(n_neighbors=11).fit(points).kneighbors(points)
    assert np.array_equal(np.sort(indices, 1), np.sort(expected[:, 1:], 1))
    assert np.allclose(distances, expected_distances[:, 1:], atol=1e-4)


def test_the_fuzzy_graph_is_umaps():
    from umap.umap_ import fuzzy_simplicial_set

    points = np.random.default_rng(2).normal(size=(300, 20)).astype(np.float32)
    indices, distances = nearest_neighbours(points, 14)
    # umap-learn counts each point as its own nearest neighbour.
    with_self = np.concatenate([np.arange(300)[:, None], indices], axis=1)
    with_zero = np.concatenate([np.zeros((300, 1), np.float32), distances], axis=1)
    expected, _, _ = fuzzy_simplicial_set(points, 15, 0, "euclidean", knn_indices=with_self, knn_dists=with_zero)
    ours = fuzzy_graph(indices, distances).tocsr()
    assert abs(ours - expected).max() < 1e-4
    assert ours.nnz == expected.nnz


def test_the_layout_keeps_neighbours_and_the_encoder_learns_it(fitted):
    projection, reps, _ = fitted
    assert projection.embedding_.shape == (3, 400, 2)
    assert projection.epochs_ == [1, 2, 3]
    for epoch, points in enumerate(reps):
        # Gaussian noise in 16 dimensions keeps few neighbours in any 2D picture; PCA's is the baseline.
        principal = PCA(2).fit_transform(points)
        npr = neighbour_preservation(points, projection.embedding_[epoch], 15).mean()
        assert npr > 1.15 * neighbour_preservation(points, principal, 15).mean()
        encoded = projection.transform(points)
        assert encoded.shape == (400, 2)
        # The encoder lands each sample near its place in the layout (unit spread).
        assert np.median(np.linalg.norm(encoded - projection.embedding_[epoch], axis=1)) < 0.3


def test_decoded_points_get_the_class_the_head_gave_the_sample(fitted):
    projection, reps, heads = fitted
    for epoch, (points, (weight, bias)) in enumerate(zip(reps, heads), start=1):
        decoded = projection.inverse_transform(projection.embedding_[epoch - 1], epoch=epoch)
        assert decoded.shape == points.shape
        predicted = (points @ weight.T + bias).argmax(1)
        assert prediction_preservation(predicted, projection.predict_proba(decoded, epoch).argmax(1)) > 0.9
    assert len(projection.boundary_[0]) > 0  # boundary samples were made


def test_a_projection_saved_and_loaded_transforms_the_same(fitted):
    projection, reps, _ = fitted
    again = Projection.from_state(projection.state())
    assert np.allclose(again.transform(reps[1]), projection.transform(reps[1]), atol=1e-5)
    coords = projection.embedding_[2][:50]
    assert np.allclose(again.inverse_transform(coords, 3), projection.inverse_transform(coords, 3), atol=1e-4)


def test_the_same_random_state_gives_the_same_layout():
    reps, heads, _ = blobs(epochs=2, n=200)
    first = Projection(random_state=3, layout_iterations=100, max_epochs=1).fit(reps, heads=heads)
    second = Projection(random_state=3, layout_iterations=100, max_epochs=1).fit(reps, heads=heads)
    assert np.array_equal(first.embedding_, second.embedding_)


def test_a_sample_that_did_not_move_stays_in_place():
    reps, _, _ = blobs(epochs=2, n=300)
    reps[1] = reps[0].copy()
    reps[1][:30] += np.random.default_rng(4).normal(size=(30, 16)).astype(np.float32) * 6  # only these move
    projection = Projection(random_state=0, layout_iterations=200, max_epochs=1).fit(reps)
    moved = np.linalg.norm(projection.embedding_[1] - projection.embedding_[0], axis=1)
    assert np.median(moved[30:]) < 0.2 * np.median(moved[:30])


def test_bad_input_is_named():
    reps, heads, _ = blobs(epochs=2, n=100)
    with pytest.raises(DynamicsError, match="n_neighbors=15 needs at least 15 samples, got 10"):
        Projection().fit([r[:10] for r in reps])
    with pytest.raises(DynamicsError, match=r"same shape, got \[\(100, 8\), \(100, 16\)\]"):
        Projection().fit([reps[0][:, :8], reps[1]])
    with pytest.raises(DynamicsError, match="unknown projection parameter.*perplexity.*known: n_neighbors"):
        Projection(perplexity=30)
    with pytest.raises(DynamicsError, match="cross_class_weight must be above 0 and at most 1, got 0"):
        Projection(cross_class_weight=0).fit(reps, heads=heads)
    with pytest.raises(DynamicsError, match="not fitted yet"):
        Projection().transform(reps[0])
    with pytest.raises(DynamicsError, match="NaN or infinite values at epoch"):
        Projection().fit([reps[0], np.full_like(reps[1], np.nan)])
    with pytest.raises(DynamicsError, match="1 prediction heads for 2 epochs"):
        Projection().fit(reps, heads=heads[:1])
    projection = Projection(random_state=0, layout_iterations=20, max_epochs=1).fit(reps)
    with pytest.raises(DynamicsError, match=r"epoch 7 was not fitted; fitted epochs: \[1, 2\]"):
        projection.inverse_transform(np.zeros((1, 2)), epoch=7)
    with pytest.raises(DynamicsError, match="without prediction heads"):
        projection.predict_proba(reps[0], epoch=1)


def test_samples_held_in_place_still_move_in_2d_as_far_as_they_moved():
    # Every sample moves a little, each its own distance; held in place, the ones that moved more
    # must still move more in 2D (pinned to a spot, their 2D moves would be the layout's noise).
    from scipy.stats import spearmanr

    reps, _, _ = blobs(epochs=2, n=300)
    rng = np.random.default_rng(5)
    direction = rng.normal(size=(300, 16)).astype(np.float32)
    size = rng.uniform(0, 0.05, 300).astype(np.float32)
    reps[1] = reps[0] + direction / np.linalg.norm(direction, axis=1, keepdims=True) * size[:, None]
    high = np.linalg.norm(reps[1] - reps[0], axis=1)
    held = high < 0.5 * np.median(high)  # held fully, whatever their move: only the spring tells them apart

    def correlation(**settings):
        # The default iterations: the springs settle in the layout's last steps.
        projection = Projection(random_state=0, max_epochs=1, **settings).fit(reps)
        low = np.linalg.norm(projection.embedding_[1] - projection.embedding_[0], axis=1)
        return spearmanr(high[held], low[held])[0]

    graded, pinned = correlation(), correlation(movement_length=0)
    assert graded > 0.6 and graded > pinned + 0.3, (graded, pinned)


def test_the_compiled_layout_and_the_torch_layout_keep_the_same_neighbours():
    # The CPU runs the layout's steps compiled by numba, a CUDA device runs them in torch: the two
    # must lay out alike (not equal: their random repulsion partners differ).
    from epochal.dynamics.layout import _edges, _Schedule, _torch_steps, layout

    reps, _, _ = blobs(epochs=2, n=400)
    graphs = []
    for r in reps:
        graph = fuzzy_graph(*nearest_neighbours(r, 14))
        graphs.append((graph.row, graph.col, graph.data))
    moves = [np.linalg.norm(reps[1] - reps[0], axis=1)]
    start = PCA(2, random_state=0).fit_transform(reps[0])
    compiled = layout(graphs, moves, start, iterations=300)
    scaled = (start - start.mean(0)) / start[:, 0].std() * 1e-4
    in_torch = _torch_steps(np.tile(scaled.astype(np.float32), (2, 1)), _edges(graphs, moves, 400, 1.0, 0.85), 400, 2,
                            _Schedule(300, 12.0, rate=max(400 / 12 / 4, 50.0)), 16, 0, "cpu", None)
    for epoch in range(2):
        kept = [neighbour_preservation(reps[epoch], laid_out[epoch], k=15).mean() for laid_out in (compiled, in_torch)]
        assert min(kept) > 0.3, kept
        assert abs(kept[0] - kept[1]) < 0.08, kept


def test_a_fit_that_would_not_fit_in_memory_says_so_before_it_starts():
    reps, _, _ = blobs(epochs=1, n=100)

    class ManyEpochs:  # a run of a million epochs; only the first is ever read
        read = 0

        def __len__(self):
            return 1_000_000

        def __getitem__(self, index):
            ManyEpochs.read += 1
            return reps[0]

    with pytest.raises(DynamicsError, match=r"fitting 1000000 epochs of 100 samples x 16 wide needs about [\d.]+ GB "
                                            r"of memory and [\d.]+ GB is free; lower it: record fewer samples"):
        Projection().fit(ManyEpochs())
    assert ManyEpochs.read == 1


@pytest.mark.parametrize("epochs", [20, 200])  # one product with every head, or a weight matrix gathered per point
def test_each_point_gets_the_logits_of_its_own_epochs_head(epochs):
    import torch

    from epochal.dynamics.projection import _affine_logits

    generator = torch.Generator().manual_seed(0)
    weights, biases = torch.randn(epochs, 10, 32, generator=generator), torch.randn(epochs, 10, generator=generator)
    x, ids = torch.randn(300, 32, generator=generator), torch.randint(0, epochs, (300,), generator=generator)
    expected = torch.stack([weights[e] @ point + biases[e] for point, e in zip(x, ids.tolist())])
    assert torch.allclose(_affine_logits(x, ids, weights, biases), expected, atol=1e-4)
