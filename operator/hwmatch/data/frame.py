"""The dataset frame: one row per trial, the one table every stage reads.

Column families are told apart by prefix so that a parameter, a platform
feature and a metric may share a name without clashing:

- ``trial_id``, ``asset``, ``sweep``, ``platform``, ``repetition``, ``status``,
  ``reason``, ``cost_per_hour``: identity, outcome and price of the platform;
- ``param.<name>``: the asset's parameters (chosen by the user);
- ``instance.<name>``: instance features (describe the input, not chosen);
- ``feature.<name>``: the platform's features;
- ``metric.<name>``: measured metrics.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from hwmatch.api import AIAsset, BenchmarkSweep, BenchmarkTrial, Platform
from hwmatch.api.vocabulary import FEATURE, INSTANCE, METRIC, PARAM, SUCCEEDED, phase_of

ID_COLUMNS = ["trial_id", "asset", "sweep", "platform", "repetition", "status", "reason", "cost_per_hour"]


def columns(frame: pd.DataFrame, prefix: str) -> list[str]:
    """The columns of one family, in frame order."""
    return [c for c in frame.columns if c.startswith(prefix)]


def strip(column: str) -> str:
    """``metric.latency_p99_ms`` -> ``latency_p99_ms``."""
    return column.split(".", 1)[1] if "." in column else column


def names(frame: pd.DataFrame, prefix: str) -> list[str]:
    """The bare names of one family: ``names(df, METRIC) == ['accuracy', ...]``."""
    return [strip(c) for c in columns(frame, prefix)]


def succeeded(frame: pd.DataFrame) -> pd.DataFrame:
    """Only the trials that produced metrics: what models train on."""
    if "status" not in frame.columns:
        return frame
    return frame[frame["status"] == SUCCEEDED]


def platform_features(platform: Platform) -> dict[str, Any]:
    """A platform's ``feature.*`` values in the dataset: its ``features``, plus ``vcpus`` = len(cpus) when pinned.

    The store writes training rows with these, and whoever builds candidate
    rows for a model (optimiser, adaptive sampling) uses this too, so
    candidates carry the same features as the training rows.
    """
    features = dict(platform.features)
    if platform.cpus is not None and "vcpus" not in features:
        features["vcpus"] = len(platform.cpus)
    return features


def build_frame(
    assets: Iterable[AIAsset], sweeps: Iterable[BenchmarkSweep], trials: Iterable[BenchmarkTrial]
) -> pd.DataFrame:
    """The dataset frame of ``trials``: the one way it is made, from a store, a cluster or a replay.

    Platform features and prices come from the sweep that planned each trial
    (:func:`platform_features`: a local platform pinned to ``cpus`` gets
    ``feature.vcpus``); the assets fix the column order of their parameters,
    instance features and metrics (undeclared keys follow, in order of
    appearance). Metric columns are floats; a value that is not a number is NaN.
    """
    trials = list(trials)
    declared = {a.metadata.name: a for a in assets}
    platforms: dict[tuple[str, str], tuple[dict[str, Any], float | None]] = {
        (sweep.metadata.name, p.name): (platform_features(p), p.cost_per_hour)
                 for sweep in sweeps for p in sweep.spec.platforms}
    order: dict[str, dict[str, None]] = {p: {} for p in (PARAM, INSTANCE, FEATURE, METRIC)}
    for name in dict.fromkeys([*(t.spec.asset_ref.name for t in trials), *declared]):
        if name in declared:
            spec = declared[name].spec
            order[PARAM].update(dict.fromkeys(PARAM + p.name for p in spec.parameters))
            order[INSTANCE].update(dict.fromkeys(INSTANCE + f.name for f in spec.instance_features))
            order[METRIC].update(dict.fromkeys(METRIC + m.name for m in spec.metrics))
    records = []
    for trial in trials:
        what, status = trial.spec, trial.status
        features, cost = platforms.get((what.sweep_ref.name, what.platform), ({}, None))
        record: dict[str, Any] = {
            "trial_id": trial.metadata.name, "asset": what.asset_ref.name, "sweep": what.sweep_ref.name,
            "platform": what.platform, "repetition": what.repetition, "status": phase_of(trial),
            "reason": status.reason if status else None, "cost_per_hour": np.nan if cost is None else float(cost),
        }
        families: tuple[tuple[str, Mapping[str, Any]], ...] = (
            (PARAM, what.parameters), (INSTANCE, what.instance), (FEATURE, features),
            (METRIC, status.metrics if status else {}))
        for prefix, values in families:
            for key, value in values.items():
                order[prefix].setdefault(prefix + key)
                record[prefix + key] = value
        records.append(record)
    columns_ = ID_COLUMNS + [c for p in (PARAM, INSTANCE, FEATURE, METRIC) for c in order[p]]
    frame = pd.DataFrame.from_records(records, columns=columns_)
    for col in order[METRIC]:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    frame["cost_per_hour"] = frame["cost_per_hour"].astype(float)
    return frame
