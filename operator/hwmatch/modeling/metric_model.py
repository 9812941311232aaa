"""One metric's surrogate: target transform, model family chosen by grouped K-fold CV, intervals.

Fitting does, in order:

1. groups: rows with identical inputs (repetitions of one configuration) form
   one group, and folds never split a group — a model is always scored on
   configurations it has not seen, and the spread between repetitions lands
   in the residuals the intervals are built from;
2. a metric the platform alone determines (a price per run: one value per
   platform, every platform in every fold's training rows) is a lookup table
   of the platforms: its out-of-fold error is exactly zero, so no family is
   cross-validated (:class:`PlatformTable`);
3. target transform: ``log`` for positive targets whose skew it reduces
   (latencies, energies spanning orders of magnitude), else identity;
4. the family: below :data:`SELECTION_FROM` rows every family is
   cross-validated on the same folds; from it there are two folds, every
   family is scored on the first one only, and the winner's fit there is
   reused (cross-validating every family on every fold cost seven times one
   fit); the lowest squared error in the transformed space wins (ties: the
   earlier family);
5. the winner is cross-validated on the folds and refitted on all rows; its
   out-of-fold residuals calibrate the intervals
   (:mod:`hwmatch.modeling.intervals`); R² and MAPE of the out-of-fold
   predictions, in the metric's own units, are the reported scores.

Degenerate inputs are answered, not refused: a constant target gives a
constant model with zero-width intervals; fewer than three distinct
configurations give a mean model whose interval is the spread seen. Either
way, with fewer rows than the level's finite-sample threshold the interval is
unbounded (:func:`hwmatch.modeling.intervals.rows_needed`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy.stats import skew
from sklearn.base import RegressorMixin
from sklearn.metrics import mean_absolute_percentage_error, r2_score
from sklearn.model_selection import GroupKFold

from hwmatch.api import ModelScore
from hwmatch.api.errors import InputError
from hwmatch.modeling.families import DEFAULT_FAMILIES, FAMILIES, check_families, extra_trees
from hwmatch.modeling.intervals import Conformal, Selection
from hwmatch.modeling.region import distinct

#: Rows at which CV drops to 3 folds to keep fitting within seconds.
LARGE_ROWS = 1000
#: From this many rows: 2 folds, and the family is chosen on the first one (:meth:`MetricModel._choose`).
SELECTION_FROM = 2000
#: Skew a positive target must have before a log transform is considered.
LOG_SKEW = 0.5
#: Bound on log-space values before exponentiating (keeps exp finite).
_LOG_CLIP = 700.0


@dataclass(frozen=True)
class Prediction:
    """Point predictions and interval bounds of one metric, aligned with the candidate rows."""

    value: np.ndarray
    lower: np.ndarray
    upper: np.ndarray

    def __len__(self) -> int:
        return self.value.size


def choose_transform(y: np.ndarray) -> str:
    """``log`` when every value is positive and taking logs makes the distribution less skewed."""
    if y.size < 3 or np.any(y <= 0) or np.ptp(y) == 0:
        return "identity"
    raw = float(skew(y))
    return "log" if raw > LOG_SKEW and abs(float(skew(np.log(y)))) < abs(raw) else "identity"


def configuration_groups(X: np.ndarray) -> np.ndarray:
    """Group id per row; rows with identical inputs share one."""
    if X.shape[1] == 0:
        return np.zeros(X.shape[0], dtype=int)
    return distinct(X)[1]


def platform_determined(X: np.ndarray, y: np.ndarray, columns: Sequence[int],
                        folds: Sequence[tuple[np.ndarray, np.ndarray]]) -> bool:
    """Whether ``y`` is one value per platform (``columns`` of ``X``) that every fold's training rows know.

    Then a lookup of the platform is exact out of fold: every residual is 0,
    computed, not assumed (a platform missing from some fold's training rows
    would have no value there, and the metric is modelled like any other).
    """
    if not columns:
        return False
    codes = distinct(X[:, list(columns)])[1]
    low, high = np.full(codes.max() + 1, np.inf), np.full(codes.max() + 1, -np.inf)
    np.minimum.at(low, codes, y)
    np.maximum.at(high, codes, y)
    return bool(np.all(low == high)) and all(np.isin(codes[test], codes[train]).all() for train, test in folds)


class PlatformTable(RegressorMixin):
    """A metric the platform determines: its value per platform, read from the platform's ``columns`` of ``X``.

    Exact (to rounding) at every platform of the training rows. A platform it never saw
    (all zeros on the name's one-hot columns) is placed by extra trees over
    the platforms' columns alone, its features, which no parameter can sway.
    """

    def __init__(self, columns: Sequence[int], seed: int) -> None:
        self.columns = list(columns)
        self.seed = seed
        self.table_: RegressorMixin | None = None

    def fit(self, X: np.ndarray, y: np.ndarray) -> "PlatformTable":
        keys, codes = distinct(X[:, self.columns])
        values = np.empty(keys.shape[0])
        values[codes] = y  # every row of a platform holds its one value
        # one row per platform, leaves grown until pure: every tree returns each platform's value
        self.table_ = extra_trees(keys.shape[0], self.seed).fit(keys, values)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        assert self.table_ is not None, "fit first"
        return self.table_.predict(X[:, self.columns])


class _Constant(RegressorMixin):
    def __init__(self, value: float) -> None:
        self.value = value

    def fit(self, X: np.ndarray, y: np.ndarray) -> "_Constant":
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.full(X.shape[0], self.value)


@dataclass
class MetricModel:
    """A fitted model of one metric with conformal intervals; create with :meth:`fit`.

    ``platform_columns``: the columns of ``X`` that describe the platform (its
    name's one-hot columns, its features), so that a metric the platform
    alone determines is looked up, not learnt (:class:`PlatformTable`).
    ``cv_rmse``: the error each family was chosen by (out of fold on every
    row, or on the first fold's held-out rows: :data:`SELECTION_FROM`).
    """

    families: tuple[str, ...] = DEFAULT_FAMILIES
    folds: int = 5
    seed: int = 0
    platform_columns: tuple[int, ...] = ()
    family: str = field(default="", init=False)
    transform: str = field(default="identity", init=False)
    cv_rmse: dict[str, float] = field(default_factory=dict, init=False)
    score: ModelScore | None = field(default=None, init=False)
    model_: RegressorMixin | None = field(default=None, init=False, repr=False)
    conformal_: Conformal | None = field(default=None, init=False, repr=False)
    #: Out-of-fold predictions (transformed space) of the training rows, in their order; None when degenerate.
    oof_: np.ndarray | None = field(default=None, init=False, repr=False)
    nonnegative_: bool = field(default=False, init=False, repr=False)

    def fit(self, X: np.ndarray, y: np.ndarray) -> "MetricModel":
        y = np.asarray(y, dtype=float)
        if y.size == 0 or X.shape[0] != y.size:
            raise InputError(f"need as many target values as rows (got {y.size} values, {X.shape[0]} rows, at least 1)")
        if not np.all(np.isfinite(y)):
            raise InputError("target values must be finite; drop NaN/inf rows before fitting")
        check_families(self.families)
        self.nonnegative_ = bool(np.all(y >= 0))
        if np.ptp(y) == 0:
            return self._degenerate(X, y, "constant")
        groups = configuration_groups(X)
        n_groups = int(groups.max()) + 1
        if n_groups < 3:
            return self._degenerate(X, y, "mean")
        k = min(self.folds if y.size < LARGE_ROWS else 3 if y.size < SELECTION_FROM else 2, self.folds, n_groups)
        folds = list(GroupKFold(n_splits=k, shuffle=True, random_state=self.seed).split(X, y, groups))
        if platform_determined(X, y, self.platform_columns, folds):
            self.family, self.cv_rmse, self.oof_ = "platform_table", {"platform_table": 0.0}, y.copy()
            self.model_ = PlatformTable(self.platform_columns, self.seed).fit(X, y)
            self.conformal_ = Conformal.fit(X, np.zeros_like(y), folds, self.seed)
        else:
            self.transform = choose_transform(y)
            z = self._forward(y)
            self.oof_ = self._choose(X, z, folds)
            self.model_ = FAMILIES[self.family](y.size, self.seed).fit(X, z)
            self.conformal_ = Conformal.fit(X, z - self.oof_, folds, self.seed)
        held_out = self._inverse(self.oof_)
        self.score = ModelScore(
            family=self.family + ("+log" if self.transform == "log" else ""),
            r2=float(r2_score(y, held_out)),
            mape=float(mean_absolute_percentage_error(y, held_out)),
            trained_on_trials=int(y.size),
        )
        return self

    def _choose(self, X: np.ndarray, z: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """Set :attr:`family` (and :attr:`cv_rmse`); return the winner's out-of-fold predictions of every row.

        Below :data:`SELECTION_FROM` rows every family is cross-validated on
        every fold. From it, every family is fitted on the first fold's
        training rows and scored on its held-out half (a thousand rows or
        more settle a family's rank), and only the winner is fitted on the
        other fold: its first-fold predictions are reused, so choosing costs
        two fits more than cross-validating one family.
        """
        scored = folds if z.size < SELECTION_FROM else folds[:1]
        held = np.concatenate([test for _, test in scored])
        oof = {name: self._out_of_fold(name, X, z, scored, np.empty_like(z)) for name in self.families}
        for name, pred in oof.items():
            self.cv_rmse[name] = float(np.sqrt(np.mean((z[held] - pred[held]) ** 2)))
        self.family = min(self.families, key=lambda name: (self.cv_rmse[name], self.families.index(name)))
        return self._out_of_fold(self.family, X, z, folds[len(scored):], oof[self.family])

    def _out_of_fold(self, name: str, X: np.ndarray, z: np.ndarray, folds: Sequence[tuple[np.ndarray, np.ndarray]],
                     pred: np.ndarray) -> np.ndarray:
        """``pred`` with the held-out rows of ``folds`` predicted by family ``name`` fitted on the rest."""
        for train, test in folds:
            pred[test] = FAMILIES[name](train.size, self.seed).fit(X[train], z[train]).predict(X[test])
        return pred

    def _degenerate(self, X: np.ndarray, y: np.ndarray, family: str) -> "MetricModel":
        """Constant or mean model: what a handful of configurations supports."""
        self.family, self.transform, self.oof_ = family, "identity", None
        center = float(np.mean(y))
        self.model_ = _Constant(center)
        self.conformal_ = Conformal(np.sort(np.abs(y - center)))
        self.score = ModelScore(
            family=family, r2=None, mape=float(mean_absolute_percentage_error(y, np.full_like(y, center))),
            trained_on_trials=int(y.size),
        )
        return self

    @property
    def rows(self) -> int:
        """Calibration rows behind the intervals (the trials this metric was learnt from)."""
        return 0 if self.conformal_ is None else self.conformal_.rows

    def bounded(self, level: float) -> bool:
        """Whether intervals at ``level`` are finite: enough rows for the conformal quantile."""
        return self.conformal_ is not None and self.conformal_.bounded(level)

    def predict(
        self, X: np.ndarray, level: float = 0.9, capped: bool = False, widening: np.ndarray | None = None,
        selected: Sequence[Selection] = (),
    ) -> Prediction:
        """Value and the interval that holds the measured metric with probability ``level``.

        Below the finite-sample threshold the interval is ``(-inf, +inf)``
        (see :mod:`hwmatch.modeling.intervals`), even for a non-negative
        metric: a finite-looking 0 would read as knowledge. ``capped`` gives
        widths from the largest residual instead, for ranking only.
        ``selected``: the selections of this metric's calibration rows, so
        that the interval also holds at a selected candidate
        (:func:`hwmatch.modeling.intervals.selected_quantile`).
        """
        if self.model_ is None or self.conformal_ is None:
            raise RuntimeError("this surrogate is not fitted; call fit(X, y) first")
        z = self.model_.predict(X)
        half = self.conformal_.half_width(X, level, capped, selected)
        if widening is not None:
            half = half * widening
        finite = np.isfinite(half)
        half = np.where(finite, half, 0.0)
        value, lower, upper = self._inverse(z), self._inverse(z - half), self._inverse(z + half)
        if self.nonnegative_:
            value, lower = np.maximum(value, 0.0), np.maximum(lower, 0.0)
        return Prediction(value, np.where(finite, lower, -np.inf), np.where(finite, upper, np.inf))

    def _forward(self, y: np.ndarray) -> np.ndarray:
        return np.log(y) if self.transform == "log" else y

    def _inverse(self, z: np.ndarray) -> np.ndarray:
        return np.exp(np.clip(z, -_LOG_CLIP, _LOG_CLIP)) if self.transform == "log" else z
