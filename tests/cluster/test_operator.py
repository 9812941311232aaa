"""The operator on the real local control plane: sweeps run as Jobs, recommendations are answered, restarts are safe.

The operator runs in-process (a thread running kopf) against the test
cluster's kubeconfig, scoped to the test's namespace. Trials on the local
platform really run ``hwmatch-bench`` in containers of the benchmark image on
this machine (node ``local-0``, the real kubelet);
kwok's pool completes pods without running them (NoResult), and a platform
whose nodes do not exist stays unschedulable (Unschedulable).
"""

from __future__ import annotations

import copy
import json
import threading
from collections import Counter
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from hwmatch.controller.config import OperatorConfig
from hwmatch.controller.handlers import LEGACY_FINALIZER
from hwmatch.controller.runner import run
from tests.cluster.helpers import wait_until
from tests.cluster.test_operator_ha import job_watch  # noqa: F401 (fixture)
from tests.fixtures.prometheus import free_port
from tests.health_checks import argocd_health, flux_status

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "operator" / "digits-forest.yaml"
GROUP, VERSION = "hwmatch.dev", "v1alpha1"


@contextmanager
def operator(cluster, namespace: str, clean_up: bool = True, **settings) -> Iterator[None]:
    """The operator in a thread, watching ``namespace``, until the block ends.

    With ``clean_up`` it deletes the namespace's hwmatch objects before it stops, pass or fail (the objects
    carry no finalizer: they would go without it too, see test_objects_are_deleted_while_no_operator_runs).
    """
    config = OperatorConfig(**{"namespaces": (namespace,), "kubeconfig": cluster.kubeconfig, "metrics_port": None,
                               "liveness_port": None, "resync": 5, **settings})
    stop, ready = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def main() -> None:
        try:
            run(config, stop_flag=stop, ready_flag=ready)
        except BaseException as exc:  # surfaced by the test, not lost in the thread
            errors.append(exc)

    thread = threading.Thread(target=main, name=f"operator-{namespace}", daemon=True)
    thread.start()
    assert ready.wait(60) or errors, "the operator did not get ready in 60 s"
    try:
        yield
    finally:
        if clean_up:
            cluster.kubectl("delete", "-n", namespace, "hwrecommendations,benchmarksweeps,aiassets", "--all",
                            "--wait=true", "--timeout=60s", check=False)
        stop.set()
        thread.join(60)
        assert not thread.is_alive(), "the operator did not stop within 60 s"
        assert not errors, errors


def _custom(cluster):
    from kubernetes import client

    return client.CustomObjectsApi(cluster.api_client)


def _get(cluster, ns: str, plural: str, name: str) -> dict:
    return _custom(cluster).get_namespaced_custom_object(GROUP, VERSION, ns, plural, name)


def _trials(cluster, ns: str, sweep: str) -> list[dict]:
    return _custom(cluster).list_namespaced_custom_object(
        GROUP, VERSION, ns, "benchmarktrials", label_selector=f"hwmatch.dev/sweep={sweep}")["items"]


def _condition(obj: dict, type_: str) -> dict:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_), {})


def _apply(cluster, ns: str, docs: list[dict]) -> None:
    cluster.kubectl("apply", "--server-side", "-n", ns, "-f", "-", input=yaml.safe_dump_all(docs))


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


#: A Prometheus metric every trial has: the trial's window as the operator passed it. It reads ``up``, which
#: Prometheus writes itself at every scrape of the operator's /metrics, answered or not; a series the operator
#: serves (python_info) has gaps when a loaded operator misses the 1 s scrape timeout, and a trial whose
#: window fell in a gap lacked the metric for good, so its model never learnt from all four trials.
RUN_SECONDS = {"name": "run_seconds", "source": "prometheus",
               "query": "max_over_time(up[{window}]) * 0 + {duration_seconds}"}


def _asset(docs: list[dict], image: str) -> dict:
    """The example's AIAsset, running the benchmark image built here (the node has no other)."""
    asset = next(d for d in docs if d["kind"] == "AIAsset")
    asset["spec"]["image"] = image
    return asset


def _example(image: str) -> list[dict]:
    docs = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d]
    _asset(docs, image)["spec"]["metrics"].append(RUN_SECONDS)
    sweep = next(d for d in docs if d["kind"] == "BenchmarkSweep")
    sweep["spec"]["sampling"]["budget"] = 4  # 12 trials: 4 really run here, 4 on kwok, 4 unschedulable
    sweep["spec"]["parallelismPerPlatform"] = 2
    # 4 succeeded trials bound an interval at 80% at most (split conformal needs (n+1)·level <= n); the
    # request's 3 requirements read each bound at 1 - 2(1 - c)/3, which is 80% at joint confidence 0.7.
    # At the example's 0.9 the honest answer is InsufficientData (asserted in tests/integration).
    next(d for d in docs if d["kind"] == "HWRecommendation")["spec"]["confidence"] = 0.7
    return docs


