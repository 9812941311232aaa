"""Trials as Kubernetes Jobs: the Job manifest of a trial, and the trial's outcome read back from its pods.

One Job per trial (named like the trial, owned by its ``BenchmarkTrial``):
the platform's nodeSelector, tolerations and resources place it;
``backoffLimit`` comes from the sweep and ``activeDeadlineSeconds`` is the
trial timeout; the parameters are in ``HWMATCH_PARAMS`` as JSON. The pod runs
non-root on a read-only root filesystem (``/tmp`` is an emptyDir) without a
service-account token, and its container's termination message is the
harness's JSON result (``FallbackToLogsOnError``: a failed container without
one leaves its log tail there instead).

An exit code of 137 (SIGKILL, what the OOM killer sends) fails the Job at
once through a pod failure policy: an out-of-memory kill is a finding about
the configuration (reason ``OOMKilled``), not a flake to retry. Disruptions
(preemption, eviction, node drain) do not count against the backoff.

:func:`job_outcome` turns a finished Job and its pods into the trial's
``BenchmarkTrialStatus`` with the reasons of :mod:`hwmatch.execution.result`
(``Timeout`` for the Job's deadline, ``Crashed``, ``OOMKilled``, ``NoResult``,
``MissingMetrics``) plus ``Unschedulable`` for a pod no node takes within a
timeout. Everything here works on the objects as the API server returns them
(camelCase dicts), so it is tested without a cluster.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

from hwmatch.api import API_VERSION, AIAsset, BenchmarkSweep, BenchmarkTrial, BenchmarkTrialStatus
from hwmatch.api.errors import InputError
from hwmatch.api.vocabulary import LABEL_ASSET, LABEL_PLATFORM, LABEL_RECOMMENDATION, LABEL_SWEEP, LABEL_VERIFICATION
from hwmatch.execution import result
from hwmatch.execution.environment import trial_variables

LABEL_TRIAL = "hwmatch.dev/trial"
MANAGED_BY = {"app.kubernetes.io/managed-by": "hwmatch"}
CONTAINER = "trial"
#: The reason of a trial whose pod no node would take.
UNSCHEDULABLE = "Unschedulable"
#: Exit code of a container killed by SIGKILL (128 + 9): the out-of-memory killer's signature.
SIGKILL_EXIT = 137
#: The user the benchmark runs as (the conventional "nonroot" of distroless images).
NONROOT_UID = 65532


def trial_labels(trial: BenchmarkTrial) -> dict[str, str]:
    """The labels of a trial's Job and pods: asset, sweep, platform, trial (and a verification run's recommendation)."""
    spec = trial.spec
    verification = {k: v for k, v in trial.metadata.labels.items() if k in (LABEL_VERIFICATION, LABEL_RECOMMENDATION)}
    return {LABEL_ASSET: spec.asset_ref.name, LABEL_SWEEP: spec.sweep_ref.name, LABEL_PLATFORM: spec.platform,
            LABEL_TRIAL: trial.metadata.name, **verification}


def check_runnable(asset: AIAsset) -> None:
    """Raise InputError, naming the field, when ``asset`` cannot run as a Job."""
    if not asset.spec.image:
        raise InputError(f"AIAsset {asset.metadata.name}: spec.image is required to run trials on Kubernetes; "
                         "set it to the benchmark image that holds spec.command")


def owner_reference(trial: BenchmarkTrial) -> dict[str, Any]:
    """The controller reference to ``trial`` that every object of its run carries (deleted with it)."""
    if not trial.metadata.uid:
        raise InputError(f"trial {trial.metadata.name}: metadata.uid is needed for the Job's ownerReference; "
                         "create the BenchmarkTrial first")
    return {"apiVersion": API_VERSION, "kind": "BenchmarkTrial", "name": trial.metadata.name,
            "uid": trial.metadata.uid, "controller": True, "blockOwnerDeletion": True}


def job_manifest(trial: BenchmarkTrial, asset: AIAsset, sweep: BenchmarkSweep) -> dict[str, Any]:
    """The Job that runs one attempt-series of ``trial`` (see the module docstring).

    ``trial.metadata`` must carry the object's ``uid`` (the Job is owned by
    the BenchmarkTrial, so deleting the sweep deletes its trials and Jobs).
    A serving asset's trial is a server pod and a load Job instead
    (:mod:`hwmatch.execution.kubernetes_serving`).
    """
    check_runnable(asset)
    if asset.spec.serving is not None:
        raise InputError(f"AIAsset {asset.metadata.name}: a serving asset's trial is a server pod and a load Job "
                         "(hwmatch.execution.kubernetes_serving), not one Job")
    owner = owner_reference(trial)
    platform = sweep.spec.platform(trial.spec.platform)
    env = {**asset.spec.env, **trial_variables(trial, platform.name, platform.threads)}
    pod = trial_pod_spec(trial, sweep, CONTAINER, str(asset.spec.image), list(asset.spec.command),
                         list(asset.spec.args), env)
    return trial_job(trial, sweep, trial_labels(trial), owner, pod)


def trial_job(trial: BenchmarkTrial, sweep: BenchmarkSweep, labels: Mapping[str, str], owner: Mapping[str, Any],
              pod: Mapping[str, Any]) -> dict[str, Any]:
    """The Job around ``pod`` for ``trial``: named like it, the sweep's backoff and the trial timeout as deadline."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": trial.metadata.name, "labels": {**labels, **MANAGED_BY}, "ownerReferences": [dict(owner)]},
        "spec": {
            "backoffLimit": sweep.spec.backoff_limit,
            "activeDeadlineSeconds": max(1, math.ceil(sweep.spec.trial_timeout_seconds)),
            "podFailurePolicy": {"rules": [
                {"action": "FailJob", "onExitCodes": {"containerName": CONTAINER, "operator": "In",
                                                      "values": [SIGKILL_EXIT]}},
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            ]},
            "template": {"metadata": {"labels": dict(labels)}, "spec": dict(pod)},
        },
    }


