"""Moving runs in and out of epochal: lossless CSV and JSON exports, readers for them, and TensorBoard."""

from epochal.interop.export import export_csv, export_json, read_csv, read_json
from epochal.interop.tensorboard import EventFileError, export_tensorboard, import_tensorboard

__all__ = [
    "EventFileError",
    "export_csv",
    "export_json",
    "export_tensorboard",
    "import_tensorboard",
    "read_csv",
    "read_json",
]