def _huge(image: str) -> list[dict]:
    """An asset whose grid has 10**12 points, and a grid sweep of it: the API server cannot see the plan's size
    (it depends on the asset), so the operator refuses it."""
    asset = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "AIAsset", "metadata": {"name": "huge"},
             "spec": {"image": image, "command": ["hwmatch-bench", "run", "sklearn-forest"],
                      "metrics": [{"name": "accuracy", "goal": "maximize"}],
                      "parameters": [{"name": f"p{i}", "type": "int", "values": list(range(10))} for i in range(12)]}}
    sweep = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "BenchmarkSweep", "metadata": {"name": "huge"},
             "spec": {"assetRef": {"name": "huge"}, "platforms": [{"name": "local", "nodeSelector": {"pool": "local"}}],
                      "sampling": {"strategy": "grid"}}}
    return [asset, sweep]


def test_sweep_runs_as_jobs_and_the_recommendation_is_answered(crds_installed, k8s_namespace, prometheus_server,
                                                               hwmatch_images) -> None:
    cluster, ns = crds_installed, k8s_namespace
    docs = _example(hwmatch_images.benchmark) + _huge(hwmatch_images.benchmark)
    sweep_name = next(d for d in docs if d["kind"] == "BenchmarkSweep")["metadata"]["name"]
    rec_name = next(d for d in docs if d["kind"] == "HWRecommendation")["metadata"]["name"]
    port = free_port()
    prometheus = prometheus_server(targets=[f"127.0.0.1:{port}"])
    with operator(cluster, ns, unschedulable_timeout=3, prometheus_url=prometheus.url, metrics_port=port,
                  scrape_interval=1.0):
        # A trial's Prometheus metric needs scrapes in its window. On a loaded machine Prometheus's first scrape
        # came after the first two trials had ended (2-3 s trials): no data for them, MetricsMissing, correctly.
        prometheus.wait_for(f'up{{instance="127.0.0.1:{port}"}}', timeout=60)
        _apply(cluster, ns, docs)
        sweep = wait_until("the sweep to complete", lambda: (
            s := _get(cluster, ns, "benchmarksweeps", sweep_name)) and _condition(s, "Ready").get("status") == "True"
            and s, timeout=300, interval=2)
        # Results are recorded before their Prometheus metrics: the last trial's may still be on their way.
        trials = wait_until("the Prometheus metrics of every succeeded trial", lambda: (
            ts := _trials(cluster, ns, sweep_name)) and all(
                _condition(t, "Telemetry").get("reason") != "Pending" for t in ts) and ts, timeout=60, interval=1)
        outcome = Counter((t["spec"]["platform"], t["status"]["phase"], t["status"].get("reason")) for t in trials)
        assert outcome == {("local", "Succeeded", None): 4, ("cpu-x86", "Failed", "NoResult"): 4,
                           ("gpu-h100", "Failed", "Unschedulable"): 4}, outcome
        status = sweep["status"]
        assert (status["phase"], status["total"], status["succeeded"], status["failed"]) == ("Succeeded", 12, 4, 8)
        assert status["progress"] == "12/12" and status["observedGeneration"] == sweep["metadata"]["generation"]
        assert status["platforms"]["local"]["succeeded"] == 4 and status["platforms"]["gpu-h100"]["failed"] == 4
        ready = _condition(sweep, "Ready")  # kstatus: Ready only now, with the outcome; nothing else is True
        assert ready["reason"] == "Complete" and "NoResult: 4" in ready["message"], sweep["status"]["conditions"]
        assert {c["type"] for c in sweep["status"]["conditions"]} == {"Ready"}
        assert status["startTime"] and status["completionTime"]
        # The sweep beyond the plan limits was refused, Stalled (kstatus), without a trial, and did not stop the other.
        huge = _get(cluster, ns, "benchmarksweeps", "huge")
        assert huge["status"]["phase"] == "Failed" and _condition(huge, "Stalled")["status"] == "True"
        assert "the grid has 1e+12 points" in _condition(huge, "Stalled")["message"] and not _trials(cluster, ns, "huge")
        local = next(t for t in trials if t["spec"]["platform"] == "local")
        assert local["status"]["host"]["node"] == "local-0" and 0 < local["status"]["metrics"]["accuracy"] <= 1
        # The Prometheus metric was read for the trial's window and merged with the harness's metrics.
        ran = (_time(local["status"]["completionTime"]) - _time(local["status"]["startTime"])).total_seconds()
        # the window asked for ends at the end of the pod's finish second (Kubernetes writes whole seconds)
        assert local["status"]["metrics"]["run_seconds"] == pytest.approx(ran + 1, abs=0.01)
        assert _condition(local, "Telemetry")["reason"] == "Collected"
        assert local["metadata"]["ownerReferences"][0]["kind"] == "BenchmarkSweep"
        unschedulable = next(t for t in trials if t["spec"]["platform"] == "gpu-h100")
        assert "didn't match" in unschedulable["status"]["message"]
        # The Jobs of unschedulable trials are removed, and those of succeeded trials once their results and
        # Prometheus metrics are in; a failed trial's Job stays (kubectl logs), owned by its trial.
        failed = {t["metadata"]["name"] for t in trials if t["status"]["phase"] == "Failed" and t["spec"]["platform"]
                  == "cpu-x86"}
        jobs = wait_until("only the failed trials' Jobs to be left", lambda: (
            j := cluster.batch.list_namespaced_job(ns).items) and {x.metadata.name for x in j} == failed and j,
            timeout=30)
        assert len(jobs) == 4 and all(j.metadata.owner_references[0].kind == "BenchmarkTrial" for j in jobs)

        # The recommendation is solved from all four succeeded trials (retrained as they arrived).
        # Every model, the Prometheus metric's too, learns from all four: each trial's window reaches its
        # last scrape (it ends at the end of the pod's finish second, which Kubernetes writes rounded down).
        ok = [t for t in _trials(cluster, ns, sweep_name) if t["status"]["phase"] == "Succeeded"]
        assert all("run_seconds" in t["status"]["metrics"] for t in ok), "\n".join(json.dumps(
            [t["metadata"]["name"], sorted(t["status"]["metrics"]), t["status"].get("conditions"), t["status"].get("host"),
             t["status"].get("startTime"), t["status"].get("completionTime")]) for t in ok)

        def solved() -> dict | None:
            rec = _get(cluster, ns, "hwrecommendations", rec_name)
            models = rec.get("status", {}).get("models", {})
            return rec if models and all(m["trainedOnTrials"] == 4 for m in models.values()) else None

        try:
            rec = wait_until("the recommendation to learn from every trial", solved, timeout=180, interval=2)
        except AssertionError as exc:  # say what it learnt from, and what each trial measured
            status = _get(cluster, ns, "hwrecommendations", rec_name).get("status", {})
            seen = {t["metadata"]["name"]: sorted(t["status"]["metrics"]) for t in ok}
            raise AssertionError(f"{exc}; phase {status.get('phase')}, conditions {status.get('conditions')}, "
                                 f"models {status.get('models')}; trials' metrics {seen}") from None
        status = rec["status"]
        assert status["phase"] == "Ready" and _condition(rec, "Ready")["status"] == "True"
        assert status["recommendation"]["platform"] == "local" and status["recommendation"]["replicas"] >= 1
        assert status["solver"]["status"] in ("OPTIMAL", "FEASIBLE") and status["observedGeneration"] == 1
        asset = wait_until("the asset's trial count (counted beside the passes)", lambda: (
            a := _get(cluster, ns, "aiassets", "digits-forest")) and a.get("status", {}).get("trials") == 12 and a,
            timeout=30)
        assert _condition(asset, "Ready")["status"] == "True"

        # The GitOps health checks (docs/gitops/) on the objects this operator wrote: done, blocked, failed.
        for obj in (sweep, rec, asset):
            assert (argocd_health(obj)[0], flux_status(obj)) == ("Healthy", "Current"), obj["status"]["conditions"]
        health, message = argocd_health(huge)
        assert (health, flux_status(huge)) == ("Degraded", "Failed") and "the grid has 1e+12 points" in message
        assert argocd_health(local)[0] == "Healthy" and argocd_health(unschedulable) == (
            "Degraded", f"Unschedulable: {unschedulable['status']['message']}")

        # What a person sees: printer columns and events.
        out = cluster.kubectl("get", "bsw,hwr", "-n", ns).stdout
        assert "Succeeded" in out and "12/12" in out and "Ready" in out and "local" in out
        assert "Complete" in out and "Recommended" in out and "Stalled" not in out  # the Ready reasons
        wide = cluster.kubectl("get", "bsw", sweep_name, "-n", ns, "-o", "wide").stdout
        assert "4 succeeded, 8 failed" in wide, wide  # the Ready message
        trial_row = cluster.kubectl("get", "btr", local["metadata"]["name"], "-n", ns).stdout
        assert "accuracy=" in trial_row and f"{local['status']['durationSeconds']:g}" in trial_row, trial_row
        reasons = {e.reason for e in cluster.core.list_namespaced_event(ns).items}
        assert {"Started", "Completed", "NoResult", "Unschedulable", "Recommended"} <= reasons, reasons

        # spec.verify: the chosen configuration runs as a verification Job on its pool, and predicted against
        # measured is written into the status (Verified or Failed: the real run decides, the test reads both).
        verified = copy.deepcopy(next(d for d in docs if d["kind"] == "HWRecommendation"))
        verified["metadata"]["name"] = "verified"
        verified["spec"]["verify"] = {"repetitions": 1, "rounds": 1}
        _apply(cluster, ns, [verified])
        rec = wait_until("the verification to end", lambda: (r := _get(cluster, ns, "hwrecommendations", "verified"))
                         and r.get("status", {}).get("verification", {}).get("phase") in ("Verified", "Failed") and r,
                         timeout=180, interval=2)
        v = rec["status"]["verification"]
        assert v["round"] == 1 and len(v["trials"]) == 1 and v["choice"]["platform"] == "local", v
        checks = {c["metric"]: c for c in v["checks"]}
        assert {"accuracy", "latency_p99_ms"} <= set(checks), v
        accuracy = checks["accuracy"]
        assert accuracy["predicted"]["value"] == v["choice"]["predicted"]["accuracy"]["value"]
        assert len(accuracy["measured"]) == 1 and 0 < accuracy["measured"][0] <= 1
        assert accuracy["met"] == (accuracy["measured"][0] >= 0.8)
        # True only while the verified choice is the answer (learning from the run may resize its replicas:
        # ChoiceChanged, with no round left to verify the new one)
        verified_condition = _condition(rec, "Verified")
        assert verified_condition["reason"] == v["reason"], rec["status"]
        assert (verified_condition["status"] == "True") == (v["reason"] == "RequirementsMet"), rec["status"]
        # with spec.verify the goal is a verified answer: Ready follows Verified, else Stalled with its reason
        assert _condition(rec, "Ready")["status"] == verified_condition["status"], rec["status"]["conditions"]
        assert argocd_health(rec)[0] == ("Healthy" if verified_condition["status"] == "True" else "Degraded")
        (run,) = [t for t in _custom(cluster).list_namespaced_custom_object(
            GROUP, VERSION, ns, "benchmarktrials", label_selector="hwmatch.dev/recommendation=verified")["items"]]
        assert run["status"]["phase"] == "Succeeded" and run["status"]["host"]["node"] == "local-0"
        assert run["metadata"]["ownerReferences"][0]["kind"] == "HWRecommendation"
        # its Job ran it (the pod is named after it) and, the run settled, is gone like a succeeded trial's
        assert run["status"]["host"]["job"] == run["metadata"]["name"]
        assert run["status"]["host"]["pod"].startswith(run["metadata"]["name"] + "-")
        wait_until("the verification run's Job to be deleted", lambda: not cluster.batch.list_namespaced_job(
            ns, label_selector="hwmatch.dev/recommendation=verified").items, timeout=30)


