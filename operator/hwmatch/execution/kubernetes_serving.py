"""A serving trial in a cluster: a server pod with a Service, then a load Job, all owned by the BenchmarkTrial.

The mechanism of docs/serving.md ("In a cluster"); the order of the steps is
the reconciler's (:class:`hwmatch.controller.trials.TrialJobs`), the objects
are built here, as pure functions of the trial, its asset and its sweep:

- :func:`server_pod_manifest`: the asset's server (``spec.command``) on the
  platform's pool — its nodeSelector, tolerations and resources, as a batch
  trial's pod — with the parameters less the rate in ``HWMATCH_PARAMS``, a
  readiness probe on ``spec.serving.readinessPath`` (the kubelet decides
  "ready"), ``prometheus.io/*`` annotations for Prometheus's pod discovery,
  ``restartPolicy: Never`` (a crash is a finding) and the trial timeout as
  ``activeDeadlineSeconds`` (a server the operator never removes still ends);
- :func:`server_service_manifest`: a headless Service selecting that pod
  (its EndpointSlice is the server's address for DNS and for Prometheus's
  ``endpoints`` discovery; headless because a ClusterIP needs kube-proxy,
  which not every cluster — this repository's test cluster — runs);
- :func:`load_job_manifest`: the load generator, ``hwmatch-bench load``
  (vegeta in the benchmark image), as a Job named like the trial, on the same
  pool without the platform's resources, aimed at the server pod's IP; its
  termination message is the client-side result, read by
  :func:`~hwmatch.execution.kubernetes.job_outcome` like a batch trial's.

Each is named from the trial (``<trial>-server``; the Job is the trial's
name), so a pass that is interrupted anywhere and runs again finds what it
made instead of making it twice.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime
from typing import Any, Mapping

from hwmatch.api import AIAsset, BenchmarkSweep, BenchmarkTrial, BenchmarkTrialStatus
from hwmatch.api.asset import ServingSpec
from hwmatch.api.errors import InputError
from hwmatch.execution import result
from hwmatch.execution.environment import trial_variables
from hwmatch.execution.kubernetes import (
    CONTAINER,
    MANAGED_BY,
    check_runnable,
    owner_reference,
    trial_job,
    trial_labels,
    trial_pod_spec,
)
from hwmatch.harness.assets.onnx_server import PORT_VARIABLE
from hwmatch.harness.loadgen import BODY_VARIABLE
from hwmatch.harness.params import ENV_VAR

#: The label that tells a serving trial's objects apart: ``server`` (pod, Service) or ``load`` (the Job's pod).
LABEL_ROLE = "hwmatch.dev/role"
SERVER, LOAD = "server", "load"
#: The server's container and its port's name.
SERVER_CONTAINER, PORT_NAME = "server", "http"
#: Reason of a trial whose server pod was not Ready within ``spec.serving.readinessTimeout``.
SERVER_NOT_READY = "ServerNotReady"
#: Reason of a trial whose server pod ended (crashed, OOM-killed, deadline) before or during the load.
SERVER_FAILED = "ServerFailed"
#: Reason of a trial whose load Job failed (the server unreachable from it, vegeta failing).
LOAD_FAILED = "LoadFailed"
#: Pause between warm-up and measurement, in scrape intervals (as locally: a scrape separates the two).
PAUSE_SCRAPES = 2.5
_DNS_LABEL = 63


def server_name(trial: BenchmarkTrial | str) -> str:
    """``<trial>-server``, kept a DNS label (a Service's name is one): long names end in a hash of the whole."""
    name = trial if isinstance(trial, str) else trial.metadata.name
    suffix = f"-{SERVER}"
    if len(name) + len(suffix) <= _DNS_LABEL:
        return name + suffix
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:_DNS_LABEL - len(suffix) - 9].rstrip('-')}-{digest}{suffix}"


def serving_of(asset: AIAsset) -> ServingSpec:
    if asset.spec.serving is None:
        raise InputError(f"AIAsset {asset.metadata.name}: spec.serving is not set; this is not a serving asset")
    return asset.spec.serving


def server_labels(trial: BenchmarkTrial) -> dict[str, str]:
    """The labels that select a trial's server pod (the Service's selector; Prometheus's relabelling keeps them)."""
    return {**trial_labels(trial), LABEL_ROLE: SERVER}


