"""Planning: parameter spaces, samplers, and the planner that turns a sweep into trials.

Extension point for model-guided sampling: register a factory with
:func:`register` under a :attr:`hwmatch.api.Sampling.strategy` name; a sampler
that also implements :class:`RoundSampler` is driven in rounds by
:meth:`Planner.next_round` (the engine calls it after each round with the
sweep's dataset frame until it returns no trials).
"""

from hwmatch.planning.planner import Planner
from hwmatch.planning.samplers import (
    GridSampler,
    LatinHypercubeSampler,
    Point,
    RandomSampler,
    RoundSampler,
    Sampler,
    get_sampler,
    register,
)
from hwmatch.planning.space import DEFAULT_GRID_RESOLUTION, Dimension, Space

__all__ = [name for name in dir() if not name.startswith("_")]
