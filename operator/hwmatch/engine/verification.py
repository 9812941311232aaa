"""Verifying a recommendation: run the chosen configuration, compare every metric with what was predicted.

Each repetition is a real trial of the asset's command through an executor.
Two questions are answered per metric, and they differ:

- does the *requirement* hold (``Check.ok``): every measured value meets the
  constraint's bounds; a throughput target is checked as replicas ×
  measured throughput;
- did the *prediction* hold (``Check.inside``): every measured value lies in
  the predicted interval — for every predicted metric, constrained or not,
  since a requirement met by luck with a missed interval still says the
  model is wrong there.

The runs are kept in the store as verification trials of the sweep whose
platform they ran on (:meth:`hwmatch.data.store.Store.add_verification`):
they join that sweep's training data, so the next answer learns from them,
without becoming part of the sweep's plan.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwmatch.api import (
    BenchmarkTrial,
    BenchmarkTrialStatus,
    HWRecommendation,
    PredictedValue,
)
from hwmatch.api.vocabulary import SUCCEEDED, make_trial, trial_id
from hwmatch.data.store import Store
from hwmatch.engine.sweeps import NoProgress, Progress, SweepError
from hwmatch.execution import Executor


@dataclass
class Check:
    """One metric of a recommendation, predicted against measured (how it reads is the CLI's business).

    ``min``/``max`` are the requirement's bounds, both ``None`` for a metric
    that was predicted but not constrained.
    """

    metric: str
    min: float | None
    max: float | None
    predicted: PredictedValue | None
    measured: list[float]

    @property
    def required(self) -> bool:
        """Whether a requirement constrains this metric."""
        return self.min is not None or self.max is not None

    @property
    def ok(self) -> bool:
        """Every measured value meets the bounds (true for an unconstrained metric)."""
        return all((self.min is None or m >= self.min) and (self.max is None or m <= self.max) for m in self.measured)

    @property
    def inside(self) -> bool | None:
        """Every measured value lies in the predicted interval; ``None`` without one (unbounded, or not predicted)."""
        p = self.predicted
        if p is None or p.lower is None or p.upper is None:
            return None
        return all(p.lower <= m <= p.upper for m in self.measured)


def verify(
    store: Store, recommendation: HWRecommendation, executor: Executor, repetitions: int = 1,
    progress: Progress | None = None, keep: bool = True,
) -> tuple[list[Check], list[BenchmarkTrialStatus]]:
    """Run the recommended configuration on its platform; check every requirement and every predicted interval.

    The checks list the constraints first (a throughput target as replicas ×
    measured throughput, against replicas × the per-replica prediction), then
    every other metric that was both predicted and measured. With ``keep``
    (the default) each run is stored as a verification trial that joins the
    training data.
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
    earlier = len(store.verifications(asset=asset.metadata.name))
    results: list[BenchmarkTrialStatus] = []
    for rep in range(repetitions):
        # named like a sweep trial of a "<sweep>-verify" series: unique per run, never a planned trial's name
        trial = make_trial(asset.metadata.name, sweep.metadata.name, best.platform, best.parameters,
                           recommendation.spec.instance, earlier + rep)
        trial.metadata.name = trial_id(f"{sweep.metadata.name}-verify", best.platform, best.parameters,
                                       recommendation.spec.instance, earlier + rep)
        progress.trial_started(trial)
        outcome = executor.run(trial, asset, sweep)
        progress.trial_finished(trial, outcome)
        results.append(outcome)
        if keep:
            store.add_verification(BenchmarkTrial(metadata=trial.metadata, spec=trial.spec, status=outcome))
    if any(r.phase != SUCCEEDED for r in results):
        failed = next(r for r in results if r.phase != SUCCEEDED)
        raise SweepError(f"the verification run failed: {failed.reason}: {failed.message}")
    measured = results[0].metrics
    checks: list[Check] = []
    constrained = set()
    for c in recommendation.spec.constraints:
        if c.metric not in measured:
            continue  # a derived metric (cost): nothing to measure
        constrained.add(c.metric)
        checks.append(Check(c.metric, c.min, c.max, best.predicted.get(c.metric), [r.metrics[c.metric] for r in results]))
    target = recommendation.spec.throughput
    if target is not None and THROUGHPUT_METRIC in measured:
        served = [best.replicas * r.metrics[THROUGHPUT_METRIC] for r in results]
        checks.append(Check(f"{best.replicas} × {THROUGHPUT_METRIC}", target.requests_per_second, None,
                            _scaled(best.predicted.get(THROUGHPUT_METRIC), best.replicas), served))
    for metric, predicted in best.predicted.items():
        if metric in constrained or metric not in measured:
            continue
        checks.append(Check(metric, None, None, predicted, [r.metrics[metric] for r in results]))
    return checks, results


def _scaled(predicted: PredictedValue | None, factor: int) -> PredictedValue | None:
    """A per-replica prediction times the replicas (value and both bounds)."""
    if predicted is None:
        return None
    return PredictedValue(
        value=predicted.value * factor,
        lower=None if predicted.lower is None else predicted.lower * factor,
        upper=None if predicted.upper is None else predicted.upper * factor,
        level=predicted.level,
    )
