"""epochal: record a PyTorch training run, resume it exactly, replay it."""

from epochal.checkpoint import LoadedCheckpoint, Retention
from epochal.errors import (
    CheckpointError,
    EpochalError,
    EpochalWarning,
    RunNotFoundError,
    RunStateError,
    SeriesNotFoundError,
    StoreError,
    StoreNotFoundError,
)
from epochal.run import Run, resume, start
from epochal.store import Checkpoint, Config, History, KeySummary, RunRecord, Store

__version__ = "0.1.0"

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "Config",
    "EpochalError",
    "EpochalWarning",
    "History",
    "KeySummary",
    "LoadedCheckpoint",
    "Retention",
    "Run",
    "RunNotFoundError",
    "RunRecord",
    "RunStateError",
    "SeriesNotFoundError",
    "Store",
    "StoreError",
    "StoreNotFoundError",
    "__version__",
    "resume",
    "start",
]
