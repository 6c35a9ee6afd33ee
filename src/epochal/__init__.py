"""epochal: record a PyTorch training run, resume it exactly, replay it."""

from epochal.checkpoint import LoadedCheckpoint
from epochal.errors import (
    CheckpointError,
    EpochalError,
    EpochalWarning,
    RankError,
    RunNotFoundError,
    RunStateError,
    SeriesNotFoundError,
    StoreError,
    StoreNotFoundError,
)
from epochal.opening import resume, start
from epochal.retention import Retention
from epochal.run import Run
from epochal.store import Checkpoint, Config, History, KeySummary, RunRecord, Store

__version__ = "0.1.0"

# The Trainer and its callbacks import torch; they load on first use so that `import epochal`
# (and every `epochal ls`) stays quick.
_TRAIN = {
    "Trainer": "epochal.train.trainer", "NonFiniteLossError": "epochal.train.trainer",
    "Callback": "epochal.train.callback", "StopTraining": "epochal.train.callback",
    "StageResult": "epochal.train.callback", "BatchResult": "epochal.train.callback",
    "TrainerView": "epochal.train.callback",
    "EarlyStopping": "epochal.train.early_stopping", "ModelCheckpoint": "epochal.train.checkpointing",
    "MetricLogger": "epochal.train.logger", "ProgressBar": "epochal.train.progress",
    "EpochTable": "epochal.train.epoch_table", "CSVTables": "epochal.train.csv_tables",
    "TensorBoard": "epochal.train.tensorboard", "RecordDynamics": "epochal.train.dynamics",
    "SampleLedger": "epochal.train.sample_ledger",
}


def __getattr__(name: str):
    if name in _TRAIN:
        import importlib

        return getattr(importlib.import_module(_TRAIN[name]), name)
    raise AttributeError(f"module 'epochal' has no attribute {name!r}")

__all__ = [
    *_TRAIN,
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
    "RankError",
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
