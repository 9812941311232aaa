"""Verifying a recommendation: run the chosen configuration, compare each requirement with what is measured.

Each repetition is a real trial of the asset's command through an executor;
verification runs are not stored as training data.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwmatch.api import (
    BenchmarkTrial,
    BenchmarkTrialSpec,
    BenchmarkTrialStatus,
    HWRecommendation,
    ObjectMeta,
    ObjectRef,
    PredictedValue,
)
from hwmatch.api.vocabulary import SUCCEEDED
from hwmatch.data.store import Store
from hwmatch.engine.sweeps import NoProgress, Progress, SweepError
from hwmatch.execution import Executor


@dataclass
class Check:
    """One requirement of a recommendation, predicted against measured (how it reads is the CLI's business)."""

    metric: str
    min: float | None
    max: float | None
    predicted: PredictedValue | None
    measured: list[float]

    @property
    def ok(self) -> bool:
        """Every measured value meets the bounds."""
        return all((self.min is None or m >= self.min) and (self.max is None or m <= self.max) for m in self.measured)


def verify(
    store: Store, recommendation: HWRecommendation, executor: Executor, repetitions: int = 1,
    progress: Progress | None = None,
) -> tuple[list[Check], list[BenchmarkTrialStatus]]:
    """Run the recommended configuration on its platform and check every constraint on what was measured.

    Each repetition is a real trial of the asset's command (not stored as
    training data). A measured metric passes when every repetition meets the
    bound; throughput targets are checked as replicas × measured throughput.
    """
    from hwmatch.optimize import THROUGHPUT_METRIC

    status = recommendation.status
    if status is None or status.recommendation is None:
        raise SweepError(f"{recommendation.metadata.name}: nothing to verify (phase {status.phase if status else 'unsolved'})")
    best = status.recommendation
    asset = store.asset(recommendation.spec.asset_ref.name)
    sweep = next((s for s in store.sweeps(asset=recommendation.spec.asset_ref.name)
                  if best.platform in {p.name for p in s.spec.platforms}), None)
    if asset is None or sweep is None:
        raise SweepError(f"{recommendation.metadata.name}: asset or platform {best.platform!r} is no longer in the store")
    executor.check(asset, sweep)
    progress = progress or NoProgress()
    results: list[BenchmarkTrialStatus] = []
    for rep in range(repetitions):
        trial = BenchmarkTrial(
            metadata=ObjectMeta(name=f"verify-{recommendation.metadata.name}-{rep}"),
            spec=BenchmarkTrialSpec(sweep_ref=ObjectRef(name=sweep.metadata.name), asset_ref=ObjectRef(name=asset.metadata.name),
                                    platform=best.platform, parameters=best.parameters,
                                    instance=recommendation.spec.instance, repetition=rep),
        )
        progress.trial_started(trial)
        outcome = executor.run(trial, asset, sweep)
        progress.trial_finished(trial, outcome)
        results.append(outcome)
    if any(r.phase != SUCCEEDED for r in results):
        failed = next(r for r in results if r.phase != SUCCEEDED)
        raise SweepError(f"the verification run failed: {failed.reason}: {failed.message}")
    checks: list[Check] = []
    for c in recommendation.spec.constraints:
        if c.metric not in results[0].metrics:
            continue  # a derived metric (cost): nothing to measure
        checks.append(Check(c.metric, c.min, c.max, best.predicted.get(c.metric), [r.metrics[c.metric] for r in results]))
    target = recommendation.spec.throughput
    if target is not None and THROUGHPUT_METRIC in results[0].metrics:
        served = [best.replicas * r.metrics[THROUGHPUT_METRIC] for r in results]
        checks.append(Check(f"{best.replicas} × {THROUGHPUT_METRIC}", target.requests_per_second, None, None, served))
    return checks, results
