"""Candidates of a recommendation: every platform × every parameter combination, as a frame.

A candidate frame has the dataset frame's input columns (``platform``,
``feature.*``, ``param.*``, ``instance.*``) so the surrogates' encoder reads
it like training rows, plus ``cost_per_hour`` and ``power_watts`` of the
platform for the derived metrics. Continuous ranges are discretised by
:meth:`hwmatch.planning.space.Space.grid_axes` (``resolution`` points,
log-spaced on log ranges, the ``step`` grid when one is given), the same
discretisation a grid sweep uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from hwmatch.api import Parameter, Platform
from hwmatch.api.asset import Scalar
from hwmatch.api.errors import InputError
from hwmatch.data.frame import FEATURE, INSTANCE, PARAM, columns, names, platform_features, strip, succeeded
from hwmatch.planning.space import Space

#: Refuse to enumerate more candidates than this (memory: ~100 bytes per candidate and metric).
MAX_CANDIDATES = 2_000_000
POWER_COLUMN = "power_watts"


class RecommendationError(InputError):
    """A recommendation request that cannot be answered as asked; the message names the field and the fix."""


@dataclass(frozen=True)
class PlatformInfo:
    """What the optimiser needs of a platform: price, nominal power, and the features the models read."""

    name: str
    cost_per_hour: float | None = None
    power_watts: float | None = None
    features: Mapping[str, Scalar] = field(default_factory=dict)

    @classmethod
    def from_api(cls, platform: Platform) -> "PlatformInfo":
        return cls(platform.name, platform.cost_per_hour, platform.power_watts, platform_features(platform))


def platforms_from_frame(frame: pd.DataFrame) -> list[PlatformInfo]:
    """The platforms of a dataset frame, with the price and features of their first row."""
    if "platform" not in frame.columns or frame.empty:
        raise RecommendationError("the dataset has no platform column or no rows; pass the sweep's platforms")
    result = []
    for name, rows in frame.groupby("platform", sort=True):
        first = rows.iloc[0]
        cost = first.get("cost_per_hour")
        features = {strip(c): first[c] for c in columns(frame, FEATURE) if pd.notna(first[c])}
        result.append(PlatformInfo(str(name), None if cost is None or pd.isna(cost) else float(cost), None, features))
    return result


def _platform_block(platforms: Sequence[PlatformInfo]) -> pd.DataFrame:
    keys = sorted({k for p in platforms for k in p.features})
    data: dict[str, list] = {
        "platform": [p.name for p in platforms],
        "cost_per_hour": [np.nan if p.cost_per_hour is None else float(p.cost_per_hour) for p in platforms],
        POWER_COLUMN: [np.nan if p.power_watts is None else float(p.power_watts) for p in platforms],
    }
    for k in keys:
        data[FEATURE + k] = [p.features.get(k, np.nan) for p in platforms]
    return pd.DataFrame(data)


def _as_info(platforms: Sequence[PlatformInfo | Platform]) -> list[PlatformInfo]:
    return [p if isinstance(p, PlatformInfo) else PlatformInfo.from_api(p) for p in platforms]


def restrict_platforms(platforms: Sequence[PlatformInfo], only: Sequence[str]) -> list[PlatformInfo]:
    """``platforms`` limited to the names in ``only`` (all when empty); unknown names are an error."""
    if not only:
        return list(platforms)
    known = [p.name for p in platforms]
    unknown = [n for n in only if n not in known]
    if unknown:
        raise RecommendationError(f"platforms: {unknown} are not platforms of the dataset or sweep; known: {known}")
    return [p for p in platforms if p.name in only]


@dataclass
class CandidateSet:
    """Candidate rows (one per platform × parameter combination) and the parameter names they vary."""

    frame: pd.DataFrame
    parameters: list[str]

    def __len__(self) -> int:
        return len(self.frame)

    @cached_property
    def platform(self) -> np.ndarray:
        """Each candidate's platform name, converted once: the alternatives and explanations index it per candidate,
        and converting 10^6 names from the frame's string column on every access cost seconds."""
        return self.frame["platform"].to_numpy()

    @property
    def cost_per_hour(self) -> np.ndarray:
        return self.frame["cost_per_hour"].to_numpy(float)

    @property
    def power_watts(self) -> np.ndarray:
        """Nominal power per replica: the platform's ``powerWatts``, else its ``tdpWatts`` feature (NaN when neither)."""
        power = self.frame[POWER_COLUMN].to_numpy(float)
        tdp = FEATURE + "tdpWatts"
        if tdp in self.frame.columns:
            power = np.where(np.isnan(power), pd.to_numeric(self.frame[tdp], errors="coerce").to_numpy(float), power)
        return power

    def parameters_of(self, index: int) -> dict[str, Scalar]:
        row = self.frame.iloc[index]
        return {name: _scalar(row[PARAM + name]) for name in self.parameters}

    @classmethod
    def grid(
        cls,
        parameters: Sequence[Parameter],
        platforms: Sequence[PlatformInfo | Platform],
        *,
        resolution: int = 16,
        fixed: Mapping[str, Scalar] | None = None,
        instance: Mapping[str, float] | None = None,
        only: Sequence[str] = (),
        max_candidates: int = MAX_CANDIDATES,
    ) -> "CandidateSet":
        """Every platform × every grid point of ``parameters``; ``fixed`` ones pinned, ``instance`` features set."""
        fixed = dict(fixed or {})
        by_name = {p.name: p for p in parameters}
        unknown = [n for n in fixed if n not in by_name]
        if unknown:
            raise RecommendationError(f"fixed: {unknown} are not parameters of the asset; it has {list(by_name)}")
        for name, value in fixed.items():
            if not by_name[name].contains(value):
                raise RecommendationError(
                    f"fixed.{name}: {value!r} is outside the parameter's space ({by_name[name].describe_space()})"
                )
        infos = restrict_platforms(_as_info(platforms), only)
        if not infos:
            raise RecommendationError("no platforms to choose from; give the sweep's platforms")
        axes = [
            [fixed[p.name]] if p.name in fixed else axis
            for p, axis in zip(parameters, Space(parameters).grid_axes(resolution))
        ]
        sizes = [len(infos)] + [len(a) for a in axes]
        total = math.prod(sizes)
        if total > max_candidates:
            raise RecommendationError(
                f"{total} candidates ({' × '.join(map(str, sizes))} platforms × parameter values) exceed "
                f"{max_candidates}; lower resolution, fix some parameters or restrict platforms"
            )
        index = np.unravel_index(np.arange(total), sizes)
        frame = _platform_block(infos).iloc[index[0]].reset_index(drop=True)
        for p, axis, idx in zip(parameters, axes, index[1:]):
            values = np.array(axis, dtype=object if p.type == "categorical" else float)
            column = values[idx]
            frame[PARAM + p.name] = column.astype(int) if p.type == "int" else column
        for name, value in (instance or {}).items():
            frame[INSTANCE + name] = float(value)
        return cls(frame, [p.name for p in parameters])

    @classmethod
    def of_points(
        cls,
        parameters: Sequence[Parameter],
        platforms: Sequence[PlatformInfo | Platform],
        points: Sequence[Mapping[str, Scalar]],
        instances: Sequence[Mapping[str, float]] = ({},),
    ) -> "CandidateSet":
        """Given parameter combinations on every platform × instance: rows ``point × instance × platform``.

        What adaptive sampling scores: points drawn from a continuous space,
        with the platform's features exactly as its training rows have them.
        """
        infos = _as_info(platforms)
        block = _platform_block(infos)
        rows = []
        for point in points:
            for instance in instances:
                for i in range(len(infos)):
                    row = block.iloc[i].to_dict()
                    row |= {PARAM + name: point[name] for name in (p.name for p in parameters)}
                    row |= {INSTANCE + name: float(v) for name, v in instance.items()}
                    rows.append(row)
        return cls(pd.DataFrame(rows, columns=None if rows else list(block.columns)), [p.name for p in parameters])

    @classmethod
    def observed(
        cls,
        frame: pd.DataFrame,
        platforms: Sequence[PlatformInfo | Platform] | None = None,
        *,
        instance: Mapping[str, float] | None = None,
        only: Sequence[str] = (),
    ) -> "CandidateSet":
        """The distinct (platform, parameters) configurations measured in ``frame``: no extrapolation.

        The natural candidate set for a benchmark table whose parameter space
        is only known through the rows it holds. ``instance`` pins instance
        features (otherwise each configuration keeps the instance it was
        measured on).
        """
        rows = succeeded(frame)
        infos = restrict_platforms(_as_info(platforms) if platforms is not None else platforms_from_frame(rows), only)
        keep = ["platform"] + columns(rows, PARAM) + ([] if instance else columns(rows, INSTANCE))
        configs = rows[keep].drop_duplicates().reset_index(drop=True)
        configs = configs[configs["platform"].isin([p.name for p in infos])]
        block = _platform_block(infos)
        merged = configs.merge(block, on="platform", how="left", sort=False)
        for name, value in (instance or {}).items():
            merged[INSTANCE + name] = float(value)
        return cls(merged.reset_index(drop=True), names(rows, PARAM))


def _scalar(value: object) -> Scalar:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value  # type: ignore[return-value]
