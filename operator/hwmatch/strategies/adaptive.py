"""Adaptive sampling: measure where it changes recommendations, not uniformly.

After an initial space-filling design (a latin hypercube), every round fits
quick surrogates with conformal intervals (:mod:`hwmatch.modeling`) to the
trials so far and scores each unmeasured candidate by how much measuring it
could change the answer to a *family of plausible queries*: random
requirements drawn like a user's (an objective among the metrics with a
goal, up to two constraints with bounds drawn uniformly between the 10th and
90th percentile of the predicted values, an instance when the asset is
input-dependent). For each query a candidate earns, weighted by its
interval width in units of the metric's spread:

- for every constraint whose bound its interval straddles, the more the
  closer its prediction is to the bound — measuring it decides on which
  side it falls, which is what feasibility errors and false "no solution"
  answers are made of;
- for the objective, when it could still be the optimum: it is plausibly
  feasible and its optimistic objective beats the best pessimistic value
  among the surely feasible candidates, the more the likelier.

Candidates that are surely infeasible or surely dominated score nothing. The
batch is taken greedily by score, each pick damping the scores of its
neighbours (in the normalised space) so a batch is not spent on one spot.
Everything is a function of the rng, so a seed gives the same sweep.

:meth:`AdaptiveSampler.select` works on any candidate frame across
platforms (offline comparisons over a table's configurations use it);
:meth:`AdaptiveSampler.propose` is the planner's per-platform round.
"""

from __future__ import annotations

from typing import Literal, Mapping

import numpy as np
import pandas as pd

from hwmatch.api import AIAsset, BenchmarkSweep, Constraint, HWRecommendationSpec, Objective, ObjectRef, Platform
from hwmatch.api.errors import InputError
from hwmatch.api.vocabulary import canonical
from hwmatch.data.frame import INSTANCE, METRIC, PARAM, columns, succeeded
from hwmatch.modeling import Surrogates, categorical_columns
from hwmatch.modeling.metric_model import Prediction
from hwmatch.optimize.candidates import CandidateSet
from hwmatch.optimize.problem import Requirement, interval_level
from hwmatch.planning.samplers import LatinHypercubeSampler, Point
from hwmatch.planning.space import Space

#: Plausible queries scored per round.
QUERIES = 48
#: Random candidates drawn from a continuous space per round (when no candidate set is given).
POOL = 2048
#: Joint confidence of the plausible queries: each judges "could be feasible / could be optimal" on
#: intervals at the per-bound level a real request at this confidence gets (interval_level).
CONFIDENCE = 0.9
#: A pick damps the score of candidates closer than this many typical candidate spacings to it.
RADIUS = 3.0
#: Fewest measured values a metric needs before it steers sampling.
MIN_ROWS = 8


