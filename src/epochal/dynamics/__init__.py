from epochal.dynamics.record import DynamicsError, record, represent
from epochal.dynamics.samples import SampleStats, sample_stats

__all__ = ["DynamicsError", "SampleStats", "record", "represent", "sample_stats"]
