"""Mixed precision for the Trainer: which dtype ``amp=`` means on a device, and whether it needs a GradScaler.

bfloat16 has float32's range, so its gradients need no scaling, and a GradScaler's ``step`` (which
reads the device to check for infinities) is avoided; float16 needs one. ``amp=True`` therefore picks
bfloat16 where the device computes it (CPUs, CUDA GPUs from Ampere on) and float16 with a scaler
elsewhere; ``"bf16"`` and ``"fp16"`` choose explicitly.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

__all__ = ["AMP_CHOICES", "amp_dtype", "autocast", "grad_scaler"]

AMP_CHOICES = (False, True, "bf16", "fp16")


def amp_dtype(amp: Any, device: torch.device) -> torch.dtype | None:
    """The autocast dtype that ``amp`` means on ``device``; None for full precision.

    Raises:
        ValueError: ``amp`` is none of ``AMP_CHOICES``, or asks for bfloat16 on a CUDA device that
            does not compute it.
    """
    if amp is False or amp is None:
        return None
    if amp is True:
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float16 if device.type == "mps" else torch.bfloat16
    if amp == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError(f"amp='bf16': {torch.cuda.get_device_name(device)} does not compute bfloat16; "
                             "use amp='fp16' (float16 with a GradScaler) or amp=True to choose")
        return torch.bfloat16
    if amp == "fp16":
        return torch.float16
    raise ValueError(f"amp must be True (bfloat16 where the device computes it, else float16), False, 'bf16' "
                     f"or 'fp16', got {amp!r}")


def grad_scaler(dtype: torch.dtype | None, device: torch.device) -> torch.amp.GradScaler | None:
    """A GradScaler for float16 training, which needs one; None otherwise."""
    return torch.amp.GradScaler(device.type) if dtype == torch.float16 else None


def autocast(dtype: torch.dtype | None, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` on ``device``, or nothing for full precision."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
