"""All metrics of a dataset: one surrogate each, one shared encoder, retrained only on change.

``Surrogates(seed=7).fit(frame)`` learns every ``metric.*`` column from the
succeeded rows; ``predict(candidates, level)`` answers every metric for a
candidate frame with one encoding pass. A fitted surrogate is kept in a small
process-wide cache keyed by the content hash of its training rows (encoded
inputs and target), the seed and the fitting settings, so an operator that
re-reconciles, or an evaluation that asks many questions of one dataset,
never retrains on unchanged data. Rows are put in a canonical order before
fitting, so the result does not depend on the order trials arrived in.

Every metric's intervals are also calibrated at selected candidates
(:func:`hwmatch.modeling.intervals.selected_quantile`): at the rows its own
out-of-fold predictions rank first, and at those another metric's rank
first among the rows whose own prediction meets a bound (as a request that
bounds this metric and optimises the other chooses), because the optimiser
picks by the objective and breaks ties by the other goals, and a
configuration picked for looking fast may be one whose memory the model also
underestimates (:meth:`Surrogates._selections`). A metric with a goal
selects in the direction of its goal (the optimiser looks for the lowest
latency, never the highest); one without, in both. Ties in a selector's
predictions (a price that is one constant per platform) are broken at
random, so the rows it picks are a random sample of the platform it
favours, not the first by parameter value. Selections are recomputed on
each fit (cheap: a few sorts per metric pair), since a cached model's
selections change when another metric's data does.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from hwmatch.api import ModelScore, Parameter
from hwmatch.api.errors import InputError
from hwmatch.data.frame import INSTANCE, METRIC, PARAM, columns, strip, succeeded
from hwmatch.modeling.families import DEFAULT_FAMILIES, check_families
from hwmatch.modeling.features import FeatureEncoder, input_columns
from hwmatch.modeling.intervals import Selection, rows_needed
from hwmatch.modeling.metric_model import MetricModel, Prediction
from hwmatch.modeling.region import Region, widening

#: Fitted surrogates kept in memory (least recently used go first).
CACHE_SIZE = 64
#: Candidates are encoded and predicted in chunks of this many rows (bounded memory).
PREDICT_CHUNK = 200_000
#: Where requests put their bounds, as quantiles of a metric's predictions (the selection calibration's bounds).
BOUND_QUANTILES = np.linspace(0.1, 0.9, 9)
#: Rows kept per selection ordering: enough for a finite quantile up to level 0.999 (above it, no selection).
MAX_PICKED = rows_needed(0.999)

_cache: "OrderedDict[tuple, MetricModel]" = OrderedDict()
_cache_lock = threading.Lock()


def clear_cache() -> None:
    """Forget every fitted surrogate (tests, or to free memory)."""
    with _cache_lock:
        _cache.clear()


@dataclass(frozen=True)
class Forecast:
    """Every metric's predictions at a set of candidates, and the novelty their intervals were widened by.

    One encoding and one search of the sampled region serve both: a
    recommendation reports each choice's novelty, and asking for it apart
    encoded the candidates and searched the region a second time (a third
    of the prediction's time at 10^6 candidates).
    """

    predictions: dict[str, Prediction]
    #: Per candidate: distance to the nearest trial over the region's reference (:meth:`Surrogates.novelty`).
    novelty: np.ndarray


def categorical_columns(parameters: Iterable[Parameter]) -> frozenset[str]:
    """The ``param.*`` columns an asset declares ``type: categorical``."""
    return frozenset(PARAM + p.name for p in parameters if p.type == "categorical")


def _digest(*arrays: np.ndarray, text: str = "") -> str:
    h = hashlib.sha256(text.encode())
    for a in arrays:
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _first(scores: np.ndarray, order: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """``scores`` of the ``allowed`` rows in ``order`` (a selector's ranking of every row), the first :data:`MAX_PICKED`."""
    return scores[order[allowed[order]][:MAX_PICKED]]


class Surrogates:
    """One :class:`MetricModel` per metric of a dataset frame, sharing one :class:`FeatureEncoder`.

    ``categorical`` names ``param.*``/``feature.*`` columns to treat as
    categorical even when numeric (see :func:`categorical_columns`);
    ``metrics`` restricts which metrics are learnt (default: every
    ``metric.*`` column with at least one value); ``goals`` (metric ->
    ``minimize``/``maximize``, the asset's) are the directions the
    optimiser selects in, for the selection calibration (a metric without a
    goal is calibrated for selection both ways); ``threads`` caps the
    OpenMP/BLAS threads of fitting and prediction (1 by default: results do
    not depend on it, and on a shared machine spinning threads cost more than
    they give).
    """

    def __init__(
        self,
        seed: int = 0,
        families: tuple[str, ...] = DEFAULT_FAMILIES,
        folds: int = 5,
        categorical: Iterable[str] = (),
        metrics: Iterable[str] | None = None,
        goals: Mapping[str, str] | None = None,
        threads: int = 1,
    ) -> None:
        if folds < 2:
            raise InputError(f"folds must be >= 2 (got {folds})")
        self.seed = seed
        self.families = check_families(tuple(families))
        self.folds = folds
        self.categorical = frozenset(categorical)
        self.metrics = None if metrics is None else list(metrics)
        self.goals = dict(goals or {})
        self.threads = threads
        self.encoder = FeatureEncoder(categorical=self.categorical)
        self.models: dict[str, MetricModel] = {}
        self.dataset_hash: str | None = None
        self.fitted_now: list[str] = []
        self.region: Region | None = None
        #: Per metric, its calibration scores ordered by each selector (see :meth:`_selections`).
        self.selections: dict[str, tuple[Selection, ...]] = {}

    def fit(self, frame: pd.DataFrame) -> "Surrogates":
        """Learn every metric from the succeeded rows of ``frame`` (cached by content)."""
        with threadpool_limits(limits=self.threads):
            return self._fit(frame)

    def _fit(self, frame: pd.DataFrame) -> "Surrogates":
        rows = succeeded(frame)
        available = [strip(c) for c in columns(rows, METRIC) if rows[c].notna().any()]
        wanted = available if self.metrics is None else self.metrics
        missing = [m for m in wanted if m not in available]
        if missing:
            raise InputError(
                f"metrics {missing} have no succeeded measurements in the dataset; it has {available or 'none'}"
            )
        if not wanted:
            raise InputError("the dataset has no succeeded trials with metrics to learn from")
        self.encoder.fit(rows)
        X_all = self.encoder.transform(rows)
        self.region = Region.fit(X_all, self.folds, self.seed)
        settings = f"{self.encoder.fingerprint()}|{self.families}|{self.folds}|{self.seed}"
        self.models, self.fitted_now, digests = {}, [], []
        positions: dict[str, np.ndarray] = {}
        for metric in wanted:
            y_all = pd.to_numeric(rows[METRIC + metric], errors="coerce").to_numpy(float)
            keep = np.isfinite(y_all)
            X, y = X_all[keep], y_all[keep]
            order = np.lexsort(np.column_stack([X, y]).T[::-1])
            X, y = X[order], y[order]
            positions[metric] = np.flatnonzero(keep)[order]
            digest = _digest(X, y, text=f"{metric}|{','.join(self.encoder.feature_names)}")
            digests.append(digest)
            self.models[metric] = self._cached(digest, settings, metric, X, y)
        self.selections = self._selections(positions, X_all.shape[0])
        self.dataset_hash = hashlib.sha256("".join(digests).encode()).hexdigest()[:16]
        return self

    def _selections(self, positions: dict[str, np.ndarray], n_rows: int) -> dict[str, tuple[Selection, ...]]:
        """Per metric, the selections its intervals are calibrated at (:func:`~hwmatch.modeling.intervals.selected_quantile`).

        ``positions[m]`` are the trial rows metric ``m`` was fitted on, in its
        model's row order. Rows are ordered by a selector's out-of-fold
        prediction, the one the optimiser would pick first first: lowest for
        a minimised metric, highest for a maximised one, both for a metric
        without a goal; ties in random order.

        - by the metric's own predictions: the extreme rows themselves (a
          request optimising a metric it also bounds, or breaking ties by it);
        - by another metric's: among the rows whose own prediction meets a
          bound, as a request bounding this metric and optimising the other
          one would choose, for bounds at the deciles 10–90% of this metric's
          predictions (where requests put them), pooled over the bounds.
        """
        tie_order = np.random.default_rng(self.seed).permutation(n_rows)
        predicted: dict[str, np.ndarray] = {}
        for metric, model in self.models.items():
            if model.oof_ is not None:
                predicted[metric] = np.full(n_rows, np.nan)
                predicted[metric][positions[metric]] = model.oof_

        def directions(metric: str) -> tuple[float, ...]:
            goal = self.goals.get(metric)
            return (1.0,) if goal == "minimize" else (-1.0,) if goal == "maximize" else (1.0, -1.0)

        # every row by each selector and direction, sorted once; a selection reads the rows it allows in that order
        orders = {(name, d): np.lexsort((tie_order, d * values))
                  for name, values in predicted.items() for d in directions(name)}
        out: dict[str, tuple[Selection, ...]] = {}
        for metric in predicted:
            calibration = self.models[metric].conformal_.calibration  # type: ignore[union-attr]  # fitted with oof_
            if calibration is None:
                continue
            scores = np.full(n_rows, np.nan)
            scores[positions[metric]] = calibration
            own = predicted[metric]
            fitted = np.zeros(n_rows, dtype=bool)
            fitted[positions[metric]] = True
            selections: list[Selection] = [(_first(scores, orders[(metric, d)], fitted),) for d in directions(metric)]
            for name, selector in predicted.items():
                if name == metric:
                    continue
                both = fitted & np.isfinite(selector)
                if not both.any():
                    continue
                bounds = np.quantile(own[both], BOUND_QUANTILES)
                for d in directions(name):
                    selections.append(tuple(
                        _first(scores, orders[(name, d)], both & (side * (own - bound) <= 0))
                        for side in directions(metric) for bound in bounds
                    ))
            out[metric] = tuple(selections)
        return out

    def _cached(self, digest: str, settings: str, metric: str, X: np.ndarray, y: np.ndarray) -> MetricModel:
        key = (digest, settings)
        with _cache_lock:
            if key in _cache:
                _cache.move_to_end(key)
                return _cache[key]
        model = MetricModel(families=self.families, folds=self.folds, seed=self.seed,
                            platform_columns=self.encoder.platform_positions()).fit(X, y)
        self.fitted_now.append(metric)
        with _cache_lock:
            _cache[key] = model
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
        return model

    def encode(self, candidates: pd.DataFrame) -> np.ndarray:
        """The candidates as the models' input matrix (reuse it across confidences and metrics)."""
        self._check_fitted()
        # a platform may lack a feature (it encodes as missing); a parameter or instance feature may not
        missing = [
            c.name for c in self.encoder.columns_
            if c.name not in candidates.columns and c.name.startswith((PARAM, INSTANCE))
        ]
        if missing:
            raise InputError(
                f"candidate rows lack the columns {missing} the models were trained on; "
                f"they have {input_columns(candidates)}"
            )
        return self.encoder.transform(candidates)

    def forecast(
        self, candidates: pd.DataFrame, level: float = 0.9, metrics: Iterable[str] | None = None,
        capped: bool = False,
    ) -> Forecast:
        """Every metric (or ``metrics``) for each candidate row (value, lower, upper), and each row's novelty.

        Bounds are infinite for a metric with too few rows for ``level``
        (:meth:`unbounded`); ``capped`` widths are for ranking where to sample only.
        A candidate outside the sampled region has every half-width widened
        by its :meth:`novelty`, returned with the predictions. Rows are encoded
        and predicted :data:`PREDICT_CHUNK` at a time, into arrays allocated once.
        """
        self._check_fitted()
        n = len(candidates)
        if n <= PREDICT_CHUNK:
            return self.forecast_encoded(self.encode(candidates), level, metrics, capped)
        names = self._names(metrics)
        predictions = {m: Prediction(np.empty(n), np.empty(n), np.empty(n)) for m in names}
        novelty = np.empty(n)
        for start in range(0, n, PREDICT_CHUNK):
            part = self.forecast_encoded(self.encode(candidates.iloc[start : start + PREDICT_CHUNK]), level, names, capped)
            end = start + part.novelty.size
            novelty[start:end] = part.novelty
            for m, p in part.predictions.items():
                predictions[m].value[start:end], predictions[m].lower[start:end], predictions[m].upper[start:end] = (
                    p.value, p.lower, p.upper)
        return Forecast(predictions, novelty)

    def predict(
        self, candidates: pd.DataFrame, level: float = 0.9, metrics: Iterable[str] | None = None,
        capped: bool = False,
    ) -> dict[str, Prediction]:
        """The predictions of :meth:`forecast` alone."""
        return self.forecast(candidates, level, metrics, capped).predictions

    def forecast_encoded(
        self, X: np.ndarray, level: float = 0.9, metrics: Iterable[str] | None = None, capped: bool = False,
    ) -> Forecast:
        """Like :meth:`forecast` on an already encoded matrix (:meth:`encode`)."""
        self._check_fitted()
        names = self._names(metrics)
        novelty = np.ones(X.shape[0]) if self.region is None else self.region.novelty(X)
        wider = widening(novelty)
        with threadpool_limits(limits=self.threads):
            predictions = {m: self.models[m].predict(X, level, capped, wider, self.selections.get(m, ())) for m in names}
        return Forecast(predictions, novelty)

    def _names(self, metrics: Iterable[str] | None) -> list[str]:
        names = list(self.models) if metrics is None else list(metrics)
        unknown = [m for m in names if m not in self.models]
        if unknown:
            raise InputError(f"no surrogate for metrics {unknown}; fitted: {list(self.models)}")
        return names

    def novelty(self, candidates: pd.DataFrame) -> np.ndarray:
        """Per candidate: distance to the nearest trial over the reference (> 1: outside the sampled region).

        Every interval of such a candidate is widened by that factor (:mod:`hwmatch.modeling.region`).
        """
        self._check_fitted()
        if self.region is None:
            return np.ones(len(candidates))
        return self.region.novelty(self.encode(candidates))

    def unbounded(self, level: float) -> dict[str, tuple[int, int]]:
        """Metrics whose intervals at ``level`` are unbounded: ``metric -> (rows it has, rows needed)``."""
        needed = rows_needed(level)
        return {m: (model.rows, needed) for m, model in self.models.items() if not model.bounded(level)}

    def scores(self) -> dict[str, ModelScore]:
        """Held-out R² and MAPE per metric, as ``HWRecommendationStatus.models`` wants them."""
        return {m: s.score for m, s in self.models.items() if s.score is not None}

    def _check_fitted(self) -> None:
        if not self.models:
            raise RuntimeError("surrogates are not fitted; call fit(frame) first")
