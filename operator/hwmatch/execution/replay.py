"""Replay: trials answered from an imported benchmark table instead of being run.

A sweep replayed against a published table costs nothing, so sampling
strategies (random, latin hypercube, adaptive) can be compared offline on real
measurements. Two modes:

- ``nearest``: a trial gets the measured row closest to its parameters and
  instance — distance in the normalised space of :mod:`hwmatch.planning.space`
  (numeric parameters on the unit interval, log ranges in log space, a
  categorical mismatch counts 1), instance features scaled by their range in
  the table; only the trial's own platform is searched;
- ``exact``: only rows with exactly the trial's parameters and instance; a
  trial the table never measured fails with reason ``NotMeasured``.

A configuration measured several times answers repetition ``r`` with its
``r``-th row (cycling), so repetitions replay the table's own noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

import numpy as np
import pandas as pd

from hwmatch.api import AIAsset, BenchmarkSweep, BenchmarkTrial, BenchmarkTrialStatus
from hwmatch.api.errors import InputError
from hwmatch.data.frame import INSTANCE, METRIC, PARAM, columns, strip, succeeded
from hwmatch.execution.result import EXECUTOR_ERROR, failed
from hwmatch.planning.space import Space

ReplayMode = Literal["nearest", "exact"]
#: Reason of a trial the table cannot answer in ``exact`` mode.
NOT_MEASURED = "NotMeasured"


@dataclass(frozen=True)
class Match:
    """The table's answer to one trial: its metrics, the row it came from, and how far that row is."""

    metrics: dict[str, float]
    parameters: dict[str, Any]
    instance: dict[str, float]
    distance: float
    trial_id: str


class ReplayTable:
    """Index of a dataset frame by platform and normalised configuration, for replaying trials."""

    def __init__(self, frame: pd.DataFrame, asset: AIAsset, mode: ReplayMode = "nearest"):
        if mode not in ("nearest", "exact"):
            raise InputError(f"replay mode must be 'nearest' or 'exact' (got {mode!r})")
        self.mode: ReplayMode = mode
        self.space = Space(asset.spec.parameters)
        self.frame = succeeded(frame).reset_index(drop=True)
        self.params = [PARAM + n for n in self.space.names]
        missing = [c for c in self.params if c not in self.frame.columns]
        if missing:
            raise InputError(f"the table lacks parameter columns {missing} of asset {asset.metadata.name!r}")
        self.instance = columns(self.frame, INSTANCE)
        self.metrics = columns(self.frame, METRIC)
        self._categorical = np.array([d.parameter.type == "categorical" for d in self.space.dimensions], dtype=bool)
        span = self.frame[self.instance].max() - self.frame[self.instance].min() if self.instance else pd.Series(dtype=float)
        self._instance_scale = span.replace(0, 1.0).to_numpy(dtype=float)
        self._by_platform: dict[str, tuple[pd.DataFrame, np.ndarray, list[np.ndarray]]] = {}
        for platform, rows in self.frame.groupby("platform", sort=True):
            configs = rows.groupby([*self.params, *self.instance], sort=True, dropna=False).indices
            keys = list(configs)
            first = rows.iloc[[configs[k][0] for k in keys]]
            self._by_platform[str(platform)] = (
                first,
                self._encode(first),
                [rows.index.to_numpy()[configs[k]] for k in keys],
            )

    @property
    def platforms(self) -> list[str]:
        return list(self._by_platform)

    def configurations(self, platform: str) -> pd.DataFrame:
        """The distinct measured configurations of a platform (parameter and instance columns)."""
        return self._platform(platform)[0][[*self.params, *self.instance]]

    def lookup(
        self, platform: str, parameters: dict[str, Any], instance: dict[str, float] | None = None, repetition: int = 0
    ) -> Match | None:
        """The row that answers a trial, or None (``exact`` mode, configuration not measured)."""
        configs, encoded, rows = self._platform(platform)
        query = {PARAM + k: v for k, v in parameters.items()} | {INSTANCE + k: v for k, v in (instance or {}).items()}
        missing = [c for c in [*self.params, *self.instance] if c not in query]
        if missing:
            raise InputError(f"trial lacks {[strip(c) for c in missing]}; give every parameter and instance feature")
        point = self._encode(pd.DataFrame({c: [query[c]] for c in [*self.params, *self.instance]}))[0]
        distance = self._distance(encoded, point)
        best = int(np.argmin(distance))
        if self.mode == "exact" and distance[best] > 1e-9:
            return None
        members = rows[best]
        row = self.frame.loc[members[repetition % len(members)]]
        return Match(
            metrics={strip(c): float(row[c]) for c in self.metrics if pd.notna(row[c])},
            parameters={strip(c): _plain(row[c]) for c in self.params},
            instance={strip(c): float(row[c]) for c in self.instance},
            distance=float(distance[best]),
            trial_id=str(row["trial_id"]),
        )

    def _platform(self, platform: str) -> tuple[pd.DataFrame, np.ndarray, list[np.ndarray]]:
        try:
            return self._by_platform[platform]
        except KeyError:
            raise InputError(f"the table has no platform {platform!r}; it has {self.platforms}") from None

    def _encode(self, rows: pd.DataFrame) -> np.ndarray:
        """Parameters on the unit cube (categoricals as level indices) and scaled instance features."""
        blocks = []
        for dim, col in zip(self.space.dimensions, self.params):
            if dim.parameter.type == "categorical":
                levels = {str(v): i for i, v in enumerate(dim.choices or [])}
                blocks.append(np.array([levels.get(str(v), -1) for v in rows[col]], dtype=float))
            else:
                blocks.append(_encode_numbers(dim, rows[col].to_numpy(dtype=float)))
        for col, scale in zip(self.instance, self._instance_scale):
            blocks.append(rows[col].to_numpy(dtype=float) / scale)
        return np.column_stack(blocks) if blocks else np.zeros((len(rows), 0))

    def _distance(self, encoded: np.ndarray, point: np.ndarray) -> np.ndarray:
        diff = np.abs(encoded - point)
        n = len(self.params)
        diff[:, :n][:, self._categorical] = (diff[:, :n][:, self._categorical] > 0).astype(float)
        return np.sqrt((diff**2).sum(axis=1))


