"""The dataset of an asset whose trials are ``BenchmarkTrial`` objects in a cluster.

In a cluster the trials live in etcd (durable, listable with kubectl), not in
a SQLite file. :class:`TrialObjects` holds an asset, its sweeps and its trial
objects and makes the frame with :func:`~hwmatch.data.frame.build_frame`,
the same function the local store uses: one definition of the dataset, not two.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Sequence

from hwmatch.api import AIAsset, BenchmarkSweep, BenchmarkTrial
from hwmatch.api.vocabulary import FINISHED, phase_of

if TYPE_CHECKING:  # pandas loads when a frame is made: an operator whose sweeps never ask for one never loads it
    import pandas as pd


class TrialObjects:
    """An asset's trials, from the objects of a cluster: the frame as the store makes it."""

    def __init__(self, asset: AIAsset, sweeps: Iterable[BenchmarkSweep], trials: Iterable[BenchmarkTrial]):
        self.asset = asset
        self.sweeps = list(sweeps)
        self.trials = [t for t in trials if t.spec.asset_ref.name == asset.metadata.name]

    def frame(self, sweeps: Sequence[str] | None = None) -> pd.DataFrame:
        """Finished trials of the asset (of ``sweeps``, when given) as the dataset frame."""
        from hwmatch.data.frame import build_frame

        wanted = set(sweeps or ())
        rows = [t for t in self.trials if phase_of(t) in FINISHED and (not wanted or t.spec.sweep_ref.name in wanted)]
        return build_frame([self.asset], self.sweeps, rows)

    def finished(self) -> int:
        """How many trials of the asset have ended, either way (the AIAsset's status.trials)."""
        return sum(1 for t in self.trials if phase_of(t) in FINISHED)
