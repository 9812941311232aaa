"""The digits data set (shipped inside scikit-learn, no download) split the same way for every asset."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SEED = 0
TEST_FRACTION = 0.3


@dataclass(frozen=True)
class Split:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def batch(self, size: int) -> np.ndarray:
        """``size`` test rows, cycling through the test set when ``size`` exceeds it (deterministic)."""
        return np.ascontiguousarray(np.resize(self.x_test, (size, self.x_test.shape[1])))


def load_split() -> Split:
    """Pixels scaled to [0, 1], a stratified split with a fixed seed."""
    from sklearn.datasets import load_digits  # heavy import, only when an asset is set up
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        (x / 16.0).astype(np.float32), y, test_size=TEST_FRACTION, random_state=SEED, stratify=y
    )
    return Split(x_train, y_train, x_test, y_test)