def _encode_numbers(dim: Any, values: np.ndarray) -> np.ndarray:
    """Unit coordinates of numeric values: linear (log for a log range) between the space's bounds."""
    p = dim.parameter
    if p.values is not None:
        lo, hi = float(min(p.values)), float(max(p.values))
    else:
        lo, hi = p.range.min, p.range.max
        if p.range.log:
            values, lo, hi = np.log(values), np.log(lo), np.log(hi)
    return np.full(values.shape, 0.5) if hi == lo else (values - lo) / (hi - lo)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


class ReplayExecutor:
    """An :class:`~hwmatch.execution.base.Executor` whose trials are answered by a :class:`ReplayTable`.

    A replayed trial succeeds with the matched row's metrics; ``host`` records
    which imported trial answered it and at what distance, so an offline
    comparison can tell a nearest-row answer from an exact one.
    """

    def __init__(self, table: ReplayTable):
        self.table = table

    def check(self, asset: AIAsset, sweep: BenchmarkSweep) -> None:
        unknown = [p.name for p in sweep.spec.platforms if p.name not in self.table.platforms]
        if unknown:
            raise InputError(
                f"platforms {unknown} of sweep {sweep.metadata.name!r} are not in the replayed table; "
                f"it has {self.table.platforms}"
            )
        missing = [n for n in self.table.space.names if n not in {p.name for p in asset.spec.parameters}]
        if missing:
            raise InputError(f"asset {asset.metadata.name!r} lacks the table's parameters {missing}")

    def run(self, trial: BenchmarkTrial, asset: AIAsset, sweep: BenchmarkSweep) -> BenchmarkTrialStatus:
        now = datetime.now(timezone.utc)
        spec = trial.spec
        try:
            match = self.table.lookup(spec.platform, spec.parameters, spec.instance, spec.repetition)
        except ValueError as exc:
            return failed(EXECUTOR_ERROR, str(exc), now, now, {"executor": "replay"}, None)
        if match is None:
            return failed(
                NOT_MEASURED,
                f"the table has no row for these parameters and instance on {spec.platform} (replay mode: exact)",
                now, now, {"executor": "replay"}, None,
            )
        host = {"executor": "replay", "replayedTrial": match.trial_id, "distance": match.distance,
                "parameters": match.parameters}
        return BenchmarkTrialStatus(phase="Succeeded", metrics=match.metrics, start_time=now, completion_time=now, host=host)

    def cancel(self) -> None:
        """Nothing runs in the background: a replayed trial is a table lookup."""
