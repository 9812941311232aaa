"""Reconciling a ``BenchmarkSweep``: trials as objects, trials as Jobs, outcomes into statuses.

One pass (:meth:`SweepReconciler.reconcile`) is idempotent and level-based —
it looks at what exists and moves it one step, whatever happened before:

1. refuse a namespace the operator must not run trials in (kube-system and
   the others of ``--deny-namespace``); resolve the asset and check the pair
   (references, an image to run);
2. plan the trials with :class:`~hwmatch.planning.Planner` (deterministic
   names) and create the missing ``BenchmarkTrial`` objects, owned by the
   sweep;
3. for each trial that has not ended: a finished Job (or a pod unschedulable
   past the timeout) becomes the trial's status — metrics, or the failure
   reason, message and log tail; the Prometheus metrics of its pod are added
   when Prometheus has them, in that pass or a later one (``Telemetry``
   condition ``Unknown``/``Pending`` until then), so a slow Prometheus never
   holds back a result;
4. ask the sweep policy (:func:`hwmatch.planning.schedule.sweep_step`, the
   rules ``hwmatch run`` follows too) which trials start now and whether the
   next round is due, and start their Jobs (a Job retries its own pods up to
   ``backoffLimit``, so one start is a trial's whole attempt series);
5. write the status the policy computed: phase, counts per phase and
   platform, progress, conditions (Ready, Reconciling, Stalled: kstatus),
   start/completion time, observedGeneration — and Kubernetes Events on transitions.

Starting a trial's Job and reading its outcome is the mechanism of
:class:`~hwmatch.controller.trials.TrialJobs` (restart safety, the order of
result, clean-up and Prometheus metrics are explained there); this module is
the sweep's policy around it.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

from hwmatch.api import (
    READY,
    RECONCILING,
    STALLED,
    AIAsset,
    BenchmarkSweep,
    BenchmarkSweepStatus,
    BenchmarkTrial,
    Document,
    is_true,
    set_state,
)
from hwmatch.api.base import State
from hwmatch.api.errors import InputError
from hwmatch.api.manifest import check_references
from hwmatch.api.vocabulary import (
    FAILED,
    FINISHED,
    LABEL_ASSET,
    LABEL_RECOMMENDATION,
    LABEL_SWEEP,
    PENDING,
    RUNNING,
    SUCCEEDED,
)
from hwmatch.controller import metrics
from hwmatch.controller.kube import ASSETS, SWEEPS, TRIALS, Kube
from hwmatch.controller.objects import InvalidObject, invalid, parse
from hwmatch.controller.trials import RUNNING_RESYNC, Emit, Refusal, Telemetry, TrialJobs, TrialObject, each, submit
from hwmatch.data.cluster import TrialObjects
from hwmatch.execution.kubernetes import check_runnable
from hwmatch.planning import Planner
from hwmatch.planning.schedule import Step, TrialState, sweep_step


@dataclass
class SweepPass:
    """What a pass did: when to look again, and whether new results exist (recommendations retrain)."""

    requeue_after: float
    recorded: int = 0  # trial outcomes written
    succeeded: int = 0  # new training data: Succeeded outcomes, and Prometheus metrics read after a trial's outcome
    asset: str | None = None


log = logging.getLogger(__name__)


def now() -> datetime:
    return datetime.now(timezone.utc)


class SweepReconciler:
    """The reconcile pass of a BenchmarkSweep (see the module docstring)."""

    def __init__(self, kube: Kube, emit: Emit, telemetry: Telemetry, unschedulable_timeout: float, resync: float, *,
                 refusal: Refusal):
        self.kube, self.emit, self.telemetry, self.refusal = kube, emit, telemetry, refusal
        self.unschedulable_timeout, self.resync = unschedulable_timeout, resync
        self.memory: dict[tuple[str, str], _Memory] = {}  # what passes of each sweep keep for the next one
        self.counts = AssetCounts(kube)

    def reconcile(self, namespace: str, name: str) -> SweepPass:
        obj = self.kube.get(SWEEPS, namespace, name)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            self.memory.pop((namespace, name), None)
            return SweepPass(requeue_after=self.resync)
        with metrics.RECONCILE_SECONDS.labels("BenchmarkSweep").time():
            try:
                sweep = parse(obj, BenchmarkSweep)
            except InvalidObject as exc:
                invalid(self.kube, self.emit, SWEEPS, obj, str(exc))
                return SweepPass(requeue_after=self.resync)
            memory = self.memory.get((namespace, name))
            if memory is None or memory.uid != obj["metadata"].get("uid"):
                memory = self.memory[(namespace, name)] = _Memory(obj["metadata"].get("uid"))
            try:
                done = _Pass(self, obj, sweep, memory).run()
            except BaseException:
                memory.full = True  # what the pass left half done is found by reading everything
                raise
            memory.full = False
            return done


class _Memory:
    """What one sweep's passes keep between them (level-triggered still: each pass reads the objects anew).

    - ``full``: the next pass reads every Job and pod of the sweep, not only
      the running trials' (:meth:`TrialJobs.advance`): the first pass in a
      process and the one after a pass that raised;
    - ``parsed``: each trial object parsed, by uid, with the resourceVersion
      it was parsed at: a trial that did not change is not validated again;
    - ``plan``: the names of the planner's trials for the sweep's and the
      asset's generation (deterministic names: the same plan every time). The
      names only: the planned trials themselves were a third of the memory of
      a 10,000-trial sweep (issue 17); when one is missing, the sweep is planned again.
    """

    def __init__(self, uid: str | None):
        self.uid = uid
        self.full = True
        self.parsed: dict[str, tuple[str, BenchmarkTrial]] = {}
        self.plan: tuple[tuple[Any, ...], list[str]] | None = None

    def trial(self, obj: Mapping[str, Any]) -> BenchmarkTrial:
        meta = obj["metadata"]
        uid, version = meta.get("uid", meta["name"]), meta.get("resourceVersion", "")
        known = self.parsed.get(uid)
        if known is None or known[0] != version or not version:
            known = self.parsed[uid] = (version, BenchmarkTrial.model_validate(obj))
        return known[1]

    def keep(self, uids: set[str]) -> None:
        """Forget the trials that are gone."""
        for uid in [u for u in self.parsed if u not in uids]:
            del self.parsed[uid]

    def planned(self, planner: Planner, key: tuple[Any, ...]) -> tuple[list[str], list[BenchmarkTrial] | None]:
        """The plan's trial names, and its trials when they were planned just now (else None: only names are kept)."""
        if self.plan is None or self.plan[0] != key:
            trials = planner.plan()
            self.plan = (key, [t.metadata.name for t in trials])
            return self.plan[1], trials
        return self.plan[1], None


