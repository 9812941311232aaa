"""Prediction intervals from out-of-fold residuals (split-conformal, CV+-style).

Every training row has an out-of-fold residual ``r_i = z_i - ẑ_{-k(i)}(x_i)``:
the error of a model that never saw that row's configuration (folds group
repetitions of one configuration together, so measurement noise *and* model
error are in it). The two-sided interval at level ``c`` is ``ẑ(x) ± q_c · σ(x)``
where ``q_c`` is the ``⌈(n+1)c⌉``-th smallest score ``|r_i| / σ(x_i)``:

- plain: ``σ ≡ 1``, one width everywhere;
- normalised: ``σ(x)`` is a small tree ensemble fitted to ``|r|``, so noisy
  platforms get wide intervals and steady ones narrow intervals. ``σ`` of the
  calibration rows is itself cross-fitted (out of fold), so scores are not
  shrunk by the spread model having seen them.

Below the finite-sample threshold, ``⌈(n+1)c⌉ > n`` (fewer than 9 rows at
0.9, 19 at 0.95: :func:`rows_needed`), split conformal has no finite
quantile: the interval that keeps its guarantee is unbounded, and it is
reported as ``(-inf, +inf)``. A requirement that rests on such a bound cannot
be shown to hold; the recommender says how many more trials would make it
finite (``InsufficientData``) instead of reading the largest residual seen as
if it were a ``c``-quantile — with 4 rows that "90 %" interval is a 60 % one
at best. Only the adaptive sampler, which ranks where to measure and
promises nothing, asks for ``capped`` widths (the largest score).

**Selection.** A conformal interval covers a *random* configuration at
``c``; the optimiser does not pick one at random but the candidate whose
predictions look best, and there the model's errors tend to favour it (the
winner's curse: among thousands of candidates, the one predicted fastest is
most likely one whose speed is overestimated). The calibration therefore also
reads the scores of the rows a selection would have picked, out of fold
(:func:`selected_quantile`; :mod:`hwmatch.modeling.surrogates` builds the
selections from every metric's out-of-fold predictions, in the direction of
its goal). The fewest rows a selection ranks first that give a finite
``c``-quantile (``rows_needed(c)``: 9 at 0.9) are a split-conformal
calibration set for a configuration picked first, and their quantile is a
``c``-bound for such a choice when their scores are exchangeable with the
chosen one's; a rule applied at several bounds pools its picks, so it holds
on average over the bounds. The interval uses the largest of the marginal
quantile and every selection's: it holds for a random configuration and
for one picked by any of the rules, whichever the request optimises; at a
random configuration it is conservative (it covers more than ``c``). Where
no selection effect exists the picked rows' quantile is in expectation the
``c``-quantile itself; the cost is the variance of a quantile read from few
rows, and the maximum over selections.

The normalised variant is used when there are enough rows to learn a spread
and it gives narrower intervals on average than the plain one at 0.9. The
residuals live in the surrogate's target space, so on a log-transformed
target the interval is relative (``value × e^{±q}``), as noise on latencies
usually is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from sklearn.ensemble import ExtraTreesRegressor

from hwmatch.api.errors import InputError
from hwmatch.modeling.families import TREE_ROWS

#: Fewer calibration rows than this: no spread model (plain intervals).
MIN_NORMALISED_ROWS = 40
#: Confidence at which plain and normalised intervals are compared.
REFERENCE_CONFIDENCE = 0.9


def _spread_model(n_rows: int, seed: int) -> ExtraTreesRegressor:
    large = n_rows > TREE_ROWS
    return ExtraTreesRegressor(
        n_estimators=15,
        min_samples_leaf=max(5, min(n_rows // 40, 50)),
        max_features=1.0,
        bootstrap=large,
        max_samples=TREE_ROWS if large else None,
        n_jobs=1,
        random_state=seed,
    )


#: Rounding slack on ``(n+1)·c`` (``10 × 0.9`` is 9.000000000000002 in floating point).
_RANK_SLACK = 1e-9


def _rank(n: int, level: float) -> int:
    return max(1, math.ceil((n + 1) * level - _RANK_SLACK))


def rows_needed(level: float) -> int:
    """The fewest calibration rows whose conformal quantile at ``level`` is finite: ``⌈(n+1)c⌉ <= n``.

    9 at 0.9, 19 at 0.95, 99 at 0.99 (the smallest ``n >= c / (1 - c)``).
    """
    if not 0.0 < level < 1.0:
        raise InputError(f"level must be in (0, 1) (got {level})")
    n = max(1, math.floor(level / (1.0 - level) - _RANK_SLACK))
    while _rank(n, level) > n:
        n += 1
    return n


def conformal_quantile(sorted_scores: np.ndarray, level: float, capped: bool = False) -> float:
    """The ``⌈(n+1)c⌉``-th smallest score; ``inf`` when that rank exceeds ``n`` (too few rows).

    With fewer than :func:`rows_needed` rows the finite-sample guarantee
    needs an unbounded interval, and that is what is returned. ``capped``
    returns the largest score instead: a width to rank candidates by, not a
    bound anything may rest on. No rows: ``inf`` (``0`` when capped).
    """
    n = sorted_scores.size
    k = _rank(n, level)
    if k > n:
        if not capped:
            return math.inf
        return float(sorted_scores[-1]) if n else 0.0
    return float(sorted_scores[k - 1])


#: One selection of a metric's calibration rows: orderings of their scores, the row picked first first,
#: whose first rows are pooled (several orderings: one selection rule at several bounds).
Selection = tuple[np.ndarray, ...]


def selected_quantile(selections: Sequence[Selection], level: float) -> float:
    """The largest ``level``-quantile over selections; ``0`` when none has enough rows.

    Of every ordering of a selection, the first ``rows_needed(level)`` rows
    are the smallest calibration set with a finite quantile at ``level`` for
    a configuration that ordering picks (of one ordering: their largest
    score); the orderings of one selection are pooled into one calibration
    set. An ordering with fewer rows than that says nothing and is skipped.
    """
    k = rows_needed(level)
    best = 0.0
    for orderings in selections:
        picked = [s[:k] for s in orderings if s.size >= k]
        if picked:
            best = max(best, conformal_quantile(np.sort(np.concatenate(picked)), level))
    return best


@dataclass
class Conformal:
    """Fitted interval half-widths; ``half_width(X, c)`` for any level.

    ``scores`` are sorted; ``calibration`` holds the same scores in the order
    of the calibration rows (``None`` for a degenerate model), so that a
    selection of rows can be read (:func:`selected_quantile`).
    """

    scores: np.ndarray
    spread: ExtraTreesRegressor | None = None
    floor: float = 0.0
    calibration: np.ndarray | None = None

    @classmethod
    def fit(
        cls, X: np.ndarray, residuals: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]], seed: int
    ) -> "Conformal":
        """Calibrate on out-of-fold ``residuals``, cross-fitting the spread on the same ``folds``."""
        absolute = np.abs(residuals)
        plain = cls(np.sort(absolute), calibration=absolute)
        if absolute.size < MIN_NORMALISED_ROWS or not np.any(absolute > 0) or len(folds) < 2:
            return plain
        floor = 0.05 * float(np.mean(absolute)) + 1e-12
        sigma_oof = np.empty_like(absolute)
        for train, test in folds:
            model = _spread_model(train.size, seed).fit(X[train], absolute[train])
            sigma_oof[test] = model.predict(X[test])
        sigma_oof = np.maximum(sigma_oof, floor)
        scores = absolute / sigma_oof
        normalised = cls(np.sort(scores), _spread_model(absolute.size, seed).fit(X, absolute), floor, scores)
        width_plain = conformal_quantile(plain.scores, REFERENCE_CONFIDENCE)
        width_normalised = conformal_quantile(normalised.scores, REFERENCE_CONFIDENCE) * float(np.mean(sigma_oof))
        return normalised if width_normalised < width_plain else plain

    @property
    def normalised(self) -> bool:
        return self.spread is not None

    @property
    def rows(self) -> int:
        """Calibration rows (out-of-fold residuals) the quantiles are read from."""
        return int(self.scores.size)

    def bounded(self, level: float) -> bool:
        """Whether the interval at ``level`` is finite (enough calibration rows)."""
        return self.rows >= rows_needed(level)

    def half_width(
        self, X: np.ndarray, level: float, capped: bool = False, selected: Sequence[Selection] = ()
    ) -> np.ndarray:
        """Half-width per row of ``X`` at ``level``; ``inf`` below the finite-sample threshold unless ``capped``.

        ``selected``: the selections of calibration rows the interval must
        also hold at (see :func:`selected_quantile`); the quantile is the
        largest of the marginal one and theirs.
        """
        if not 0.0 < level < 1.0:
            raise InputError(f"level must be in (0, 1) (got {level})")
        q = conformal_quantile(self.scores, level, capped)
        if math.isfinite(q):
            q = max(q, selected_quantile(selected, level))
        if self.spread is None or not math.isfinite(q):
            return np.full(X.shape[0], q)
        return q * np.maximum(self.spread.predict(X), self.floor)
