"""Training dynamics: record each epoch's representations, project them to 2D, find the samples that matter.

    >>> epochal.dynamics.fit(run)        # the projection, its coordinates and backgrounds
    >>> epochal.dynamics.evaluate(run)   # its quality measures
    >>> epochal.dynamics.plot(run)       # a PNG per epoch and a GIF
"""

from epochal.dynamics.fitting import coordinates, fit, load
from epochal.dynamics.pictures import plot
from epochal.dynamics.projection import Params, Projection
from epochal.dynamics.record import DynamicsError, record, represent
from epochal.dynamics.samples import SampleStats, sample_stats
from epochal.dynamics.scoring import evaluate
from epochal.dynamics.sprites import sprites

__all__ = [
    "DynamicsError", "Params", "Projection", "SampleStats", "coordinates", "evaluate", "fit", "load", "plot",
    "record", "represent", "sample_stats", "sprites",
]
