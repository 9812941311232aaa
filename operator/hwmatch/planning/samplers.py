"""Samplers: which parameter combinations to benchmark, behind one interface.

``sampler.sample(space, n, rng) -> list[dict]`` draws ``n`` combinations (the
sweep's budget; ``None`` means "all" where that is finite, i.e. a grid).
Samplers are looked up by :attr:`hwmatch.api.Sampling.strategy` in a registry
of factories, or of ``"module:Class"`` names imported on first use (as the
built-in assets are): the adaptive strategy
(``hwmatch.strategies.adaptive:AdaptiveSampler``) is named there, so planning
never imports the modeling it needs, and it implements :class:`RoundSampler`,
which the planner drives in rounds. :func:`register` adds more.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Callable, Protocol, runtime_checkable

import numpy as np

from hwmatch.api import AIAsset, BenchmarkSweep, Platform
from hwmatch.api.errors import InputError
from hwmatch.planning.space import DEFAULT_GRID_RESOLUTION, Space, Value

if TYPE_CHECKING:  # a round's history is a frame, made by whoever asks for the round
    import pandas as pd

Point = dict[str, Value]


@runtime_checkable
class Sampler(Protocol):
    """Chooses parameter combinations in a space."""

    def sample(self, space: Space, n: int | None, rng: np.random.Generator) -> list[Point]:
        """``n`` combinations (``None``: all, for finite designs), deterministic given ``rng``."""
        ...


@runtime_checkable
class RoundSampler(Sampler, Protocol):
    """A sampler that also proposes later rounds from results (model-guided sampling).

    :meth:`sample` gives the initial design; after each round the planner calls
    :meth:`propose` once per platform with that platform's finished trials (the
    dataset frame of :mod:`hwmatch.data.frame`) and asks for at most ``n`` new
    combinations; an empty list ends the platform's sweep.
    """

    def propose(
        self,
        space: Space,
        history: pd.DataFrame,
        n: int,
        rng: np.random.Generator,
        *,
        asset: AIAsset,
        sweep: BenchmarkSweep,
        platform: Platform,
    ) -> list[Point]:
        ...


class GridSampler:
    """The full factorial grid; continuous ranges get ``resolution`` points.

    With a budget smaller than the grid, a seeded subset of grid points is
    taken (kept in grid order), so the same seed always picks the same subset.
    """

    def __init__(self, resolution: int = DEFAULT_GRID_RESOLUTION):
        if resolution < 1:
            raise InputError(f"grid resolution must be >= 1 (got {resolution})")
        self.resolution = resolution

    def sample(self, space: Space, n: int | None, rng: np.random.Generator) -> list[Point]:
        grid = space.grid(self.resolution)
        if n is None or n >= len(grid):
            return grid
        keep = np.sort(rng.choice(len(grid), size=n, replace=False))
        return [grid[i] for i in keep]


class RandomSampler:
    """Independent uniform draws in the unit cube (log ranges are uniform in log space)."""

    def sample(self, space: Space, n: int | None, rng: np.random.Generator) -> list[Point]:
        n = _need_budget(n, "random")
        return [space.decode(u) for u in rng.random((n, len(space)))]


class LatinHypercubeSampler:
    """Latin hypercube design: each parameter's range is cut into ``n`` strata, each used once."""

    def sample(self, space: Space, n: int | None, rng: np.random.Generator) -> list[Point]:
        n = _need_budget(n, "latin-hypercube")
        if len(space) == 0:
            return [{} for _ in range(n)]
        from scipy.stats import qmc  # imported when used: scipy.stats takes seconds to import

        design = qmc.LatinHypercube(d=len(space), rng=rng).random(n)
        return [space.decode(u) for u in design]


def _need_budget(n: int | None, strategy: str) -> int:
    if n is None:
        raise InputError(f"sampling strategy {strategy!r} needs a budget (spec.sampling.budget)")
    if n < 1:
        raise InputError(f"budget must be >= 1 (got {n})")
    return n


SamplerFactory = Callable[[], Sampler]
_REGISTRY: dict[str, SamplerFactory | str] = {
    "grid": GridSampler,
    "random": RandomSampler,
    "latin-hypercube": LatinHypercubeSampler,
    "adaptive": "hwmatch.strategies.adaptive:AdaptiveSampler",
}


def register(strategy: str, factory: SamplerFactory | str) -> None:
    """Make ``strategy`` (a :attr:`Sampling.strategy` value) available: a factory, or ``"module:Class"``."""
    _REGISTRY[strategy] = factory


def get_sampler(strategy: str) -> Sampler:
    """A new sampler for ``strategy``, importing its module first when it is registered by name."""
    try:
        factory = _REGISTRY[strategy]
    except KeyError:
        raise InputError(f"unknown sampling strategy {strategy!r}; known: {', '.join(sorted(_REGISTRY))}") from None
    if isinstance(factory, str):
        module, _, name = factory.partition(":")
        factory = getattr(importlib.import_module(module), name)
        _REGISTRY[strategy] = factory
    return factory()