def _restart_sweep(image: str) -> list[dict]:
    docs = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d and d["kind"] == "AIAsset"]
    _asset(docs, image)
    sweep = next(d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d and d["kind"] == "BenchmarkSweep")
    sweep["metadata"]["name"] = "restart"
    sweep["spec"]["platforms"] = sweep["spec"]["platforms"][:1]  # local: trials really run
    sweep["spec"]["sampling"]["budget"] = 3
    sweep["spec"]["parallelism"] = 1
    return docs + [sweep]


def test_a_restarted_operator_runs_each_trial_once_and_keeps_every_result(crds_installed, k8s_namespace,
                                                                         hwmatch_images, job_watch) -> None:  # noqa: F811
    cluster, ns = crds_installed, k8s_namespace
    with operator(cluster, ns, clean_up=False):
        _apply(cluster, ns, _restart_sweep(hwmatch_images.benchmark))
        wait_until("a trial to succeed and the next to run", lambda: Counter(
            t.get("status", {}).get("phase") for t in _trials(cluster, ns, "restart")) >= Counter(Succeeded=1, Running=1),
            timeout=180, interval=1)
    # The operator is gone; the running trial's Job ends on its own, with nobody to read it.
    wait_until("the running Job to finish unobserved", lambda: all(
        j.status.succeeded or j.status.failed for j in cluster.batch.list_namespaced_job(ns).items), timeout=120)
    phases = Counter(t.get("status", {}).get("phase") for t in _trials(cluster, ns, "restart"))
    assert phases["Running"] == 1  # its status still says Running: the result is only in the pod

    with operator(cluster, ns):
        sweep = wait_until("the sweep to complete after the restart", lambda: (
            s := _get(cluster, ns, "benchmarksweeps", "restart")) and _condition(s, "Ready").get("status") == "True"
            and s, timeout=180, interval=1)
        trials = _trials(cluster, ns, "restart")
        assert sweep["status"]["succeeded"] == 3 and all(t["status"]["phase"] == "Succeeded" for t in trials)
        # Each trial ran exactly once: the namespace's Job watch saw one Job (one uid) per trial, whose one pod
        # (backoffLimit 0) gave the result; the Jobs of succeeded trials are deleted once their results are in.
        names = {t["metadata"]["name"] for t in trials}
        wait_until("the watch to see every trial's Job", lambda: set(job_watch) >= names, timeout=10)
        assert {trial: len(job_watch[trial]) for trial in names} == dict.fromkeys(names, 1), job_watch
        assert all(t["status"]["host"]["job"] == t["metadata"]["name"]
                   and t["status"]["host"]["pod"].startswith(t["metadata"]["name"] + "-") for t in trials)
        wait_until("the succeeded trials' Jobs to be deleted", lambda: not cluster.batch.list_namespaced_job(ns).items,
                   timeout=30)


