"""Serving trials in a cluster, without one: the server pod, Service and load Job, and the reconcile passes.

The manifests are pure functions (hwmatch.execution.kubernetes_serving); the
passes run the sweep reconciler on the in-memory API of test_controller, with
what the kubelet and the Job controller would do written by hand: the server
pod turns Ready, the load Job's pod ends with the client-side result.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

import pytest

from hwmatch.api import AIAsset, BenchmarkSweep, load_text
from hwmatch.controller.kube import ASSETS, SWEEPS, TRIALS
from hwmatch.execution.kubernetes import LABEL_TRIAL
from hwmatch.execution.kubernetes_serving import (
    LABEL_ROLE,
    LOAD_FAILED,
    SERVER_FAILED,
    SERVER_NOT_READY,
    load_job_manifest,
    server_failure,
    server_name,
    server_pod_manifest,
    server_service_manifest,
)
from hwmatch.planning import Planner
from tests.unit.test_controller import NS, Events, FakeKube, _match, _named, _reconciler

MANIFESTS = """
apiVersion: hwmatch.dev/v1alpha1
kind: AIAsset
metadata: {name: digits}
spec:
  image: ghcr.io/hwmatch/benchmark:0.1
  command: [hwmatch-bench, serve, onnx-mlp-server]
  parameters:
    - {name: requests_per_second, type: int, values: [20, 80]}
    - {name: max_batch, type: int, values: [4]}
  serving:
    port: 18601
    readinessTimeout: 30s
    latencyHistogram: hwmatch_request_duration_seconds
    request: {path: /v1/predict, body: '{"instances": [[0]]}'}
    load: {duration: 4s, warmup: 1s, requestTimeout: 2s}
  metrics:
    - {name: latency_p99_ms, goal: minimize, unit: ms}
    - {name: throughput_per_s, goal: maximize, unit: "1/s"}
    - {name: offered_rate_per_s, unit: "1/s"}
---
apiVersion: hwmatch.dev/v1alpha1
kind: BenchmarkSweep
metadata: {name: digits-sweep}
spec:
  assetRef: {name: digits}
  platforms:
    - name: local-1cpu
      nodeSelector: {kubernetes.io/hostname: local-0}
      tolerations: [{key: hwmatch.dev/real-node, operator: Exists, effect: NoSchedule}]
      resources: {limits: {cpu: "1", memory: 512Mi}}
      threads: 1
  trialTimeout: 2m
  parallelism: 1
