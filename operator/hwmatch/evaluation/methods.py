"""The recommenders compared by ``hwmatch evaluate``: hwmatch's surrogates, and a HADA-like baseline.

Both learn from the same sampled trials and answer a query with the same
optimiser (:func:`choose`) over the same candidates — the table's
configurations for which the metrics the query reads were measured — so the
figures compare models and sampling, not candidate sets:

- :class:`SurrogateMethod`: :class:`hwmatch.modeling.Surrogates` (family by
  cross-validation, conformal intervals); a constraint must hold at the
  query's ``confidence`` — the interval's pessimistic end meets the bound;
- :class:`HadaMethod`: what HADA does — one depth-10 decision tree per
  platform and metric, point predictions, no interval; the choice is a
  brute-force scan.
"""

from __future__ import annotations

from typing import Mapping, Protocol

import numpy as np
import pandas as pd
from sklearn.tree import DecisionTreeRegressor

from hwmatch.api import AIAsset, HWRecommendationSpec
from hwmatch.data.frame import METRIC, PARAM, columns, strip
from hwmatch.modeling import FeatureEncoder, Prediction, Surrogates, categorical_columns
from hwmatch.optimize import CandidateSet, RecommendationError, build_problem, solve
from hwmatch.optimize.candidates import POWER_COLUMN


class Method(Protocol):
    """Learns from sampled trials; predicts every metric for a pool of configurations."""

    name: str
    #: Whether predictions carry intervals (answers depend on the confidence) or are points.
    intervals: bool

    def fit(self, train: pd.DataFrame, asset: AIAsset, seed: int) -> "Method":
        ...

    def predict(self, pool: pd.DataFrame, level: float) -> dict[str, Prediction]:
        """Per metric, value and bounds for every pool row; lower = upper = value without intervals."""
        ...


class SurrogateMethod:
    """hwmatch's surrogates with conformal intervals."""

    name = "hwmatch"
    intervals = True

    def __init__(self) -> None:
        self.models: Surrogates | None = None

    def fit(self, train: pd.DataFrame, asset: AIAsset, seed: int) -> "SurrogateMethod":
        goals = {m.name: m.goal for m in asset.spec.metrics if m.goal is not None}
        self.models = Surrogates(seed=seed, categorical=categorical_columns(asset.spec.parameters), goals=goals).fit(train)
        return self

    def predict(self, pool: pd.DataFrame, level: float) -> dict[str, Prediction]:
        assert self.models is not None, "fit first"
        return self.models.predict(pool, level)


class HadaMethod:
    """HADA's surrogate: a depth-10 decision tree per platform and metric, no interval."""

    name = "hada-dt"
    intervals = False
    depth = 10

    def __init__(self) -> None:
        self.trees: dict[tuple[str, str], tuple[FeatureEncoder, DecisionTreeRegressor | _Mean]] = {}

    def fit(self, train: pd.DataFrame, asset: AIAsset, seed: int) -> "HadaMethod":
        categorical = categorical_columns(asset.spec.parameters)
        self.trees = {}
        for platform, rows in train.groupby("platform", sort=True):
            for col in columns(rows, METRIC):
                known = rows[rows[col].notna()]
                if known.empty:
                    continue
                inputs = known.drop(columns=["platform", *columns(known, "feature.")])
                encoder = FeatureEncoder(categorical=categorical).fit(inputs)
                encoded = encoder.transform(inputs)
                model: DecisionTreeRegressor | _Mean
                if encoded.shape[1] == 0:  # one configuration (or all alike) sampled: no input varies to split on
                    model = _Mean(float(known[col].mean()))
                else:
                    model = DecisionTreeRegressor(max_depth=self.depth, random_state=seed).fit(encoded, known[col])
                self.trees[(str(platform), strip(col))] = (encoder, model)
        return self

    def predict(self, pool: pd.DataFrame, level: float) -> dict[str, Prediction]:
        del level  # no intervals: HADA trusts the point prediction
        metrics = sorted({m for _, m in self.trees})
        out = {m: np.full(len(pool), np.nan) for m in metrics}
        for platform, rows in pool.groupby("platform", sort=False):
            where = pool.index.get_indexer(rows.index)
            for m in metrics:
                fitted = self.trees.get((str(platform), m))
                if fitted is not None:
                    encoder, tree = fitted
                    out[m][where] = tree.predict(encoder.transform(rows))
        return {m: Prediction(v, v, v) for m, v in out.items()}


class _Mean:
    """What a tree fitted on inputs that do not vary predicts: the mean of what was measured."""

    def __init__(self, value: float):
        self.value = value

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return np.full(len(inputs), self.value)


def choose(
    query: HWRecommendationSpec,
    candidates: pd.DataFrame,
    positions: np.ndarray,
    pred: Mapping[str, Prediction],
    goals: Mapping[str, str] | None = None,
) -> int | None:
    """The candidate (index label of ``candidates``) the optimiser recommends, or None for "no solution".

    ``positions`` locate the candidates' rows in the prediction arrays. The
    choice is :mod:`hwmatch.optimize`'s — requirements on the interval's
    pessimistic end at the query's confidence (the point prediction when a
    method has no interval), derived metrics such as ``cost_per_hour``, the
    objective — solved by enumeration (the CP-SAT model gives the same index).
    """
    try:
        problem = build_problem(candidate_set_of(candidates), at_positions(pred, positions), query, goals)
    except RecommendationError:
        return None  # a metric the query reads has no model (never measured in the sample)
    best = solve(problem, "numpy").best
    return None if best is None else candidates.index[best]


def at_positions(pred: Mapping[str, Prediction], positions: np.ndarray) -> dict[str, Prediction]:
    """The predictions of the candidates at ``positions`` of the arrays."""
    return {m: Prediction(p.value[positions], p.lower[positions], p.upper[positions]) for m, p in pred.items()}


def candidate_set_of(candidates: pd.DataFrame) -> CandidateSet:
    """The candidates (rows of the table) as the optimiser's candidate set, in their order."""
    frame = candidates.reset_index(drop=True).assign(**{POWER_COLUMN: np.nan})
    return CandidateSet(frame, [strip(c) for c in columns(frame, PARAM)])