def _orphaned(image: str) -> list[dict]:
    """The example's asset and request, and a sweep on a pool no node has (its Jobs' pods stay Pending), the sweep
    and the request with the finalizer an earlier operator (kopf daemons) put on them."""
    docs = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d and d["kind"] in ("AIAsset", "HWRecommendation")]
    _asset(docs, image)
    sweep = next(d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d and d["kind"] == "BenchmarkSweep")
    sweep["metadata"]["name"] = "orphaned"
    sweep["spec"]["platforms"] = [p for p in sweep["spec"]["platforms"] if p["name"] == "gpu-h100"]
    sweep["spec"]["sampling"]["budget"] = 2
    sweep["spec"]["parallelismPerPlatform"] = 2  # both Jobs at once
    for doc in (sweep, next(d for d in docs if d["kind"] == "HWRecommendation")):
        doc["metadata"]["finalizers"] = [LEGACY_FINALIZER]
    return docs + [sweep]


def test_objects_are_deleted_while_no_operator_runs(crds_installed, k8s_namespace, hwmatch_images) -> None:
    """kubectl delete (and Argo CD's prune, Flux's garbage collection) must not wait for an operator that is gone."""
    cluster, ns = crds_installed, k8s_namespace
    _apply(cluster, ns, _orphaned(hwmatch_images.benchmark))
    kinds = ("aiassets", "benchmarksweeps", "hwrecommendations", "benchmarktrials")

    def everything() -> list[dict]:
        return [o for plural in kinds for o in _custom(cluster).list_namespaced_custom_object(
            GROUP, VERSION, ns, plural)["items"]]

    with operator(cluster, ns, clean_up=False, unschedulable_timeout=600):
        def settled() -> tuple[int, dict]:  # (Jobs, finalizers still on objects)
            return len(cluster.batch.list_namespaced_job(ns).items), {
                o["metadata"]["name"]: o["metadata"]["finalizers"] for o in everything() if o["metadata"].get("finalizers")}

        try:
            wait_until("the sweep's Jobs, and the earlier operator's finalizer gone", lambda: settled() == (2, {}),
                       timeout=60, interval=1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: (Jobs, finalizers) = {settled()}") from None
        sweep = wait_until("the sweep to report its running trials", lambda: (
            s := _get(cluster, ns, "benchmarksweeps", "orphaned")) and _condition(s, "Reconciling").get(
                "reason") == "TrialsRunning" and s, timeout=60, interval=1)
        assert argocd_health(sweep)[0] == "Progressing" and flux_status(sweep) == "InProgress"
    assert len(_trials(cluster, ns, "orphaned")) == 2 and not any(o["metadata"].get("finalizers") for o in everything())

    # The operator is gone: deletion completes anyway, and the garbage collector takes the trials and their Jobs.
    deleted = cluster.kubectl("delete", "-n", ns, "hwrecommendations,benchmarksweeps,aiassets", "--all",
                              "--wait=true", "--timeout=30s", check=False)
    assert deleted.returncode == 0, deleted.stderr
    wait_until("the trials and Jobs to be collected", lambda: not everything() and not cluster.batch.list_namespaced_job(
        ns).items, timeout=90, interval=1)
