"""The sampled region: how far a candidate lies from the measured configurations, against what calibration saw.

Conformal intervals are calibrated on out-of-fold residuals: each row was
predicted by a model trained on the *other* folds, at some distance from
that model's data. The calibration therefore speaks for candidates no
farther from the data than calibration rows were from theirs, and for no
others — the optimiser, which looks for the best-looking corner of the
space, likes exactly those others (the 4-trial demo chose
``n_estimators=5, max_depth=2``, far from every trial).

The rule (documented in ``docs/modeling-and-optimization.md``):

- inputs are the encoded features (one-hot categoricals, numeric platform
  features, parameters, instance features), each scaled by its range over
  the training rows, so every column spans ``[0, 1]`` on the data and an
  unseen categorical level is a whole unit away on its column;
- ``D`` = the largest distance from a calibration row to the nearest
  configuration of its training folds (the same grouped folds as fitting);
- a candidate at distance ``d`` from the nearest measured configuration has
  ``novelty = d / D``; above 1 it is outside the sampled region, and every
  interval half-width is multiplied by ``novelty`` (errors of smooth models
  grow at least linearly with distance beyond what calibration covered).

Fewer than three distinct configurations give no reference (novelty 1):
those models are means, and their intervals are already as wide as the
spread seen or unbounded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree
from sklearn.model_selection import GroupKFold

#: Below this many distinct configurations there is no reference distance.
MIN_CONFIGURATIONS = 3


def distinct(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of ``X`` in lexicographic order, and each row's index among them.

    What ``np.unique(X, axis=0, return_inverse=True)`` returns, by one
    ``lexsort`` of the columns instead of a sort of row records (ten times
    faster at 10^4 rows; fitting asks for it once per metric and fold).
    """
    if X.shape[0] == 0:
        return X[:0], np.zeros(0, dtype=np.intp)
    if X.shape[1] == 0:  # no feature varies (one configuration measured so far): every row is the same one
        return X[:1], np.zeros(X.shape[0], dtype=np.intp)
    order = np.lexsort(X.T[::-1])
    ordered = X[order]
    first = np.ones(X.shape[0], dtype=bool)
    first[1:] = np.any(ordered[1:] != ordered[:-1], axis=1)
    inverse = np.empty(X.shape[0], dtype=np.intp)
    inverse[order] = np.cumsum(first) - 1
    return ordered[first], inverse


@dataclass
class Region:
    """Fitted reference of the sampled region; ``novelty(X)`` per candidate row."""

    low: np.ndarray
    span: np.ndarray
    tree: cKDTree | None = None
    reference: float = 0.0

    @classmethod
    def fit(cls, X: np.ndarray, folds: int = 5, seed: int = 0) -> "Region":
        """The region of the training rows ``X`` (encoded), with its reference distance from grouped folds."""
        low = X.min(axis=0) if X.size else np.zeros(X.shape[1])
        span = np.ptp(X, axis=0) if X.size else np.ones(X.shape[1])
        span = np.where(span > 0, span, 1.0)
        region = cls(low, span)
        Z = region._scale(X)
        configurations, groups = distinct(Z)
        if configurations.shape[0] < MIN_CONFIGURATIONS or Z.shape[1] == 0:
            return region
        k = min(folds, configurations.shape[0])
        farthest = 0.0
        for train, test in GroupKFold(n_splits=k, shuffle=True, random_state=seed).split(Z, groups=groups):
            distance, _ = cKDTree(distinct(Z[train])[0]).query(Z[test], k=1)
            farthest = max(farthest, float(np.max(distance)))
        if farthest > 0:
            region.tree, region.reference = cKDTree(configurations), farthest
        return region

    def _scale(self, X: np.ndarray) -> np.ndarray:
        return (X - self.low) / self.span

    def novelty(self, X: np.ndarray) -> np.ndarray:
        """Distance to the nearest measured configuration over the reference; 1 without a reference."""
        if self.tree is None:
            return np.ones(X.shape[0])
        distance, _ = self.tree.query(self._scale(X), k=1)
        return np.asarray(distance, dtype=float) / self.reference


def widening(novelty: np.ndarray) -> np.ndarray:
    """Factor on interval half-widths at candidates of this :meth:`Region.novelty`: ``max(1, novelty)``."""
    return np.maximum(novelty, 1.0)
