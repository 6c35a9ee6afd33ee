"""The visualization model: a 2D layout of all of a run's epochs, an encoder and a decoder.

    >>> projection = Projection(random_state=0).fit(representations, heads=heads)
    >>> projection.embedding_[3]                                  # the recorded samples at the 4th epoch
    >>> coords = projection.transform(new_representations)        # new samples, by the encoder
    >>> decoded = projection.inverse_transform(coords, epoch=4)   # back to the 4th epoch's space

A fit has three parts:

1. **graphs**: each epoch's fuzzy k-nearest-neighbour graph, UMAP's (``neighbours``);
2. **layout**: every epoch laid out at once, t-SNE's loss over those graphs plus temporal edges that
   hold a sample in place across epochs unless its representation moved (``layout``). Edges between
   samples that the epoch's head predicts differently are loosened (``cross_class_weight``), so the
   predicted classes stay apart in 2D and the decoded background can follow them. Like
   umap-learn's ``embedding_``, these are the recorded samples' coordinates;
3. **networks**: an encoder learns the layout (representation to 2D, the same function for every
   epoch, so ``transform`` needs no epoch and a representation that did not move cannot move in 2D),
   and a decoder, told the epoch, learns the way back. The decoder is trained on reconstruction and on
   the prediction head's verdict (the head of that epoch must give the decoded point the class
   probabilities it gives the sample, and above all the same class), on the samples and on **boundary samples**: points mixed from
   two samples of different predicted classes where the head hesitates between them, placed among
   their nearest samples. They teach the decoder what lies between the classes, so the background,
   decoded and classified, shows the boundaries.

What it avoids from the reference implementations (DVI, TimeVis): no parameter-space temporal loss
(which collapses DVI's projection), no learning-rate schedule that stops learning after a few passes,
boundary samples made from the recorded samples of each split, train and test alike.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from epochal.dynamics.head import Head
from epochal.dynamics.layout import layout
from epochal.dynamics.memory import check_fits
from epochal.dynamics.neighbours import fuzzy_graph, nearest_neighbours
from epochal.errors import DynamicsError

#: (stage, fraction done of the whole fit, message)
Progress = Callable[[str, float, str], None]


@dataclass
class Params:
    """The visualization model's settings; the names the Time-Travelling Visualizer's config maps to."""

    n_neighbors: int = 15  # N_NEIGHBORS, counting the sample itself as umap-learn does
    encoder_dims: tuple[int, ...] = (256, 256)  # ENCODER_DIMS, without the input width and the 2
    decoder_dims: tuple[int, ...] = (256, 256)  # DECODER_DIMS, likewise
    reconstruction_weight: float = 1.0  # LAMBDA1
    temporal_weight: float = 1.0  # how strongly a sample is held to its place across epochs
    movement_length: float = 0.85  # 2D distance between a held sample's places when it moved the median move
    prediction_weight: float = 1.0  # the decoded point's class probabilities against the sample's
    class_weight: float = 3.0  # the decoded point's cross-entropy to the class predicted for the sample
    cross_class_weight: float = 0.03  # neighbour edges between samples the head predicts differently, times this
    boundary_bound: float = 0.4  # BOUNDARY.L_BOUND: widest gap between the top two probabilities
    boundary_share: float = 0.1  # boundary samples per epoch, as a share of the samples
    layout_iterations: int = 500
    max_epochs: int = 20  # MAX_EPOCH: the networks' passes over the points
    patience: int = 3  # PATIENT: passes without improvement before stopping
    batch_size: int = 512  # BATCH_SIZE
    learning_rate: float = 1e-3
    max_steps: int = 200  # per pass, so that very large fits still finish in time
    resolution: int = 300  # RESOLUTION of the background images

    def __post_init__(self) -> None:
        for name in self.names():
            value = getattr(self, name)
            if (expected := self.expected(name, value)) is not None:
                raise DynamicsError(f"projection setting {name} is {value!r:.80}; expected {expected}")

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in cls.__dataclass_fields__.values()]

    @staticmethod
    def expected(name: str, value: Any) -> str | None:
        """What ``name`` accepts, when ``value`` is not that; None when it is (or ``name`` is no setting)."""
        low, high = _RANGES.get(name, (None, None))
        if name in ("encoder_dims", "decoder_dims"):
            fits = isinstance(value, (tuple, list)) and len(value) <= _MOST_LAYERS and all(
                _whole(v) and low <= v <= high for v in value)
            return None if fits else f"at most {_MOST_LAYERS} layer widths, each a whole number from {low} to {high:,}"
        if isinstance(low, int):
            return None if _whole(value) and low <= value <= high else f"a whole number from {low} to {high:,}"
        if isinstance(low, float):
            number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            return None if number and low <= value <= high else f"a number from {low:g} to {high:g}"
        return None


#: Each setting's accepted range: beyond it a fit would not fit in memory or not finish. Floats are
#: checked as numbers, ints as whole numbers; the dims bound each layer's width.
_RANGES: dict[str, tuple[Any, Any]] = {
    "n_neighbors": (2, 10_000), "encoder_dims": (1, 16_384), "decoder_dims": (1, 16_384),
    "reconstruction_weight": (0.0, 1e6), "temporal_weight": (0.0, 1e6), "movement_length": (0.0, 1e3),
    "prediction_weight": (0.0, 1e6), "class_weight": (0.0, 1e6), "cross_class_weight": (0.0, 1.0),
    "boundary_bound": (0.0, 1.0), "boundary_share": (0.0, 1.0), "layout_iterations": (1, 100_000), "max_epochs": (1, 10_000),
    "patience": (1, 10_000), "batch_size": (1, 1 << 20), "learning_rate": (0.0, 1e3), "max_steps": (1, 1_000_000),
    "resolution": (2, 1000),  # the background decodes resolution**2 points, each as wide as the representation
}
_MOST_LAYERS = 16


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Projection:
    """The layout, encoder and decoder of all epochs, fitted together; scikit-learn style.

    Args:
        random_state: seed of the layout, the sampling and the weights.
        device: torch device of the fit: neighbour graphs, layout (on CUDA) and networks (default: CUDA when
            available, else CPU, where the layout runs compiled by numba).
        **params: any field of :class:`Params`.
    """

    def __init__(self, *, random_state: int | None = None, device: Any = None, **params: Any):
        unknown = sorted(set(params) - set(Params.names()))
        if unknown:
            raise DynamicsError(f"unknown projection parameter(s) {', '.join(unknown)}; known: {', '.join(Params.names())}")
        self.params = Params(**params)
        self.random_state = random_state
        self.device = device
        self.epochs_: list[int] = []
        self.history_: list[float] = []

    # -- scikit-learn API ---------------------------------------------------------------------------

    def fit(
        self,
        representations: Sequence[np.ndarray],
        *,
        epochs: Sequence[int] | None = None,
        heads: Sequence[tuple[np.ndarray, np.ndarray] | Head] | None = None,
        progress: Progress | None = None,
    ) -> Projection:
        """Fit on one (samples, width) array per epoch, the same samples in the same order each time.

        Args:
            epochs: the epochs' numbers (default 1, 2, ...), as ``inverse_transform`` takes them.
            heads: per epoch, the prediction head: ``(weight, bias)`` of a Linear layer, or a
                :class:`~epochal.dynamics.head.Head` of several layers; without them there is no
                prediction term and no boundary samples.
            progress: called with (stage, fraction of the whole fit done, message).
        """
        report = progress or (lambda *_: None)
        self._check(representations, epochs, heads)
        p = self.params
        self.epochs_ = list(range(1, len(representations) + 1)) if epochs is None else [int(e) for e in epochs]
        seed = 0 if self.random_state is None else int(self.random_state)
        rng = np.random.default_rng(self.random_state)
        points, scaled = self._scaled_points(representations, heads is not None)
        n, width = scaled[0].shape
        self.heads_ = None if heads is None else [_head(h) for h in heads]

        device = self._fit_device()
        report("graph", 0.0, "neighbour graphs")
        graphs = []
        for index, epoch_points in enumerate(scaled):
            # n_neighbors counts the sample itself, as umap-learn does
            found, distances = nearest_neighbours(epoch_points, p.n_neighbors - 1, device=device)
            graph = fuzzy_graph(found, distances)
            weights = graph.data
            if self.heads_ is not None and p.cross_class_weight != 1:
                # Loosen the ties between samples the head tells apart, so that the layout keeps the
                # predicted classes apart and the decoded background can follow them.
                predicted = self._scaled_logits(index, epoch_points).argmax(1)
                weights = weights * np.where(predicted[graph.row] == predicted[graph.col], 1.0, p.cross_class_weight)
            graphs.append((graph.row, graph.col, weights))
            report("graph", 0.1 * (index + 1) / len(scaled), f"neighbour graph of epoch {self.epochs_[index]}")

        moves = [np.linalg.norm(after - before, axis=1) for before, after in pairwise(scaled)]
        start = _principal_components(points[: n * len(scaled)], n)
        embedding = layout(
            graphs, moves, start, temporal_weight=p.temporal_weight, movement_length=p.movement_length,
            iterations=p.layout_iterations, seed=seed, device=device,
            report=lambda done: report("layout", 0.1 + 0.5 * done, f"layout, step {int(done * p.layout_iterations)}/{p.layout_iterations}"),
        )
        # Unit spread, so the networks' outputs need no scaling.
        self.layout_center_ = embedding.reshape(-1, 2).mean(0)
        self.layout_scale_ = float(embedding.reshape(-1, 2).std()) or 1.0
        self.embedding_ = ((embedding - self.layout_center_) / self.layout_scale_).astype(np.float32)

        coords, epoch_of = self.embedding_.reshape(-1, 2), np.repeat(np.arange(len(scaled)), n)
        self.boundary_ = (np.zeros((0, width), np.float32), np.zeros((0, 2), np.float32), np.zeros(0, np.int64))
        if self.heads_ is not None and p.boundary_share > 0:
            report("boundary", 0.6, "boundary samples")
            extra, extra_coords, extra_epoch = _boundary_samples(
                scaled, self.embedding_, p.n_neighbors, self._scaled_logits, p.boundary_share, p.boundary_bound, rng,
                device,
            )
            self.boundary_ = (extra * self.scale_ + self.center_, extra_coords, extra_epoch)
            points[n * len(scaled) : n * len(scaled) + len(extra)] = extra
            coords = np.concatenate([coords, extra_coords])
            epoch_of = np.concatenate([epoch_of, extra_epoch])
        points = points[: len(coords)]
        self._train(points, coords, epoch_of, n * len(scaled), len(scaled), seed, lambda done, message: report("train", 0.62 + 0.33 * done, message))
        return self

    def fit_transform(self, representations: Sequence[np.ndarray], **kwargs: Any) -> np.ndarray:
        """The (epochs, samples, 2) layout of the recorded samples."""
        return self.fit(representations, **kwargs).embedding_

    def transform(self, representations: np.ndarray) -> np.ndarray:
        """2D coordinates of (samples, width) representations of any epoch, by the encoder."""
        import torch

        self._fitted()
        x = (np.asarray(representations, dtype=np.float32) - self.center_) / self.scale_
        with torch.no_grad():
            return _batched(self.encoder_, x, self._device()).astype(np.float32)

    def inverse_transform(self, coords: np.ndarray, epoch: int) -> np.ndarray:
        """Representations decoded from 2D coordinates, in the space of ``epoch``."""
        import torch

        self._fitted()
        index = self._epoch_index(epoch)
        with torch.no_grad():
            decoded = _batched(
                lambda chunk: self._decode(chunk, torch.full((len(chunk),), index, device=chunk.device)),
                np.asarray(coords, dtype=np.float32), self._device(),
            )
        return decoded * self.scale_ + self.center_

    def predict_proba(self, representations: np.ndarray, epoch: int) -> np.ndarray:
        """Class probabilities the prediction head of ``epoch`` gives to representations."""
        if self.heads_ is None:
            raise DynamicsError("this projection was fitted without prediction heads, so it cannot classify")
        head = self.heads_[self._epoch_index(epoch)]
        x = np.asarray(representations, dtype=np.float32)
        return _softmax(head.logits(x) if isinstance(head, Head) else x @ head[0].T + head[1])

    @property
    def classes_(self) -> int:
        """The number of classes the heads tell apart; 0 without heads."""
        if not self.heads_:
            return 0
        head = self.heads_[0]
        return head.classes if isinstance(head, Head) else int(head[0].shape[0])

    # -- persistence --------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything the fit learned, as tensors and plain values: ``torch.save`` writes it so that it
        loads with ``weights_only=True``, and ``from_state`` makes the projection again."""
        self._fitted()
        return {
            "params": asdict(self.params), "random_state": self.random_state, "epochs": list(self.epochs_),
            "center": _tensor(self.center_), "scale": float(self.scale_),
            "heads": None if self.heads_ is None else [
                h.state() if isinstance(h, Head) else (_tensor(h[0]), _tensor(h[1])) for h in self.heads_],
            "history": [float(h) for h in self.history_], "width": int(self.width_),
            "embedding": _tensor(self.embedding_), "boundary": tuple(_tensor(a) for a in self.boundary_),
            "layout_center": _tensor(self.layout_center_), "layout_scale": float(self.layout_scale_),
            "encoder": self.encoder_.state_dict(), "decoder": self.decoder_.state_dict(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Projection:
        """The projection that ``state()`` describes; older states hold NumPy arrays where it now has tensors."""
        params = dict(state["params"])
        params["encoder_dims"], params["decoder_dims"] = tuple(params["encoder_dims"]), tuple(params["decoder_dims"])
        projection = cls(random_state=state["random_state"], device="cpu", **params)
        projection.epochs_ = [int(e) for e in state["epochs"]]
        projection.center_, projection.scale_ = _array(state["center"]), float(state["scale"])
        heads = state["heads"]
        projection.heads_ = None if heads is None else [
            Head.from_state(h) if isinstance(h, dict) else (_array(h[0]), _array(h[1])) for h in heads]
        projection.history_ = [float(h) for h in state["history"]]
        projection.embedding_ = _array(state["embedding"])
        projection.boundary_ = tuple(_array(a) for a in state["boundary"])
        projection.layout_center_ = _array(state["layout_center"])
        projection.layout_scale_ = float(state["layout_scale"])
        projection._build(int(state["width"]), len(projection.epochs_), "cpu", 0)
        projection.encoder_.load_state_dict(state["encoder"])
        projection.decoder_.load_state_dict(state["decoder"])
        projection.encoder_.eval()
        projection.decoder_.eval()
        return projection

    # -- inside ------------------------------------------------------------------------------------

    def _build(self, width: int, n_epochs: int, device: Any, seed: int) -> None:
        import torch

        torch.manual_seed(seed)
        p = self.params
        self.width_ = width
        self.encoder_ = _mlp([width, *p.encoder_dims, 2]).to(device)
        # The decoder is told the epoch: one 2D point stands for different representations over time.
        self.decoder_ = torch.nn.ModuleDict(
            {"epoch": torch.nn.Embedding(n_epochs, 8), "net": _mlp([2 + 8, *p.decoder_dims, width])}
        ).to(device)

    def _decode(self, coords: Any, epoch_ids: Any) -> Any:
        import torch

        return self.decoder_["net"](torch.cat([coords, self.decoder_["epoch"](epoch_ids)], dim=1))

    def _train(self, points, coords, epoch_of, samples, n_epochs, seed, report):
        """Encoder: representation -> layout, on the samples; decoder: layout -> representation, on all."""
        import torch
        import torch.nn.functional as F

        p = self.params
        device = self._fit_device()
        self._build(points.shape[1], n_epochs, device, seed)
        generator = torch.Generator().manual_seed(seed)
        x, y = torch.from_numpy(points).to(device), torch.from_numpy(coords.astype(np.float32)).to(device)
        epoch_ids = torch.from_numpy(epoch_of.astype(np.int64)).to(device)
        heads_w = heads_b = modules = None
        if self.heads_ is not None and all(isinstance(h, tuple) for h in self.heads_):  # affine: one einsum a batch
            heads_w = torch.from_numpy(np.stack([w * self.scale_ for w, _ in self.heads_])).to(device)
            heads_b = torch.from_numpy(np.stack([b + w @ self.center_ for w, b in self.heads_])).to(device)
        elif self.heads_ is not None:  # deeper heads: each epoch's own layers, on the unscaled points
            center = torch.from_numpy(self.center_).to(device)
            modules = [_unscaled(h, self.scale_, center, device) for h in self.heads_]
        optimizer = torch.optim.Adam([*self.encoder_.parameters(), *self.decoder_.parameters()], lr=p.learning_rate)
        # At least 50 steps a pass: a small run has few points but the networks still need to learn.
        steps = min(p.max_steps, max(50, math.ceil(len(points) / p.batch_size)))
        best, stale = math.inf, 0
        started = time.perf_counter()
        for pass_number in range(p.max_epochs):
            total = 0.0  # a tensor after the first step: no wait for the device at every step
            for _ in range(steps):
                chosen = torch.randint(0, len(points), (p.batch_size,), generator=generator).to(device)
                samples_only = chosen[chosen < samples]  # boundary samples have no encoder target
                loss = (self.encoder_(x[samples_only]) - y[samples_only]).pow(2).sum(1).mean()
                decoded = self._decode(y[chosen], epoch_ids[chosen])
                loss = loss + p.reconstruction_weight * (decoded - x[chosen]).pow(2).sum(1).mean()
                if self.heads_ is not None and (p.prediction_weight > 0 or p.class_weight > 0):
                    if heads_w is not None:
                        target = _affine_logits(x[chosen], epoch_ids[chosen], heads_w, heads_b)
                        got = _affine_logits(decoded, epoch_ids[chosen], heads_w, heads_b)
                    else:
                        target, got = _per_epoch(modules, epoch_ids[chosen], x[chosen], decoded)
                    loss = loss + p.prediction_weight * F.kl_div(
                        F.log_softmax(got, 1), F.log_softmax(target, 1), log_target=True, reduction="batchmean"
                    ) + p.class_weight * F.cross_entropy(got, target.argmax(1))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total = total + loss.detach()
            mean = float(total) / steps
            self.history_.append(mean)
            report((pass_number + 1) / p.max_epochs,
                   f"networks, pass {pass_number + 1}/{p.max_epochs}, loss {mean:.4f}, {time.perf_counter() - started:.0f} s")
            if math.isinf(best) or mean < best - 1e-3 * abs(best):
                best, stale = mean, 0
            else:
                stale += 1
                if stale >= p.patience:
                    break
        self.encoder_.eval()
        self.decoder_.eval()

    def _scaled_points(self, representations: Sequence[np.ndarray], boundary: bool) -> tuple[np.ndarray, list[np.ndarray]]:
        """Every epoch's points in one float32 array, centred and scaled, each epoch a view into it, with
        room for the boundary samples after them. Epochs are read one at a time (``representations`` may
        load each as it is asked for), so no other copy of the whole run is ever held."""
        first = np.asarray(representations[0])
        if first.ndim != 2:
            raise DynamicsError(f"every epoch needs a (samples, width) array of the same shape, got {first.shape}")
        n, width = first.shape
        self._check_samples(n)
        room = boundary_count(n, self.params.boundary_share) * len(representations) if boundary else 0
        check_fits(n, width, len(representations), self.params, room, self._fit_device())
        points = np.empty((n * len(representations) + room, width), np.float32)
        scaled = [points[i * n : (i + 1) * n] for i in range(len(representations))]
        bad = []
        for index in range(len(representations)):
            epoch = first if index == 0 else np.asarray(representations[index])
            if epoch.shape != first.shape:
                raise DynamicsError(
                    f"every epoch needs a (samples, width) array of the same shape, got {sorted({first.shape, epoch.shape})}")
            scaled[index][:] = epoch
            if not np.isfinite(scaled[index]).all():
                bad.append(self.epochs_[index])
            del epoch
        if bad:
            raise DynamicsError(f"representations hold NaN or infinite values at epoch(s) {bad}")
        # One scale for every epoch, so that movement between epochs keeps its size.
        self.center_ = np.mean([s.mean(0) for s in scaled], axis=0).astype(np.float32)
        self.scale_ = float(np.sqrt(np.mean([((s - self.center_) ** 2).sum(1).mean() for s in scaled]))) or 1.0
        for epoch_points in scaled:
            epoch_points -= self.center_
            epoch_points /= self.scale_
        return points, scaled

    def _check(self, reps: Sequence[np.ndarray], epochs: Sequence[int] | None, heads: Sequence | None) -> None:
        if not len(reps):
            raise DynamicsError("no epochs to fit: give at least one epoch's representations")
        if epochs is not None and len(epochs) != len(reps):
            raise DynamicsError(f"{len(epochs)} epoch numbers for {len(reps)} epochs of representations")
        if heads is not None and len(heads) != len(reps):
            raise DynamicsError(f"{len(heads)} prediction heads for {len(reps)} epochs of representations")

    def _check_samples(self, n: int) -> None:
        if n < self.params.n_neighbors:
            raise DynamicsError(
                f"n_neighbors={self.params.n_neighbors} needs at least {self.params.n_neighbors} samples, got {n}; "
                "record more samples or lower n_neighbors"
            )
        if not 0 < self.params.cross_class_weight <= 1:
            raise DynamicsError(f"cross_class_weight must be above 0 and at most 1, got {self.params.cross_class_weight}")
        if self.params.n_neighbors < 2:
            raise DynamicsError(f"n_neighbors must be at least 2 (the sample and one neighbour), got {self.params.n_neighbors}")

    def _scaled_logits(self, index: int, scaled: np.ndarray) -> np.ndarray:
        """The logits that epoch ``index``'s head gives to points in the fit's scaled space."""
        head = self.heads_[index]
        if isinstance(head, Head):
            return head.logits(scaled * self.scale_ + self.center_)
        weight, bias = head
        return scaled @ (weight * self.scale_).T + (bias + weight @ self.center_)

    def _fitted(self) -> None:
        if not hasattr(self, "encoder_"):
            raise DynamicsError("this projection is not fitted yet; call fit() first")

    def _epoch_index(self, epoch: int) -> int:
        try:
            return self.epochs_.index(int(epoch))
        except ValueError:
            raise DynamicsError(f"epoch {epoch} was not fitted; fitted epochs: {self.epochs_}") from None

    def _fit_device(self) -> Any:
        """Where the fit runs: the device asked for, else CUDA when there is one, else the CPU."""
        import torch

        return torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    def _device(self) -> Any:
        return next(self.encoder_.parameters()).device


def _boundary_samples(
    scaled: list[np.ndarray], embedding: np.ndarray, k: int,
    logits_of: Callable[[int, np.ndarray], np.ndarray], share: float, bound: float, rng: np.random.Generator,
    device: Any = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points between samples of different predicted classes where the head hesitates: (points, coords, epochs).

    Each mixes a sample with another sample predicted as its second most likely class, the mix found
    by bisection where the two classes' probabilities cross; kept when the top two probabilities are
    within ``bound``. Its 2D place is the mean of its nearest samples' places in that epoch's layout.
    """
    n, count = len(scaled[0]), boundary_count(len(scaled[0]), share)
    points, places, epochs = [], [], []
    for index, reps in enumerate(scaled):
        ranked = np.argsort(-logits_of(index, reps), axis=1)
        first, second = ranked[:, 0], ranked[:, 1]
        by_class = {c: np.flatnonzero(first == c) for c in np.unique(first)}
        starts = rng.integers(0, n, size=count * 2)
        starts = starts[np.isin(second[starts], list(by_class))][:count]
        if len(starts) == 0:
            continue  # every sample is predicted the same class: no boundary to find
        ends = np.array([rng.choice(by_class[second[s]]) for s in starts])
        rows = np.arange(len(starts))
        low, high = np.zeros(len(starts)), np.ones(len(starts))
        for _ in range(16):
            mid = (low + high) / 2
            mixed = (1 - mid[:, None]) * reps[starts] + mid[:, None] * reps[ends]
            logits = logits_of(index, mixed)
            past = logits[rows, second[starts]] > logits[rows, first[starts]]
            high, low = np.where(past, mid, high), np.where(past, low, mid)
        mixed = ((1 - mid[:, None]) * reps[starts] + mid[:, None] * reps[ends]).astype(np.float32)
        top = np.sort(_softmax(logits_of(index, mixed)), axis=1)[:, ::-1]
        mixed = mixed[top[:, 0] - top[:, 1] <= bound]
        if len(mixed) == 0:
            continue
        nearest, _ = nearest_neighbours(mixed, k, among=reps, device=device)
        place = embedding[index][nearest].mean(1)
        points.append(mixed)
        places.append(place.astype(np.float32))
        epochs.append(np.full(len(mixed), index))
    if not points:
        return np.zeros((0, scaled[0].shape[1]), np.float32), np.zeros((0, 2), np.float32), np.zeros(0, np.int64)
    return np.concatenate(points), np.concatenate(places), np.concatenate(epochs)


def _head(head: tuple[np.ndarray, np.ndarray] | Head) -> tuple[np.ndarray, np.ndarray] | Head:
    """A head as the fit keeps it: (weight, bias) as float32 when it is affine, else the Head."""
    if isinstance(head, Head):
        head = head.affine() or head
    if isinstance(head, Head):
        return head
    weight, bias = head
    return np.asarray(weight, np.float32), np.asarray(bias, np.float32)


def _unscaled(head: tuple[np.ndarray, np.ndarray] | Head, scale: float, center: Any, device: Any) -> Callable[[Any], Any]:
    """A torch function giving ``head``'s logits of points in the fit's scaled space."""
    import torch

    if isinstance(head, Head):
        module = head.module(device)
        return lambda x: module(x * scale + center)
    weight = torch.from_numpy(head[0]).to(device)
    bias = torch.from_numpy(head[1]).to(device)
    return lambda x: (x * scale + center) @ weight.T + bias


def _affine_logits(x: Any, epoch_ids: Any, weights: Any, biases: Any) -> Any:
    """Each point's logits by its own epoch's affine head (``weights`` (epochs, classes, width)). While
    the heads have few rows in all, one product with all of them and a pick per point is several times
    cheaper than gathering a weight matrix for every point."""
    import torch

    epochs, classes, width = weights.shape
    if epochs * classes <= 1024:
        every = (x @ weights.reshape(epochs * classes, width).T).view(len(x), epochs, classes)
        return every[torch.arange(len(x), device=x.device), epoch_ids] + biases[epoch_ids]
    return torch.einsum("nd,ncd->nc", x, weights[epoch_ids]) + biases[epoch_ids]


def _per_epoch(modules: list[Callable[[Any], Any]], epoch_ids: Any, x: Any, decoded: Any) -> tuple[Any, Any]:
    """(the logits of the points, of their decoded points), each by its own epoch's head."""
    import torch

    target = got = None
    for index in torch.unique(epoch_ids).tolist():
        mine = epoch_ids == index
        with torch.no_grad():
            want = modules[index](x[mine])
        have = modules[index](decoded[mine])
        if target is None:
            target = torch.empty((len(x), want.shape[1]), device=x.device)
            got = torch.empty((len(x), have.shape[1]), device=x.device, dtype=have.dtype)
        target[mine] = want
        got = got.index_put((mine,), have)
    return target, got


def boundary_count(samples: int, share: float) -> int:
    """The most boundary samples made per epoch."""
    return max(1, int(share * samples)) if share > 0 else 0


def _principal_components(points: np.ndarray, n: int) -> np.ndarray:
    """The first two principal components of every epoch's points, averaged per sample: one start for all."""
    mean = points.mean(0)
    _, _, vt = np.linalg.svd(points[:: max(1, len(points) // 20000)] - mean, full_matrices=False)
    projected = points @ vt[:2].T - mean @ vt[:2].T  # no centred copy of every point
    return projected.reshape(-1, n, 2).mean(0)


def _mlp(widths: Sequence[int]) -> Any:
    import torch

    layers: list[Any] = []
    for index, (fan_in, fan_out) in enumerate(pairwise(widths)):
        layers.append(torch.nn.Linear(fan_in, fan_out))
        if index < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def _batched(function: Callable[[Any], Any], values: np.ndarray, device: Any, size: int = 65536) -> np.ndarray:
    import torch

    out = [function(torch.from_numpy(values[i : i + size]).to(device)).cpu().numpy() for i in range(0, len(values), size)]
    return np.concatenate(out) if out else np.zeros((0, 2), np.float32)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(1, keepdims=True))
    return shifted / shifted.sum(1, keepdims=True)


def _tensor(array: np.ndarray) -> Any:
    """A CPU tensor of the array, so the saved state needs no NumPy unpickling."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(array))


def _array(value: Any) -> np.ndarray:
    """The NumPy array of a saved tensor (or of an array, in states saved before tensors)."""
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)
