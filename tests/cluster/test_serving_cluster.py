"""A serving sweep on the real node: the server as a pod with a Service, the load as a Job, the server's
percentiles through a real Prometheus, and replicas for a throughput target from the measured rate.

The operator runs in-process (as in test_operator.py); the built-in server
(``hwmatch-bench serve onnx-mlp-server``) and the load Job (``hwmatch-bench
load``: vegeta, in the benchmark image) run in containers on ``local-0``.
This cluster's pods sit on a CNI bridge that the host — where the kubelet
probes and Prometheus scrapes from — cannot reach, and there is no
kube-proxy: the asset sets ``spec.serving.hostNetwork`` (docs/serving.md), so
the server's pod IP is the node's (127.0.0.1). Prometheus finds the server
as its Kubernetes pod discovery would (:class:`ServerDiscovery`: the pods
labelled ``hwmatch.dev/role=server``, with ``namespace`` and ``pod`` labels
from their metadata — the series the operator's ``{pod_selector}`` selects).

Small on purpose (the machine has 2 cores, shared): 3 rates × 1
configuration, 3 s measured after 1 s of warm-up. Three rates, not two: a
surrogate needs three distinct configurations to be cross-validated at all
(with two it is the mean of the rows, blind to the rate, and every rate would
get the same replicas), and repetitions do not count as configurations.
"""

from __future__ import annotations

import json
import math
import os
import threading
from pathlib import Path

import pytest

from tests.cluster.helpers import wait_until
from tests.cluster.test_operator import GROUP, VERSION, _apply, _condition, _get, _trials, operator
from tests.fixtures.cluster import LOCAL_NODE_SELECTOR, LOCAL_TOLERATIONS
from tests.fixtures.prometheus import free_port

pytestmark = pytest.mark.cluster

RATES = (10, 25, 40)
TARGET = 100.0  # requests/s to serve: replicas from the highest measured rate per replica under the SLO
#: One small request (8x8 digit): a few ms of server CPU, so both rates stay under the SLO on a busy machine.
BODY = '{"instances": [[' + ",".join(["0"] * 64) + "]]}"


def _docs(image: str, port: int) -> list[dict]:
    api = f"{GROUP}/{VERSION}"
    asset = {"apiVersion": api, "kind": "AIAsset", "metadata": {"name": "digits-server"}, "spec": {
        "image": image, "command": ["hwmatch-bench", "serve", "onnx-mlp-server"],
        "parameters": [{"name": "requests_per_second", "type": "int", "values": list(RATES)},
                       {"name": "max_batch", "type": "int", "values": [1]}],
        "serving": {"port": port, "readinessTimeout": "90s", "hostNetwork": True,
                    "latencyHistogram": "hwmatch_request_duration_seconds",
                    "request": {"path": "/v1/predict", "body": BODY},
                    "load": {"duration": "3s", "warmup": "1s", "requestTimeout": "2s"}},
        "metrics": [{"name": "latency_p99_ms", "goal": "minimize", "unit": "ms"},
                    {"name": "latency_p50_ms", "goal": "minimize", "unit": "ms"},
                    {"name": "throughput_per_s", "goal": "maximize", "unit": "1/s"},
                    {"name": "offered_rate_per_s", "unit": "1/s"},
                    {"name": "error_rate", "goal": "minimize"}]}}
    sweep = {"apiVersion": api, "kind": "BenchmarkSweep", "metadata": {"name": "digits-server"}, "spec": {
        "assetRef": {"name": "digits-server"},
        "platforms": [{"name": "local", "nodeSelector": LOCAL_NODE_SELECTOR, "tolerations": LOCAL_TOLERATIONS,
                       "resources": {"limits": {"cpu": "1", "memory": "768Mi"}}, "threads": 1, "costPerHour": 0.05}],
        "sampling": {"strategy": "grid", "repetitions": 1, "seed": 3},
        "parallelism": 1, "trialTimeout": "3m"}}
    rec = {"apiVersion": api, "kind": "HWRecommendation", "metadata": {"name": "digits-server"}, "spec": {
        "assetRef": {"name": "digits-server"},
        "constraints": [{"metric": "latency_p99_ms", "max": 1000}],
        "throughput": {"requestsPerSecond": TARGET}, "objective": {"minimize": "cost_per_hour"}, "confidence": 0.6}}
    return [asset, sweep, rec]


