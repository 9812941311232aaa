"""The real node: pods bound to ``local-0`` run in containers of the built images (kubelet, containerd, runc).

What the kubelet does for real here, and the operator relies on: the image's
command runs as the pod's user on a read-only root file system, the limits
are cgroup limits, the termination message (or, on failure, the log tail)
reaches the pod's status, an out-of-memory kill is reported as ``OOMKilled``,
and ``kubectl logs`` reads the container's output.
"""

from __future__ import annotations

import json

import pytest

from tests.cluster.helpers import job_manifest, job_pods, wait_until
from tests.fixtures.cluster import LOCAL_NODE_SELECTOR, LOCAL_TOLERATIONS

pytestmark = pytest.mark.cluster

#: Inside the container: who it runs as, whether / is writable, and its cgroup v1 limits, as its result.
INSPECT = r"""
import json, os
def read(path):
    with open(path) as f:
        return f.read().strip()
try:
    open("/written", "w")
    root = "writable"
except OSError as exc:
    root = exc.strerror
result = {"metrics": {"uid": os.getuid(), "gid": os.getgid()}, "root": root,
          "cfs_quota_us": int(read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")),
          "cfs_period_us": int(read("/sys/fs/cgroup/cpu/cpu.cfs_period_us")),
          "memory_limit": int(read("/sys/fs/cgroup/memory/memory.limit_in_bytes"))}
open("/dev/termination-log", "w").write(json.dumps(result))
print("inspected")
"""


def _job(name: str, image: str, command: list[str], **kw) -> dict:
    return job_manifest(name, image=image, command=command, node_selector=LOCAL_NODE_SELECTOR,
                        tolerations=LOCAL_TOLERATIONS, restricted=True, **kw)


def _finished_pod(cluster, ns: str, job: str, timeout: float = 180):
    def done():
        pods = job_pods(cluster.core, ns, job)
        return pods and pods[0].status.phase in ("Succeeded", "Failed") and pods[0]

    return wait_until(f"the pod of Job {job} to finish", done, timeout=timeout, interval=1)


def _terminated(pod):
    (status,) = pod.status.container_statuses
    return status.state.terminated


def test_hwmatch_bench_runs_in_the_benchmark_image_and_its_result_reaches_the_pod_status(
        k8s_cluster, k8s_namespace, hwmatch_images) -> None:
    ns = k8s_namespace
    command = ["hwmatch-bench", "run", "sklearn-forest", "--param", "n_estimators=5", "--warmup", "1", "--samples", "5"]
    k8s_cluster.batch.create_namespaced_job(ns, _job("bench", hwmatch_images.benchmark, command,
                                                     resources={"limits": {"cpu": "1", "memory": "512Mi"}}))
    pod = _finished_pod(k8s_cluster, ns, "bench")
    term = _terminated(pod)
    assert pod.status.phase == "Succeeded", f"{term.exit_code} {term.reason}: {term.message}"
    assert pod.spec.node_name == "local-0" and term.exit_code == 0 and term.reason == "Completed"
    result = json.loads(term.message)
    assert 0 < result["metrics"]["accuracy"] <= 1 and result["parameters"]["n_estimators"] == 5, result
    assert pod.status.container_statuses[0].image_id, "the kubelet reports the image it ran"
    # The container's stdout, through the API server and the kubelet: the same result as the last line.
    logs = k8s_cluster.kubectl("logs", "-n", ns, pod.metadata.name).stdout
    assert json.loads(logs.strip().splitlines()[-1])["metrics"] == result["metrics"]


def test_the_security_context_and_the_limits_are_enforced_in_the_container(
        k8s_cluster, k8s_namespace, hwmatch_images) -> None:
    ns = k8s_namespace
    k8s_cluster.batch.create_namespaced_job(ns, _job("inspect", hwmatch_images.benchmark, ["python3", "-c", INSPECT],
                                                     resources={"limits": {"cpu": "500m", "memory": "256Mi"}}))
    pod = _finished_pod(k8s_cluster, ns, "inspect")
    term = _terminated(pod)
    assert pod.status.phase == "Succeeded", f"{term.exit_code} {term.reason}: {term.message}"
    seen = json.loads(term.message)
    assert seen["metrics"] == {"uid": 65532, "gid": 65532} and seen["root"] == "Read-only file system", seen
    # 500m: half of each CFS period; 256Mi: the memory cgroup's limit.
    assert seen["cfs_quota_us"] * 2 == seen["cfs_period_us"], seen
    assert seen["memory_limit"] == 256 * 2**20, seen


def test_a_container_over_its_memory_limit_is_oom_killed(k8s_cluster, k8s_namespace, hwmatch_images) -> None:
    ns = k8s_namespace
    grow = "import time\nblocks = []\nwhile True:\n    blocks.append(bytearray(16 * 2**20))\n    time.sleep(0.01)"
    k8s_cluster.batch.create_namespaced_job(ns, _job("hog", hwmatch_images.benchmark, ["python3", "-c", grow],
                                                     resources={"limits": {"cpu": "500m", "memory": "96Mi"}}))
    pod = _finished_pod(k8s_cluster, ns, "hog")
    term = _terminated(pod)
    assert pod.status.phase == "Failed"
    assert (term.exit_code, term.reason) == (137, "OOMKilled"), term


def test_a_failed_container_leaves_its_log_tail_as_the_message(k8s_cluster, k8s_namespace, hwmatch_images) -> None:
    ns = k8s_namespace
    script = "import sys; print('loading model'); print('boom: out of patience', file=sys.stderr); sys.exit(3)"
    k8s_cluster.batch.create_namespaced_job(ns, _job("fails", hwmatch_images.benchmark, ["python3", "-c", script]))
    pod = _finished_pod(k8s_cluster, ns, "fails")
    term = _terminated(pod)
    assert pod.status.phase == "Failed" and (term.exit_code, term.reason) == (3, "Error")
    assert "loading model" in term.message and "boom: out of patience" in term.message


def test_a_command_missing_from_the_image_fails_the_pod_and_names_it(
        k8s_cluster, k8s_namespace, hwmatch_images) -> None:
    ns = k8s_namespace
    k8s_cluster.batch.create_namespaced_job(ns, _job("nocmd", hwmatch_images.benchmark, ["no-such-command-hwmatch"]))
    pod = _finished_pod(k8s_cluster, ns, "nocmd")
    term = _terminated(pod)
    assert pod.status.phase == "Failed" and term.reason == "StartError", term
    assert "no-such-command-hwmatch" in term.message
