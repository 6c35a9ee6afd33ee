"""The Trainer and its callbacks."""

from epochal.train.callback import BatchResult, Callback, StageResult, StopTraining
from epochal.train.checkpointing import ModelCheckpoint
from epochal.train.early_stopping import EarlyStopping
from epochal.train.logger import MetricLogger
from epochal.train.metrics import MetricSet
from epochal.train.trainer import NonFiniteLossError, Trainer

__all__ = [
    "BatchResult",
    "Callback",
    "EarlyStopping",
    "MetricLogger",
    "MetricSet",
    "ModelCheckpoint",
    "NonFiniteLossError",
    "StageResult",
    "StopTraining",
    "Trainer",
]
