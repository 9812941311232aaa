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

from typing import Any

import pandas as pd

from hwmatch.api import Platform

PARAM = "param."
INSTANCE = "instance."
FEATURE = "feature."
METRIC = "metric."
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
    return frame[frame["status"] == "Succeeded"]


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
