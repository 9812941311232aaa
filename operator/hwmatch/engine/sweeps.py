"""Running sweeps locally: the store's trial states in, the policy's decisions carried out by a thread pool.

:func:`run_sweep` plans a sweep's trials, records them in the store and
then repeats one step: it asks :func:`hwmatch.planning.schedule.sweep_step`
(the same policy the Kubernetes reconciler follows) which trials start now
and whether the next round is due, claims and starts those trials through an
:class:`~hwmatch.execution.Executor`, and commits every attempt's outcome as
it ends. Running it again resumes:

- a Succeeded trial never runs again;
- a Failed trial runs again only while it has retries left (a run killed
  between retries), or when ``retry_failed`` is asked; an OOMKilled trial is
  a finding (the configuration does not fit), not retried unless asked;
- a Running trial whose process is gone (a killed run) runs again; one held
  by a live process is left to it.

A sweep has one runner at a time per store (:meth:`Store.lock_sweep`): a
second ``hwmatch run`` of the same sweep waits until the first is done (it
says so through :meth:`Progress.waiting`), then finds the trials finished and
their retries spent, so no trial runs beyond its retry limit and no two
trials share a platform's CPUs. A store write that fails (disk full) stops
the run with a :class:`SweepStoreError` that names the trials finished so far.

:func:`run_file` does this for every sweep of manifest files.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Protocol, Sequence

from hwmatch.api import (
    AIAsset,
    BenchmarkSweep,
    BenchmarkSweepStatus,
    BenchmarkTrial,
    BenchmarkTrialStatus,
    HWRecommendation,
    InputError,
    load_documents,
)
from hwmatch.api.vocabulary import CANCELLED, EXECUTOR_ERROR, FAILED, FINISHED, PENDING, RUNNING, SUCCEEDED
from hwmatch.data.store import Store, StoreError, TrialRow, runner_alive, runner_id
from hwmatch.execution import Executor, result
from hwmatch.planning import Planner
from hwmatch.planning.schedule import Step, TrialState, attempts_left, sweep_step


class SweepError(InputError):
    """A sweep that cannot run as given (unknown sweep, missing asset); the message names the fix."""


class SweepStoreError(StoreError):
    """The store failed during a run; the message says which trials had finished (they are kept)."""


#: Seconds between looks at a sweep another runner holds.
WAIT_POLL_S = 0.5


class Progress(Protocol):
    """What a run reports as it goes (a progress bar, a controller's status updates)."""

    def start(self, sweep: BenchmarkSweep, total: int, done: int) -> None:
        """A sweep (or a further round of it) starts: ``total`` trials planned, ``done`` already finished."""

    def trial_started(self, trial: BenchmarkTrial) -> None: ...

    def trial_finished(self, trial: BenchmarkTrial, status: BenchmarkTrialStatus) -> None:
        """A trial's final attempt ended (retries are not reported as finished)."""

    def waiting(self, sweep: BenchmarkSweep, holder: str) -> None:
        """Another live process (``host:pid:start``) runs ``sweep`` in this store; this run waits for it."""


class NoProgress:
    def start(self, sweep: BenchmarkSweep, total: int, done: int) -> None:
        pass

    def waiting(self, sweep: BenchmarkSweep, holder: str) -> None:
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
    #: The sweep's status after the run, as the operator writes it for the same trials.
    status: BenchmarkSweepStatus = field(default_factory=BenchmarkSweepStatus)
    elapsed_s: float = 0.0

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        """Trials per platform and phase after the run: ``{platform: {phase: n}}`` (zero counts left out)."""
        return {platform: {phase: n for phase in (PENDING, RUNNING, SUCCEEDED, FAILED)
                           if (n := getattr(block, phase.lower()))}
                for platform, block in self.status.platforms.items()}

    @property
    def complete(self) -> bool:
        """Every planned trial of the sweep has finished (Succeeded or Failed)."""
        return all(set(by_status) <= set(FINISHED) for by_status in self.counts.values())


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
    executor.check(asset, sweep)
    store.put_asset(asset)
    store.put_sweep(sweep)
    progress = progress or NoProgress()
    run = _LocalRun(store, asset, sweep, executor, progress, retry_failed)
    started = time.monotonic()
    _take(store, sweep, run.runner, progress)
    try:
        run.run()
    except StoreError as exc:
        raise SweepStoreError(f"{exc}; the sweep {sweep.metadata.name} stopped: "
                              f"{_finished_so_far(run)}") from None
    finally:
        try:
            store.unlock_sweep(sweep.metadata.name, run.runner)
        except StoreError:
            pass  # the lock of a process that is gone is taken over by the next runner
    run.report.elapsed_s = time.monotonic() - started
    return run.report


def _take(store: Store, sweep: BenchmarkSweep, runner: str, progress: Progress) -> None:
    """Wait until this process holds the sweep in the store (another live runner may hold it now)."""
    told = None
    while (holder := store.lock_sweep(sweep.metadata.name, runner)) is not None:
        if holder != told:
            progress.waiting(sweep, holder)
            told = holder
        time.sleep(WAIT_POLL_S)


def _finished_so_far(run: "_LocalRun") -> str:
    """Which trials this run finished before it stopped (they are in the store)."""
    names = run.finished
    if not names:
        return "no trial finished in this run; run the same command again to resume"
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    return f"{len(names)} trial(s) finished in this run and are kept ({shown}); run the same command again to resume"


class _LocalRun:
    """The local driver of the sweep policy: store states in, claims, processes and outcomes out."""

    def __init__(self, store: Store, asset: AIAsset, sweep: BenchmarkSweep, executor: Executor,
                 progress: Progress, retry_failed: bool):
        self.store, self.asset, self.sweep, self.executor = store, asset, sweep, executor
        self.progress, self.retry_failed = progress, retry_failed
        self.planner = Planner(asset, sweep)
        self.report = SweepRun(sweep=sweep.metadata.name, asset=asset.metadata.name)
        self.runner = runner_id()
        self.trials: dict[str, BenchmarkTrial] = {}  # every planned trial so far, in plan order
        self.before: dict[str, int] = {}  # attempts each trial had made before this run
        self.running: dict[Future[BenchmarkTrialStatus], BenchmarkTrial] = {}
        self.finished: list[str] = []  # trials whose outcome this run committed

    def run(self) -> None:
        self._add_round(self.planner.plan())
        pool = ThreadPoolExecutor(max_workers=self.sweep.spec.parallelism, thread_name_prefix="hwmatch-trial")
        try:
            while True:
                step = self._step()
                for name in step.start:
                    self._start(pool, self.trials[name])
                if step.next_round and not self.running:
                    fresh = self.planner.next_round(self.store.frame(self.asset.metadata.name, [self.sweep.metadata.name]))
                    if not fresh:
                        break
                    self._add_round(fresh)
                    continue
                if not self.running:
                    if step.start:
                        continue  # every claim was refused (another run holds them): ask the policy again
                    break
                done, _ = wait(self.running, return_when=FIRST_COMPLETED)
                for future in done:
                    status = future.result()  # a worker's interruption surfaces here, the trial still ours to release
                    self._finish(self.running.pop(future), status)
            self.report.status = self._step().status
        except BaseException:
            self._interrupted()
            raise
        finally:
            pool.shutdown(wait=True)

    # -- the policy's inputs -------------------------------------------------------------------

    def _add_round(self, trials: Sequence[BenchmarkTrial]) -> None:
        """Record a round's trials as planned and report where the sweep stands."""
        self.store.plan(trials)
        states = self.store.states(self.sweep.metadata.name)
        for trial in trials:
            name = trial.metadata.name
            if name in self.trials:
                continue
            self.trials[name] = trial
            self.before[name] = states[name].attempts
        policy = {t.name: t for t in self._states(states)}
        todo = sum(1 for t in trials if attempts_left(policy[t.metadata.name], self.sweep.spec.backoff_limit) > 0)
        self.report.planned += len(trials)
        self.report.skipped += len(trials) - todo
        done = sum(1 for s in policy.values() if attempts_left(s, self.sweep.spec.backoff_limit) == 0
                   and s.phase in FINISHED)
        self.progress.start(self.sweep, max(self.planner.max_trials(), len(states)), done)

    def _states(self, stored: dict[str, TrialRow] | None = None) -> list[TrialState]:
        """The planned trials as the policy sees them, from the store's rows (read now unless given)."""
        stored = stored if stored is not None else self.store.states(self.sweep.metadata.name)
        return [self._state(name, stored[name]) for name in self.trials]

    def _state(self, name: str, row: TrialRow) -> TrialState:
        """One stored trial as the policy sees it."""
        phase, reason, attempts, elsewhere = row.status, row.reason, row.attempts, False
        if phase == RUNNING and row.runner != self.runner:
            if runner_alive(row.runner):
                elsewhere = True
            else:
                phase = PENDING  # its process is gone: a killed run's trial, to run again
        if self.retry_failed:  # fresh retries: only this run's attempts count, earlier outcomes are forgotten
            attempts -= self.before[name]
            if phase == FAILED and attempts == 0:
                phase, reason = PENDING, None
        return TrialState(name, self.trials[name].spec.platform, phase, reason, attempts, elsewhere)

    def _step(self) -> Step:
        return sweep_step(self.sweep, self._states(), in_rounds=self.planner.in_rounds, now=result.now())

    # -- carrying it out -------------------------------------------------------------------------

    def _start(self, pool: ThreadPoolExecutor, trial: BenchmarkTrial) -> None:
        if not self.store.claim(trial.metadata.name, self.runner):
            self.report.skipped += 1  # finished or taken by a live run meanwhile
            return
        self.progress.trial_started(trial)
        self.report.attempts += 1
        self.running[pool.submit(self._attempt, trial)] = trial

    def _attempt(self, trial: BenchmarkTrial) -> BenchmarkTrialStatus:
        try:
            return self.executor.run(trial, self.asset, self.sweep)
        except Exception as exc:  # a bug or an environment problem: recorded, not lost, not fatal
            now = result.now()
            return result.failed(EXECUTOR_ERROR, f"{type(exc).__name__}: {exc}", now, now, {}, None)

    def _finish(self, trial: BenchmarkTrial, status: BenchmarkTrialStatus) -> None:
        """Commit an attempt; report the trial finished when the policy gives it no further attempt."""
        name = trial.metadata.name
        row = self.store.states(self.sweep.metadata.name)[name]
        status.attempts = row.attempts + 1
        self.store.finish(name, status)
        self.finished.append(name)
        after = TrialRow(status.phase or FAILED, status.reason, status.attempts, None)  # the row as just written
        if attempts_left(self._state(name, after), self.sweep.spec.backoff_limit) > 0:
            return  # it will be retried
        if status.phase == SUCCEEDED:
            self.report.succeeded += 1
        else:
            self.report.failed += 1
            self.report.reasons[status.reason or "Unknown"] += 1
        self.progress.trial_finished(trial, status)

    def _interrupted(self) -> None:
        """Stop the running attempts; keep those that ended on their own, give the others back."""
        self.executor.cancel()
        wait(self.running)
        try:
            self._give_back()
        except StoreError:
            pass  # the store cannot be written (disk full): the rows stay Running, taken over by the next run

    def _give_back(self) -> None:
        stored = self.store.states(self.sweep.metadata.name)
        for future, trial in self.running.items():
            status = None if future.exception() else future.result()
            if status is None or status.reason == CANCELLED:
                self.store.release(trial.metadata.name, self.runner)
            else:  # it ended on its own just before the interruption: keep it
                status.attempts = stored[trial.metadata.name].attempts + 1
                self.store.finish(trial.metadata.name, status)


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
    :class:`~hwmatch.api.ManifestError` for invalid manifests and
    :class:`SweepError` for the rest, with a message that names the fix.
    """
    documents = load_documents(paths)
    assets = [d.resource for d in documents if isinstance(d.resource, AIAsset)]
    found = [d.resource for d in documents if isinstance(d.resource, BenchmarkSweep)]
    recommendations = [d.resource for d in documents if isinstance(d.resource, HWRecommendation)]
    if sweeps:
        unknown = sorted(set(sweeps) - {s.metadata.name for s in found})
        if unknown:
            raise SweepError(f"no BenchmarkSweep named {', '.join(unknown)} in the files; "
                             f"they define: {', '.join(s.metadata.name for s in found) or 'none'}")
        found = [s for s in found if s.metadata.name in sweeps]
    for asset in assets:
        store.put_asset(asset)
    plan: list[tuple[AIAsset, BenchmarkSweep]] = []
    for sweep in found:
        stored = store.asset(sweep.spec.asset_ref.name)
        if stored is None:
            raise SweepError(
                f"sweep {sweep.metadata.name!r} refers to AIAsset {sweep.spec.asset_ref.name!r}, which is neither "
                f"in the files nor in the store {store.path}; add the AIAsset manifest to the files"
            )
        executor.check(stored, sweep)
        plan.append((stored, sweep))
    runs = [run_sweep(store, asset, sweep, executor, progress, retry_failed) for asset, sweep in plan]
    return FileRun(assets, [s for _, s in plan], recommendations, runs)
