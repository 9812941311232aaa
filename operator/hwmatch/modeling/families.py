"""The model families a surrogate chooses from by cross-validation.

Three families that fail differently, all cheap enough to be cross-validated
on 10^4 rows in seconds on one core:

- ``hist_gradient_boosting``: boosted trees on binned features, strong on
  interactions and thresholds (a batch size that stops fitting in cache);
  early stopping on large sets keeps it fast;
- ``extra_trees``: randomised trees averaged, robust on small and noisy
  sets where boosting overfits (each tree sees at most 2000 rows);
- ``ridge_poly``: ridge on standardised degree-2 polynomial features, the
  smooth baseline that extrapolates a trend (latency ~ n_estimators) where
  trees go flat.

Each factory takes the number of training rows (to size leaves and
stopping) and the seed, and returns an unfitted scikit-learn regressor.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.ensemble import ExtraTreesRegressor, HistGradientBoostingRegressor
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

from hwmatch.api.errors import InputError

Factory = Callable[[int, int], RegressorMixin]

#: Above this many rows, boosting holds out 10% to stop early (up to 200 rounds); below, 60 rounds
#: at a larger step (a round costs a few ms whatever the size, which dominates on small sets).
EARLY_STOPPING_ROWS = 1000
#: Each randomised tree sees at most this many rows (bootstrap), bounding its cost on large sets.
TREE_ROWS = 2000
#: Polynomial expansion only below this many input columns (the expansion grows quadratically).
MAX_POLY_INPUTS = 40


def hist_gradient_boosting(n_rows: int, seed: int) -> RegressorMixin:
    return HistGradientBoostingRegressor(
        max_iter=200 if n_rows >= EARLY_STOPPING_ROWS else 60,
        learning_rate=0.1 if n_rows >= EARLY_STOPPING_ROWS else 0.15,
        max_leaf_nodes=15,
        min_samples_leaf=int(np.clip(n_rows // 20, 2, 20)),
        l2_regularization=1e-3,
        early_stopping=n_rows >= EARLY_STOPPING_ROWS,
        validation_fraction=0.1,
        n_iter_no_change=15,
        random_state=seed,
    )


def extra_trees(n_rows: int, seed: int) -> RegressorMixin:
    large = n_rows > TREE_ROWS
    return ExtraTreesRegressor(
        n_estimators=30,
        min_samples_leaf=1 if n_rows < 200 else 2,
        max_features=1.0,
        bootstrap=large,
        max_samples=TREE_ROWS if large else None,
        n_jobs=1,
        random_state=seed,
    )


class _RidgePoly(RegressorMixin):
    """Ridge on standardised polynomial features; degree 1 when there are too many inputs to expand."""

    def __init__(self) -> None:
        self.pipeline_: Pipeline | None = None

    def fit(self, X: np.ndarray, y: np.ndarray) -> "_RidgePoly":
        degree = 2 if X.shape[1] <= MAX_POLY_INPUTS else 1
        self.pipeline_ = pipeline = make_pipeline(
            StandardScaler(),
            PolynomialFeatures(degree=degree, include_bias=False),
            StandardScaler(),
            RidgeCV(alphas=np.logspace(-3, 3, 13)),
        )
        pipeline.fit(X, y)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        assert self.pipeline_ is not None, "fit first"
        return self.pipeline_.predict(X)


def ridge_poly(n_rows: int, seed: int) -> RegressorMixin:
    del n_rows, seed  # deterministic, size-independent
    return _RidgePoly()


#: Name -> factory, in the order ties are broken.
FAMILIES: dict[str, Factory] = {
    "hist_gradient_boosting": hist_gradient_boosting,
    "extra_trees": extra_trees,
    "ridge_poly": ridge_poly,
}
DEFAULT_FAMILIES: tuple[str, ...] = tuple(FAMILIES)


def check_families(names: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [n for n in names if n not in FAMILIES]
    if unknown or not names:
        raise InputError(f"unknown model families {unknown or names}; choose from {list(FAMILIES)}")
    return names
