"""What a projection's fit will need in memory, said before it starts rather than found out by the
kernel's out-of-memory killer an hour in.

The estimate follows the fit's largest parts: every epoch's points in one float32 array (the layout
and the networks read it all), each epoch's neighbour graph (about 1.8 edges per sample and
neighbour after the fuzzy union, each with its indices and weights), the layout's per-point state,
and the decoded background grid of one epoch. It errs high by a little, never by a factor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from epochal.errors import DynamicsError

_BASELINE = 600 * 2**20  # Python, numpy, torch and numba, loaded
_EDGE_BYTES = 1.8 * 60  # edges per sample and neighbour, times the bytes each costs while graphs and layout hold it
_LAYOUT_POINT_BYTES = 64  # coordinates, update, gains, sums (float32 x 2 each) and the repulsion's float64 sums
_NEIGHBOUR_BLOCK = 3 * 4 * 2048 * 2048  # distance blocks in flight


@dataclass(frozen=True)
class FitMemory:
    points: int
    graphs: int
    layout: int
    backgrounds: int

    @property
    def host(self) -> int:
        return _BASELINE + self.points + self.graphs + self.layout + self.backgrounds + _NEIGHBOUR_BLOCK

    @property
    def device(self) -> int:
        """On a CUDA device: the points the networks train on, the layout's edges and state."""
        return self.points + self.graphs // 2 + self.layout + self.backgrounds


def fit_memory(samples: int, width: int, epochs: int, params: Any, boundary: int) -> FitMemory:
    """The estimate for ``epochs`` epochs of ``samples`` representations ``width`` wide, and ``boundary``
    boundary samples in all."""
    decoded_width = width + 2 * max(params.decoder_dims or (0,))
    return FitMemory(
        points=4 * width * (samples * epochs + boundary),
        graphs=int(_EDGE_BYTES * epochs * samples * max(params.n_neighbors - 1, 1)),
        layout=_LAYOUT_POINT_BYTES * epochs * samples,
        backgrounds=4 * params.resolution**2 * decoded_width,
    )


def check_fits(samples: int, width: int, epochs: int, params: Any, boundary: int, device: Any) -> FitMemory:
    """The estimate; a DynamicsError with it and what to lower when it does not fit the free memory."""
    import psutil

    need = fit_memory(samples, width, epochs, params, boundary)
    free = psutil.virtual_memory().available
    what = f"fitting {epochs} epochs of {samples:,} samples x {width} wide"
    if need.host > free:
        raise DynamicsError(f"{what} needs about {_gb(need.host)} of memory and {_gb(free)} is free; {_LOWER}")
    if str(device).startswith("cuda"):
        import torch

        device_free, _ = torch.cuda.mem_get_info(torch.device(device))
        if need.device > device_free:
            raise DynamicsError(f"{what} needs about {_gb(need.device)} on {device} and {_gb(device_free)} is free "
                                f"there; {_LOWER}, or fit on the CPU (--device cpu)")
    return need


_LOWER = ("lower it: record fewer samples (RecordDynamics(max_samples=...)), fewer epochs "
          "(RecordDynamics(every_n_epochs=...)), or a narrower layer (RecordDynamics(layer=...))")


def _gb(size: int) -> str:
    return f"{size / 2**30:.1f} GB"
