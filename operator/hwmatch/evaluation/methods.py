"""The recommenders compared by ``hwmatch evaluate``: hwmatch's surrogates, and a HADA-like baseline.

Both learn from the same sampled trials and answer a query by choosing one of
the query's candidate configurations (the table's configurations for which
the metrics the query reads were measured), so the figures compare models and
sampling, not candidate sets:

- :class:`SurrogateMethod`: :class:`hwmatch.modeling.Surrogates` (family by
  cross-validation, conformal intervals); a constraint must hold at the
  query's ``confidence`` — the interval's pessimistic end meets the bound;
- :class:`HadaMethod`: what HADA does — one depth-10 decision tree per
  platform and metric, point predictions, no interval; the choice is a
  brute-force scan.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pandas as pd
from sklearn.tree import DecisionTreeRegressor

from hwmatch.api import AIAsset, HWRecommendationSpec
from hwmatch.data.frame import METRIC, columns, strip
from hwmatch.modeling import FeatureEncoder, Surrogates, categorical_columns


class Method(Protocol):
    """Learns from sampled trials; predicts every metric for a pool of configurations."""

    name: str

    def fit(self, train: pd.DataFrame, asset: AIAsset, seed: int) -> "Method":
        ...

    def predict(self, pool: pd.DataFrame, confidence: float) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per metric: (value, lower, upper) for every pool row; lower = upper = value without intervals."""
        ...


class SurrogateMethod:
    """hwmatch's surrogates with conformal intervals."""

    name = "hwmatch"

    def __init__(self) -> None:
        self.models: Surrogates | None = None

    def fit(self, train: pd.DataFrame, asset: AIAsset, seed: int) -> "SurrogateMethod":
        self.models = Surrogates(seed=seed, categorical=categorical_columns(asset.spec.parameters)).fit(train)
        return self

    def predict(self, pool: pd.DataFrame, confidence: float) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        assert self.models is not None, "fit first"
        pred = self.models.predict(pool, confidence)
        return {m: (p.value, p.lower, p.upper) for m, p in pred.items()}


class HadaMethod:
    """HADA's surrogate: a depth-10 decision tree per platform and metric, no interval."""

    name = "hada-dt"
    depth = 10

    def __init__(self) -> None:
        self.trees: dict[tuple[str, str], tuple[FeatureEncoder, DecisionTreeRegressor]] = {}

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
                tree = DecisionTreeRegressor(max_depth=self.depth, random_state=seed)
                self.trees[(str(platform), strip(col))] = (encoder, tree.fit(encoder.transform(inputs), known[col]))
        return self

    def predict(self, pool: pd.DataFrame, confidence: float) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        del confidence  # no intervals: HADA trusts the point prediction
        metrics = sorted({m for _, m in self.trees})
        out = {m: np.full(len(pool), np.nan) for m in metrics}
        for platform, rows in pool.groupby("platform", sort=False):
            where = pool.index.get_indexer(rows.index)
            for m in metrics:
                fitted = self.trees.get((str(platform), m))
                if fitted is not None:
                    encoder, tree = fitted
                    out[m][where] = tree.predict(encoder.transform(rows))
        return {m: (v, v, v) for m, v in out.items()}


def choose(
    query: HWRecommendationSpec,
    candidates: pd.DataFrame,
    positions: np.ndarray,
    pred: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> int | None:
    """The candidate (index label of ``candidates``) a method recommends, or None for "no solution".

    ``positions`` locate the candidates' rows in the prediction arrays. A
    constraint holds when the pessimistic end of the interval meets the bound
    (the point prediction when there is no interval); among the candidates
    that pass, the best predicted objective wins (the price is known, not
    predicted). A metric with no model makes every candidate fail.
    """
    ok = np.ones(len(candidates), dtype=bool)
    for c in query.constraints:
        if c.metric == "cost_per_hour":
            value = candidates["cost_per_hour"].to_numpy(dtype=float)
            lower = upper = value
        elif c.metric in pred:
            value, lower, upper = (a[positions] for a in pred[c.metric])
        else:
            return None
        if c.max is not None:
            ok &= upper <= c.max
        if c.min is not None:
            ok &= lower >= c.min
    if not ok.any():
        return None
    objective = np.zeros(len(candidates))
    for metric, weight in query.objective.terms().items():
        if metric == "cost_per_hour":
            objective += weight * candidates["cost_per_hour"].to_numpy(dtype=float)
        elif metric in pred:
            objective += weight * pred[metric][0][positions]
        else:
            return None
    objective = np.where(ok & np.isfinite(objective), objective, np.inf)
    return candidates.index[int(np.argmin(objective))]
