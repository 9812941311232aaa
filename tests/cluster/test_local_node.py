"""Pods bound to the local node really run on this machine (hack/local_kubelet.py)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import time

import pytest

from tests.cluster.helpers import job_manifest, job_pods, wait_until
from tests.fixtures.cluster import LOCAL_NODE_SELECTOR, LOCAL_TOLERATIONS

pytestmark = pytest.mark.cluster

WRITE_RESULT = r"""
import json, os, platform, sys
params = json.loads(os.environ["HWMATCH_PARAMS"])
result = {"metrics": {"square": params["x"] ** 2}, "node": os.environ["NODE"], "pid": os.getpid()}
open(os.environ["MARKER"], "w").write(json.dumps(result))
open(os.environ["HWMATCH_TERMINATION_LOG"], "w").write(json.dumps(result))
print(json.dumps(result))
"""


def _local_job(name: str, command: list[str], **kw) -> dict:
    return job_manifest(name, command=command, node_selector=LOCAL_NODE_SELECTOR, tolerations=LOCAL_TOLERATIONS, **kw)


def _finished_pod(k8s_cluster, ns: str, job: str, timeout: float = 90):
    def done():
        pods = job_pods(k8s_cluster.core, ns, job)
        return pods and pods[0].status.phase in ("Succeeded", "Failed") and pods[0]

    return wait_until(f"the pod of Job {job} to finish", done, timeout=timeout)


def test_local_pod_really_runs_and_its_termination_message_reaches_the_pod_status(k8s_cluster, k8s_namespace, tmp_path):
    ns = k8s_namespace
    marker = tmp_path / "ran-here.json"
    manifest = _local_job("square", ["python", "-c", WRITE_RESULT],
                          env={"HWMATCH_PARAMS": json.dumps({"x": 7}), "MARKER": str(marker)})
    # $(VAR) expansion and fieldRef env, as a kubelet does them.
    manifest["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}})
    k8s_cluster.batch.create_namespaced_job(ns, manifest)

    pod = _finished_pod(k8s_cluster, ns, "square")
    assert pod.spec.node_name == "local-0"
    assert pod.status.phase == "Succeeded", pod.status
    (cs,) = pod.status.container_statuses
    term = cs.state.terminated
    assert term.exit_code == 0 and term.reason == "Completed"
    message = json.loads(term.message)
    assert message["metrics"] == {"square": 49}
    assert message["node"] == "local-0"
    # The process really ran on this machine: it left the marker file here.
    assert json.loads(marker.read_text()) == message
    wait_until("the Job to complete",
               lambda: k8s_cluster.batch.read_namespaced_job("square", ns).status.succeeded == 1, timeout=60)


def test_failed_local_pod_falls_back_to_its_log_tail(k8s_cluster, k8s_namespace):
    ns = k8s_namespace
    script = "import sys; print('loading model'); print('boom: out of patience', file=sys.stderr); sys.exit(3)"
    k8s_cluster.batch.create_namespaced_job(ns, _local_job("fails", ["python", "-c", script]))

    pod = _finished_pod(k8s_cluster, ns, "fails")
    assert pod.status.phase == "Failed"
    term = pod.status.container_statuses[0].state.terminated
    assert term.exit_code == 3 and term.reason == "Error"
    assert "loading model" in term.message and "boom: out of patience" in term.message


def test_unknown_command_fails_the_pod_with_a_message(k8s_cluster, k8s_namespace):
    ns = k8s_namespace
    k8s_cluster.batch.create_namespaced_job(ns, _local_job("nocmd", ["no-such-command-hwmatch"]))
    pod = _finished_pod(k8s_cluster, ns, "nocmd")
    assert pod.status.phase == "Failed"
    assert "no-such-command-hwmatch" in pod.status.container_statuses[0].state.terminated.message


def test_deleting_a_local_pod_kills_its_process(k8s_cluster, k8s_namespace, tmp_path):
    ns = k8s_namespace
    pidfile = tmp_path / "pid"
    script = f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(600)"
    pod = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sleeper"},
        "spec": {"restartPolicy": "Never", "nodeSelector": LOCAL_NODE_SELECTOR, "tolerations": LOCAL_TOLERATIONS,
                 "terminationGracePeriodSeconds": 5,
                 "containers": [{"name": "main", "image": "ignored", "command": ["python", "-c", script]}]},
    }
    k8s_cluster.core.create_namespaced_pod(ns, pod)
    wait_until("the pod to be Running",
               lambda: k8s_cluster.core.read_namespaced_pod("sleeper", ns).status.phase == "Running", timeout=60)
    pid = int(wait_until("the process to start", lambda: pidfile.exists() and pidfile.read_text(), timeout=30))
    assert os.path.exists(f"/proc/{pid}")

    k8s_cluster.core.delete_namespaced_pod("sleeper", ns)
    wait_until("the pod to be gone", lambda: not k8s_cluster.core.list_namespaced_pod(ns).items, timeout=30)
    wait_until("the process to be gone", lambda: not os.path.exists(f"/proc/{pid}") or _zombie(pid), timeout=10)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def test_hwmatch_bench_trial_on_the_local_node(k8s_cluster, k8s_namespace):
    """The real benchmark harness, as the operator will run it, on this machine."""
    venv_bin = os.path.dirname(sys.executable)  # the local kubelet resolves commands here first
    try:
        has_cli = importlib.util.find_spec("hwmatch.harness.cli") is not None
    except ImportError:
        has_cli = False
    if not has_cli or shutil.which("hwmatch-bench", path=f"{venv_bin}:{os.environ.get('PATH', '')}") is None:
        pytest.skip("hwmatch-bench (hwmatch.harness.cli) is not available in this environment yet")
    ns = k8s_namespace
    k8s_cluster.batch.create_namespaced_job(
        ns, _local_job("bench", ["hwmatch-bench", "run", "sklearn-forest", "--param", "n_estimators=5"]))
    t0 = time.monotonic()
    pod = _finished_pod(k8s_cluster, ns, "bench", timeout=300)
    term = pod.status.container_statuses[0].state.terminated
    assert pod.status.phase == "Succeeded", f"{term.exit_code}: {term.message}"
    result = json.loads(term.message)
    assert result["metrics"], result
    assert time.monotonic() - t0 < 300