class ServerDiscovery:
    """Prometheus's targets: the namespace's server pods (label ``hwmatch.dev/role=server``) read from the API.

    What Prometheus's own ``kubernetes_sd_configs`` (role ``pod``) does — which
    Debian's Prometheus build leaves out — written as a ``file_sd_configs``
    file: one target per server pod at its pod IP and port, labelled with its
    ``namespace`` and ``pod``, refreshed every 0.5 s until stopped.
    """

    def __init__(self, cluster, ns: str, port: int, path: Path):
        self.cluster, self.ns, self.port, self.path = cluster, ns, port, path
        self.stop = threading.Event()
        self.path.write_text("[]")
        self.thread = threading.Thread(target=self._run, name="server-discovery", daemon=True)

    def scrape_config(self) -> dict:
        return {"job_name": "hwmatch-serving", "scrape_interval": "1s",
                "file_sd_configs": [{"files": [str(self.path)], "refresh_interval": "1s"}]}

    def _run(self) -> None:
        while not self.stop.wait(0.5):
            try:
                pods = self.cluster.core.list_namespaced_pod(self.ns, label_selector="hwmatch.dev/role=server").items
            except Exception:  # the API server busy for a moment: try again
                continue
            groups = [{"targets": [f"{p.status.pod_ip}:{self.port}"],
                       "labels": {"namespace": self.ns, "pod": p.metadata.name}}
                      for p in pods if p.status.pod_ip and p.metadata.deletion_timestamp is None]
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(groups))
            os.replace(tmp, self.path)  # whole files only: Prometheus may read at any moment


