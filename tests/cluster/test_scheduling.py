"""Placement, failure to place, and garbage collection on the local control plane.

Real kube-scheduler and kube-controller-manager (Job, garbage collector); the
node pools are kwok's simulated nodes (hack/nodepools.yaml).
"""

from __future__ import annotations

import time

import pytest

from tests.cluster.helpers import condition, job_manifest, job_pods, wait_until
from tests.fixtures.cluster import GPU_TOLERATIONS

pytestmark = pytest.mark.cluster


def test_node_pools_are_registered_and_ready(k8s_cluster):
    nodes = {n.metadata.name: n for n in k8s_cluster.core.list_node().items}
    pools = {}
    for n in nodes.values():
        pools.setdefault(n.metadata.labels["hwmatch.dev/pool"], []).append(n)
        assert condition(n, "Ready").status == "True", n.metadata.name
    assert {p: len(ns) for p, ns in pools.items()} == {
        "gpu-a100": 2, "gpu-l4": 2, "cpu-x86": 3, "arm64": 2, "local": 1,
    }
    a100 = nodes["gpu-a100-0"]
    assert a100.status.allocatable["nvidia.com/gpu"] == "8"
    assert a100.metadata.labels["cloud.google.com/gke-accelerator"] == "nvidia-tesla-a100"
    assert {(t.key, t.effect) for t in a100.spec.taints or []} >= {("nvidia.com/gpu", "NoSchedule")}
    assert nodes["arm64-1"].metadata.labels["kubernetes.io/arch"] == "arm64"
    assert nodes["local-0"].metadata.labels["hwmatch.dev/local"] == "true"
    assert "kwok.x-k8s.io/node" not in (nodes["local-0"].metadata.annotations or {})


def test_job_with_arm64_node_selector_runs_on_an_arm64_node_and_completes(k8s_cluster, k8s_namespace):
    ns = k8s_namespace
    k8s_cluster.batch.create_namespaced_job(ns, job_manifest("arm", node_selector={"kubernetes.io/arch": "arm64"}))

    job = wait_until(
        "the Job to complete",
        lambda: (j := k8s_cluster.batch.read_namespaced_job("arm", ns)).status.succeeded == 1 and j,
        timeout=90,
    )
    assert condition(job, "Complete").status == "True"
    pods = job_pods(k8s_cluster.core, ns, "arm")
    assert len(pods) == 1
    pod = pods[0]
    assert pod.status.phase == "Succeeded"
    node = k8s_cluster.core.read_node(pod.spec.node_name)
    assert node.metadata.labels["kubernetes.io/arch"] == "arm64"
    assert node.metadata.labels["hwmatch.dev/pool"] == "arm64"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 0


def test_job_asking_for_more_gpus_than_any_node_has_stays_pending_unschedulable(k8s_cluster, k8s_namespace):
    ns = k8s_namespace
    manifest = job_manifest(
        "too-many-gpus",
        tolerations=GPU_TOLERATIONS,
        resources={"limits": {"nvidia.com/gpu": "16"}},  # the largest GPU node has 8
    )
    k8s_cluster.batch.create_namespaced_job(ns, manifest)

    def unschedulable():
        pods = job_pods(k8s_cluster.core, ns, "too-many-gpus")
        if not pods:
            return None
        c = condition(pods[0], "PodScheduled")
        return c is not None and c.status == "False" and (pods[0], c)

    pod, cond = wait_until("PodScheduled=False on the Job's pod", unschedulable, timeout=60)
    assert cond.reason == "Unschedulable"
    assert "nvidia.com/gpu" in cond.message
    # And it stays that way: not bound, Pending, the Job neither succeeded nor failed.
    time.sleep(3)
    pod = k8s_cluster.core.read_namespaced_pod(pod.metadata.name, ns)
    assert pod.status.phase == "Pending"
    assert pod.spec.node_name is None
    job = k8s_cluster.batch.read_namespaced_job("too-many-gpus", ns)
    assert not job.status.succeeded and not job.status.failed


def test_gpu_job_with_toleration_lands_on_a_gpu_node(k8s_cluster, k8s_namespace):
    ns = k8s_namespace
    manifest = job_manifest(
        "l4",
        node_selector={"cloud.google.com/gke-accelerator": "nvidia-l4"},
        tolerations=GPU_TOLERATIONS,
        resources={"limits": {"nvidia.com/gpu": "1"}},
    )
    k8s_cluster.batch.create_namespaced_job(ns, manifest)
    wait_until("the Job to complete",
               lambda: k8s_cluster.batch.read_namespaced_job("l4", ns).status.succeeded == 1, timeout=90)
    (pod,) = job_pods(k8s_cluster.core, ns, "l4")
    assert pod.spec.node_name.startswith("gpu-l4-")


def test_deleting_a_job_garbage_collects_its_pods(k8s_cluster, k8s_namespace):
    ns = k8s_namespace
    # Keep the pod Running (kwok would otherwise complete it within seconds).
    manifest = job_manifest(
        "gc",
        node_selector={"hwmatch.dev/pool": "cpu-x86"},
        annotations={
            "pod-complete.stage.kwok.x-k8s.io/delay": "10m",
            "pod-complete.stage.kwok.x-k8s.io/jitter-delay": "10m",
        },
    )
    job = k8s_cluster.batch.create_namespaced_job(ns, manifest)

    pods = wait_until(
        "the Job's pod to be Running",
        lambda: [p for p in job_pods(k8s_cluster.core, ns, "gc") if p.status.phase == "Running"],
        timeout=60,
    )
    (pod,) = pods
    (owner,) = pod.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid, owner.controller) == ("Job", "gc", job.metadata.uid, True)

    k8s_cluster.batch.delete_namespaced_job("gc", ns, propagation_policy="Background")

    wait_until("the Job to be gone",
               lambda: not any(j.metadata.name == "gc" for j in k8s_cluster.batch.list_namespaced_job(ns).items)
               and "gone", timeout=30)
    wait_until("the garbage collector to delete the pod",
               lambda: not k8s_cluster.core.list_namespaced_pod(ns).items and "gone", timeout=60)