class AdaptiveSampler:
    """Latin hypercube first, then batches that most improve recommendations (see the module doc)."""

    def __init__(
        self,
        queries: int = QUERIES,
        pool: int = POOL,
        confidence: float = CONFIDENCE,
        radius: float = RADIUS,
        families: tuple[str, ...] = ("extra_trees",),
        folds: int = 3,
    ):
        if queries < 1 or pool < 1:
            raise InputError(f"queries and pool must be >= 1 (got {queries}, {pool})")
        self.queries = queries
        self.pool = pool
        self.confidence = confidence
        self.radius = radius
        self.families = families
        self.folds = folds

    def sample(self, space: Space, n: int | None, rng: np.random.Generator) -> list[Point]:
        """The initial space-filling design."""
        return LatinHypercubeSampler().sample(space, n, rng)

    def propose(
        self,
        space: Space,
        history: pd.DataFrame,
        n: int,
        rng: np.random.Generator,
        *,
        asset: AIAsset,
        sweep: BenchmarkSweep,
        platform: Platform,
    ) -> list[Point]:
        """The planner's round on one platform: ``n`` new points of ``space``, none measured already."""
        measured = {canonical(p) for p in _points(history, space)}
        drawn = [space.decode(u) for u in rng.random((self.pool, len(space)))]
        points = list({canonical(p): p for p in drawn if canonical(p) not in measured}.values())
        if not points:
            return []
        instances = list(sweep.spec.instances) or [{}]
        candidates = CandidateSet.of_points(asset.spec.parameters, [platform], points, instances).frame
        chosen = self.select(history, candidates, n * len(instances), rng, asset=asset)
        picked = list(dict.fromkeys(i // len(instances) for i in chosen))  # rows are point-major
        return [points[k] for k in picked[:n]]

    def select(
        self, history: pd.DataFrame, candidates: pd.DataFrame, n: int, rng: np.random.Generator, *, asset: AIAsset
    ) -> list[int]:
        """Positions (in ``candidates``) of the ``n`` candidates to measure next, best first."""
        n = min(n, len(candidates))
        if n <= 0:
            return []
        scores = self.scores(history, candidates, rng, asset=asset)
        X = _normalised(candidates, asset)
        return _greedy(scores, X, n, self.radius * _spacing(X, rng), rng)

    def scores(
        self, history: pd.DataFrame, candidates: pd.DataFrame, rng: np.random.Generator, *, asset: AIAsset
    ) -> np.ndarray:
        """Each candidate's expected influence on the answers to the plausible queries."""
        rows = succeeded(history)
        goals = {m.name: m.goal for m in asset.spec.metrics if m.goal is not None}
        metrics = [m for m in goals if METRIC + m in rows.columns and rows[METRIC + m].notna().sum() >= MIN_ROWS]
        if not metrics:
            return np.zeros(len(candidates))
        models = Surrogates(
            seed=int(rng.integers(2**31)), families=self.families, folds=self.folds,
            categorical=categorical_columns(asset.spec.parameters), metrics=metrics, goals=goals,
        ).fit(rows)
        preds: dict[float, dict[str, Prediction]] = {}  # per interval level, as the queries need them
        spread = {m: _spread(rows[METRIC + m]) for m in metrics}
        instance_cols = columns(candidates, INSTANCE)
        instances = candidates[instance_cols].drop_duplicates() if instance_cols else None
        total = np.zeros(len(candidates))
        for _ in range(self.queries):
            mask = np.ones(len(candidates), dtype=bool)
            if instances is not None:
                row = instances.iloc[int(rng.integers(len(instances)))]
                for c in instance_cols:
                    mask &= np.isclose(candidates[c].to_numpy(dtype=float), float(row[c]))
            query = self._query(asset, goals, metrics, rng)
            level = interval_level(query)
            if level not in preds:
                preds[level] = models.predict(candidates, level, capped=True)  # ranks only
            total[mask] += self._query_score(query, preds[level], spread, goals, mask, rng)
        return total / self.queries

    def _query(self, asset: AIAsset, goals: Mapping[str, str], metrics: list[str],
               rng: np.random.Generator) -> HWRecommendationSpec:
        """A plausible request: an objective among the metrics with a goal, up to two constrained others.

        The bounds are placeholders until :meth:`_query_score` draws them from
        the predictions; the number of constraints is what fixes the
        per-bound interval level (:func:`~hwmatch.optimize.problem.interval_level`),
        the same rule a real request follows at this joint confidence.
        """
        objective = metrics[int(rng.integers(len(metrics)))]
        others = [m for m in metrics if m != objective]
        k = int(rng.integers(0, min(2, len(others)) + 1))
        constrained = [others[i] for i in rng.permutation(len(others))[:k]]
        return HWRecommendationSpec(
            asset_ref=ObjectRef(name=asset.metadata.name),
            constraints=[Constraint(metric=m, **{"max" if goals[m] == "minimize" else "min": 0.0}) for m in constrained],
            objective=Objective(minimize=objective) if goals[objective] == "minimize" else Objective(maximize=objective),
            confidence=self.confidence,
        )

    def _query_score(
        self,
        query: HWRecommendationSpec,
        pred: dict[str, Prediction],
        spread: dict[str, float],
        goals: Mapping[str, str],
        mask: np.ndarray,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """One query's score of the candidates under ``mask`` (its bounds drawn between the predictions' deciles)."""
        maybe = np.ones(int(mask.sum()), dtype=bool)
        surely = np.ones_like(maybe)
        straddle = np.zeros(maybe.size)
        for c in query.constraints:
            m = c.metric
            value, lower, upper = pred[m].value[mask], pred[m].lower[mask], pred[m].upper[mask]
            lo, hi = np.quantile(value, [0.1, 0.9])
            bound = float(rng.uniform(lo, hi))
            sense: Literal["min", "max"] = "max" if c.max is not None else "min"
            optimistic, pessimistic = (lower, upper) if sense == "max" else (upper, lower)
            maybe &= Requirement(m, m, sense, bound, "query", optimistic).met  # the problem's own feasibility rule
            surely &= Requirement(m, m, sense, bound, "query", pessimistic).met
            straddle += _closeness(value, lower, upper, bound) * (upper - lower) / spread[m]
        objective = next(iter(query.objective.terms()))
        sign = 1.0 if goals[objective] == "minimize" else -1.0
        p = pred[objective]
        value = sign * p.value[mask]
        optimistic = np.where(sign > 0, p.lower[mask], -p.upper[mask])
        pessimistic = np.where(sign > 0, p.upper[mask], -p.lower[mask])
        best = pessimistic[surely].min() if surely.any() else np.inf
        contender = maybe & (optimistic <= best)
        if np.isfinite(best):
            chance = np.clip((best - optimistic) / np.maximum(value - optimistic, 1e-12) / 2, 0.0, 1.0)
        else:
            chance = np.ones(maybe.size)
        width = (p.upper[mask] - p.lower[mask]) / spread[objective]
        return maybe * straddle + contender * chance * width


def _closeness(value: np.ndarray, lower: np.ndarray, upper: np.ndarray, bound: float) -> np.ndarray:
    """1 where the prediction sits on the bound, falling to 0 where the interval's end just reaches it."""
    half = np.where(bound >= value, upper - value, value - lower)
    return np.clip(1.0 - np.abs(bound - value) / np.maximum(half, 1e-12), 0.0, 1.0)


def _points(history: pd.DataFrame, space: Space) -> list[Point]:
    """The parameter combinations of a frame's rows."""
    cols = [PARAM + name for name in space.names]
    if not len(history) or any(c not in history.columns for c in cols):
        return []
    return [dict(zip(space.names, values)) for values in history[cols].itertuples(index=False)]


def _spread(values: pd.Series) -> float:
    """A robust scale of a metric (interquartile range, else std, else 1)."""
    v = values.dropna().to_numpy(dtype=float)
    iqr = float(np.subtract(*np.quantile(v, [0.75, 0.25]))) if v.size else 0.0
    return iqr if iqr > 0 else float(np.std(v)) or 1.0


def _normalised(candidates: pd.DataFrame, asset: AIAsset) -> np.ndarray:
    """Candidates in a unit-scaled space: numeric columns min-max scaled, categoricals one-hot, platform too."""
    blocks = []
    categorical = categorical_columns(asset.spec.parameters)
    for col in ["platform", *columns(candidates, PARAM), *columns(candidates, INSTANCE)]:
        if col not in candidates.columns:
            continue
        values = candidates[col]
        if col == "platform" or col in categorical or not pd.api.types.is_numeric_dtype(values):
            blocks.append(pd.get_dummies(values.astype(str)).to_numpy(dtype=float))
        else:
            x = values.to_numpy(dtype=float)
            span = np.nanmax(x) - np.nanmin(x)
            blocks.append(((x - np.nanmin(x)) / span if span > 0 else np.zeros_like(x))[:, None])
    return np.hstack(blocks) if blocks else np.zeros((len(candidates), 0))


def _spacing(X: np.ndarray, rng: np.random.Generator, probes: int = 256) -> float:
    """The median distance from a candidate to its nearest neighbour (on a sample of candidates)."""
    if len(X) < 2:
        return 1.0
    sample = X[rng.choice(len(X), size=min(probes, len(X)), replace=False)]
    nearest = [np.partition(np.sqrt(((X - x) ** 2).sum(axis=1)), 1)[1] for x in sample]
    return float(np.median(nearest)) or 1e-6


def _greedy(scores: np.ndarray, X: np.ndarray, n: int, radius: float, rng: np.random.Generator) -> list[int]:
    """Top-scoring picks, each damping its neighbours; ties (and all-zero scores) broken at random."""
    score = scores + 1e-9 * (1.0 + rng.random(scores.size))  # seeded tie-break; zero scores stay pickable
    alive = np.ones(scores.size, dtype=bool)
    chosen: list[int] = []
    for _ in range(n):
        i = int(np.argmax(np.where(alive, score, -np.inf)))
        chosen.append(i)
        alive[i] = False
        distance = np.sqrt(((X - X[i]) ** 2).sum(axis=1))
        score = score * np.clip(distance / radius, 1e-6, 1.0)
    return chosen

