"""The operator as a user installs it: `helm install` from the image built here, on the real node.

The operator pod runs the operator image on node ``local-0`` (hostNetwork: the
local API server listens on 127.0.0.1 only). Its sweep's trials run the
benchmark image in containers on two real pools of this machine that differ
only by their CPU limit (CFS quota: half a CPU against two), plus a pool whose
memory limit is below what the asset needs. The kubelet enforces the limits,
writes the termination messages and reports the out-of-memory kills.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from tests.cluster.helpers import wait_until
from tests.cluster.test_helm_chart import helm_cmd  # noqa: F401 (fixture)
from tests.cluster.test_operator import _apply, _condition, _custom, _get, _trials
from tests.fixtures.cluster import LOCAL_NODE_SELECTOR, LOCAL_TOLERATIONS
from tests.fixtures.prometheus import free_port
from tests.unit.test_chart import CHART

pytestmark = pytest.mark.cluster

RELEASE = "hwm-real"
ON_THE_NODE = {"nodeSelector": LOCAL_NODE_SELECTOR, "tolerations": LOCAL_TOLERATIONS}
#: Two configurations of a tree ensemble (fully grown extra trees) predicting large batches on one thread: each
#: call needs more CPU time (about 70 and 110 ms) than half a CPU's quota grants per CFS period (50 of 100 ms),
#: so that quota stretches every call, not only those that happen to cross a period's end.
TREES = [200, 300]
PARAMETERS = [
    {"name": "model", "type": "categorical", "values": ["extra_trees"]},
    {"name": "n_estimators", "type": "int", "values": TREES},
    {"name": "max_depth", "type": "int", "values": [32]},
    {"name": "batch_size", "type": "int", "values": [1024]},
    {"name": "n_jobs", "type": "int", "values": [1]},
]


def _platform(name: str, cpu: str, memory: str, cost: float, vcpus: float) -> dict:
    return {"name": name, **ON_THE_NODE, "costPerHour": cost, "features": {"vcpus": vcpus},
            # Requests below the limits: the pools' trials and the operator share the node's two CPUs.
            "resources": {"requests": {"cpu": "100m", "memory": memory}, "limits": {"cpu": cpu, "memory": memory}}}


def _manifests(image: str) -> list[dict]:
    meta = {"apiVersion": "hwmatch.dev/v1alpha1"}
    return [
        {**meta, "kind": "AIAsset", "metadata": {"name": "forest"}, "spec": {
            "image": image, "command": ["hwmatch-bench", "run", "sklearn-forest"],
            "args": ["--warmup", "2", "--samples", "12", "--time-budget", "4"],
            "parameters": PARAMETERS,
            "metrics": [{"name": "latency_p50_ms", "goal": "minimize", "unit": "ms"},
                        {"name": "throughput_per_s", "goal": "maximize", "unit": "1/s"},
                        {"name": "accuracy", "goal": "maximize"}]}},
        {**meta, "kind": "BenchmarkSweep", "metadata": {"name": "pools"}, "spec": {
            "assetRef": {"name": "forest"},
            "platforms": [_platform("cpu-500m", "500m", "1Gi", 0.05, 0.5), _platform("cpu-2", "2", "1Gi", 0.2, 2),
                          _platform("cpu-2-64mi", "2", "64Mi", 0.1, 2)],
            # Two repetitions: 8 succeeded trials, enough for finite intervals at the confidence below.
            "sampling": {"strategy": "grid", "repetitions": 2},
            # One trial at a time: the pools would otherwise share the CPUs they are compared on.
            "parallelism": 1, "trialTimeout": "5m"}},
        {**meta, "kind": "HWRecommendation", "metadata": {"name": "serving"}, "spec": {
            "assetRef": {"name": "forest"}, "platforms": ["cpu-500m", "cpu-2"],
            "constraints": [{"metric": "accuracy", "min": 0.5}],
            "throughput": {"requestsPerSecond": 20, "maxReplicas": 16},
            "objective": {"minimize": "cost_per_hour"}, "confidence": 0.5}},
    ]


def _values(cluster, namespace: str, images) -> dict:
    env = dict(line.split("=", 1) for line in (cluster.dir / "env").read_text().split())
    return {
        "image": {"repository": images.repository, "tag": images.tag, "pullPolicy": "Never"},
        "hostNetwork": True, **ON_THE_NODE,
        "operator": {
            "watchNamespaces": [namespace],
            "metricsPort": free_port(), "livenessPort": free_port(),
            # In the node's network, the API server is where it listens (no kube-proxy for its Service IP).
            "env": [{"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
                    {"name": "KUBERNETES_SERVICE_PORT", "value": env["API_PORT"]}],
        },
        "metrics": {"serviceMonitor": {"enabled": "false"}},
        "crds": {"enabled": False},  # the session's CRDs come from crds/ (crds_installed)
    }


def test_helm_installed_operator_sweeps_the_real_pools_and_recommends(
        crds_installed, k8s_namespace, hwmatch_images, helm_cmd, tmp_path: Path) -> None:  # noqa: F811
    cluster, ns = crds_installed, k8s_namespace
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(_values(cluster, ns, hwmatch_images)))
    helm_cmd("install", RELEASE, str(CHART), "--namespace", ns, "-f", str(values))
    try:
        def available():
            deployment = cluster.apps.read_namespaced_deployment(f"{RELEASE}-hwmatch", ns)
            return (deployment.status.available_replicas or 0) == 1

        try:
            wait_until("the operator's Deployment to be available", available, timeout=300, interval=2)
        finally:
            pods = cluster.core.list_namespaced_pod(ns, label_selector=f"app.kubernetes.io/instance={RELEASE}").items
        (pod,) = pods
        status = pod.status.container_statuses[0]
        assert pod.spec.node_name == "local-0" and status.ready and status.image == hwmatch_images.operator

        _apply(cluster, ns, _manifests(hwmatch_images.benchmark))
        sweep = wait_until("the sweep to complete", lambda: (
            s := _get(cluster, ns, "benchmarksweeps", "pools")) and _condition(s, "Ready").get("status") == "True"
            and s, timeout=900, interval=3)
        trials = _trials(cluster, ns, "pools")
        outcome = defaultdict(list)
        for t in trials:
            outcome[t["spec"]["platform"]].append((t["status"]["phase"], t["status"].get("reason")))
        assert outcome == {"cpu-500m": [("Succeeded", None)] * 4, "cpu-2": [("Succeeded", None)] * 4,
                           "cpu-2-64mi": [("Failed", "OOMKilled")] * 4}, dict(outcome)
        assert sweep["status"]["succeeded"] == 8 and sweep["status"]["failed"] == 4
        assert all(t["status"]["host"]["node"] == "local-0" for t in trials)
        # The kubelet's own word: the OOM-killed pods' container state.
        oom_pods = [p for p in cluster.core.list_namespaced_pod(ns, label_selector="hwmatch.dev/platform=cpu-2-64mi").items]
        assert oom_pods and all(p.status.container_statuses[0].state.terminated.reason == "OOMKilled" for p in oom_pods)

        # Physics: the quota shows in the latency. Per configuration, the slower half-CPU run is slower than the
        # faster two-CPU run. (Not "every run": a two-CPU limit is a ceiling, not a share, so a trial that ran while
        # other processes held the machine's two CPUs can get less than half a CPU; one such run failed the stricter
        # min > max under load.)
        latency = defaultdict(list)
        for t in trials:
            if t["status"]["phase"] == "Succeeded":
                latency[(t["spec"]["platform"], t["spec"]["parameters"]["n_estimators"])].append(
                    t["status"]["metrics"]["latency_p50_ms"])
        for trees in TREES:
            assert max(latency[("cpu-500m", trees)]) > min(latency[("cpu-2", trees)]), dict(latency)

        def solved() -> dict | None:
            rec = _get(cluster, ns, "hwrecommendations", "serving")
            models = rec.get("status", {}).get("models", {})
            return rec if models and all(m["trainedOnTrials"] == 8 for m in models.values()) else None

        rec = wait_until("the recommendation to learn from every trial", solved, timeout=300, interval=3)
        assert rec["status"]["phase"] == "Ready" and _condition(rec, "Ready")["status"] == "True", rec["status"]
        assert rec["status"]["recommendation"]["platform"] in ("cpu-500m", "cpu-2")
        # The operator's log, read through the kubelet: it logged in with its service account's token.
        logs = cluster.kubectl("logs", "-n", ns, pod.metadata.name).stdout
        assert "Activity 'login' succeeded" in logs, logs[-2000:]
    finally:
        cluster.kubectl("delete", "-n", ns, "hwrecommendations,benchmarksweeps,aiassets", "--all", "--wait=true",
                        "--timeout=120s", check=False)
        helm_cmd("uninstall", RELEASE, "--namespace", ns, "--wait", check=False)
        assert not _custom(cluster).list_namespaced_custom_object("hwmatch.dev", "v1alpha1", ns, "benchmarksweeps")["items"]
