"""The dataset of an asset whose trials are ``BenchmarkTrial`` objects in a cluster.

In a cluster the trials live in etcd (durable, listable with kubectl), not in
a SQLite file. :class:`TrialObjects` loads an asset, its sweeps and its trial
objects into an in-memory :class:`~hwmatch.data.store.Store`, so the frame is
exactly what the local store gives for the same trials: one definition of the
dataset convention, not two.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import pandas as pd

from hwmatch.api import AIAsset, BenchmarkSweep, BenchmarkTrial
from hwmatch.data.store import FINISHED, Store


class TrialObjects:
    """An asset's trials, from the objects of a cluster: the frame as the store makes it."""

    def __init__(self, asset: AIAsset, sweeps: Iterable[BenchmarkSweep], trials: Iterable[BenchmarkTrial]):
        self.asset = asset
        self._store = Store(":memory:")
        self._store.put_asset(asset)
        for sweep in sweeps:
            self._store.put_sweep(sweep)
        self._store.add_trials(t for t in trials if t.spec.asset_ref.name == asset.metadata.name)

    def frame(self, sweeps: Sequence[str] | None = None) -> pd.DataFrame:
        """Finished trials of the asset (of ``sweeps``, when given) as the dataset frame."""
        return self._store.frame(asset=self.asset.metadata.name, sweeps=sweeps or None)

    def finished(self) -> int:
        """How many trials of the asset have ended, either way (the AIAsset's status.trials)."""
        return len(self._store.trials(asset=self.asset.metadata.name, status=FINISHED))

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> "TrialObjects":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
