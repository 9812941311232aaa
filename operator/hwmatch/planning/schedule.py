"""The sweep policy: which trials start now, when the next round is due, and what the sweep's status is.

One pure function, :func:`sweep_step`, holds every scheduling rule of a
sweep; both drivers call it and only carry out its answer:

- the local engine (:mod:`hwmatch.engine.sweeps`) after every trial it
  finishes, with the store's states, starting processes in a thread pool;
- the Kubernetes reconciler (:mod:`hwmatch.controller.sweeps`) on every
  pass, with the trial objects' phases, starting Jobs.

The rules:

- a trial may start while it has attempts left: ``backoffLimit + 1`` minus
  the attempts it made, none once it Succeeded, none after a failure that is
  a finding about the configuration (:data:`~hwmatch.api.vocabulary.FINAL_REASONS`:
  OOMKilled, Unschedulable), none while another live process holds it;
- where one start runs the whole attempt series (a Job retries its own pods
  up to ``backoffLimit``: ``series=True``), an ended trial never starts again;
- failed trials with attempts left go first (they hold results back the
  longest), then the rest in plan order; a trial starts only while fewer than
  ``parallelism`` trials run in all and fewer than ``parallelismPerPlatform``
  on its platform;
- with a round-based sampler, the next round is due when no trial runs and
  none may start;
- the status counts trials per phase and platform, and sets the phase and
  kstatus's conditions the same way everywhere: Reconciling while trials
  are to run, Ready once all have ended and one succeeded (the message is
  the outcome by reason), Stalled when every trial failed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Sequence

from hwmatch.api import READY, RECONCILING, STALLED, BenchmarkSweep, BenchmarkSweepStatus, set_state
from hwmatch.api.base import State
from hwmatch.api.sweep import PlatformCounts
from hwmatch.api.vocabulary import FAILED, FINAL_REASONS, PENDING, RUNNING, SUCCEEDED


@dataclass(frozen=True)
class TrialState:
    """What the policy needs to know of one trial of the sweep."""

    name: str
    platform: str
    phase: str = PENDING
    reason: str | None = None
    #: Attempts counted against ``backoffLimit`` (a run asked to retry failures counts only its own).
    attempts: int = 0
    #: Held by another live process (a second local run): neither ours to start nor ours to count as running.
    elsewhere: bool = False


@dataclass(frozen=True)
class Step:
    """The policy's answer for one moment of a sweep."""

    start: list[str] = field(default_factory=list)  # trial names to start now, in this order
    next_round: bool = False  # plan the sampler's next round now
    status: BenchmarkSweepStatus = field(default_factory=BenchmarkSweepStatus)
    summary: str = ""  # the outcome so far in words: "3 succeeded, 1 failed (OOMKilled: 1)"

    @property
    def idle(self) -> bool:
        """Nothing to start and nothing to plan: wait for running trials (or stop, when none run)."""
        return not self.start and not self.next_round


def attempts_left(state: TrialState, backoff_limit: int, series: bool = False) -> int:
    """How many more attempts ``state``'s trial may make (0: it is done, or not ours)."""
    if state.phase == SUCCEEDED or state.elsewhere:
        return 0
    if state.phase == RUNNING:
        return 0  # ours, in flight: the attempt under way decides
    if state.phase == FAILED and (series or state.reason in FINAL_REASONS):
        return 0
    return max(backoff_limit + 1 - state.attempts, 0)


