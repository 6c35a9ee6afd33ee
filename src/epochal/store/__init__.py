"""The embedded run store: records, the backend interface, SQLite, the writer, the reader."""

from epochal.store.records import Checkpoint, Config, History, KeySummary, RunRecord
from epochal.store.store import Store

__all__ = ["Checkpoint", "Config", "History", "KeySummary", "RunRecord", "Store"]
