"""Turning dataset rows (or candidate rows) into the numeric matrix every surrogate learns from.

The same encoder encodes the training rows and the candidates of a
recommendation, so a candidate on a platform the models never saw is still
described by its platform features (vcpus, accelerator, tdpWatts...) and the
models can generalise across platforms through them. Columns used:

- ``platform``: the platform's name, categorical;
- ``feature.*``: platform features, numeric or categorical;
- ``param.*``: the asset's parameters, numeric or categorical;
- ``instance.*``: instance features (numeric).

Categoricals with few levels are one-hot encoded (unseen levels encode as all
zeros), with many levels ordinal-coded (unseen as -1). Numeric gaps are filled
with the training median, with a missing-indicator column when the training
rows had gaps. Columns constant over the training rows carry no information
and are dropped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hwmatch.api.errors import InputError
from hwmatch.data.frame import FEATURE, INSTANCE, PARAM, columns

#: Categoricals with at most this many levels are one-hot encoded, others ordinal-coded.
MAX_ONE_HOT = 32


def input_columns(frame: pd.DataFrame) -> list[str]:
    """The columns a surrogate reads: platform name, platform features, parameters, instance features."""
    base = ["platform"] if "platform" in frame.columns else []
    return base + columns(frame, FEATURE) + columns(frame, PARAM) + columns(frame, INSTANCE)


def _is_numeric(values: pd.Series) -> bool:
    """Whether a column holds numbers only (booleans and strings make it categorical)."""
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return True
    return all(
        isinstance(u, (int, float, np.number)) and not isinstance(u, (bool, np.bool_)) for u in pd.unique(values.dropna())
    )


@dataclass
class _Column:
    """How one input column is encoded (fitted state)."""

    name: str
    kind: str  # "numeric" | "onehot" | "ordinal"
    fill: float = 0.0
    indicator: bool = False
    levels: list[str] = field(default_factory=list)

    def outputs(self) -> list[str]:
        if self.kind == "onehot":
            return [f"{self.name}={level}" for level in self.levels]
        return [self.name] + ([f"{self.name}?missing"] if self.indicator else [])


@dataclass
class FeatureEncoder:
    """Fit on training rows, then ``transform`` any frame with the same column families.

    ``categorical`` forces columns (full names, e.g. ``param.precision``) to be
    treated as categorical even when their values are numbers, as an asset's
    ``type: categorical`` parameters with numeric values are.
    """

    categorical: frozenset[str] = frozenset()
    max_one_hot: int = MAX_ONE_HOT
    columns_: list[_Column] = field(default_factory=list, init=False)

    def fit(self, frame: pd.DataFrame) -> "FeatureEncoder":
        if frame.empty:
            raise InputError("cannot fit a feature encoder on an empty frame: no succeeded trials to learn from")
        self.columns_ = []
        for name in input_columns(frame):
            values = frame[name]
            if name != "platform" and name not in self.categorical and _is_numeric(values):
                numbers = _numbers(values)
                present = numbers[~np.isnan(numbers)]
                if present.size == 0 or np.ptp(present) == 0:
                    continue
                self.columns_.append(
                    _Column(name, "numeric", fill=float(np.median(present)), indicator=bool(present.size < numbers.size))
                )
            else:
                levels = sorted(set(_levels(values)))
                if len(levels) < 2:
                    continue
                kind = "onehot" if len(levels) <= self.max_one_hot else "ordinal"
                self.columns_.append(_Column(name, kind, levels=levels))
        return self

    @property
    def feature_names(self) -> list[str]:
        return [out for col in self.columns_ for out in col.outputs()]

    def platform_positions(self) -> tuple[int, ...]:
        """Positions of the encoded columns that describe the platform: its name's and its features'.

        A metric constant over rows equal on these is one value per platform
        (:class:`hwmatch.modeling.metric_model.PlatformTable`).
        """
        out: list[int] = []
        at = 0
        for col in self.columns_:
            width = len(col.outputs())
            if col.name == "platform" or col.name.startswith(FEATURE):
                out.extend(range(at, at + width))
            at += width
        return tuple(out)

    def fingerprint(self) -> str:
        """A digest of the fitted state: two encoders with equal fingerprints encode identically."""
        state = [(c.name, c.kind, c.fill, c.indicator, c.levels) for c in self.columns_]
        return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:16]

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """The encoded matrix (float64, one row per frame row); absent columns count as missing."""
        n = len(frame)
        blocks: list[np.ndarray] = []
        for col in self.columns_:
            raw = frame[col.name] if col.name in frame.columns else pd.Series([None] * n, index=frame.index)
            if col.kind == "numeric":
                numbers = _numbers(raw)
                missing = np.isnan(numbers)
                blocks.append(np.where(missing, col.fill, numbers)[:, None])
                if col.indicator:
                    blocks.append(missing.astype(float)[:, None])
                continue
            codes = _codes(raw, col.levels)
            if col.kind == "ordinal":
                blocks.append(codes.astype(float)[:, None])
            else:
                onehot = np.zeros((n, len(col.levels)))
                known = codes >= 0
                onehot[np.flatnonzero(known), codes[known]] = 1.0
                blocks.append(onehot)
        if not blocks:
            return np.zeros((n, 0))
        return np.hstack(blocks)


def _numbers(values: pd.Series) -> np.ndarray:
    """Floats of a column; strings and other non-numbers become NaN (vectorised over distinct values)."""
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(dtype=float, na_value=np.nan)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    lookup = np.array([_as_number(u) for u in uniques] + [np.nan], dtype=float)
    return lookup[codes]


def _as_number(value: object) -> float:
    if value is None or isinstance(value, str):
        return np.nan
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return np.nan


def _as_level(value: object) -> str:
    """One spelling per categorical level: ``True``/``"True"`` and ``4``/``4.0`` coincide."""
    if value is None or (isinstance(value, (float, np.floating)) and np.isnan(value)):
        return "<missing>"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _levels(values: pd.Series) -> np.ndarray:
    """The level of every row, computed once per distinct value."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    lookup = np.array([_as_level(u) for u in uniques] + ["<missing>"], dtype=object)
    return lookup[codes]


def _codes(values: pd.Series, levels: list[str]) -> np.ndarray:
    index = {level: i for i, level in enumerate(levels)}
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    lookup = np.array([index.get(_as_level(u), -1) for u in uniques] + [index.get("<missing>", -1)], dtype=int)
    return lookup[codes]
