"""Trials as Jobs, whoever plans them: start a trial's Job, read its outcome, write the trial's status.

The mechanism under two policies: a sweep's plan
(:mod:`~hwmatch.controller.sweeps`) and a recommendation's verification rounds
(:mod:`~hwmatch.controller.recommendations`, ``spec.verify``). One
:class:`TrialJobs` serves one reconcile pass in one namespace; it counts what
it recorded (new training data wakes the recommendations) and when the pass
should look again.

Restart safety follows from the names: a trial's Job is named like the trial,
so a pass never starts a second Job for it, and a trial whose status is
Succeeded or Failed is never started again; a Job that ended while no
operator ran is read on the next pass. A trial's status is written before its
Job is cleaned up (a Succeeded trial's once its Prometheus metrics are in:
:func:`settled`), so no finished result is lost between the two, and the
result is written before its Prometheus metrics are read (``Telemetry``
``Unknown``/``Pending`` until then), so a slow Prometheus never holds it back.
"""

from __future__ import annotations

import contextvars
import functools
import json
import math
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping, Protocol, TypeVar

from kubernetes.client.rest import ApiException

from hwmatch.api import (
    READY,
    RECONCILING,
    STALLED,
    AIAsset,
    BenchmarkSweep,
    BenchmarkTrial,
    BenchmarkTrialStatus,
    set_condition,
    set_state,
)
from hwmatch.api.base import State
from hwmatch.api.vocabulary import FAILED, FINISHED, PENDING, RUNNING, SUCCEEDED, phase_of
from hwmatch.controller import metrics
from hwmatch.controller.kube import SWEEPS, TRIALS, Kube
from hwmatch.execution import result
from hwmatch.execution.kubernetes import (
    LABEL_TRIAL,
    job_finished,
    job_manifest,
    job_outcome,
    unschedulable_since,
)
from hwmatch.execution.kubernetes_serving import (
    LABEL_ROLE,
    SERVER,
    load_job_manifest,
    server_address,
    server_failure,
    server_name,
    server_pod_manifest,
    server_ready,
    server_service_manifest,
    serving_outcome,
)

T = TypeVar("T")
R = TypeVar("R")
#: Posts a Kubernetes Event: (object, type Normal|Warning, reason, message).
Emit = Callable[[Mapping[str, Any], str, str, str], None]
class Telemetry(Protocol):
    """Adds the Prometheus metrics to a Succeeded trial's status; None to ask again later (see telemetry.py).

    It carries Prometheus's scrape interval: a serving trial's load Job pauses
    2.5 of them between warm-up and measurement, so a scrape separates the two.
    """

    scrape_interval: float

    def __call__(self, asset: AIAsset, namespace: str, status: BenchmarkTrialStatus,
                 now: datetime) -> "BenchmarkTrialStatus | None": ...

#: Seconds to the next pass while trials run (Job events usually come first; unschedulable pods do not send one).
RUNNING_RESYNC = 10.0
#: Seconds to the next pass while a recorded trial waits for Prometheus to scrape its last moments.
TELEMETRY_RESYNC = 5.0
#: Seconds to the next pass while a serving trial's server pod is not Ready yet (pods send the operator no event).
SERVER_RESYNC = 1.0
#: The ``Telemetry`` condition's reason while a recorded trial's Prometheus metrics are still to be read.
TELEMETRY_PENDING = "Pending"

#: Requests in flight at once for one pass's trials (status writes, Job creates, deletes): a pass over many
#: trials costs about one round trip per this many of them, not one per trial.
CONCURRENT_REQUESTS = 16
_REQUESTS = ThreadPoolExecutor(max_workers=CONCURRENT_REQUESTS, thread_name_prefix="hwmatch-request")


def submit(fn: Callable[..., R], *args: Any) -> Future[R]:
    """``fn(*args)`` in the request pool: a read whose answer the pass takes later (:meth:`Future.result`).

    It runs in a copy of the caller's context: kopf.event finds its settings in
    a context variable, which the pool's own threads do not have.
    """
    return _REQUESTS.submit(contextvars.copy_context().run, fn, *args)


