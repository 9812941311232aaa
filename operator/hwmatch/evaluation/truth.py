"""The "true" behaviour of every measured configuration, against which answers are scored.

A benchmark table is noisy and may measure one configuration several times.
The truth of a configuration — a (platform, parameters, instance) key — is the
*mean of its measured rows*, metric by metric (a metric a row lacks, NaN, is
left out of that mean). For input-dependent assets the instance features are
part of the key, so a configuration's truth is the row(s) of that exact
instance. A configuration is a candidate for a query only when every metric
the query reads was measured for it.

The table's repetitions also say how much one run of a configuration
scatters around its mean (:meth:`GroundTruth.noise_margin`): a truth that
meets a bound by less than that is met by luck of the draw, and a fresh run
of the same configuration may well miss it. Scoring uses it to tell queries
that are *clearly* solvable from those only a lucky row solves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from hwmatch.data.frame import FEATURE, INSTANCE, METRIC, PARAM, columns, strip, succeeded

#: A platform needs this many repeated configurations of a metric for a noise estimate of its own;
#: with fewer, the metric's deviations over every platform are used.
MIN_REPEATED = 10


@dataclass(frozen=True)
class GroundTruth:
    """One row per configuration: key columns, ``cost_per_hour``, platform features, mean metrics, ``rows``."""

    table: pd.DataFrame
    keys: list[str]
    #: (platform or "*", bare metric) -> sorted relative deviations of one run from its configuration's mean
    deviations: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    #: bare metric -> half a unit of the last digit the table prints for it (0: unknown, full precision)
    resolution: dict[str, float] = field(default_factory=dict)

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
        return cls(table=table[[*keys, *fixed, "rows", *metrics]], keys=keys,
                   deviations=_run_deviations(frame, keys, metrics),
                   resolution={strip(c): printed_resolution(frame[c]) for c in metrics})

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

    def deviations_of(self, platform: str, metric: str) -> np.ndarray | None:
        """The relative deviations of single runs of ``metric`` on ``platform`` (the metric's over every platform
        where it has too few); None where the table never repeats a configuration."""
        return self.deviations.get((platform, metric), self.deviations.get(("*", metric)))

    def noise_margin(self, metric: str, rows: pd.DataFrame, level: float) -> np.ndarray:
        """How far one run of each of ``rows`` may land from its true value, at two-sided ``level``.

        The ``level`` quantile of the relative deviations of single runs from
        their configuration's mean (from the table's repeated configurations,
        per platform where it has enough of them), times the true value.
        Zero where the table never repeats a configuration (the noise is
        unknown) and for the price, which does not vary.
        """
        out = np.zeros(len(rows))
        if metric == "cost_per_hour":
            return out
        values = np.abs(self.values(metric).loc[rows.index].to_numpy(dtype=float))
        platforms = rows["platform"].astype(str).to_numpy()
        for platform in np.unique(platforms):
            scale = self.deviations_of(platform, metric)
            if scale is not None and scale.size:
                where = platforms == platform
                out[where] = np.quantile(scale, level) * values[where]
        return out

    def instances(self) -> pd.DataFrame:
        """Instances a query may fix, with the platforms that measured each (column ``platforms``, sorted names).

        Those measured on every platform when there are any (every platform
        can answer them); else, in a sparse design where each platform
        measured its own instances, those measured on two platforms or more —
        a query then chooses among the platforms that measured its instance.
        None at all when no instance was measured on two platforms.
        """
        cols = self.instance_columns
        if not cols:
            return pd.DataFrame({"platforms": [sorted(self.table["platform"].unique())]})
        per = self.table.groupby(cols, sort=True)["platform"].agg(lambda p: sorted(p.unique()))
        counts = per.map(len)
        everywhere = counts == self.table["platform"].nunique()
        chosen = per[everywhere] if everywhere.any() else per[counts >= 2]
        return chosen.rename("platforms").reset_index()

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


#: Most decimals a printed table is taken to have; values needing more are full-precision floats.
MAX_DECIMALS = 9


def printed_resolution(values: pd.Series) -> float:
    """Half a unit of the last decimal the column is printed with: ``0.005`` for ``12.34``, ``0.5`` for ``1200``.

    The decimals are the most any value of the column needs to be written
    exactly (a table printed with 2 decimals has no value needing 3). A
    column of full-precision floats (more than :data:`MAX_DECIMALS`
    decimals) has no printed resolution: 0. Integers printed without
    decimals get 0.5 — the table cannot tell 1200 from 1200.4.
    """
    v = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    v = np.abs(v[np.isfinite(v)])
    if not v.size:
        return 0.0
    for decimals in range(MAX_DECIMALS + 1):
        scaled = v * 10.0**decimals
        if np.all(np.abs(scaled - np.round(scaled)) <= np.maximum(1e-6, 4e-16 * scaled)):  # a digit, or float error
            return 0.5 * 10.0**-decimals
    return 0.0


def _run_deviations(frame: pd.DataFrame, keys: list[str], metrics: list[str]) -> dict[tuple[str, str], np.ndarray]:
    """Relative deviation of each run of a repeated configuration from the configuration's mean.

    With ``k`` runs, ``|y - mean| * sqrt(k / (k - 1))`` has the spread of one
    run around the true mean. Kept per platform with at least
    :data:`MIN_REPEATED` repeated configurations, and over all platforms
    (``"*"``) for the rest.
    """
    out: dict[tuple[str, str], np.ndarray] = {}
    for col in metrics:
        known = frame[frame[col].notna()]
        group = known.groupby(keys, sort=False, dropna=False)[col]
        k = group.transform("size").to_numpy(dtype=float)
        mean = group.transform("mean").to_numpy(dtype=float)
        repeated = (k > 1) & (np.abs(mean) > 0)
        if not repeated.any():
            continue
        y = known[col].to_numpy(dtype=float)
        relative = np.abs(y - mean)[repeated] / np.abs(mean[repeated]) * np.sqrt(k[repeated] / (k[repeated] - 1))
        platforms = known["platform"].astype(str).to_numpy()[repeated]
        configs = group.ngroup().to_numpy()[repeated]
        metric = strip(col)
        out[("*", metric)] = np.sort(relative)
        for platform in np.unique(platforms):
            where = platforms == platform
            if np.unique(configs[where]).size >= MIN_REPEATED:
                out[(platform, metric)] = np.sort(relative[where])
    return out