"""
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


@pytest.fixture
def objects() -> tuple[AIAsset, BenchmarkSweep]:
    asset, sweep = (d.resource for d in load_text(MANIFESTS))
    return asset, sweep


@pytest.fixture
def trial(objects):
    asset, sweep = objects
    t = Planner(asset, sweep).plan()[0]
    t.metadata.uid = "uid-123"
    return t


def _env(container: Mapping[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"]}


def test_the_server_pod_is_placed_like_a_trial_and_probed_by_the_kubelet(objects, trial) -> None:
    asset, sweep = objects
    pod = server_pod_manifest(trial, asset, sweep)
    meta, spec = pod["metadata"], pod["spec"]
    assert pod["kind"] == "Pod" and meta["name"] == f"{trial.metadata.name}-server"
    assert meta["labels"][LABEL_TRIAL] == trial.metadata.name and meta["labels"][LABEL_ROLE] == "server"
    assert meta["ownerReferences"][0]["kind"] == "BenchmarkTrial" and meta["ownerReferences"][0]["uid"] == "uid-123"
    assert meta["annotations"]["prometheus.io/port"] == "18601"
    assert spec["nodeSelector"] == {"kubernetes.io/hostname": "local-0"} and spec["tolerations"][0]["operator"] == "Exists"
    assert spec["restartPolicy"] == "Never" and spec["activeDeadlineSeconds"] == 120
    assert "hostNetwork" not in spec
    (container,) = spec["containers"]
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "512Mi"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 18601, "protocol": "TCP"}]
    env = _env(container)
    # The server does not receive the rate: it is the load's, not the server's parameter.
    assert json.loads(env["HWMATCH_PARAMS"]) == {"max_batch": 4}
    assert env["HWMATCH_SERVING_PORT"] == "18601" and env["OMP_NUM_THREADS"] == "1"


def test_host_network_puts_server_and_load_on_the_node(objects, trial) -> None:
    asset, sweep = objects
    serving = asset.spec.serving.model_copy(update={"host_network": True})
    asset = asset.model_copy(update={"spec": asset.spec.model_copy(update={"serving": serving})})
    for spec in (server_pod_manifest(trial, asset, sweep)["spec"],
                 load_job_manifest(trial, asset, sweep, "10.0.0.5", 1.0)["spec"]["template"]["spec"]):
        assert spec["hostNetwork"] is True and spec["dnsPolicy"] == "ClusterFirstWithHostNet"


def test_the_service_is_headless_and_selects_only_the_server(objects, trial) -> None:
    asset, _ = objects
    svc = server_service_manifest(trial, asset)
    assert svc["metadata"]["name"] == server_name(trial) and svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["selector"] == {**{k: v for k, v in svc["metadata"]["labels"].items()
                                          if k.startswith("hwmatch.dev/")}}
    assert svc["spec"]["selector"][LABEL_ROLE] == "server"
    assert svc["spec"]["ports"] == [{"name": "http", "port": 18601, "targetPort": "http", "protocol": "TCP"}]


def test_long_trial_names_give_a_dns_label_that_stays_unique() -> None:
    a, b = "x" * 60 + "-a", "x" * 60 + "-b"
    assert len(server_name(a)) <= 63 and server_name(a) != server_name(b) and server_name(a).endswith("-server")
    assert server_name("short") == "short-server"


def test_the_load_job_aims_at_the_server_pod_at_the_trials_rate(objects, trial) -> None:
    asset, sweep = objects
    job = load_job_manifest(trial, asset, sweep, "10.88.0.7", scrape_interval=2.0)
    assert job["metadata"]["name"] == trial.metadata.name and job["spec"]["backoffLimit"] == 0
    pod = job["spec"]["template"]["spec"]
    assert job["spec"]["template"]["metadata"]["labels"][LABEL_ROLE] == "load"
    (container,) = pod["containers"]
    assert container["name"] == "trial" and container["command"] == ["hwmatch-bench", "load"]
    assert "resources" not in container and pod["nodeSelector"] == {"kubernetes.io/hostname": "local-0"}
    args = dict(zip(container["args"][::2], container["args"][1::2]))
    rate = trial.spec.parameters["requests_per_second"]
    assert args["--url"] == "http://10.88.0.7:18601/v1/predict" and args["--ready-url"] == "http://10.88.0.7:18601/healthz"
    assert args["--rate"] == f"{rate:g}" and args["--duration"] == "4" and args["--warmup"] == "1"
    assert args["--pause"] == "5" and args["--timeout"] == "2"  # 2.5 scrape intervals
    assert _env(container)["HWMATCH_SERVING_BODY"] == '{"instances": [[0]]}'
    assert container["image"] == "ghcr.io/hwmatch/benchmark:0.1"
    v6 = load_job_manifest(trial, asset, sweep, "fd00::7", 1.0)["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "http://[fd00::7]:18601/v1/predict" in v6


def _server(phase: str = "Running", ready: bool = False, **status: Any) -> dict:
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    return {"metadata": {"name": "t-server"}, "spec": {"nodeName": "local-0"},
            "status": {"phase": phase, "podIP": "10.88.0.7", "conditions": conditions, **status}}


def test_server_failures_have_reasons(objects) -> None:
    asset, _ = objects
    assert server_failure(_server(ready=True), asset, NOW, NOW + timedelta(seconds=99), 60) is None
    assert server_failure(_server(), asset, NOW, NOW + timedelta(seconds=10), 60) is None
    late = server_failure(_server(), asset, NOW, NOW + timedelta(seconds=31), 60)
    assert late is not None and late.reason == SERVER_NOT_READY and "spec.serving.readinessTimeout (30s" in late.message
    crashed = _server("Failed", containerStatuses=[{"name": "server", "state": {"terminated": {
        "exitCode": 1, "reason": "Error", "message": "Traceback: port in use"}}}])
    failed = server_failure(crashed, asset, NOW, NOW, 60)
    assert failed is not None and failed.reason == SERVER_FAILED and "exit code 1" in failed.message
    assert failed.log_tail == "Traceback: port in use"
    pending = {"metadata": {"name": "t-server"}, "spec": {}, "status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes"}]}}
    refused = server_failure(pending, asset, NOW, NOW + timedelta(seconds=61), 60)
    assert refused is not None and refused.reason == "Unschedulable" and "0/3 nodes" in refused.message


# -- the reconcile passes --------------------------------------------------------------------------


class ServingKube(FakeKube):
    """The in-memory API with server pods and Services (what :class:`~hwmatch.controller.kube.Kube` adds)."""

    def __init__(self) -> None:
        super().__init__()
        self.servers: dict[str, dict] = {}
        self.services_by_name: dict[str, dict] = {}
        self.created: list[str] = []

    def create_object(self, namespace: str, manifest: Mapping[str, Any]) -> bool:
        store = self.servers if manifest["kind"] == "Pod" else self.services_by_name
        name = manifest["metadata"]["name"]
        if name in store:
            return False
        self.created.append(f"{manifest['kind']}/{name}")
        store[name] = {**copy.deepcopy(dict(manifest)), "status": {"phase": "Pending"}}
        store[name]["metadata"]["creationTimestamp"] = datetime.now(timezone.utc).isoformat()
        return True

    def delete_server(self, namespace: str, name: str) -> None:
        self.servers.pop(name, None)
        self.services_by_name.pop(name, None)

    def services(self, namespace: str, labels: Mapping[str, str]) -> list[dict]:
        return [copy.deepcopy(s) for s in self.services_by_name.values() if _match(s, labels)]

    def pods(self, namespace: str, labels: Mapping[str, str], *, key: str | None = None,
             names: Iterable[str] | None = None) -> list[dict]:
        names = None if names is None else list(names)
        return super().pods(namespace, labels, key=key, names=names) + [
            copy.deepcopy(p) for p in self.servers.values() if _match(p, labels) and _named(p, key, names)]

    def ready(self, name: str) -> None:
        self.servers[name]["status"] = {"phase": "Running", "podIP": "10.88.0.7",
                                        "conditions": [{"type": "Ready", "status": "True"}]}


@pytest.fixture
def kube() -> ServingKube:
    k = ServingKube()
    for doc in load_text(MANIFESTS):
        k.put({"AIAsset": ASSETS, "BenchmarkSweep": SWEEPS}[doc.resource.kind], doc.resource.to_wire())
    return k


def _trials(kube: ServingKube) -> dict[str, dict]:
    return {t["metadata"]["name"]: t for t in kube.list(TRIALS, NS)}


def test_a_serving_trial_is_server_then_load_and_every_pass_can_repeat(kube: ServingKube) -> None:
    events = Events()
    r = _reconciler(kube, events)
    r.reconcile(NS, "digits-sweep")
    r.reconcile(NS, "digits-sweep")  # a second pass, as after an interruption: nothing made twice
    (first,) = [n for n, t in _trials(kube).items() if t.get("status", {}).get("phase") == "Running"]
    assert sorted(kube.created) == [f"Pod/{first}-server", f"Service/{first}-server"]
    assert kube.jobs_by_name == {}  # no load before the server is Ready
    assert _trials(kube)[first]["status"]["host"]["pod"] == f"{first}-server"

    kube.ready(f"{first}-server")
    assert r.reconcile(NS, "digits-sweep").requeue_after <= 10
    r.reconcile(NS, "digits-sweep")
    assert list(kube.jobs_by_name) == [first] and kube.jobs_created[first] == 1
    args = kube.jobs_by_name[first]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "http://10.88.0.7:18601/v1/predict" in args

    kube.finish(first, {"latency_p99_ms": 7.0, "throughput_per_s": 20.0, "offered_rate_per_s": 20.0})
    r.reconcile(NS, "digits-sweep")
    status = _trials(kube)[first]["status"]
    assert status["phase"] == "Succeeded" and status["metrics"]["latency_p99_ms"] == 7.0
    # Prometheus reads the server's pod; the client ran in the load Job's.
    assert status["host"]["pod"] == f"{first}-server" and status["host"]["loadPod"] == f"{first}-pod"
    assert f"{first}-server" not in kube.servers and f"{first}-server" not in kube.services_by_name
    # The next rate's server comes only now (parallelism 1).
    assert len([c for c in kube.created if c.startswith("Pod/")]) == 2


def test_a_server_left_by_an_interrupted_pass_is_removed_once_the_trial_ended(kube: ServingKube) -> None:
    r = _reconciler(kube, Events())
    r.reconcile(NS, "digits-sweep")
    (first,) = [n for n, t in _trials(kube).items() if t.get("status", {}).get("phase") == "Running"]
    kube.ready(f"{first}-server")
    r.reconcile(NS, "digits-sweep")
    kube.finish(first, {"latency_p99_ms": 7.0, "throughput_per_s": 20.0, "offered_rate_per_s": 20.0})
    kept = copy.deepcopy(kube.servers[f"{first}-server"]), copy.deepcopy(kube.services_by_name[f"{first}-server"])
    r.reconcile(NS, "digits-sweep")
    kube.servers[f"{first}-server"], kube.services_by_name[f"{first}-server"] = kept  # as if the delete never ran
    # The pass died before its delete (a delete that failed raises, which also makes the next pass a full one):
    # the restarted operator's first pass reads every pod of the sweep, the ended trial's server too.
    _reconciler(kube, Events()).reconcile(NS, "digits-sweep")
    assert f"{first}-server" not in kube.servers and f"{first}-server" not in kube.services_by_name


def test_a_server_never_ready_fails_the_trial_with_the_field_to_change(kube: ServingKube) -> None:
    r = _reconciler(kube, Events())
    r.reconcile(NS, "digits-sweep")
    (first,) = [n for n, t in _trials(kube).items() if t.get("status", {}).get("phase") == "Running"]
    kube.servers[f"{first}-server"]["metadata"]["creationTimestamp"] = "2020-01-01T00:00:00Z"
    r.reconcile(NS, "digits-sweep")
    status = _trials(kube)[first]["status"]
    assert status["phase"] == "Failed" and status["reason"] == SERVER_NOT_READY
    assert "readinessTimeout" in status["message"] and f"{first}-server" not in kube.servers


def test_a_failed_load_job_is_load_failed(kube: ServingKube) -> None:
    r = _reconciler(kube, Events())
    r.reconcile(NS, "digits-sweep")
    (first,) = [n for n, t in _trials(kube).items() if t.get("status", {}).get("phase") == "Running"]
    kube.ready(f"{first}-server")
    r.reconcile(NS, "digits-sweep")
    kube.finish(first, None, exit_code=1)
    r.reconcile(NS, "digits-sweep")
    status = _trials(kube)[first]["status"]
    assert status["phase"] == "Failed" and status["reason"] == LOAD_FAILED
    assert status["message"].startswith("the load Job failed") and f"{first}-server" not in kube.servers


def test_the_operator_example_plans_server_pods_on_its_pool() -> None:
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "operator" / "digits-server.yaml"
    asset, sweep, _rec = (d.resource for d in load_text(path.read_text()))
    trials = Planner(asset, sweep).plan()
    assert len(trials) == 6  # 3 rates x 2 batch sizes
    trial = trials[0]
    trial.metadata.uid = "uid"
    pod = server_pod_manifest(trial, asset, sweep)
    assert pod["spec"]["hostNetwork"] is True and pod["spec"]["nodeSelector"] == {"hwmatch.dev/local": "true"}