def server_pod_manifest(trial: BenchmarkTrial, asset: AIAsset, sweep: BenchmarkSweep) -> dict[str, Any]:
    """The server pod of ``trial`` (see the module docstring); ``trial.metadata.uid`` must be set."""
    check_runnable(asset)
    serving = serving_of(asset)
    owner = owner_reference(trial)
    platform = sweep.spec.platform(trial.spec.platform)
    env = {**asset.spec.env, **trial_variables(trial, platform.name, platform.threads)}
    rate = serving.load.rate_parameter
    env[ENV_VAR] = json.dumps({k: v for k, v in json.loads(env[ENV_VAR]).items() if k != rate})
    env[PORT_VARIABLE] = str(serving.port)
    pod = trial_pod_spec(trial, sweep, SERVER_CONTAINER, str(asset.spec.image), list(asset.spec.command),
                         list(asset.spec.args), env)
    container = pod["containers"][0]
    container["ports"] = [{"name": PORT_NAME, "containerPort": serving.port, "protocol": "TCP"}]
    container["readinessProbe"] = {"httpGet": {"path": serving.readiness_path, "port": PORT_NAME},
                                   "periodSeconds": 1, "timeoutSeconds": 2, "failureThreshold": 3}
    pod["activeDeadlineSeconds"] = max(1, math.ceil(sweep.spec.trial_timeout_seconds))
    _network(pod, serving)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": server_name(trial),
            "labels": {**server_labels(trial), **MANAGED_BY},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(serving.port),
                            "prometheus.io/path": serving.metrics_path},
            "ownerReferences": [owner],
        },
        "spec": pod,
    }