class _Pass:
    """One reconcile of one sweep; holds what the pass has read."""

    def __init__(self, owner: SweepReconciler, obj: dict[str, Any], sweep: BenchmarkSweep, memory: _Memory):
        self.r = owner
        self.memory = memory
        self.kube = owner.kube
        self.obj = obj
        self.sweep = sweep
        self.ns = obj["metadata"]["namespace"]
        self.name = self.sweep.metadata.name
        self.old = self.sweep.status or BenchmarkSweepStatus()
        self.now = now()
        self.jobs: TrialJobs  # set by run() once the asset resolves
        self.listing: Future[list[dict[str, Any]]]  # the sweep's trial objects, read by _asset() beside the asset

    # -- the pass ----------------------------------------------------------------------------

    def run(self) -> SweepPass:
        asset = self._asset()
        if asset is None:
            return SweepPass(requeue_after=self.r.resync, asset=self.sweep.spec.asset_ref.name)
        self.jobs = jobs = TrialJobs(self.kube, self.r.emit, self.r.telemetry, self.r.unschedulable_timeout, self.ns,
                                     asset, self.now)
        planner = Planner(asset, self.sweep)
        trials = self._trials(planner, asset)
        phases = jobs.advance(trials, {LABEL_SWEEP: self.name}, full=self.memory.full)
        step = self._step(trials, phases, planner)
        if step.next_round:
            data = TrialObjects(asset, [self.sweep], [jobs.current(trial) for _, trial in trials.values()])
            new = [t for t in planner.next_round(data.frame([self.name])) if t.metadata.name not in trials]
            for trial, created in zip(new, each(lambda t: jobs.create(t, self.obj), new)):
                trials[trial.metadata.name] = (created, BenchmarkTrial.model_validate(created))
                phases[trial.metadata.name] = PENDING
            step = self._step(trials, phases, planner)
        phases.update(zip(step.start, each(lambda name: jobs.start(*trials[name], self.sweep), step.start)))
        if step.start:
            step = self._step(trials, phases, planner)
        self._write_status(step)
        if jobs.recorded:
            self.r.counts.request(self.ns, asset.metadata.name)
        requeue = min(self.r.resync, jobs.requeue)
        if any(p == RUNNING for p in phases.values()):
            requeue = min(requeue, RUNNING_RESYNC)
        return SweepPass(requeue_after=requeue, recorded=jobs.recorded, succeeded=jobs.succeeded,
                         asset=asset.metadata.name)

    def _asset(self) -> AIAsset | None:
        """The sweep's asset when the pair can run here; else None, with the reason in the sweep's status."""
        denied = self.r.refusal(self.ns)
        if denied is not None:  # before anything is read, planned or created
            self._blocked("Failed", "NamespaceDenied", denied)
            return None
        name = self.sweep.spec.asset_ref.name
        # the sweep's trials are read meanwhile: two round trips at once (_trials takes the answer)
        self.listing = submit(self.kube.list, TRIALS, self.ns, {LABEL_SWEEP: self.name})
        obj = self.kube.get(ASSETS, self.ns, name)
        if obj is None:
            self._blocked("Pending", "AssetNotFound",
                          f"spec.assetRef: no AIAsset {name!r} in namespace {self.ns}; the sweep starts when it exists")
            return None
        try:
            asset = parse(obj, AIAsset)
        except InvalidObject as exc:
            self._blocked("Failed", "InvalidAsset", f"AIAsset {name}: {exc}")
            return None
        problems = [f"{p.path}: {p.message}" for p in check_references(
            [Document(asset, self.ns, 1), Document(self.sweep, self.ns, 2)])]
        try:
            check_runnable(asset)
        except InputError as exc:
            problems.append(str(exc))
        if problems:
            self._blocked("Failed", "InvalidSpec", "; ".join(problems))
            return None
        return asset

    def _step(self, trials: Mapping[str, TrialObject], phases: Mapping[str, str], planner: Planner) -> Step:
        """The sweep policy's decision for the trials as they are now."""
        states = []
        for tid, (_, trial) in trials.items():
            status = self.jobs.written.get(tid, trial.status)
            reason = status.reason if status is not None else None
            states.append(TrialState(tid, trial.spec.platform, phases[tid], reason))
        return sweep_step(self.sweep, states, in_rounds=planner.in_rounds, series=True, previous=self.old, now=self.now)

    # -- trials --------------------------------------------------------------------------------

    def _trials(self, planner: Planner, asset: AIAsset) -> dict[str, TrialObject]:
        """The sweep's trials in plan order (later rounds' after the first), created where missing."""
        existing = {o["metadata"]["name"]: o for o in self.listing.result()}
        names, planned = self.memory.planned(planner, (self.sweep.metadata.generation, asset.metadata.uid,
                                                       asset.metadata.generation))
        order = list(names)
        if planner.in_rounds:  # later rounds' trials are the sweep's too
            seen = set(order)
            order += [n for n in existing if n not in seen]
        absent = [n for n in names if n not in existing]
        missing: list[BenchmarkTrial] = []
        if absent:
            by_name = {t.metadata.name: t for t in (planned if planned is not None else planner.plan())}
            missing = [by_name[n] for n in absent]
        existing.update(zip((t.metadata.name for t in missing), each(lambda t: self.jobs.create(t, self.obj), missing)))
        self.memory.keep({o["metadata"].get("uid", n) for n, o in existing.items()})
        return {n: (existing[n], self.memory.trial(existing[n])) for n in order}

    # -- the sweep's status -----------------------------------------------------------------------

    def _blocked(self, phase: str, reason: str, message: str) -> None:
        """The sweep cannot run: phase Pending and Reconciling while it waits for its asset, else Failed and Stalled.

        ``Stalled=True`` is kstatus's word for "no progress until someone changes
        something": ``kubectl wait``, Argo CD and Flux read it as a failure rather
        than waiting for ever; :func:`~hwmatch.planning.schedule.sweep_status`
        replaces it once the sweep plans again. A missing asset is only waited
        for (applied together, the sweep may come first).
        """
        status = self.old.model_copy(deep=True)
        status.phase = phase  # type: ignore[assignment]
        state: State = RECONCILING if phase == PENDING else STALLED
        status.conditions = set_state(status.conditions, state, reason, message, self.sweep.metadata.generation)
        self._commit(status, ("Warning", reason), message)

    def _write_status(self, step: Step) -> None:
        """Write the status the policy computed, and export its counts."""
        status = step.status
        for phase in (PENDING, RUNNING, SUCCEEDED, FAILED):
            metrics.SWEEP_TRIALS.labels(self.ns, self.name, phase).set(getattr(status, phase.lower()))
        event = {RUNNING: ("Normal", "Started"), SUCCEEDED: ("Normal", "Completed"),
                 FAILED: ("Warning", "Failed")}.get(status.phase or PENDING)
        self._commit(status, event, step.summary)

    def _commit(self, status: BenchmarkSweepStatus, event: tuple[str, str] | None, message: str) -> None:
        """Write the status when it changed; post ``event`` (type, reason) when the phase or the Ready reason did.

        Not while the sweep runs: its Ready reason and message move with every trial, the Events with its phase.
        """
        status.observed_generation = self.sweep.metadata.generation
        metrics.SWEEP_STALLED.labels(self.ns, self.name).set(1 if is_true(status.conditions, STALLED) else 0)
        if status.to_wire() == self.old.to_wire():
            return
        self.kube.replace_status(SWEEPS, self.ns, self.name, status.to_wire())
        moved = status.phase != self.old.phase or (_reason(status) != _reason(self.old) and status.phase != RUNNING)
        if moved and event is not None:
            self.r.emit(self.obj, *event, message)


