"""The executor interface: where a trial runs, behind one blocking call.

The engine schedules trials (parallelism, retries, the store) and calls
``executor.run`` from worker threads; an executor only runs one attempt of
one trial and describes its outcome as a BenchmarkTrialStatus — Succeeded
with metrics, or Failed with a reason, message and log tail. It never raises
for a trial's own failure.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from hwmatch.api import AIAsset, BenchmarkSweep, BenchmarkTrial, BenchmarkTrialStatus


@runtime_checkable
class Executor(Protocol):
    def check(self, asset: AIAsset, sweep: BenchmarkSweep) -> None:
        """Raise InputError, naming the platform and the fix, when this executor cannot run the sweep.

        Called at the start of every run; it also ends the effect of an earlier :meth:`cancel`.
        """
        ...

    def run(self, trial: BenchmarkTrial, asset: AIAsset, sweep: BenchmarkSweep) -> BenchmarkTrialStatus:
        """Run one attempt of ``trial``; thread-safe; blocks until it ends."""
        ...

    def cancel(self) -> None:
        """Stop every running trial now and start no more until the next :meth:`check` (a run was interrupted)."""
        ...
