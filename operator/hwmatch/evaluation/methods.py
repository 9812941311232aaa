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
from hwmatch.optimize.solver import best_of


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
        problem = build_problem(_candidate_set(candidates), _at(pred, positions), query, goals)
    except RecommendationError:
        return None  # a metric the query reads has no model (never measured in the sample)
    best = solve(problem, "numpy").best
    return None if best is None else candidates.index[best]


def most_plausible(
    query: HWRecommendationSpec,
    candidates: pd.DataFrame,
    positions: np.ndarray,
    pred: Mapping[str, Prediction],
    goals: Mapping[str, str] | None = None,
) -> int | None:
    """The candidate worth measuring when the bounds admit none: the nearest to meeting every requirement.

    Among candidates whose *point* predictions meet every requirement, the
    best one (what :func:`choose` picks on point predictions). When there is
    none, the candidate with the smallest *shortfall*: per requirement, how
    far its point prediction misses the threshold in units of the distance
    from the point to the interval's optimistic end (a miss of 0.3 means the
    threshold lies 30% of the way to the end that would meet it), the largest
    over its requirements; ties by the objective. A miss is thus measured
    against what the model does not know at that candidate, which makes
    metrics in different units comparable and prefers a candidate the model
    is unsure of to one it is sure misses. A requirement on an exact metric
    (the price) that is missed cannot be met: such candidates are never
    chosen. ``None`` when no candidate can meet the requirements at all.
    """
    candidate_set, sub = _candidate_set(candidates), _at(pred, positions)
    try:
        point = build_problem(candidate_set, {m: Prediction(p.value, p.value, p.value) for m, p in sub.items()}, query, goals)
        # swapping the ends makes each requirement read its optimistic end (a max on the lower one)
        optimistic = build_problem(candidate_set, {m: Prediction(p.value, p.upper, p.lower) for m, p in sub.items()},
                                   query, goals)
    except RecommendationError:
        return None
    shortfall = np.zeros(len(candidates))
    with np.errstate(invalid="ignore", divide="ignore"):
        for at_point, at_end in zip(point.requirements, optimistic.requirements):
            sign = 1.0 if at_point.sense == "max" else -1.0
            excess = sign * (at_point.bound - at_point.threshold)
            reach = sign * (at_point.bound - at_end.bound)
            miss = np.where(reach > 0, excess / reach, np.inf)
            # a miss against an unbounded end is still a miss: after every point-feasible candidate
            miss = np.where(excess > 0, np.maximum(miss, np.finfo(float).tiny), np.inf)  # NaN: an infinite miss
            shortfall = np.maximum(shortfall, np.where(at_point.met, 0.0, miss))  # met: the problem's own rule
    usable = np.isfinite(shortfall) & np.isfinite(point.objective)
    if not usable.any():
        return None
    nearest = np.flatnonzero(usable & (shortfall == shortfall[usable].min()))
    best = best_of(point, nearest)
    return None if best is None else candidates.index[best]


def _at(pred: Mapping[str, Prediction], positions: np.ndarray) -> dict[str, Prediction]:
    """The predictions of the candidates at ``positions`` of the arrays."""
    return {m: Prediction(p.value[positions], p.lower[positions], p.upper[positions]) for m, p in pred.items()}


def _candidate_set(candidates: pd.DataFrame) -> CandidateSet:
    frame = candidates.reset_index(drop=True).assign(**{POWER_COLUMN: np.nan})
    return CandidateSet(frame, [strip(c) for c in columns(frame, PARAM)])