class AssetCounts:
    """Each asset's ``status.trials``: its sweeps' ended trials (their statuses' counts) and its verification runs.

    Counted from the sweeps' statuses, not by reading every trial, so a count
    costs the same at 10 trials and at 10,000; and counted beside the passes
    (three requests none of them waits for), one count per asset at a time: a
    pass that records trials while its asset is being counted has it counted
    once more afterwards, so the last count always follows every sweep's
    latest status write (each pass writes its sweep's status before it asks).
    """

    def __init__(self, kube: Kube):
        self.kube = kube
        self._lock = threading.Lock()
        self._asked: dict[tuple[str, str], bool] = {}  # asset -> asked again while being counted

    def idle(self, timeout: float = 30.0) -> bool:
        """Wait until no count is in flight (tests, and a stopping operator); whether that happened in ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._asked:
                    return True
            time.sleep(0.01)
        return False

    def request(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        with self._lock:
            if key in self._asked:
                self._asked[key] = True
                return
            self._asked[key] = False
        submit(self._count, namespace, name)

    def _count(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        while True:
            try:
                self.count(namespace, name)
            except Exception:  # the next recording pass asks again
                log.exception(f"counting the trials of AIAsset {namespace}/{name} failed")
            with self._lock:
                if not self._asked[key]:
                    del self._asked[key]
                    return
                self._asked[key] = False

    def count(self, namespace: str, name: str) -> None:
        ended = sum(int((o.get("status") or {}).get("succeeded") or 0) + int((o.get("status") or {}).get("failed") or 0)
                    for o in self.kube.list(SWEEPS, namespace)
                    if o.get("spec", {}).get("assetRef", {}).get("name") == name)
        runs = [o for o in self.kube.list(TRIALS, namespace, {LABEL_ASSET: name}, exists=[LABEL_RECOMMENDATION])
                if (o.get("status") or {}).get("phase") in FINISHED]
        self.kube.merge_status(ASSETS, namespace, name, {"trials": ended + len(runs)})


def _reason(status: BenchmarkSweepStatus) -> str | None:
    """The Ready condition's reason: the sweep's state in one word."""
    return next((c.reason for c in status.conditions if c.type == READY), None)
