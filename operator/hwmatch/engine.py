"""The benchmarking flow, independent of where trials run: plan, skip what is done, run, record.

:func:`run_sweep` plans a sweep's trials, records them in the store,
runs the ones still to do through an :class:`~hwmatch.execution.Executor`
(bounded overall by ``spec.parallelism`` and per platform by
``spec.parallelismPerPlatform``), retries failures up to ``spec.backoffLimit``
and commits every attempt's outcome as it ends. Running it again resumes:

- a Succeeded trial never runs again;
- a Failed trial runs again only while it has retries left (a run killed
  between retries), or when ``retry_failed`` is asked; an OOMKilled trial is
  a finding (the configuration does not fit), not retried unless asked;
- a Running trial whose process is gone (a killed run) runs again; one held
  by a live process is left to it.

:func:`run_file` does this for every sweep of manifest files.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Protocol, Sequence

import pandas as pd

from hwmatch.api import (
    AIAsset,
    BenchmarkSweep,
    BenchmarkTrial,
    BenchmarkTrialSpec,
    BenchmarkTrialStatus,
    HWRecommendation,
    HWRecommendationStatus,
    ObjectMeta,
    ObjectRef,
    PredictedValue,
    load_documents,
    set_condition,
)
from hwmatch.data.frame import METRIC
from hwmatch.data.store import FAILED, RUNNING, SUCCEEDED, Store, TrialState, runner_alive, runner_id
from hwmatch.execution import Executor, result
from hwmatch.planning import Planner


class Progress(Protocol):
    """What a run reports as it goes (a progress bar, a controller's status updates)."""

    def start(self, sweep: BenchmarkSweep, total: int, done: int) -> None:
        """A sweep (or a further round of it) starts: ``total`` trials planned, ``done`` already finished."""

    def trial_started(self, trial: BenchmarkTrial) -> None: ...

    def trial_finished(self, trial: BenchmarkTrial, status: BenchmarkTrialStatus) -> None:
        """A trial's final attempt ended (retries are not reported as finished)."""


class NoProgress:
    def start(self, sweep: BenchmarkSweep, total: int, done: int) -> None:
        pass

    def trial_started(self, trial: BenchmarkTrial) -> None:
        pass

    def trial_finished(self, trial: BenchmarkTrial, status: BenchmarkTrialStatus) -> None:
        pass


@dataclass
class SweepRun:
    """What one :func:`run_sweep` call did, and where the sweep stands after it."""

    sweep: str
    asset: str
    planned: int = 0
    skipped: int = 0  # finished before this run (or held by another live run)
    attempts: int = 0  # attempts started in this run, retries included
    succeeded: int = 0  # trials that finished in this run, by outcome
    failed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # store counts after: platform -> status -> n
    elapsed_s: float = 0.0

    @property
    def complete(self) -> bool:
        """Every planned trial of the sweep has finished (Succeeded or Failed)."""
        return all(set(by_status) <= {SUCCEEDED, FAILED} for by_status in self.counts.values())


@dataclass
class FileRun:
    """The manifests of :func:`run_file` and the sweeps it ran (recommendations are left to the caller)."""

    assets: list[AIAsset]
    sweeps: list[BenchmarkSweep]
    recommendations: list[HWRecommendation]
    runs: list[SweepRun]


def run_sweep(
    store: Store,
    asset: AIAsset,
    sweep: BenchmarkSweep,
    executor: Executor,
    progress: Progress | None = None,
    retry_failed: bool = False,
) -> SweepRun:
    """Run what is left of ``sweep`` and record it in ``store`` (see the module docstring for resume rules)."""
    progress = progress or NoProgress()
    executor.check(asset, sweep)
    store.put_asset(asset)
    store.put_sweep(sweep)
    planner = Planner(asset, sweep)
    report = SweepRun(sweep=sweep.metadata.name, asset=asset.metadata.name)
    started = time.monotonic()
    batch = planner.plan()
    total = planner.max_trials()
    while batch:
        _Batch(store, asset, sweep, executor, progress, retry_failed, report).run(batch, total)
        batch = planner.next_round(store.frame(asset.metadata.name, [sweep.metadata.name]))
    report.counts = store.counts(sweep.metadata.name)
    report.elapsed_s = time.monotonic() - started
    return report


class _Batch:
    """One round of trials: the scheduling loop of :func:`run_sweep`."""

    def __init__(self, store: Store, asset: AIAsset, sweep: BenchmarkSweep, executor: Executor,
                 progress: Progress, retry_failed: bool, report: SweepRun):
        self.store, self.asset, self.sweep, self.executor = store, asset, sweep, executor
        self.progress, self.retry_failed, self.report = progress, retry_failed, report
        self.runner = runner_id()

    def run(self, trials: Sequence[BenchmarkTrial], total: int) -> None:
        name = self.sweep.metadata.name
        self.store.plan(trials)
        states = self.store.states(name)
        attempts = {t.metadata.name: states[t.metadata.name].attempts for t in trials}
        todo = deque(t for t in trials if self._left(states[t.metadata.name]) > 0)
        left = {t.metadata.name: self._left(states[t.metadata.name]) for t in todo}
        self.report.planned += len(trials)
        self.report.skipped += len(trials) - len(todo)
        finished = sum(1 for s in states.values() if s.status in (SUCCEEDED, FAILED)) - sum(
            1 for t in todo if states[t.metadata.name].status == FAILED)
        self.progress.start(self.sweep, max(total, len(states)), finished)

        spec = self.sweep.spec
        running: dict[Future[BenchmarkTrialStatus], BenchmarkTrial] = {}
        per_platform: Counter[str] = Counter()
        pool = ThreadPoolExecutor(max_workers=spec.parallelism, thread_name_prefix="hwmatch-trial")
        try:
            while todo or running:
                for trial in self._startable(todo, per_platform, len(running)):
                    if not self.store.claim(trial.metadata.name, self.runner):
                        self.report.skipped += 1  # finished or taken by a live run meanwhile
                        continue
                    self.progress.trial_started(trial)
                    self.report.attempts += 1
                    running[pool.submit(self._attempt, trial)] = trial
                    per_platform[trial.spec.platform] += 1
                if not running:
                    continue
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    trial = running[future]
                    status = future.result()  # an interruption raised in a worker surfaces here
                    del running[future]
                    per_platform[trial.spec.platform] -= 1
                    tid = trial.metadata.name
                    attempts[tid] += 1
                    left[tid] -= 1
                    status.attempts = attempts[tid]
                    self.store.finish(tid, status)
                    if status.phase == FAILED and left[tid] > 0 and status.reason != result.OOM_KILLED:
                        todo.appendleft(trial)
                        continue
                    self._tally(status)
                    self.progress.trial_finished(trial, status)
        except BaseException:
            self.executor.cancel()
            wait(running)
            for future, trial in running.items():
                status = None if future.exception() else future.result()
                if status is None or status.reason == result.CANCELLED:
                    self.store.release(trial.metadata.name, self.runner)
                else:  # it ended on its own just before the interruption: keep it
                    status.attempts = attempts[trial.metadata.name] + 1
                    self.store.finish(trial.metadata.name, status)
            raise
        finally:
            pool.shutdown(wait=True)

    def _left(self, state: TrialState) -> int:
        """Attempts this trial may still make in this run (0: skip it)."""
        if state.status == SUCCEEDED:
            return 0
        if state.status == RUNNING and state.runner != self.runner and runner_alive(state.runner):
            return 0
        if self.retry_failed:
            return self.sweep.spec.backoff_limit + 1
        if state.status == FAILED and state.reason == result.OOM_KILLED:
            return 0
        return self.sweep.spec.backoff_limit + 1 - state.attempts

    def _startable(self, todo: deque[BenchmarkTrial], per_platform: Counter[str], running: int) -> list[BenchmarkTrial]:
        """Take from ``todo``, in order, the trials that fit the overall and per-platform parallelism."""
        spec = self.sweep.spec
        chosen: list[BenchmarkTrial] = []
        passed: list[BenchmarkTrial] = []
        load = Counter(per_platform)
        full = {p for p, n in load.items() if n >= spec.parallelism_per_platform}
        while todo and running + len(chosen) < spec.parallelism and len(full) < len(spec.platforms):
            trial = todo.popleft()
            if trial.spec.platform in full:
                passed.append(trial)
                continue
            chosen.append(trial)
            load[trial.spec.platform] += 1
            if load[trial.spec.platform] >= spec.parallelism_per_platform:
                full.add(trial.spec.platform)
        todo.extendleft(reversed(passed))
        return chosen

    def _attempt(self, trial: BenchmarkTrial) -> BenchmarkTrialStatus:
        try:
            return self.executor.run(trial, self.asset, self.sweep)
        except Exception as exc:  # a bug or an environment problem: recorded, not lost, not fatal
            now = result.now()
            return result.failed(result.EXECUTOR_ERROR, f"{type(exc).__name__}: {exc}", now, now, {}, None)

    def _tally(self, status: BenchmarkTrialStatus) -> None:
        if status.phase == SUCCEEDED:
            self.report.succeeded += 1
        else:
            self.report.failed += 1
            self.report.reasons[status.reason or "Unknown"] += 1


def run_file(
    paths: Iterable[str | Path],
    store: Store,
    executor: Executor,
    sweeps: Sequence[str] | None = None,
    progress: Progress | None = None,
    retry_failed: bool = False,
) -> FileRun:
    """Run the BenchmarkSweeps of manifest files (all, or those named in ``sweeps``), in file order.

    Every AIAsset in the files is stored first; a sweep's asset comes from the
    files or, failing that, from the store. All sweeps are checked (asset found,
    platforms runnable by ``executor``) before any runs. Raises
    :class:`~hwmatch.api.ManifestError` for invalid manifests and ValueError
    for the rest, with a message that names the fix.
    """
    documents = load_documents(paths)
    assets = [d.resource for d in documents if isinstance(d.resource, AIAsset)]
    found = [d.resource for d in documents if isinstance(d.resource, BenchmarkSweep)]
    recommendations = [d.resource for d in documents if isinstance(d.resource, HWRecommendation)]
    if sweeps:
        unknown = sorted(set(sweeps) - {s.metadata.name for s in found})
        if unknown:
            raise ValueError(f"no BenchmarkSweep named {', '.join(unknown)} in the files; "
                             f"they define: {', '.join(s.metadata.name for s in found) or 'none'}")
        found = [s for s in found if s.metadata.name in sweeps]
    for asset in assets:
        store.put_asset(asset)
    plan: list[tuple[AIAsset, BenchmarkSweep]] = []
    for sweep in found:
        asset = store.asset(sweep.spec.asset_ref.name)
        if asset is None:
            raise ValueError(
                f"sweep {sweep.metadata.name!r} refers to AIAsset {sweep.spec.asset_ref.name!r}, which is neither "
                f"in the files nor in the store {store.path}; add the AIAsset manifest to the files"
            )
        executor.check(asset, sweep)
        plan.append((asset, sweep))
    runs = [run_sweep(store, asset, sweep, executor, progress, retry_failed) for asset, sweep in plan]
    return FileRun(assets, [s for _, s in plan], recommendations, runs)


def solve_recommendation(store: Store, recommendation: HWRecommendation, seed: int = 0) -> HWRecommendation:
    """Answer ``recommendation`` from the stored trials of its asset; the answer is stored and returned.

    The store's side of :func:`answer_recommendation`: it finds the asset,
    its sweeps and the dataset frame in ``store``.
    """
    from hwmatch.optimize import RecommendationError  # scikit-learn and OR-Tools: load on use

    asset = store.asset(recommendation.spec.asset_ref.name)
    if asset is None:
        known = ", ".join(a.metadata.name for a in store.assets()) or "none"
        solved = recommendation.model_copy(update={"status": cannot_recommend(recommendation, RecommendationError(
            f"spec.assetRef: no AIAsset {recommendation.spec.asset_ref.name!r} in the store (known: {known})"))})
    else:
        name = asset.metadata.name
        solved = answer_recommendation(recommendation, asset, store.sweeps(asset=name),
                                       lambda sweeps: store.frame(asset=name, sweeps=sweeps or None), seed=seed)
    store.put_recommendation(solved)
    return solved


def answer_recommendation(
    recommendation: HWRecommendation, asset: AIAsset, sweeps: Sequence[BenchmarkSweep],
    frame: Callable[[list[str]], pd.DataFrame], seed: int = 0, where: str = "in the store",
) -> HWRecommendation:
    """``recommendation`` with its status, learnt from the asset's trials wherever they are kept.

    ``sweeps`` are the asset's sweeps; ``spec.sweepRefs`` (or all of them)
    give the platforms (features, prices, power) that candidates are built
    from, and ``frame(names)`` the dataset of those sweeps' trials (the
    convention of :mod:`hwmatch.data.frame`), a SQLite store's or a
    cluster's. A request that cannot be answered at all (no data, an unknown
    metric) gets phase Failed with the reason in its Ready condition rather
    than an exception, as a controller writes it; ``where`` says where the
    sweeps were looked for, in that message.
    """
    from hwmatch.optimize import RecommendationError, recommend  # scikit-learn and OR-Tools: load on use

    spec = recommendation.spec
    try:
        if spec.sweep_refs:
            wanted = {r.name for r in spec.sweep_refs}
            missing = sorted(wanted - {s.metadata.name for s in sweeps})
            if missing:
                raise RecommendationError(f"spec.sweepRefs: no sweep {missing} of asset {asset.metadata.name!r} {where}")
            sweeps = [s for s in sweeps if s.metadata.name in wanted]
        platforms = list({p.name: p for s in reversed(sweeps) for p in s.spec.platforms}.values())
        rows = frame([s.metadata.name for s in sweeps])
        declared = {METRIC + m.name for m in asset.spec.metrics}
        rows = rows.drop(columns=[c for c in rows.columns if c.startswith(METRIC) and c not in declared])
        goals = {m.name: m.goal for m in asset.spec.metrics if m.goal}
        status = recommend(rows, asset.spec.parameters, platforms or None, spec, seed=seed, goals=goals)
    except (RecommendationError, ValueError) as exc:
        status = cannot_recommend(recommendation, exc)
    generation = recommendation.metadata.generation
    status.observed_generation = generation
    for condition in status.conditions:
        condition.observed_generation = generation
    return recommendation.model_copy(update={"status": status})


def cannot_recommend(recommendation: HWRecommendation, error: Exception) -> HWRecommendationStatus:
    """The status of a request that cannot be answered: phase Failed, the reason in the Ready condition."""
    generation = recommendation.metadata.generation
    status = HWRecommendationStatus(phase="Failed", observed_generation=generation)
    status.conditions = set_condition(status.conditions, "Ready", "False", "CannotRecommend", str(error), generation)
    return status


@dataclass
class Check:
    """One requirement of a recommendation, predicted against measured."""

    metric: str
    bound: str
    predicted: str
    measured: list[float]
    ok: bool


def verify_recommendation(
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
        raise ValueError(f"{recommendation.metadata.name}: nothing to verify (phase {status.phase if status else 'unsolved'})")
    best = status.recommendation
    asset = store.asset(recommendation.spec.asset_ref.name)
    sweep = next((s for s in store.sweeps(asset=recommendation.spec.asset_ref.name)
                  if best.platform in {p.name for p in s.spec.platforms}), None)
    if asset is None or sweep is None:
        raise ValueError(f"{recommendation.metadata.name}: asset or platform {best.platform!r} is no longer in the store")
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
        raise ValueError(f"the verification run failed: {failed.reason}: {failed.message}")
    checks: list[Check] = []
    for c in recommendation.spec.constraints:
        if c.metric not in results[0].metrics:
            continue  # a derived metric (cost): nothing to measure
        checks.append(_check(c.metric, c.min, c.max, best.predicted.get(c.metric), [r.metrics[c.metric] for r in results]))
    target = recommendation.spec.throughput
    if target is not None and THROUGHPUT_METRIC in results[0].metrics:
        served = [best.replicas * r.metrics[THROUGHPUT_METRIC] for r in results]
        checks.append(_check(f"{best.replicas} × {THROUGHPUT_METRIC}", target.requests_per_second, None,
                             None, served))
    return checks, results


def _check(metric: str, low: float | None, high: float | None, predicted: PredictedValue | None,
           measured: list[float]) -> Check:
    bounds = [f">= {low:g}"] if low is not None else []
    bounds += [f"<= {high:g}"] if high is not None else []
    ok = all((low is None or m >= low) and (high is None or m <= high) for m in measured)
    text = "-"
    if predicted is not None:
        text = f"{predicted.value:.4g}"
        if predicted.lower is not None and predicted.upper is not None:
            text += f" [{predicted.lower:.4g}, {predicted.upper:.4g}]"
    return Check(metric, " and ".join(bounds), text, measured, ok)