def trial_pod_spec(trial: BenchmarkTrial, sweep: BenchmarkSweep, name: str, image: str, command: list[str],
                   args: list[str], env: Mapping[str, str], *, resources: bool = True) -> dict[str, Any]:
    """A pod spec with one container ``name`` on the trial's platform: placement, limits, the restricted profile.

    ``resources=False`` leaves the platform's requests and limits out (a load
    generator is placed by the server, not sized like it).
    """
    platform = sweep.spec.platform(trial.spec.platform)
    env = {**env, "HOME": "/tmp"}
    container: dict[str, Any] = {
        "name": name,
        "image": image,
        "command": command,
        "args": args,
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "runAsNonRoot": True, "runAsUser": NONROOT_UID, "runAsGroup": NONROOT_UID,
            "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    wired = platform.resources.to_wire() if resources else {}
    if wired:
        container["resources"] = {k: {r: str(q) for r, q in v.items()} for k, v in wired.items() if v}
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    if platform.node_selector:
        pod["nodeSelector"] = dict(platform.node_selector)
    if platform.tolerations:
        pod["tolerations"] = [t.to_wire() for t in platform.tolerations]
    return pod


# -- reading the outcome ------------------------------------------------------------------------


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for c in obj.get("status", {}).get("conditions") or []:
        if c.get("type") == type_ and c.get("status") == "True":
            return c
    return None


def job_finished(job: Mapping[str, Any]) -> bool:
    """Whether the Job reached a terminal condition (Complete or Failed)."""
    return _condition(job, "Complete") is not None or _condition(job, "Failed") is not None


def _terminated(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    for cs in pod.get("status", {}).get("containerStatuses") or []:
        if cs.get("name") == CONTAINER:
            return (cs.get("state") or {}).get("terminated") or (cs.get("lastState") or {}).get("terminated") or {}
    return {}


def _latest(pods: Sequence[Mapping[str, Any]], phase: str | None = None) -> Mapping[str, Any] | None:
    chosen = [p for p in pods if phase is None or p.get("status", {}).get("phase") == phase]
    return max(chosen, key=lambda p: p["metadata"].get("creationTimestamp") or "", default=None)


def _host(job: Mapping[str, Any], pod: Mapping[str, Any] | None) -> dict[str, Any]:
    host: dict[str, Any] = {"executor": "kubernetes", "job": job["metadata"]["name"]}
    if pod is not None:
        host["pod"] = pod["metadata"]["name"]
        if pod.get("spec", {}).get("nodeName"):
            host["node"] = pod["spec"]["nodeName"]
    return host


def _window(job: Mapping[str, Any], term: Mapping[str, Any], now: datetime) -> tuple[datetime, datetime]:
    status = job.get("status", {})
    started = _time(term.get("startedAt")) or _time(status.get("startTime")) or now
    finished = _time(term.get("finishedAt")) or _time(status.get("completionTime")) or now
    return started, finished


def _attempts(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> int:
    status = job.get("status", {})
    return max(1, (status.get("succeeded") or 0) + (status.get("failed") or 0), len(pods))


def job_outcome(
    job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], asset: AIAsset,
    now: datetime | None = None, unschedulable_after: float = 300.0,
) -> BenchmarkTrialStatus | None:
    """The trial's final status from its Job and pods, or None while it is still going.

    A Job that has not finished ends the trial only when its pod has been
    unschedulable for ``unschedulable_after`` seconds (the caller then
    deletes the Job).
    """
    now = now or datetime.now(timezone.utc)
    if not job_finished(job):
        return _unschedulable(job, pods, now, unschedulable_after)
    status = _complete(job, pods, asset, now) if _condition(job, "Complete") else _failed(job, pods, now)
    status.attempts = _attempts(job, pods)
    return status


def _complete(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], asset: AIAsset,
              now: datetime) -> BenchmarkTrialStatus:
    pod = _latest(pods, "Succeeded") or _latest(pods)
    term = _terminated(pod) if pod is not None else {}
    started, finished = _window(job, term, now)
    host = _host(job, pod)
    message = term.get("message") or ""
    if not message.strip():
        return result.failed(result.NO_RESULT, "the pod succeeded without a result: the harness writes its JSON "
                             "result to the termination message (/dev/termination-log), and this container wrote "
                             "none; run the benchmark with hwmatch-bench or write the result there",
                             started, finished, host, None)
    try:
        parsed = result.parse_result(message)
    except result.ResultError as exc:
        return result.failed(result.NO_RESULT, f"termination message: {exc}", started, finished, host,
                             result.tail(message))
    missing = result.missing_metrics(asset, parsed.metrics)
    if missing:
        return result.failed(result.MISSING_METRICS, f"the result lacks the declared metrics {missing} "
                             f"(it has {sorted(parsed.metrics)})", started, finished, host, result.tail(message))
    return result.succeeded(parsed, started, finished, host)


def _failed(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], now: datetime) -> BenchmarkTrialStatus:
    failed = _condition(job, "Failed") or {}
    pod = _latest(pods, "Failed") or _latest(pods)
    term = _terminated(pod) if pod is not None else {}
    started, finished = _window(job, term, now)
    host = _host(job, pod)
    message = term.get("message") or ""
    log = result.tail(message) if message.strip() else None
    if failed.get("reason") == "DeadlineExceeded":
        return result.failed(result.TIMEOUT, f"ran longer than the trial timeout "
                             f"({job['spec'].get('activeDeadlineSeconds')}s): the Job's deadline ended it",
                             started, finished, host, log)
    code = term.get("exitCode")
    if term.get("reason") == "OOMKilled" or code == SIGKILL_EXIT:
        return result.failed(result.OOM_KILLED, "killed for lack of memory (OOMKilled, exit code 137); the "
                             "configuration does not fit the platform's memory limit", started, finished, host, log)
    if term.get("reason") in ("StartError", "ContainerCannotRun", "CreateContainerError"):
        return result.failed(result.COMMAND_NOT_FOUND, f"the container could not start: {message.strip() or term['reason']}; "
                             "check the asset's spec.image and spec.command", started, finished, host, log)
    if code is not None:
        return result.failed(result.CRASHED, f"exited with code {code}{_error(message)}", started, finished, host, log)
    pod_status = (pod or {}).get("status", {})
    why = pod_status.get("message") or failed.get("message") or failed.get("reason") or "the Job failed"
    return result.failed(result.CRASHED, why, started, finished, host, log)


