"""Parameter spaces: an asset's parameters as a unit hypercube that samplers fill.

Every sampler works in ``[0, 1)^d`` and lets the space turn a point into
parameter values (``decode``) — log ranges, integer rounding, ``step`` grids
and categorical values are handled here once, not in each sampler. ``encode``
is the inverse, so a model-guided sampler can learn on the same cube.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from hwmatch.api import Parameter
from hwmatch.api.asset import DEFAULT_GRID_RESOLUTION as _API_GRID_RESOLUTION
from hwmatch.api.errors import InputError

#: Points per continuous range (no ``step``, no ``values``) in a grid.
DEFAULT_GRID_RESOLUTION = _API_GRID_RESOLUTION  # the API's, so its plan-size bound is this grid's
#: Continuous float values are rounded to this many significant digits, so
#: that trial ids, tables and manifests show stable, readable numbers.
SIGNIFICANT_DIGITS = 6

Value = int | float | str | bool


def _round_sig(x: float) -> float:
    return float(f"{x:.{SIGNIFICANT_DIGITS}g}")


@dataclass(frozen=True)
class Dimension:
    """One parameter as a coordinate of the unit cube."""

    parameter: Parameter

    @property
    def name(self) -> str:
        return self.parameter.name

    @property
    def choices(self) -> list[Value] | None:
        """The finite list of values when the parameter has one (``values`` or a ``step`` grid)."""
        p = self.parameter
        if p.values is not None:
            return list(p.values)
        assert p.range is not None
        if p.range.step is None:
            return None
        count = int(math.floor((p.range.max - p.range.min) / p.range.step + 1e-9)) + 1
        points = [p.range.min + i * p.range.step for i in range(count)]
        return self._dedupe([self._cast(v) for v in points])

    def decode(self, u: float) -> Value:
        """The parameter value at coordinate ``u`` in [0, 1]."""
        u = min(max(float(u), 0.0), 1.0)
        choices = self.choices
        if choices is not None:
            return choices[min(int(u * len(choices)), len(choices) - 1)]
        r = self.parameter.range
        assert r is not None
        if r.log:
            x = math.exp(math.log(r.min) + u * (math.log(r.max) - math.log(r.min)))
        else:
            x = r.min + u * (r.max - r.min)
        return self._cast(min(max(x, r.min), r.max))

    def encode(self, value: Value) -> float:
        """The coordinate of ``value``: the centre of its cell for finite choices."""
        choices = self.choices
        if choices is not None:
            keys = [str(c) for c in choices]
            if str(value) not in keys:
                raise InputError(f"parameter {self.name!r}: {value!r} is not one of {choices}")
            return (keys.index(str(value)) + 0.5) / len(choices)
        r = self.parameter.range
        assert r is not None
        if r.max == r.min:
            return 0.5
        x = float(value)
        if r.log:
            return (math.log(x) - math.log(r.min)) / (math.log(r.max) - math.log(r.min))
        return (x - r.min) / (r.max - r.min)

    def grid(self, resolution: int) -> list[Value]:
        """Grid points: the finite choices, or ``resolution`` evenly spaced points (log-spaced on a log range)."""
        choices = self.choices
        if choices is not None:
            return choices
        r = self.parameter.range
        assert r is not None
        if self.parameter.type == "int" and r.max - r.min + 1 <= resolution:
            return list(range(int(r.min), int(r.max) + 1))
        if resolution == 1:
            return [self.decode(0.5)]
        return self._dedupe([self.decode(i / (resolution - 1)) for i in range(resolution)])

    def _cast(self, x: float) -> Value:
        return int(round(x)) if self.parameter.type == "int" else _round_sig(x)

    @staticmethod
    def _dedupe(values: list[Value]) -> list[Value]:
        return list(dict.fromkeys(values))


class Space:
    """The product of an asset's parameters; points are ``{name: value}`` dicts."""

    def __init__(self, parameters: Sequence[Parameter]):
        self.dimensions = [Dimension(p) for p in parameters]

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dimensions]

    def __len__(self) -> int:
        """Number of coordinates (parameters)."""
        return len(self.dimensions)

    def decode(self, point: Sequence[float]) -> dict[str, Value]:
        """Parameter values at a point of the unit cube."""
        if len(point) != len(self.dimensions):
            raise InputError(f"point has {len(point)} coordinates; the space has {len(self.dimensions)}")
        return {d.name: d.decode(u) for d, u in zip(self.dimensions, point)}

    def encode(self, values: dict[str, Any]) -> np.ndarray:
        """The unit-cube point of a parameter dict (every parameter must be given)."""
        missing = [d.name for d in self.dimensions if d.name not in values]
        if missing:
            raise InputError(f"parameters missing: {missing}")
        return np.array([d.encode(values[d.name]) for d in self.dimensions], dtype=float)

    def grid_axes(self, resolution: int = DEFAULT_GRID_RESOLUTION) -> list[list[Value]]:
        if resolution < 1:
            raise InputError(f"grid resolution must be >= 1 (got {resolution})")
        return [d.grid(resolution) for d in self.dimensions]

    def grid(self, resolution: int = DEFAULT_GRID_RESOLUTION) -> list[dict[str, Value]]:
        """Every grid point, first parameter varying slowest (one empty point for an empty space)."""
        return [dict(zip(self.names, combo)) for combo in itertools.product(*self.grid_axes(resolution))]
