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

The normalised variant is used when there are enough rows to learn a spread
and it gives narrower intervals on average than the plain one at 0.9. The
residuals live in the surrogate's target space, so on a log-transformed
target the interval is relative (``value × e^{±q}``), as noise on latencies
usually is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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


def conformal_quantile(sorted_scores: np.ndarray, level: float) -> float:
    """The ``⌈(n+1)c⌉``-th smallest score, capped at the largest one when there are too few rows.

    With ``n < c/(1-c)`` rows (9 at 0.9) the finite-sample guarantee would
    need an infinite interval; the largest observed score is used instead,
    and the interval is as wide as the worst error seen.
    """
    n = sorted_scores.size
    if n == 0:
        return 0.0
    k = min(n, max(1, math.ceil((n + 1) * level)))
    return float(sorted_scores[k - 1])


@dataclass
class Conformal:
    """Fitted interval half-widths; ``half_width(X, c)`` for any level."""

    scores: np.ndarray
    spread: ExtraTreesRegressor | None = None
    floor: float = 0.0

    @classmethod
    def fit(
        cls, X: np.ndarray, residuals: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]], seed: int
    ) -> "Conformal":
        """Calibrate on out-of-fold ``residuals``, cross-fitting the spread on the same ``folds``."""
        absolute = np.abs(residuals)
        plain = cls(np.sort(absolute))
        if absolute.size < MIN_NORMALISED_ROWS or not np.any(absolute > 0) or len(folds) < 2:
            return plain
        floor = 0.05 * float(np.mean(absolute)) + 1e-12
        sigma_oof = np.empty_like(absolute)
        for train, test in folds:
            model = _spread_model(train.size, seed).fit(X[train], absolute[train])
            sigma_oof[test] = model.predict(X[test])
        sigma_oof = np.maximum(sigma_oof, floor)
        normalised = cls(np.sort(absolute / sigma_oof), _spread_model(absolute.size, seed).fit(X, absolute), floor)
        width_plain = conformal_quantile(plain.scores, REFERENCE_CONFIDENCE)
        width_normalised = conformal_quantile(normalised.scores, REFERENCE_CONFIDENCE) * float(np.mean(sigma_oof))
        return normalised if width_normalised < width_plain else plain

    @property
    def normalised(self) -> bool:
        return self.spread is not None

    def half_width(self, X: np.ndarray, level: float) -> np.ndarray:
        if not 0.0 < level < 1.0:
            raise InputError(f"level must be in (0, 1) (got {level})")
        q = conformal_quantile(self.scores, level)
        if self.spread is None:
            return np.full(X.shape[0], q)
        return q * np.maximum(self.spread.predict(X), self.floor)
