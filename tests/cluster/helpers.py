"""Small helpers for the cluster tests: Job manifests and waiting on pods."""

from __future__ import annotations

import time
from typing import Callable

from kubernetes.client.rest import ApiException

#: What the operator's trial Jobs run with (hwmatch.execution.kubernetes): non-root, read-only root, /tmp writable.
RESTRICTED_CONTAINER = {
    "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532, "readOnlyRootFilesystem": True,
                        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
}
RESTRICTED_POD = {"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                  "volumes": [{"name": "tmp", "emptyDir": {}}]}


def job_manifest(name: str, *, command: list[str] | None = None, node_selector: dict | None = None,
                 tolerations: list[dict] | None = None, resources: dict | None = None,
                 env: dict[str, str] | None = None, annotations: dict | None = None,
                 backoff_limit: int = 0, policy: str = "FallbackToLogsOnError",
                 image: str = "ghcr.io/hwmatch/benchmark:test", restricted: bool = False) -> dict:
    """A Job of one container; ``restricted``: with the trial Jobs' security context and /tmp volume."""
    container = {
        "name": "trial",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": command or ["true"],
        "terminationMessagePolicy": policy,
    }
    if restricted:
        container.update(RESTRICTED_CONTAINER)
    if resources:
        container["resources"] = resources
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    pod_spec: dict = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "containers": [container],
    }
    if restricted:
        pod_spec.update(RESTRICTED_POD)
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    if tolerations:
        pod_spec["tolerations"] = tolerations
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations or {}},
                "spec": pod_spec,
            },
        },
    }


def wait_until(what: str, fn: Callable[[], object], timeout: float = 60.0, interval: float = 0.5):
    """Call fn until it returns something truthy; its value. AssertionError after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = fn()
            if value:
                return value
            last = value
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise
            last = f"ApiException {exc.status} {exc.reason}"
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def job_pods(core, namespace: str, job_name: str) -> list:
    return core.list_namespaced_pod(namespace, label_selector=f"job-name={job_name}").items


def condition(obj, type_: str):
    for c in (obj.status.conditions or []) if obj.status else []:
        if c.type == type_:
            return c
    return None