def server_service_manifest(trial: BenchmarkTrial, asset: AIAsset) -> dict[str, Any]:
    """The headless Service in front of the trial's server pod (see the module docstring)."""
    serving = serving_of(asset)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": server_name(trial), "labels": {**server_labels(trial), **MANAGED_BY},
                     "ownerReferences": [owner_reference(trial)]},
        "spec": {
            "clusterIP": "None",
            "selector": server_labels(trial),
            "ports": [{"name": PORT_NAME, "port": serving.port, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }


def load_job_manifest(trial: BenchmarkTrial, asset: AIAsset, sweep: BenchmarkSweep, address: str,
                      scrape_interval: float) -> dict[str, Any]:
    """The load Job of ``trial``, aimed at the server at ``address`` (its pod IP), paused for ``scrape_interval``."""
    check_runnable(asset)
    serving = serving_of(asset)
    owner = owner_reference(trial)
    load = serving.load
    host = f"[{address}]" if ":" in address else address
    base = f"http://{host}:{serving.port}"
    rate = float(trial.spec.parameters[load.rate_parameter])
    args = [
        "--url", base + serving.request.path, "--ready-url", base + serving.readiness_path,
        "--rate", f"{rate:g}", "--duration", f"{load.duration_seconds:g}", "--warmup", f"{load.warmup_seconds:g}",
        "--pause", f"{PAUSE_SCRAPES * scrape_interval:g}", "--timeout", f"{load.request_timeout_seconds:g}",
        "--ready-timeout", f"{serving.readiness_timeout_seconds:g}",
        "--method", serving.request.method, "--content-type", serving.request.content_type,
    ]
    env = {"HWMATCH_TRIAL_ID": trial.metadata.name, "PYTHONUNBUFFERED": "1"}
    if serving.request.body is not None:
        env[BODY_VARIABLE] = serving.request.body
    image = load.image or str(asset.spec.image)
    pod = trial_pod_spec(trial, sweep, CONTAINER, image, ["hwmatch-bench", "load"], args, env, resources=False)
    _network(pod, serving)
    labels = {**trial_labels(trial), LABEL_ROLE: LOAD}
    job = trial_job(trial, sweep, labels, owner, pod)
    job["spec"]["backoffLimit"] = 0  # a second attempt would measure a server that already took one load
    return job


def _network(pod: dict[str, Any], serving: ServingSpec) -> None:
    if serving.host_network:
        pod["hostNetwork"] = True
        pod["dnsPolicy"] = "ClusterFirstWithHostNet"


# -- reading the server pod ---------------------------------------------------------------------


def server_ready(pod: Mapping[str, Any]) -> bool:
    """Whether the kubelet reports the server pod Ready (its readiness probe passed) and it has an IP."""
    status = pod.get("status", {})
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return ready and bool(status.get("podIP"))


def server_address(pod: Mapping[str, Any]) -> str:
    return str(pod.get("status", {}).get("podIP") or "")


def server_failure(pod: Mapping[str, Any], asset: AIAsset, since: datetime, now: datetime,
                   unschedulable_after: float) -> BenchmarkTrialStatus | None:
    """The trial's Failed status when its server pod ended or was not Ready in time, else None (wait, or go on).

    ``since`` is when the server pod was made (the readiness timeout runs from
    there: pulling the image and scheduling count against it); a pod that no
    node took within ``unschedulable_after`` is ``Unschedulable``, as a batch
    trial's pod would be.
    """
    serving = serving_of(asset)
    name = pod.get("metadata", {}).get("name", "")
    status = pod.get("status", {})
    host = {"executor": "kubernetes", "pod": name, **({"node": pod["spec"]["nodeName"]}
                                                       if pod.get("spec", {}).get("nodeName") else {})}
    term = _server_terminated(pod)
    if status.get("phase") in ("Failed", "Succeeded") or term:
        code, why = term.get("exitCode"), term.get("reason") or status.get("reason") or status.get("phase")
        message = term.get("message") or ""
        exit_code = "" if code is None else f", exit code {code}"
        said = f": {status['message']}" if status.get("message") else ""
        return result.failed(SERVER_FAILED, f"the server pod {name} ended before the load was done ({why}{exit_code})"
                             f"{said}; its last output is in logTail", since, now, host,
                             result.tail(message) if message.strip() else None)
    if server_ready(pod):
        return None
    waited = (now - since).total_seconds()
    unscheduled = next((c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"
                        and c.get("status") == "False" and c.get("reason") == "Unschedulable"), None)
    if unscheduled is not None and waited >= unschedulable_after:
        return result.failed("Unschedulable", f"no node took the server pod {name} for {unschedulable_after:g}s: "
                             f"{unscheduled.get('message', '').strip()} (nodeSelector "
                             f"{pod.get('spec', {}).get('nodeSelector') or {}}); check the platform's nodeSelector, "
                             "tolerations and resources (with spec.serving.hostNetwork, a server of another trial may "
                             "hold the port on the node)", since, now, host, None)
    if waited >= serving.readiness_timeout_seconds:
        waiting = _waiting_reason(pod)
        return result.failed(SERVER_NOT_READY, f"the server pod {name} was not Ready within "
                             f"spec.serving.readinessTimeout ({serving.readiness_timeout}; phase "
                             f"{status.get('phase', 'unknown')}{', ' + waiting if waiting else ''}): its readiness "
                             f"probe GET {serving.readiness_path} on port {serving.port} never answered 200; raise "
                             "readinessTimeout or check the server's command and port", since, now, host, None)
    return None


def _server_terminated(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    for cs in pod.get("status", {}).get("containerStatuses") or []:
        if cs.get("name") == SERVER_CONTAINER:
            return (cs.get("state") or {}).get("terminated") or {}
    return {}


def _waiting_reason(pod: Mapping[str, Any]) -> str:
    for cs in pod.get("status", {}).get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            return f"{waiting['reason']}: {waiting.get('message', '')}".rstrip(": ")
    return ""


def serving_outcome(status: BenchmarkTrialStatus, server: Mapping[str, Any] | None) -> BenchmarkTrialStatus:
    """The load Job's outcome as the trial's: the server pod is what was measured (Prometheus reads it), the
    load pod is where the client ran; a failed load Job is ``LoadFailed`` with its own message."""
    load_pod = status.host.get("pod")
    if load_pod is not None:
        status.host["loadPod"] = load_pod
    if server is not None:
        status.host["pod"] = server["metadata"]["name"]
        node = server.get("spec", {}).get("nodeName")
        if node:
            status.host["node"] = node
        status.host["serverAddress"] = server_address(server)
    if status.phase == "Failed" and status.reason in (result.CRASHED, result.NO_RESULT):
        status.reason = LOAD_FAILED
        status.message = f"the load Job failed: {status.message}"
    return status