def test_a_serving_sweep_runs_server_pods_and_load_jobs_and_sizes_replicas_from_the_rate(
        crds_installed, k8s_namespace, prometheus_server, hwmatch_images, tmp_path, request) -> None:
    cluster, ns = crds_installed, k8s_namespace
    port = free_port()  # hostNetwork: the server listens on this machine
    discovery = ServerDiscovery(cluster, ns, port, tmp_path / "servers.json")
    prometheus = prometheus_server(scrape_configs=[discovery.scrape_config()])
    discovery.thread.start()
    request.addfinalizer(discovery.stop.set)
    seen: dict[str, dict] = {}  # what the trial's objects looked like while it ran

    def watch() -> None:
        for pod in cluster.core.list_namespaced_pod(ns, label_selector="hwmatch.dev/role").items:
            key = f"pod/{pod.metadata.labels['hwmatch.dev/role']}/{pod.metadata.name}"
            if pod.spec.node_name or key not in seen:  # the latest look, once scheduled
                seen[key] = {"owner": pod.metadata.owner_references[0].kind, "node": pod.spec.node_name,
                             "trial": pod.metadata.labels["hwmatch.dev/trial"]}
        for svc in cluster.core.list_namespaced_service(ns).items:
            seen.setdefault(f"service/{svc.metadata.name}", {"clusterIP": svc.spec.cluster_ip,
                                                              "owner": svc.metadata.owner_references[0].kind})

    with operator(cluster, ns, prometheus_url=prometheus.url, scrape_interval=1.0, unschedulable_timeout=60):
        _apply(cluster, ns, _docs(hwmatch_images.benchmark, port))

        def done() -> dict | None:
            watch()
            s = _get(cluster, ns, "benchmarksweeps", "digits-server")
            return s if _condition(s, "Ready").get("status") == "True" else None

        wait_until("the serving sweep to complete", done, timeout=150, interval=1)
        trials = wait_until("the server-side percentiles of every trial", lambda: (
            ts := _trials(cluster, ns, "digits-server")) and all(
                _condition(t, "Telemetry").get("reason") not in (None, "Pending") for t in ts) and ts,
            timeout=30, interval=1)
        rows = sorted(((t["spec"]["parameters"]["requests_per_second"], t["status"]) for t in trials),
                      key=lambda r: r[0])
        print("\nrate | client p50 p90 p99 ms | server p50 p90 p99 ms | achieved/s errors | message")
        for rate, st in rows:
            m = st.get("metrics", {})
            print(f"{rate:4d} | {m.get('latency_p50_ms', math.nan):.2f} {m.get('latency_p90_ms', math.nan):.2f} "
                  f"{m.get('latency_p99_ms', math.nan):.2f} | {m.get('server_latency_p50_ms', math.nan):.2f} "
                  f"{m.get('server_latency_p90_ms', math.nan):.2f} {m.get('server_latency_p99_ms', math.nan):.2f} | "
                  f"{m.get('throughput_per_s', math.nan):.1f} {m.get('error_rate', math.nan):.3f} | {st.get('message')}")
        assert [r for r, _ in rows] == list(RATES)
        for rate, st in rows:
            assert st["phase"] == "Succeeded", (st.get("reason"), st.get("message"), st.get("logTail"))
            m = st["metrics"]
            # The client side (vegeta in the load Job) and the server side (its histogram, through Prometheus).
            assert m["offered_rate_per_s"] == pytest.approx(rate, rel=0.05) and m["error_rate"] == 0
            assert m["throughput_per_s"] == pytest.approx(rate, rel=0.25)
            assert 0 < m["latency_p50_ms"] <= m["latency_p99_ms"]
            assert 0 < m["server_latency_p50_ms"] <= m["server_latency_p99_ms"], st
            assert _condition({"status": st}, "Telemetry")["reason"] == "Collected", st["conditions"]
            host = st["host"]
            assert host["pod"].endswith("-server") and host["node"] == "local-0" and host["loadPod"]
            assert host["measurement"]["samples"] >= rate * 3 * 0.9
        # Every trial ran as a server pod and a Service owned by it, and a load Job on the same node.
        servers = {k: v for k, v in seen.items() if k.startswith("pod/server/")}
        loads = {k: v for k, v in seen.items() if k.startswith("pod/load/")}
        assert {v["trial"] for v in servers.values()} == {t["metadata"]["name"] for t in trials}, seen
        assert all(v["owner"] == "BenchmarkTrial" and v["node"] == "local-0" for v in servers.values()), seen
        assert {v["trial"] for v in loads.values()} == {t["metadata"]["name"] for t in trials}, seen
        services = [v for k, v in seen.items() if k.startswith("service/")]
        assert services and all(v["clusterIP"] == "None" and v["owner"] == "BenchmarkTrial" for v in services), seen
        # ... and both were removed when it ended (the load Jobs too, once the results were in, like batch trials').
        wait_until("the server pods and Services to be removed", lambda: not cluster.core.list_namespaced_pod(
            ns, label_selector="hwmatch.dev/role=server").items and not cluster.core.list_namespaced_service(ns).items,
            timeout=60, interval=1)

        # The recommendation: replicas for TARGET from the rate per replica measured under the SLO.
        def solved() -> dict | None:
            rec = _get(cluster, ns, "hwrecommendations", "digits-server")
            models = rec.get("status", {}).get("models", {})
            return rec if models and all(m["trainedOnTrials"] == len(RATES) for m in models.values()) and \
                rec["status"].get("recommendation") else None

        try:
            rec = wait_until("the recommendation to learn from every trial", solved, timeout=90, interval=2)
        except AssertionError as exc:
            status = _get(cluster, ns, "hwrecommendations", "digits-server").get("status", {})
            raise AssertionError(f"{exc}; phase {status.get('phase')}, conditions {status.get('conditions')}") from None
        choice = rec["status"]["recommendation"]
        print("recommendation:", choice)
        assert rec["status"]["phase"] == "Ready", rec["status"]["conditions"]
        assert choice["parameters"]["requests_per_second"] == RATES[-1]  # the highest rate that meets the SLO
        # The fewest replicas whose lower-bound throughput covers TARGET, none counted on beyond its offered rate.
        predicted = choice["predicted"]
        per_replica = min(predicted["throughput_per_s"]["lower"], predicted["offered_rate_per_s"]["value"])
        assert choice["replicas"] == math.ceil(TARGET / per_replica) == math.ceil(TARGET / RATES[-1]), choice
        slower = [a for a in rec["status"].get("alternatives", [])
                  if a["parameters"]["requests_per_second"] < RATES[-1]]
        assert all(a["replicas"] > choice["replicas"] for a in slower), slower