def each(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``fn`` over ``items``, up to :data:`CONCURRENT_REQUESTS` at once; the results in order, the first error raised.

    For per-trial work of a pass whose time is API round trips; each call must
    touch only its own trial (what the pass shares is under
    :attr:`TrialJobs._lock`).
    """
    items = list(items)
    if len(items) <= 1:
        return [fn(item) for item in items]
    return [future.result() for future in [submit(fn, item) for item in items]]


#: Why no trial may run in a namespace, or None when they may (:func:`hwmatch.controller.config.namespace_refusal`).
Refusal = Callable[[str], "str | None"]
#: A trial object as read (the wire dict, for its uid and generation) and parsed.
TrialObject = tuple[dict[str, Any], BenchmarkTrial]


class TrialJobs:
    """One pass's trials as Jobs in ``namespace``, all of ``asset`` (see the module docstring)."""

    def __init__(self, kube: Kube, emit: Emit, telemetry: Telemetry, unschedulable_timeout: float, namespace: str,
                 asset: AIAsset, now: datetime):
        self.kube, self.emit, self.telemetry = kube, emit, telemetry
        self.unschedulable_timeout, self.ns, self.asset, self.now = unschedulable_timeout, namespace, asset, now
        self.recorded = 0  # trial outcomes written
        self.succeeded = 0  # new training data: Succeeded outcomes, and Prometheus metrics read after an outcome
        self.requeue = math.inf  # seconds until something here is due without an event (an unschedulable timeout)
        self.written: dict[str, BenchmarkTrialStatus] = {}  # trial statuses this pass wrote
        self._lock = threading.Lock()  # trials are followed side by side (each): the counts above are shared

    def due(self, seconds: float) -> None:
        """Something is due in ``seconds`` without an event: the pass's requeue comes no later."""
        with self._lock:
            self.requeue = min(self.requeue, seconds)

    def create(self, trial: BenchmarkTrial, owner: Mapping[str, Any]) -> dict[str, Any]:
        """The trial's object, owned by ``owner`` (a sweep, a recommendation); the existing one if it is there."""
        body = trial.to_wire()
        body["metadata"] = {
            "name": trial.metadata.name,
            "labels": trial.metadata.labels,
            "ownerReferences": [{
                "apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True,
            }],
        }
        return self.kube.create(TRIALS, self.ns, body)

    def advance(self, trials: Mapping[str, TrialObject], labels: Mapping[str, str], *, full: bool = True) -> dict[str, str]:
        """Record the outcome of every trial whose Job ended (Jobs and pods found by ``labels``); the phases after that.

        ``full=False`` reads only the Jobs and pods of the trials whose status
        says Running: a pass costs what runs, not what a sweep ran. What only a
        pass interrupted between two writes leaves behind (a Job of a trial
        whose status says Pending, the unfinished Job or the server of an ended
        trial) is found by a full pass, which the caller makes the first one of
        each object in a process and the one after a pass that raised.
        """
        scope: dict[str, Any] = {}
        if not full:
            scope = {"key": LABEL_TRIAL, "names": [tid for tid, (_, trial) in trials.items() if phase_of(trial) == RUNNING]}
        listed, found = each(lambda read: read(self.ns, labels, **scope), [self.kube.jobs, self.kube.pods])
        jobs = {j["metadata"]["labels"][LABEL_TRIAL]: j for j in listed if LABEL_TRIAL in j["metadata"].get("labels", {})}
        pods: dict[str, list[dict[str, Any]]] = {}
        servers: dict[str, dict[str, Any]] = {}  # a serving trial's server pod, by trial
        for pod in found:
            pod_labels = pod["metadata"].get("labels", {})
            if pod_labels.get(LABEL_ROLE) == SERVER:
                servers[pod_labels.get(LABEL_TRIAL, "")] = pod
            else:
                pods.setdefault(pod_labels.get(LABEL_TRIAL, ""), []).append(pod)
        services = ({s["metadata"].get("labels", {}).get(LABEL_TRIAL, "") for s in self.kube.services(self.ns, labels)}
                    if self.asset.spec.serving is not None and full else set())
        phases: dict[str, str] = {}
        work: dict[str, Callable[[], str]] = {}  # what a trial needs, each a few requests: run side by side
        for tid, (tobj, trial) in trials.items():
            phase = phase_of(trial)
            job = jobs.get(tid)
            if phase in FINISHED:
                phases[tid] = phase
                pending = trial.status is not None and telemetry_pending(trial.status)
                # ended Unschedulable, or Succeeded and settled, the Job not yet deleted (a pass was interrupted)
                stale_job = job is not None and (not job_finished(job) or (trial.status is not None and settled(trial.status)))
                stale_server = tid in servers or tid in services  # recorded by a pass interrupted before its clean-up
                if stale_job or stale_server or pending:
                    work[tid] = functools.partial(self._ended, tobj, trial, stale_job, stale_server, pending)
            elif job is None and tid in servers:
                work[tid] = functools.partial(self._follow_server, tobj, trial, servers[tid])
            elif job is None:
                phases[tid] = PENDING
            else:
                work[tid] = functools.partial(self._follow, tobj, trial, job, pods.get(tid, []), servers.get(tid))
        phases.update(zip(work, each(lambda step: step(), work.values())))
        return {tid: phases[tid] for tid in trials}

    def _ended(self, tobj: dict[str, Any], trial: BenchmarkTrial, stale_job: bool, stale_server: bool,
               pending: bool) -> str:
        """An ended trial's left-overs: its unfinished Job, its server, its Prometheus metrics still to read."""
        tid = trial.metadata.name
        if stale_job:
            self.kube.delete_job(self.ns, tid)
        if stale_server:
            self.kube.delete_server(self.ns, server_name(tid))
        if pending:
            assert trial.status is not None
            self._collect(tobj, trial.status)
        return phase_of(trial)

    def start(self, tobj: dict[str, Any], trial: BenchmarkTrial, sweep: BenchmarkSweep) -> str:
        """Create the trial's Job and mark it Running; a Job the API refuses fails the trial (it would every time)."""
        tid = trial.metadata.name
        trial.metadata.uid = tobj["metadata"]["uid"]
        if self.asset.spec.serving is not None:
            return self._start_server(tobj, trial, sweep)
        try:
            created = self.kube.create_job(self.ns, job_manifest(trial, self.asset, sweep))
        except ApiException as exc:
            if exc.status is None or exc.status >= 500 or exc.status in (401, 403, 429):
                raise  # the API server or our permissions, not the trial: try again next pass
            at = self.now
            self._record(tobj, trial, result.failed(result.EXECUTOR_ERROR, f"the API server refused the trial's Job: "
                                                    f"{exc.status} {_api_message(exc)}", at, at, {"executor": "kubernetes"},
                                                    None))
            return FAILED
        if created:
            metrics.JOBS_CREATED.labels(self.ns, trial.spec.sweep_ref.name, trial.spec.platform).inc()
        self.write(tobj, _running(tid, self.now))
        return RUNNING

    def current(self, trial: BenchmarkTrial) -> BenchmarkTrial:
        """A trial as read at the start of the pass, with the status this pass wrote to it, if any."""
        written = self.written.get(trial.metadata.name)
        return trial if written is None else trial.model_copy(update={"status": written})

    def write(self, tobj: dict[str, Any], status: BenchmarkTrialStatus) -> None:
        """Write a trial's status, with its kstatus conditions (:func:`trial_state`), duration and summary."""
        generation = tobj["metadata"].get("generation")
        status.observed_generation = generation
        if status.start_time is not None and status.completion_time is not None:
            status.duration_seconds = round((status.completion_time - status.start_time).total_seconds(), 1)
        status.summary = _summary(self.asset, status)
        status.conditions = set_state(status.conditions, *trial_state(status), generation, self.now)
        self.kube.replace_status(TRIALS, self.ns, tobj["metadata"]["name"], status.to_wire())
        self.written[tobj["metadata"]["name"]] = status

    # -- serving trials: a server pod and its Service first, the load Job once the server is Ready --------------

    def _start_server(self, tobj: dict[str, Any], trial: BenchmarkTrial, sweep: BenchmarkSweep) -> str:
        """Create a serving trial's server pod and Service (each at most once: named from the trial); Running."""
        try:
            pod = server_pod_manifest(trial, self.asset, sweep)
            self.kube.create_object(self.ns, server_service_manifest(trial, self.asset))
            self.kube.create_object(self.ns, pod)
        except ApiException as exc:
            if exc.status is None or exc.status >= 500 or exc.status in (401, 403, 429):
                raise
            self.kube.delete_server(self.ns, server_name(trial))
            at = self.now
            self._record(tobj, trial, result.failed(result.EXECUTOR_ERROR, f"the API server refused the trial's "
                                                    f"server pod or Service: {exc.status} {_api_message(exc)}",
                                                    at, at, {"executor": "kubernetes"}, None))
            return FAILED
        metrics.JOBS_CREATED.labels(self.ns, trial.spec.sweep_ref.name, trial.spec.platform).inc()
        status = _running(trial.metadata.name, self.now)
        status.host["pod"] = pod["metadata"]["name"]
        self.write(tobj, status)
        self.due(SERVER_RESYNC)
        return RUNNING

    def _follow_server(self, tobj: dict[str, Any], trial: BenchmarkTrial, server: dict[str, Any]) -> str:
        """A serving trial whose server pod exists and whose load Job does not: fail it, start the load, or wait."""
        tid = trial.metadata.name
        trial.metadata.uid = tobj["metadata"]["uid"]
        created = _time(server["metadata"].get("creationTimestamp")) or self.now
        failure = server_failure(server, self.asset, created, self.now, self.unschedulable_timeout)
        if failure is not None:
            self._record(tobj, trial, failure)
            self.kube.delete_server(self.ns, server_name(trial))
            return FAILED
        if trial.status is None or trial.status.phase != RUNNING:  # its server was made by an interrupted pass
            self.write(tobj, _running(tid, self.now))
        if not server_ready(server):
            self.due(SERVER_RESYNC)
            return RUNNING
        sweep = _sweep_of(self.kube, self.ns, trial)
        self.kube.create_job(self.ns, load_job_manifest(trial, self.asset, sweep, server_address(server),
                                                        self.telemetry.scrape_interval))
        return RUNNING

    def _follow(self, tobj: dict[str, Any], trial: BenchmarkTrial, job: dict[str, Any],
                pods: list[dict[str, Any]], server: dict[str, Any] | None = None) -> str:
        """A trial with a Job: record its outcome if it has one, else keep it Running; its phase."""
        tid = trial.metadata.name
        serving = self.asset.spec.serving is not None
        outcome = job_outcome(job, pods, self.asset, self.now, self.unschedulable_timeout)
        if serving and outcome is not None:
            outcome = serving_outcome(outcome, server)
        elif serving and server is not None:  # the load runs: its server must stay up
            created = _time(server["metadata"].get("creationTimestamp")) or self.now
            failed = server_failure(server, self.asset, created, self.now, self.unschedulable_timeout)
            if failed is not None and failed.reason != "ServerNotReady":
                outcome = failed
        if outcome is not None and outcome.phase == SUCCEEDED:
            outcome = self._telemetry(outcome)
        if outcome is None:
            since = unschedulable_since(pods)
            if since is not None:  # no event comes when the timeout passes: look again then
                left = self.unschedulable_timeout - (self.now - since).total_seconds()
                self.due(max(left, 0.5))
            if trial.status is None or trial.status.phase != RUNNING:  # its Job was made by an interrupted pass
                self.write(tobj, _running(tid, self.now))
            return RUNNING
        self._record(tobj, trial, outcome)
        if not job_finished(job) or settled(outcome):
            self.kube.delete_job(self.ns, tid)
        if serving:  # after the result: a pass interrupted in between removes them when it sees the trial ended
            self.kube.delete_server(self.ns, server_name(tid))
        return outcome.phase or FAILED

    def _telemetry(self, status: BenchmarkTrialStatus) -> BenchmarkTrialStatus:
        """A Succeeded status with its Prometheus metrics, or marked ``Telemetry=Unknown`` to be read on a later pass."""
        collected = self.telemetry(self.asset, self.ns, status, self.now)
        if collected is not None:
            return collected
        self.due(TELEMETRY_RESYNC)
        status.conditions = set_condition(status.conditions, "Telemetry", "Unknown", TELEMETRY_PENDING,
                                          "the result is recorded; its Prometheus metrics are read once Prometheus "
                                          "has scraped the trial's end")
        return status

    def _collect(self, tobj: dict[str, Any], status: BenchmarkTrialStatus) -> None:
        """Read the Prometheus metrics of a recorded trial marked pending; they are new training data."""
        collected = self._telemetry(status.model_copy(deep=True))
        if not telemetry_pending(collected):
            self.write(tobj, collected)
            with self._lock:
                self.succeeded += 1
            self.kube.delete_job(self.ns, tobj["metadata"]["name"])  # settled: its Job and pod are not needed

    def _record(self, tobj: dict[str, Any], trial: BenchmarkTrial, status: BenchmarkTrialStatus) -> None:
        """Write a trial's final status, count it, and say so in an Event on the trial."""
        self.write(tobj, status)
        with self._lock:
            self.recorded += 1
            if status.phase == SUCCEEDED:
                self.succeeded += 1
        platform = trial.spec.platform
        metrics.TRIALS.labels(self.ns, trial.spec.sweep_ref.name, platform, status.phase, status.reason or "").inc()
        if status.start_time and status.completion_time:
            metrics.TRIAL_SECONDS.labels(platform).observe((status.completion_time - status.start_time).total_seconds())
        if status.phase == SUCCEEDED:
            shown = _measured(self.asset, status)
            self.emit(tobj, "Normal", "Succeeded", f"{shown}{'; ' + status.message if status.message else ''}")
        else:
            self.emit(tobj, "Warning", status.reason or "Failed", status.message or "")


def settled(status: BenchmarkTrialStatus) -> bool:
    """Whether a Succeeded trial needs its Job no more: the result and its Prometheus metrics are in its status.

    Its Job (and with it its pod) is then deleted: a sweep of 10,000 trials
    would otherwise leave 10,000 Jobs and pods that every list request of the
    namespace reads through. A Failed trial's Job stays (``kubectl logs``, the
    pod's events), and goes with its trial.
    """
    return status.phase == SUCCEEDED and not telemetry_pending(status)


def telemetry_pending(status: BenchmarkTrialStatus) -> bool:
    """Whether a recorded trial's Prometheus metrics are still to be read."""
    return any(c.type == "Telemetry" and c.reason == TELEMETRY_PENDING for c in status.conditions)


#: Characters of a failure's message in a trial's ``summary`` (a kubectl column; the whole one is in ``message``).
SUMMARY_CHARS = 100


def _measured(asset: AIAsset, status: BenchmarkTrialStatus) -> str:
    """``latency_ms=5.2, accuracy=0.97``: the asset's declared metrics a trial measured, in their order."""
    return ", ".join(f"{m.name}={status.metrics[m.name]:.4g}" for m in asset.spec.metrics if m.name in status.metrics)


def _summary(asset: AIAsset, status: BenchmarkTrialStatus) -> str | None:
    """A trial's ``summary``: its measured metrics once Succeeded, the first line of its message once Failed."""
    if status.phase == SUCCEEDED:
        return _measured(asset, status) or None
    if status.phase == FAILED and status.message:
        line = status.message.splitlines()[0]
        return line if len(line) <= SUMMARY_CHARS else line[: SUMMARY_CHARS - 1] + "…"
    return None


def trial_state(status: BenchmarkTrialStatus) -> tuple[State, str, str]:
    """(state, reason, message) of a trial for its kstatus conditions (after its ``summary`` is set).

    Ready once it Succeeded and its Prometheus metrics are read; Stalled when
    it Failed (the reason is the failure's: a trial never runs again); else
    Reconciling (Pending, Running, or metrics still to read).
    """
    if status.phase == SUCCEEDED:
        if telemetry_pending(status):
            return RECONCILING, "TelemetryPending", "the result is recorded; its Prometheus metrics are still to read"
        return READY, SUCCEEDED, "; ".join(t for t in (status.summary, status.message) if t) or "measured"
    if status.phase == FAILED:
        return STALLED, status.reason or FAILED, status.message or ""
    return RECONCILING, status.phase or PENDING, "the trial's Job runs" if status.phase == RUNNING else "waiting to start"


def _running(tid: str, at: datetime) -> BenchmarkTrialStatus:
    return BenchmarkTrialStatus(phase="Running", start_time=at, host={"executor": "kubernetes", "job": tid})


def _api_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "").get("message", exc.reason))
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason)


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _sweep_of(kube: Kube, namespace: str, trial: BenchmarkTrial) -> BenchmarkSweep:
    """The trial's sweep (its platforms place the load Job), as the API server has it now."""
    obj = kube.get(SWEEPS, namespace, trial.spec.sweep_ref.name)
    if obj is None:
        raise RuntimeError(f"BenchmarkSweep {trial.spec.sweep_ref.name} of trial {trial.metadata.name} is gone; "
                           "the trial goes with it")
    return BenchmarkSweep.model_validate(obj)