def sweep_step(
    sweep: BenchmarkSweep,
    trials: Sequence[TrialState],
    *,
    in_rounds: bool = False,
    series: bool = False,
    previous: BenchmarkSweepStatus | None = None,
    now: datetime | None = None,
) -> Step:
    """Every decision about ``sweep`` given its planned ``trials`` in plan order (see the module docstring).

    ``series``: one start runs the whole attempt series (a Kubernetes Job), so
    an ended trial is never started again. ``previous`` and ``now`` carry the
    status's start and completion times and condition transitions forward.
    """
    spec = sweep.spec
    running: Counter[str] = Counter(t.platform for t in trials if t.phase == RUNNING and not t.elsewhere)
    startable = [t for t in trials if attempts_left(t, spec.backoff_limit, series) > 0]
    startable.sort(key=lambda t: t.phase != FAILED)  # stable: retries first, each group in plan order
    start: list[str] = []
    for trial in startable:
        if sum(running.values()) >= spec.parallelism:
            break
        if running[trial.platform] >= spec.parallelism_per_platform:
            continue
        start.append(trial.name)
        running[trial.platform] += 1
    busy = any(t.phase == RUNNING and not t.elsewhere for t in trials)
    next_round = in_rounds and not busy and not startable
    return Step(start, next_round, sweep_status(sweep, trials, previous, now), summarise(trials))


def sweep_status(
    sweep: BenchmarkSweep,
    trials: Sequence[TrialState],
    previous: BenchmarkSweepStatus | None = None,
    now: datetime | None = None,
) -> BenchmarkSweepStatus:
    """The sweep's status for its trials: counts per phase and platform, progress, phase and conditions."""
    old = previous or BenchmarkSweepStatus()
    gen = sweep.metadata.generation
    counts: Counter[str] = Counter(t.phase for t in trials)
    per_platform: dict[str, PlatformCounts] = {p.name: PlatformCounts() for p in sweep.spec.platforms}
    for t in trials:
        block = per_platform.setdefault(t.platform, PlatformCounts())
        setattr(block, t.phase.lower(), getattr(block, t.phase.lower()) + 1)
    total = len(trials)
    finished = counts[SUCCEEDED] + counts[FAILED]
    complete = total > 0 and finished == total
    status = BenchmarkSweepStatus(
        total=total, succeeded=counts[SUCCEEDED], failed=counts[FAILED], running=counts[RUNNING],
        pending=counts[PENDING], progress=f"{finished}/{total}", platforms=per_platform,
        start_time=old.start_time, completion_time=old.completion_time if complete else None,
        conditions=[c.model_copy() for c in old.conditions if c.type in (READY, RECONCILING, STALLED)],
        observed_generation=gen,
    )  # a sweep's conditions are kstatus's three: an earlier operator's Running, Complete and Failed go
    if status.start_time is None and (counts[RUNNING] or finished):
        status.start_time = now
    if complete and status.completion_time is None:
        status.completion_time = now
    status.phase = ("Succeeded" if counts[SUCCEEDED] else "Failed") if complete else (
        "Running" if status.start_time or counts[RUNNING] or finished else "Pending")
    summary = summarise(trials)
    state: State
    if complete and counts[SUCCEEDED]:
        state, reason, message = READY, "Complete", summary
    elif complete:
        state, reason, message = STALLED, "AllTrialsFailed", summary  # a Job's attempts are spent: a spec to change
    elif counts[RUNNING] or finished:
        state, reason, message = RECONCILING, "TrialsRunning", (
            f"{finished} of {total} finished ({summary}); {counts[RUNNING]} running, {counts[PENDING]} pending")
    else:
        state, reason, message = RECONCILING, "TrialsPending", (
            f"{total} trial(s) planned on {len(sweep.spec.platforms)} platform(s); none started yet")
    status.conditions = set_state(status.conditions, state, reason, message, gen, now)
    return status


def summarise(trials: Sequence[TrialState]) -> str:
    """``3 succeeded, 1 failed (OOMKilled: 1)``: the outcome of a sweep in words."""
    counts = Counter(t.phase for t in trials)
    reasons = Counter(t.reason for t in trials if t.phase == FAILED and t.reason)
    return f"{counts[SUCCEEDED]} succeeded, {counts[FAILED]} failed" + (
        " (" + ", ".join(f"{r}: {n}" for r, n in reasons.most_common()) + ")" if reasons else "")
