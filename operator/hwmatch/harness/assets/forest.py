"""``sklearn-forest``: a tree ensemble classifying handwritten digits; inference is what is timed."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

from hwmatch.api import MetricSpec, Parameter, Range
from hwmatch.api.asset import Scalar
from hwmatch.harness.assets.base import Asset
from hwmatch.harness.assets.digits import SEED, load_split

BATCH_SIZES: list[Scalar] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]


class ForestAsset(Asset):
    """Random forest or extra trees on scikit-learn's digits; ``predict`` on a batch of test images."""

    name = "sklearn-forest"
    description = "scikit-learn tree ensemble on the digits data set: batch inference latency and test accuracy"
    parameters = (
        Parameter(name="model", type="categorical", values=["random_forest", "extra_trees"],
                  description="The ensemble: RandomForestClassifier or ExtraTreesClassifier."),
        Parameter(name="n_estimators", type="int", range=Range(min=5, max=300, log=True), description="Trees."),
        Parameter(name="max_depth", type="int", range=Range(min=2, max=32, log=True), description="Depth limit of each tree."),
        Parameter(name="batch_size", type="int", values=BATCH_SIZES, description="Images per predict call."),
        Parameter(name="n_jobs", type="int", range=Range(min=1, max=8),
                  description="Threads used to train and to predict (joblib threads)."),
    )
    metrics = (
        MetricSpec(name="accuracy", goal="maximize"),
        MetricSpec(name="train_time_s", goal="minimize", unit="s"),
    )
    defaults: ClassVar[Mapping[str, Scalar]] = {
        "model": "random_forest", "n_estimators": 50, "max_depth": 12, "batch_size": 64, "n_jobs": 1,
    }

    def setup(self, params: Mapping[str, Scalar]) -> None:
        from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
        from threadpoolctl import threadpool_limits

        self._params = dict(params)
        split = load_split()
        cls = RandomForestClassifier if params["model"] == "random_forest" else ExtraTreesClassifier
        self._model: Any = cls(
            n_estimators=int(params["n_estimators"]), max_depth=int(params["max_depth"]),
            n_jobs=int(params["n_jobs"]), random_state=SEED,
        )
        # Cap native (BLAS/OpenMP) pools too, for the rest of this one-trial process: n_jobs threads, no more.
        threadpool_limits(limits=int(params["n_jobs"]))
        start = time.perf_counter()
        self._model.fit(split.x_train, split.y_train)
        self._train_time_s = time.perf_counter() - start
        self._split = split
        self._batch = split.batch(int(params["batch_size"]))

    @property
    def batch_size(self) -> int:
        return int(self._params["batch_size"])

    def run_batch(self) -> None:
        self._model.predict(self._batch)

    def quality(self) -> dict[str, float]:
        accuracy = float(self._model.score(self._split.x_test, self._split.y_test))
        return {"accuracy": accuracy, "train_time_s": self._train_time_s}
