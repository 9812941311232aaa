"""The "true" behaviour of every measured configuration, against which answers are scored.

A benchmark table is noisy and may measure one configuration several times.
The truth of a configuration — a (platform, parameters, instance) key — is the
*mean of its measured rows*, metric by metric (a metric a row lacks, NaN, is
left out of that mean). For input-dependent assets the instance features are
part of the key, so a configuration's truth is the row(s) of that exact
instance. A configuration is a candidate for a query only when every metric
the query reads was measured for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from hwmatch.data.frame import FEATURE, INSTANCE, METRIC, PARAM, columns, strip, succeeded


@dataclass(frozen=True)
class GroundTruth:
    """One row per configuration: key columns, ``cost_per_hour``, platform features, mean metrics, ``rows``."""

    table: pd.DataFrame
    keys: list[str]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> "GroundTruth":
        frame = succeeded(frame)
        keys = ["platform", *columns(frame, PARAM), *columns(frame, INSTANCE)]
        metrics = columns(frame, METRIC)
        fixed = ["cost_per_hour", *columns(frame, FEATURE)]
        grouped = frame.groupby(keys, sort=True, dropna=False)
        table = grouped[metrics].mean()
        table[fixed] = grouped[fixed].first()
        table["rows"] = grouped.size()
        table = table.reset_index()
        return cls(table=table[[*keys, *fixed, "rows", *metrics]], keys=keys)

    @property
    def metrics(self) -> list[str]:
        """Bare metric names (``time_s``), as queries name them."""
        return [strip(c) for c in columns(self.table, METRIC)]

    @property
    def instance_columns(self) -> list[str]:
        return columns(self.table, INSTANCE)

    def values(self, metric: str) -> pd.Series:
        """The true value of ``metric`` per configuration; ``cost_per_hour`` is a column of its own."""
        return self.table[metric if metric == "cost_per_hour" else METRIC + metric]

    def instances(self) -> pd.DataFrame:
        """Instances measured on every platform: the ones a query may fix, since every platform can answer it."""
        cols = self.instance_columns
        if not cols:
            return pd.DataFrame(index=[0])
        per = self.table.groupby(cols, sort=True)["platform"].nunique()
        full = per[per == self.table["platform"].nunique()]
        return full.reset_index()[cols]

    def candidates(self, metrics: list[str], instance: dict[str, float] | None = None) -> pd.DataFrame:
        """Configurations (of ``instance``) for which every one of ``metrics`` was measured."""
        mask = np.ones(len(self.table), dtype=bool)
        for name, value in (instance or {}).items():
            mask &= np.isclose(self._arrays[INSTANCE + name], float(value))
        for m in metrics:
            mask &= self._known[m]
        return self.table[mask]

    @cached_property
    def _arrays(self) -> dict[str, np.ndarray]:
        return {c: self.table[c].to_numpy(dtype=float) for c in self.instance_columns}

    @cached_property
    def _known(self) -> dict[str, np.ndarray]:
        return {m: self.values(m).notna().to_numpy() for m in [*self.metrics, "cost_per_hour"]}
