"""Reconciling a ``BenchmarkSweep``: trials as objects, trials as Jobs, outcomes into statuses.

One pass (:meth:`SweepReconciler.reconcile`) is idempotent and level-based —
it looks at what exists and moves it one step, whatever happened before:

1. resolve the asset and check the pair (references, an image to run);
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
   platform, progress, conditions (Ready, Running, Complete, Failed),
   start/completion time, observedGeneration — and Kubernetes Events on transitions.

Restart safety follows from the names: a trial's Job is named like the trial,
so a pass never starts a second Job for it, and a trial whose status is
Succeeded or Failed is never started again; a Job that ended while no
operator ran is read on the next pass. The status is written before a Job is
cleaned up, so no finished result is lost between the two.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from kubernetes.client.rest import ApiException

from hwmatch.api import (
    AIAsset,
    BenchmarkSweep,
    BenchmarkSweepStatus,
    BenchmarkTrial,
    BenchmarkTrialStatus,
    Document,
    set_condition,
)
from hwmatch.api.errors import InputError
from hwmatch.api.manifest import check_references
from hwmatch.api.vocabulary import FAILED, FINISHED, LABEL_ASSET, LABEL_SWEEP, PENDING, RUNNING, SUCCEEDED, phase_of
from hwmatch.controller import metrics
from hwmatch.controller.kube import ASSETS, SWEEPS, TRIALS, Kube
from hwmatch.controller.objects import InvalidObject, invalid, parse
from hwmatch.data.cluster import TrialObjects
from hwmatch.execution import result
from hwmatch.execution.kubernetes import (
    LABEL_TRIAL,
    check_runnable,
    job_finished,
    job_manifest,
    job_outcome,
    unschedulable_since,
)
from hwmatch.planning import Planner
from hwmatch.planning.schedule import Step, TrialState, sweep_step

#: Posts a Kubernetes Event: (object, type Normal|Warning, reason, message).
Emit = Callable[[Mapping[str, Any], str, str, str], None]
#: Adds the Prometheus metrics to a Succeeded trial's status; None to ask again later (see telemetry.py).
Telemetry = Callable[[AIAsset, str, BenchmarkTrialStatus, datetime], "BenchmarkTrialStatus | None"]
#: Seconds to the next pass while trials run (Job events usually come first; unschedulable pods do not send one).
RUNNING_RESYNC = 10.0
#: Seconds to the next pass while a recorded trial waits for Prometheus to scrape its last moments.
TELEMETRY_RESYNC = 5.0
#: The ``Telemetry`` condition's reason while a recorded trial's Prometheus metrics are still to be read.
TELEMETRY_PENDING = "Pending"


@dataclass
class SweepPass:
    """What a pass did: when to look again, and whether new results exist (recommendations retrain)."""

    requeue_after: float
    recorded: int = 0  # trial outcomes written
    succeeded: int = 0  # new training data: Succeeded outcomes, and Prometheus metrics read after a trial's outcome
    asset: str | None = None


def now() -> datetime:
    return datetime.now(timezone.utc)


class SweepReconciler:
    """The reconcile pass of a BenchmarkSweep (see the module docstring)."""

    def __init__(self, kube: Kube, emit: Emit, telemetry: Telemetry, unschedulable_timeout: float, resync: float):
        self.kube, self.emit, self.telemetry = kube, emit, telemetry
        self.unschedulable_timeout, self.resync = unschedulable_timeout, resync

    def reconcile(self, namespace: str, name: str) -> SweepPass:
        obj = self.kube.get(SWEEPS, namespace, name)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            return SweepPass(requeue_after=self.resync)
        with metrics.RECONCILE_SECONDS.labels("BenchmarkSweep").time():
            try:
                sweep = parse(obj, BenchmarkSweep)
            except InvalidObject as exc:
                invalid(self.kube, self.emit, SWEEPS, obj, str(exc))
                return SweepPass(requeue_after=self.resync)
            return _Pass(self, obj, sweep).run()


class _Pass:
    """One reconcile of one sweep; holds what the pass has read."""

    def __init__(self, owner: SweepReconciler, obj: dict[str, Any], sweep: BenchmarkSweep):
        self.r = owner
        self.kube = owner.kube
        self.obj = obj
        self.sweep = sweep
        self.ns = obj["metadata"]["namespace"]
        self.name = self.sweep.metadata.name
        self.old = self.sweep.status or BenchmarkSweepStatus()
        self.now = now()
        self.recorded = self.succeeded = 0
        self.requeue = owner.resync
        self._written: dict[str, BenchmarkTrialStatus] = {}  # trial statuses this pass wrote
        self.asset: AIAsset  # set by run() once the asset resolves

    # -- the pass ----------------------------------------------------------------------------

    def run(self) -> SweepPass:
        asset = self._asset()
        if asset is None:
            return SweepPass(requeue_after=self.r.resync, asset=self.sweep.spec.asset_ref.name)
        self.asset = asset
        planner = Planner(asset, self.sweep)
        trials = self._trials(planner)
        phases = self._advance(trials)
        step = self._step(trials, phases, planner)
        if step.next_round:
            data = TrialObjects(asset, [self.sweep], [self._current(trial) for _, trial in trials.values()])
            for trial in planner.next_round(data.frame([self.name])):
                if trial.metadata.name not in trials:
                    created = self._create_trial(trial)
                    trials[trial.metadata.name] = (created, BenchmarkTrial.model_validate(created))
                    phases[trial.metadata.name] = PENDING
            step = self._step(trials, phases, planner)
        for name in step.start:
            tobj, trial = trials[name]
            phases[name] = self._start(tobj, trial, asset)
        if step.start:
            step = self._step(trials, phases, planner)
        self._write_status(step)
        if self.recorded:
            self._count_asset_trials(asset)
        if any(p == RUNNING for p in phases.values()):
            self.requeue = min(self.requeue, RUNNING_RESYNC)
        return SweepPass(requeue_after=self.requeue, recorded=self.recorded, succeeded=self.succeeded,
                         asset=asset.metadata.name)

    def _asset(self) -> AIAsset | None:
        """The sweep's asset when the pair can run; else None, with the reason in the sweep's status."""
        name = self.sweep.spec.asset_ref.name
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

    def _advance(self, trials: Mapping[str, tuple[dict[str, Any], BenchmarkTrial]]) -> dict[str, str]:
        """Record the outcome of every trial whose Job ended; the trials' phases after that."""
        jobs = {j["metadata"]["labels"][LABEL_TRIAL]: j for j in self.kube.jobs(self.ns, {LABEL_SWEEP: self.name})
                if LABEL_TRIAL in j["metadata"].get("labels", {})}
        pods: dict[str, list[dict[str, Any]]] = {}
        for pod in self.kube.pods(self.ns, {LABEL_SWEEP: self.name}):
            pods.setdefault(pod["metadata"].get("labels", {}).get(LABEL_TRIAL, ""), []).append(pod)
        phases: dict[str, str] = {}
        for tid, (tobj, trial) in trials.items():
            phase = phase_of(trial)
            job = jobs.get(tid)
            if phase in FINISHED:
                if job is not None and not job_finished(job):  # ended Unschedulable, the Job not yet deleted
                    self.kube.delete_job(self.ns, tid)
                if trial.status is not None and _telemetry_pending(trial.status):
                    self._collect(tobj, trial.status)
                phases[tid] = phase
            elif job is None:
                phases[tid] = PENDING
            else:
                phases[tid] = self._follow(tobj, trial, job, pods.get(tid, []))
        return phases

    def _step(self, trials: Mapping[str, tuple[dict[str, Any], BenchmarkTrial]], phases: Mapping[str, str],
              planner: Planner) -> Step:
        """The sweep policy's decision for the trials as they are now."""
        states = []
        for tid, (_, trial) in trials.items():
            status = self._written.get(tid, trial.status)
            reason = status.reason if status is not None else None
            states.append(TrialState(tid, trial.spec.platform, phases[tid], reason))
        return sweep_step(self.sweep, states, in_rounds=planner.in_rounds, series=True, previous=self.old, now=self.now)

    def _follow(self, tobj: dict[str, Any], trial: BenchmarkTrial, job: dict[str, Any],
                pods: list[dict[str, Any]]) -> str:
        """A trial with a Job: record its outcome if it has one, else keep it Running; its phase."""
        tid = trial.metadata.name
        outcome = job_outcome(job, pods, self.asset, self.now, self.r.unschedulable_timeout)
        if outcome is not None and outcome.phase == SUCCEEDED:
            outcome = self._telemetry(outcome)
        if outcome is None:
            since = unschedulable_since(pods)
            if since is not None:  # no event comes when the timeout passes: look again then
                left = self.r.unschedulable_timeout - (self.now - since).total_seconds()
                self.requeue = min(self.requeue, max(left, 0.5))
            if trial.status is None or trial.status.phase != RUNNING:  # its Job was made by an interrupted pass
                self._write_trial(tobj, _running(tid, self.now))
            return RUNNING
        self._record(tobj, trial, outcome)
        if not job_finished(job):
            self.kube.delete_job(self.ns, tid)
        return outcome.phase or FAILED

    # -- trials --------------------------------------------------------------------------------

    def _trials(self, planner: Planner) -> dict[str, tuple[dict[str, Any], BenchmarkTrial]]:
        """The sweep's trials in plan order (later rounds' after the first), created where missing."""
        existing = {o["metadata"]["name"]: o for o in self.kube.list(TRIALS, self.ns, {LABEL_SWEEP: self.name})}
        planned = planner.plan()
        order = [t.metadata.name for t in planned]
        if planner.in_rounds:  # later rounds' trials are the sweep's too
            order += [n for n in existing if n not in set(order)]
        for trial in planned:
            if trial.metadata.name not in existing:
                existing[trial.metadata.name] = self._create_trial(trial)
        return {n: (existing[n], BenchmarkTrial.model_validate(existing[n])) for n in order}

    def _current(self, trial: BenchmarkTrial) -> BenchmarkTrial:
        """A trial as read at the start of the pass, with the status this pass wrote to it, if any."""
        written = self._written.get(trial.metadata.name)
        return trial if written is None else trial.model_copy(update={"status": written})

    def _telemetry(self, status: BenchmarkTrialStatus) -> BenchmarkTrialStatus:
        """A Succeeded status with its Prometheus metrics, or marked ``Telemetry=Unknown`` to be read on a later pass.

        The result is recorded first, whatever Prometheus does: a Prometheus that
        answers slowly (each query has a total deadline) or has not scraped the
        trial's end yet delays only the Prometheus metrics, never the trial's
        result, its Job's clean-up or the next trials' start.
        """
        collected = self.r.telemetry(self.asset, self.ns, status, self.now)
        if collected is not None:
            return collected
        self.requeue = min(self.requeue, TELEMETRY_RESYNC)
        status.conditions = set_condition(status.conditions, "Telemetry", "Unknown", TELEMETRY_PENDING,
                                          "the result is recorded; its Prometheus metrics are read once Prometheus "
                                          "has scraped the trial's end")
        return status

    def _collect(self, tobj: dict[str, Any], status: BenchmarkTrialStatus) -> None:
        """Read the Prometheus metrics of a recorded trial marked pending; they are new training data."""
        status = status.model_copy(deep=True)
        collected = self._telemetry(status)
        if not _telemetry_pending(collected):
            self._write_trial(tobj, collected)
            self.succeeded += 1

    def _create_trial(self, trial: BenchmarkTrial) -> dict[str, Any]:
        body = trial.to_wire()
        body["metadata"] = {
            "name": trial.metadata.name,
            "labels": trial.metadata.labels,
            "ownerReferences": [{
                "apiVersion": self.obj["apiVersion"], "kind": "BenchmarkSweep", "name": self.name,
                "uid": self.obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True,
            }],
        }
        return self.kube.create(TRIALS, self.ns, body)

    def _start(self, tobj: dict[str, Any], trial: BenchmarkTrial, asset: AIAsset) -> str:
        """Create the trial's Job and mark it Running; a Job the API refuses fails the trial (it would every time)."""
        tid = trial.metadata.name
        trial.metadata.uid = tobj["metadata"]["uid"]
        try:
            created = self.kube.create_job(self.ns, job_manifest(trial, asset, self.sweep))
        except ApiException as exc:
            if exc.status is None or exc.status >= 500 or exc.status in (401, 403, 429):
                raise  # the API server or our permissions, not the trial: try again next pass
            at = self.now
            self._record(tobj, trial, result.failed(result.EXECUTOR_ERROR, f"the API server refused the trial's Job: "
                                                    f"{exc.status} {_api_message(exc)}", at, at, {"executor": "kubernetes"},
                                                    None))
            return FAILED
        if created:
            metrics.JOBS_CREATED.labels(self.ns, self.name, trial.spec.platform).inc()
        self._write_trial(tobj, _running(tid, self.now))
        return RUNNING

    def _record(self, tobj: dict[str, Any], trial: BenchmarkTrial, status: BenchmarkTrialStatus) -> None:
        """Write a trial's final status, count it, and say so in an Event on the trial."""
        self._write_trial(tobj, status)
        self.recorded += 1
        platform = trial.spec.platform
        metrics.TRIALS.labels(self.ns, self.name, platform, status.phase, status.reason or "").inc()
        if status.start_time and status.completion_time:
            metrics.TRIAL_SECONDS.labels(platform).observe((status.completion_time - status.start_time).total_seconds())
        if status.phase == SUCCEEDED:
            self.succeeded += 1
            declared = [m.name for m in self.asset.spec.metrics if m.name in status.metrics]
            shown = ", ".join(f"{k}={status.metrics[k]:.4g}" for k in declared)
            self.r.emit(tobj, "Normal", "Succeeded", f"{shown}{'; ' + status.message if status.message else ''}")
        else:
            self.r.emit(tobj, "Warning", status.reason or "Failed", status.message or "")

    def _write_trial(self, tobj: dict[str, Any], status: BenchmarkTrialStatus) -> None:
        status.observed_generation = tobj["metadata"].get("generation")
        self.kube.replace_status(TRIALS, self.ns, tobj["metadata"]["name"], status.to_wire())
        self._written[tobj["metadata"]["name"]] = status

    def _count_asset_trials(self, asset: AIAsset) -> None:
        trials = [BenchmarkTrial.model_validate(o)
                  for o in self.kube.list(TRIALS, self.ns, {LABEL_ASSET: asset.metadata.name})]
        self.kube.merge_status(ASSETS, self.ns, asset.metadata.name,
                               {"trials": TrialObjects(asset, [], trials).finished()})

    # -- the sweep's status -----------------------------------------------------------------------

    def _blocked(self, phase: str, reason: str, message: str) -> None:
        """The sweep cannot run: say why in its Ready condition (and Failed and Stalled, for a spec to fix).

        ``Stalled=True`` is kstatus's word for "no progress until someone changes
        the spec": ``kubectl wait``, Argo CD and Flux read it as a failure rather
        than waiting for ever; :func:`~hwmatch.planning.schedule.sweep_status`
        drops it once the sweep runs again.
        """
        status = self.old.model_copy(deep=True)
        status.phase = phase  # type: ignore[assignment]
        gen = self.sweep.metadata.generation
        status.conditions = set_condition(status.conditions, "Ready", "False", reason, message, gen)
        if phase == "Failed":
            status.conditions = set_condition(status.conditions, "Failed", "True", reason, message, gen)
            status.conditions = set_condition(status.conditions, "Stalled", "True", reason, message, gen)
        self._commit(status, reason, message)

    def _write_status(self, step: Step) -> None:
        """Write the status the policy computed, and export its counts."""
        status = step.status
        for phase in (PENDING, RUNNING, SUCCEEDED, FAILED):
            metrics.SWEEP_TRIALS.labels(self.ns, self.name, phase).set(getattr(status, phase.lower()))
        complete = _reason(status, "Complete") == "AllTrialsFinished"
        self._commit(status, "Completed" if complete else "Running", step.summary)

    def _commit(self, status: BenchmarkSweepStatus, reason: str, message: str) -> None:
        """Write the status when it changed, and post an Event when the phase did."""
        status.observed_generation = self.sweep.metadata.generation
        if status.to_wire() == self.old.to_wire():
            return
        self.kube.replace_status(SWEEPS, self.ns, self.name, status.to_wire())
        if status.phase != self.old.phase or _reason(status, "Ready") != _reason(self.old, "Ready"):
            warning = status.phase == "Failed" or _reason(status, "Ready") != "Planned"
            self.r.emit(self.obj, "Warning" if warning else "Normal", "Started" if status.phase == "Running" else reason,
                        message)


def _reason(status: BenchmarkSweepStatus, type_: str) -> str | None:
    return next((c.reason for c in status.conditions if c.type == type_), None)


def _telemetry_pending(status: BenchmarkTrialStatus) -> bool:
    return any(c.type == "Telemetry" and c.reason == TELEMETRY_PENDING for c in status.conditions)


def _running(tid: str, at: datetime) -> BenchmarkTrialStatus:
    return BenchmarkTrialStatus(phase="Running", start_time=at, host={"executor": "kubernetes", "job": tid})


def _api_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "").get("message", exc.reason))
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason)