def _error(message: str) -> str:
    """The harness's own error line (``{"error": ...}``, written when the asset raised), as ``: <error>``."""
    try:
        doc = json.loads(message)
    except (json.JSONDecodeError, TypeError):
        return ""
    return f": {doc['error']}" if isinstance(doc, dict) and isinstance(doc.get("error"), str) else ""


def unschedulable_since(pods: Sequence[Mapping[str, Any]]) -> datetime | None:
    """Since when the trial's latest pod has been refused by the scheduler (None: it is not)."""
    pod = _latest(pods)
    if pod is None or pod.get("status", {}).get("phase") != "Pending":
        return None
    condition = _unscheduled(pod)
    if condition is None:
        return None
    return _time(condition.get("lastTransitionTime")) or _time(pod["metadata"].get("creationTimestamp"))


def _unscheduled(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for c in pod.get("status", {}).get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable":
            return c
    return None


def _unschedulable(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], now: datetime,
                   after: float) -> BenchmarkTrialStatus | None:
    since = unschedulable_since(pods)
    if since is None or (now - since).total_seconds() < after:
        return None
    pod = _latest(pods)
    assert pod is not None
    condition = _unscheduled(pod) or {}
    selector = pod.get("spec", {}).get("nodeSelector") or {}
    status = result.failed(
        UNSCHEDULABLE, f"no node took the pod for {after:g}s: {condition.get('message', '').strip()} "
        f"(nodeSelector {selector}); check the platform's nodeSelector, tolerations and resources",
        since, now, _host(job, pod), None)
    status.attempts = 1
    return status
