"""The operator's reconcile passes without a cluster: an in-memory API stands in for the API server."""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

import pytest

from hwmatch.api import BenchmarkTrialStatus, load_text
from hwmatch.controller.assets import AssetReconciler
from hwmatch.controller.config import OperatorConfig, namespace_refusal
from hwmatch.controller.kube import ASSETS, RECOMMENDATIONS, SWEEPS, TRIALS
from hwmatch.controller.recommendations import SOLVED_FOR, RecommendationReconciler
from hwmatch.controller.signals import Signals
from hwmatch.controller.sweeps import SweepReconciler
from hwmatch.controller.telemetry import TrialTelemetry

MANIFESTS = """
apiVersion: hwmatch.dev/v1alpha1
kind: AIAsset
metadata: {name: toy}
spec:
  image: img
  command: [toy]
  parameters:
    - {name: x, type: int, values: [1, 2, 3]}
  metrics:
    - {name: latency_ms, goal: minimize}
    - {name: energy_j, source: prometheus, preset: rapl-energy}
---
apiVersion: hwmatch.dev/v1alpha1
kind: BenchmarkSweep
metadata: {name: toy-sweep}
spec:
  assetRef: {name: toy}
  platforms:
    - {name: small, nodeSelector: {pool: small}, costPerHour: 1, features: {vcpus: 1}}
    - {name: large, nodeSelector: {pool: large}, costPerHour: 3, features: {vcpus: 4}}
  parallelism: 3
  parallelismPerPlatform: 2
---
apiVersion: hwmatch.dev/v1alpha1
kind: HWRecommendation
metadata: {name: toy-rec}
spec:
  assetRef: {name: toy}
  constraints: [{metric: latency_ms, max: 100}]
  objective: {minimize: cost_per_hour}
"""
NS = "ns"
#: The operator's namespace rule with its defaults (the system namespaces denied).
REFUSAL = functools.partial(namespace_refusal, OperatorConfig(namespaces=(NS,)))


class FakeKube:
    """The calls of :class:`hwmatch.controller.kube.Kube`, on dicts in memory (labels select, names are unique)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict] = {}
        self.jobs_by_name: dict[str, dict] = {}
        self.pods_by_job: dict[str, list[dict]] = {}
        self.jobs_created: Counter[str] = Counter()

    def put(self, plural: str, body: Mapping[str, Any]) -> None:
        obj = copy.deepcopy(dict(body))
        obj["metadata"].update(namespace=NS, uid=str(uuid.uuid4()), generation=1)
        self.objects[(plural, obj["metadata"]["name"])] = obj

    def get(self, plural: str, namespace: str, name: str) -> dict | None:
        return copy.deepcopy(self.objects.get((plural, name)))

    def list(self, plural: str, namespace: str, labels: Mapping[str, str] | None = None, *,
             exists: Iterable[str] = ()) -> list[dict]:
        return [copy.deepcopy(o) for (p, _), o in self.objects.items()
                if p == plural and _match(o, labels) and all(k in o["metadata"].get("labels", {}) for k in exists)]

    def create(self, plural: str, namespace: str, body: Mapping[str, Any]) -> dict:
        if (plural, body["metadata"]["name"]) not in self.objects:
            self.put(plural, body)
        return self.get(plural, namespace, body["metadata"]["name"])  # type: ignore[return-value]

    def replace_status(self, plural: str, namespace: str, name: str, status: Mapping[str, Any]) -> dict:
        self.objects[(plural, name)]["status"] = json.loads(json.dumps(status))
        return self.get(plural, namespace, name)  # type: ignore[return-value]

    def merge_status(self, plural: str, namespace: str, name: str, status: Mapping[str, Any]) -> dict:
        self.objects[(plural, name)].setdefault("status", {}).update(json.loads(json.dumps(status)))
        return self.get(plural, namespace, name)  # type: ignore[return-value]

    def annotate(self, plural: str, namespace: str, name: str, annotations: Mapping[str, str]) -> None:
        self.objects[(plural, name)]["metadata"].setdefault("annotations", {}).update(annotations)

    def jobs(self, namespace: str, labels: Mapping[str, str], *, key: str | None = None,
             names: Iterable[str] | None = None) -> list[dict]:
        return [copy.deepcopy(j) for j in self.jobs_by_name.values() if _match(j, labels) and _named(j, key, names)]

    def create_job(self, namespace: str, manifest: Mapping[str, Any]) -> bool:
        name = manifest["metadata"]["name"]
        if name in self.jobs_by_name:
            return False
        self.jobs_created[name] += 1
        self.jobs_by_name[name] = {**copy.deepcopy(dict(manifest)), "status": {}}
        return True

    def delete_job(self, namespace: str, name: str) -> None:
        self.jobs_by_name.pop(name, None)

    def pods(self, namespace: str, labels: Mapping[str, str], *, key: str | None = None,
             names: Iterable[str] | None = None) -> list[dict]:
        return [copy.deepcopy(p) for ps in self.pods_by_job.values() for p in ps
                if _match(p, labels) and _named(p, key, names)]

    # -- what the Job controller and a kubelet would do --

    def finish(self, job: str, metrics: dict[str, float] | None, exit_code: int = 0) -> None:
        """The Job's one pod ends: with the harness result as its termination message, or failing."""
        labels = self.jobs_by_name[job]["spec"]["template"]["metadata"]["labels"]
        message = json.dumps({"metrics": metrics}) if metrics is not None else ""
        self.pods_by_job[job] = [{
            "metadata": {"name": f"{job}-pod", "labels": labels, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"nodeName": "node-1"},
            "status": {"phase": "Succeeded" if exit_code == 0 else "Failed", "containerStatuses": [{
                "name": "trial", "state": {"terminated": {"exitCode": exit_code, "message": message,
                                                          "startedAt": "2026-01-01T00:00:01Z",
                                                          "finishedAt": "2026-01-01T00:00:03Z"}}}]},
        }]
        kind = "Complete" if exit_code == 0 else "Failed"
        self.jobs_by_name[job]["status"] = {
            "conditions": [{"type": kind, "status": "True", "reason": "" if exit_code == 0 else "BackoffLimitExceeded"}],
            "succeeded" if exit_code == 0 else "failed": 1}


def _named(obj: Mapping[str, Any], key: str | None, names: Iterable[str] | None) -> bool:
    return key is None or names is None or obj["metadata"].get("labels", {}).get(key) in set(names)


def _match(obj: Mapping[str, Any], labels: Mapping[str, str] | None) -> bool:
    have = obj["metadata"].get("labels", {})
    return all(have.get(k) == v for k, v in (labels or {}).items())


@pytest.fixture
def kube() -> FakeKube:
    k = FakeKube()
    for doc in load_text(MANIFESTS):
        plural = {"AIAsset": ASSETS, "BenchmarkSweep": SWEEPS, "HWRecommendation": RECOMMENDATIONS}[doc.resource.kind]
        k.put(plural, doc.resource.to_wire())
    return k


class Events(list):
    def __call__(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        self.append((body["metadata"]["name"], type_, reason, message))


def _reconciler(kube: FakeKube, events: Events, telemetry: TrialTelemetry | None = None) -> SweepReconciler:
    return SweepReconciler(kube, events, telemetry or TrialTelemetry(None, 15.0), unschedulable_timeout=60, resync=30,
                           refusal=REFUSAL)


def _phases(kube: FakeKube) -> Counter:
    return Counter((t["spec"]["platform"], t.get("status", {}).get("phase")) for t in kube.list(TRIALS, NS))


def test_a_pass_creates_trials_and_starts_jobs_within_both_parallelism_limits(kube) -> None:
    events = Events()
    done = _reconciler(kube, events).reconcile(NS, "toy-sweep")
    trials = kube.list(TRIALS, NS)
    assert len(trials) == 6 and all(t["metadata"]["ownerReferences"][0]["kind"] == "BenchmarkSweep" for t in trials)
    # parallelism 3 overall, 2 per platform: 2 on the first platform in plan order, 1 on the other
    assert sum(kube.jobs_created.values()) == 3
    assert sorted(Counter(j["metadata"]["labels"]["hwmatch.dev/platform"] for j in kube.jobs_by_name.values()).values()) == [1, 2]
    sweep = kube.get(SWEEPS, NS, "toy-sweep")["status"]
    assert (sweep["phase"], sweep["total"], sweep["running"], sweep["pending"], sweep["progress"]) == ("Running", 6, 3, 3, "0/6")
    assert sweep["observedGeneration"] == 1 and done.requeue_after <= 10
    assert ("toy-sweep", "Normal", "Started") in [e[:3] for e in events]
    # The same pass again changes nothing: no second Job for any trial.
    _reconciler(kube, events).reconcile(NS, "toy-sweep")
    assert max(kube.jobs_created.values()) == 1 and sum(kube.jobs_created.values()) == 3


def test_a_trial_object_deleted_between_passes_is_planned_and_created_again(kube) -> None:
    """A reconciler keeps only its plan's names: a missing trial is planned again, with the same name and spec."""
    r = _reconciler(kube, Events())
    r.reconcile(NS, "toy-sweep")
    before = {name: o["spec"] for (plural, name), o in kube.objects.items() if plural == TRIALS}
    gone = sorted(before)[-1]
    del kube.objects[(TRIALS, gone)]
    r.reconcile(NS, "toy-sweep")  # the same process: its memory holds the plan's names, not the planned trials
    after = {name: o["spec"] for (plural, name), o in kube.objects.items() if plural == TRIALS}
    assert after == before


def test_outcomes_are_recorded_and_a_finished_trial_never_runs_again(kube) -> None:
    events = Events()
    r = _reconciler(kube, events)
    for _ in range(10):
        r.reconcile(NS, "toy-sweep")
        for name, job in list(kube.jobs_by_name.items()):
            if not job["status"]:
                ok = "small" in job["metadata"]["labels"]["hwmatch.dev/platform"]
                kube.finish(name, {"latency_ms": 5.0} if ok else None)
    assert _phases(kube) == {("small", "Succeeded"): 3, ("large", "Failed"): 3}
    assert set(kube.jobs_created.values()) == {1}  # exactly one Job per trial, whatever the number of passes
    sweep = kube.get(SWEEPS, NS, "toy-sweep")
    conditions = {c["type"]: c for c in sweep["status"]["conditions"]}
    assert sweep["status"]["phase"] == "Succeeded" and conditions["Ready"]["status"] == "True"
    assert conditions["Ready"]["reason"] == "Complete" and "NoResult: 3" in conditions["Ready"]["message"]
    assert set(conditions) == {"Ready"} and sweep["status"]["observedGeneration"] == sweep["metadata"]["generation"]
    assert r.counts.idle()  # the asset's count runs beside the passes
    assert kube.get(ASSETS, NS, "toy")["status"]["trials"] == 6
    small = next(t for t in kube.list(TRIALS, NS) if t["spec"]["platform"] == "small")
    # without --prometheus-url, the prometheus metric is reported missing; the trial keeps its harness metrics
    assert small["status"]["metrics"] == {"latency_ms": 5.0}
    assert small["status"]["summary"] == "latency_ms=5" and small["status"]["durationSeconds"] >= 0  # kubectl columns
    assert {c["type"]: c["status"] for c in small["status"]["conditions"]}["Ready"] == "True"
    large = next(t for t in kube.list(TRIALS, NS) if t["spec"]["platform"] == "large")
    stalled = {c["type"]: c for c in large["status"]["conditions"]}["Stalled"]  # a failed trial never runs again
    summary, message = large["status"]["summary"], large["status"]["message"]
    assert stalled["reason"] == "NoResult" and len(summary) == 100 and summary[:-1] in message and summary[-1] == "…"
    assert "energy_j" in small["status"]["message"] and "--prometheus-url" in small["status"]["message"]
    telemetry = next(c for c in small["status"]["conditions"] if c["type"] == "Telemetry")
    assert telemetry["status"] == "False" and telemetry["reason"] == "PrometheusNotConfigured"
    assert {"Completed", "NoResult", "Succeeded"} <= {e[2] for e in events}


def test_after_the_first_pass_only_the_running_trials_jobs_and_pods_are_read_and_after_an_error_all(kube) -> None:
    """A pass costs what runs: later passes ask for the Jobs and pods of the trials whose status says Running.

    What only an interrupted pass leaves (here: a Job created for a trial whose status still says Pending) is
    found by a full pass: the first in a process, and the one after a pass that raised.
    """
    asked: list[object] = []
    jobs = kube.jobs

    def recording(namespace: str, labels: Mapping[str, str], *, key: str | None = None,
                  names: Iterable[str] | None = None) -> list[dict]:
        asked.append(None if names is None else sorted(names))
        return jobs(namespace, labels, key=key, names=names)

    kube.jobs = recording  # type: ignore[method-assign]
    r = _reconciler(kube, Events())
    r.reconcile(NS, "toy-sweep")
    assert asked == [None]  # the first pass of a process reads every Job of the sweep
    running = sorted(t["metadata"]["name"] for t in kube.list(TRIALS, NS) if t.get("status", {}).get("phase") == "Running")
    r.reconcile(NS, "toy-sweep")
    assert asked[1] == running and len(running) == 3
    # An interrupted pass: a pending trial's Job exists, and the next pass raises before it writes anything.
    pending = next(t for t in kube.list(TRIALS, NS) if t.get("status", {}).get("phase", "Pending") == "Pending")
    planned = kube.get(TRIALS, NS, pending["metadata"]["name"])
    kube.create_job(NS, {"metadata": {"name": planned["metadata"]["name"], "labels": planned["metadata"]["labels"]},
                         "spec": {}})
    replace_status = kube.replace_status
    kube.replace_status = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("API down"))  # type: ignore[method-assign]
    for name in running:
        kube.finish(name, {"latency_ms": 5.0})
    with pytest.raises(RuntimeError):
        r.reconcile(NS, "toy-sweep")
    kube.replace_status = replace_status  # type: ignore[method-assign]
    r.reconcile(NS, "toy-sweep")
    assert asked[-1] is None  # after the error: everything, so the Job of the Pending trial is seen
    assert kube.jobs_created[planned["metadata"]["name"]] == 1  # and not created a second time
    assert kube.get(TRIALS, NS, planned["metadata"]["name"])["status"]["phase"] == "Running"


def test_an_unknown_asset_waits_and_an_unrunnable_one_fails_the_sweep(kube) -> None:
    events = Events()
    del kube.objects[(ASSETS, "toy")]
    _reconciler(kube, events).reconcile(NS, "toy-sweep")
    status = kube.get(SWEEPS, NS, "toy-sweep")["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert status["phase"] == "Pending" and ready["reason"] == "AssetNotFound" and not kube.list(TRIALS, NS)
    reconciling = next(c for c in status["conditions"] if c["type"] == "Reconciling")  # kstatus: it waits, not failed
    assert reconciling["status"] == "True" and "Stalled" not in {c["type"] for c in status["conditions"]}
    doc = next(d for d in load_text(MANIFESTS) if d.resource.kind == "AIAsset").resource.to_wire()
    doc["spec"].pop("image")
    kube.put(ASSETS, doc)
    _reconciler(kube, events).reconcile(NS, "toy-sweep")
    status = kube.get(SWEEPS, NS, "toy-sweep")["status"]
    failed = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert status["phase"] == "Failed" and failed["reason"] == "InvalidSpec" and "spec.image" in failed["message"]
    assert "Reconciling" not in {c["type"] for c in status["conditions"]}
    assert [e[2] for e in events] == ["AssetNotFound", "InvalidSpec"]


def test_asset_ready_condition_names_what_is_missing(kube) -> None:
    events = Events()
    assert AssetReconciler(kube, events, prometheus=False).reconcile(kube.get(ASSETS, NS, "toy")) is True
    asset = kube.get(ASSETS, NS, "toy")
    (ready,) = asset["status"]["conditions"]
    assert ready["status"] == "True" and "energy_j" in ready["message"] and asset["status"]["observedGeneration"] == 1
    assert AssetReconciler(kube, events, prometheus=False).reconcile(asset) is False  # nothing new
    assert len(events) == 1


def test_recommendation_waits_for_trials_then_solves_once_per_dataset(kube) -> None:
    events = Events()
    rec = RecommendationReconciler(kube, events, TrialTelemetry(None, 15.0), unschedulable_timeout=60, resync=30,
                                   refusal=REFUSAL)
    rec.reconcile(NS, "toy-rec")
    status = kube.get(RECOMMENDATIONS, NS, "toy-rec")["status"]
    assert status["phase"] == "Pending" and status["conditions"][0]["reason"] == "WaitingForTrials"
    _run_sweep(kube)
    rec.reconcile(NS, "toy-rec")
    solved = kube.get(RECOMMENDATIONS, NS, "toy-rec")
    # minimize cost_per_hour with latency_ms <= 100: small (1/h) meets it at x=1 (40 ms measured), large costs 3/h;
    # of small's configurations, which cost alike, the fastest wins the tie: x=1.
    best = solved["status"]["recommendation"]
    assert solved["status"]["phase"] == "Ready" and (best["platform"], best["parameters"]) == ("small", {"x": 1})
    assert solved["status"]["models"]["latency_ms"]["trainedOnTrials"] == 6
    key = solved["metadata"]["annotations"][SOLVED_FOR]
    before = copy.deepcopy(solved["status"])
    rec.reconcile(NS, "toy-rec")  # same inputs: nothing is solved or written again
    again = kube.get(RECOMMENDATIONS, NS, "toy-rec")
    assert again["status"] == before and again["metadata"]["annotations"][SOLVED_FOR] == key
    assert [e[2] for e in events].count("Recommended") == 1


def _run_sweep(kube: FakeKube) -> None:
    """The toy sweep to its end: every Job finishes with a latency that falls with the platform's CPUs."""
    r = _reconciler(kube, Events())
    for _ in range(10):
        r.reconcile(NS, "toy-sweep")
        for name, job in list(kube.jobs_by_name.items()):
            if not job["status"]:
                x = json.loads(next(e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
                                    if e["name"] == "HWMATCH_PARAMS"))["x"]
                vcpus = 1 if job["metadata"]["labels"]["hwmatch.dev/platform"] == "small" else 4
                kube.finish(name, {"latency_ms": 40.0 * x / vcpus})


def test_prior_from_reads_the_named_assets_trials_in_the_namespace(kube) -> None:
    """spec.priorFrom: an asset that is not there is named; one whose BenchmarkTrials are there is answered from."""
    _run_sweep(kube)
    rec = RecommendationReconciler(kube, Events(), TrialTelemetry(None, 15.0), unschedulable_timeout=60, resync=30,
                                   refusal=REFUSAL)
    asset = kube.get(ASSETS, NS, "toy")
    asset["spec"]["priorFrom"] = [{"name": "gone"}]
    kube.put(ASSETS, asset)
    rec.reconcile(NS, "toy-rec")
    status = kube.get(RECOMMENDATIONS, NS, "toy-rec")["status"]
    assert status["phase"] == "Failed"
    assert f"spec.priorFrom: no asset 'gone' with trials in namespace {NS}" in status["conditions"][0]["message"]
    asset["spec"]["priorFrom"] = [{"name": "toy"}]  # its own trials are in the namespace: they are read
    kube.put(ASSETS, asset)
    rec.reconcile(NS, "toy-rec")
    status = kube.get(RECOMMENDATIONS, NS, "toy-rec")["status"]
    assert status["phase"] == "Ready", status["conditions"]


def test_signals_wake_a_waiter_on_its_own_keys_only_and_lose_no_change() -> None:
    async def scenario() -> list[bool]:
        signals = Signals(asyncio.get_running_loop())
        keys = [("sweep", "ns", "a")]
        mark = signals.seen(keys)
        waiter = asyncio.create_task(signals.wait(keys, mark, timeout=60))
        signals.bump(("sweep", "ns", "b"))  # another object's change
        for _ in range(5):
            await asyncio.sleep(0)
        asleep = not waiter.done()
        signals.bump(*keys)
        await asyncio.wait_for(waiter, 10)
        # a change made while no one waits (during a pass) is seen by the next wait at once
        mark = signals.seen(keys)
        signals.bump(*keys)
        await asyncio.sleep(0)
        await asyncio.wait_for(signals.wait(keys, mark, timeout=60), 10)
        return [asleep, signals.seen(keys) == mark + 1]

    assert asyncio.run(scenario()) == [True, True]


def test_config_needs_a_namespace_scope() -> None:
    with pytest.raises(ValueError, match="--all-namespaces"):
        OperatorConfig()
    with pytest.raises(ValueError, match="not both"):
        OperatorConfig(namespaces=("a",), all_namespaces=True)
    assert OperatorConfig(all_namespaces=True).metrics_port == 9090


class StubPrometheus:
    """Answers every instant query with one sample, or fails like a server that is down."""

    def __init__(self, value: float | None):
        self.value, self.queries = value, []

    def query(self, expr: str, time: float | None = None):
        from hwmatch.telemetry import PrometheusUnreachable, Sample

        self.queries.append((expr, time))
        if self.value is None:
            raise PrometheusUnreachable("http://prometheus:9090", "connection refused")
        return [Sample({}, time or 0.0, self.value)]


def _ended(at: datetime) -> BenchmarkTrialStatus:
    return BenchmarkTrialStatus(phase="Succeeded", metrics={"latency_ms": 3.0}, start_time=at - timedelta(seconds=20),
                                completion_time=at, host={"executor": "kubernetes", "pod": "p-1", "node": "node-1"})


def test_prometheus_metrics_are_read_after_a_scrape_and_merged() -> None:
    asset = next(d.resource for d in load_text(MANIFESTS) if d.resource.kind == "AIAsset")
    end = datetime(2026, 1, 1, tzinfo=timezone.utc)
    client = StubPrometheus(1234.5)
    telemetry = TrialTelemetry(client, scrape_interval=15.0)  # type: ignore[arg-type]
    assert telemetry(asset, NS, _ended(end), end + timedelta(seconds=5)) is None  # not scraped past the end yet
    status = telemetry(asset, NS, _ended(end), end + timedelta(seconds=20))
    assert status.metrics == {"latency_ms": 3.0, "energy_j": 1234.5}
    (condition,) = status.conditions
    assert (condition.type, condition.status, condition.reason) == ("Telemetry", "True", "Collected")
    (expr, at), = client.queries
    assert 'node="node-1"' in expr and at == end.timestamp() + 1  # the end of the pod's finish second


class LateData(StubPrometheus):
    """No data for the trial's window at first; the late scrape lands on the third query."""

    def query(self, expr: str, time: float | None = None):
        self.queries.append((expr, time))
        if len(self.queries) < 3:
            return []
        from hwmatch.telemetry import Sample

        return [Sample({}, time or 0.0, self.value)]


def test_a_metric_without_data_is_asked_again_before_it_is_reported_missing() -> None:
    asset = next(d.resource for d in load_text(MANIFESTS) if d.resource.kind == "AIAsset")
    end = datetime(2026, 1, 1, tzinfo=timezone.utc)
    telemetry = TrialTelemetry(LateData(7.5), scrape_interval=15.0)  # type: ignore[arg-type]
    assert telemetry(asset, NS, _ended(end), end + timedelta(seconds=16)) is None  # empty: not missing yet
    assert telemetry(asset, NS, _ended(end), end + timedelta(seconds=30)) is None
    status = telemetry(asset, NS, _ended(end), end + timedelta(seconds=45))
    assert status is not None and status.metrics == {"latency_ms": 3.0, "energy_j": 7.5}
    # data that never comes is reported missing once the grace has passed, and the harness metrics are kept
    never = TrialTelemetry(StubPrometheus(0.0), scrape_interval=15.0)  # type: ignore[arg-type]
    never.client.query = lambda expr, time=None: []  # type: ignore[union-attr, method-assign]
    assert never(asset, NS, _ended(end), end + timedelta(seconds=45)) is None
    status = never(asset, NS, _ended(end), end + timedelta(seconds=61))
    assert status is not None and status.metrics == {"latency_ms": 3.0} and status.conditions[0].reason == "MetricsMissing"


def test_unreachable_prometheus_is_asked_again_then_reported_missing() -> None:
    asset = next(d.resource for d in load_text(MANIFESTS) if d.resource.kind == "AIAsset")
    end = datetime(2026, 1, 1, tzinfo=timezone.utc)
    telemetry = TrialTelemetry(StubPrometheus(None), scrape_interval=15.0)  # type: ignore[arg-type]
    assert telemetry(asset, NS, _ended(end), end + timedelta(seconds=30)) is None
    status = telemetry(asset, NS, _ended(end), end + timedelta(hours=1))
    assert status.phase == "Succeeded" and status.metrics == {"latency_ms": 3.0}
    assert "energy_j" in status.message and "unreachable" in status.message
    assert status.conditions[0].reason == "PrometheusUnreachable"


def test_a_trial_without_a_pod_is_reported_not_retried() -> None:
    asset = next(d.resource for d in load_text(MANIFESTS) if d.resource.kind == "AIAsset")
    end = datetime(2026, 1, 1, tzinfo=timezone.utc)
    ended = _ended(end)
    ended.host.pop("pod")
    client = StubPrometheus(1.0)
    status = TrialTelemetry(client, scrape_interval=15.0)(asset, NS, ended, end + timedelta(seconds=20))  # type: ignore[arg-type]
    assert status is not None and status.phase == "Succeeded" and not client.queries
    assert status.conditions[0].reason == "CannotQuery" and "energy_j" in status.message


def test_a_sweep_beyond_the_plan_limits_fails_without_planning(kube) -> None:
    events = Events()
    doc = next(d for d in load_text(MANIFESTS) if d.resource.kind == "AIAsset").resource.to_wire()
    doc["spec"]["parameters"] = [{"name": f"p{i}", "type": "int", "values": list(range(10))} for i in range(12)]
    kube.put(ASSETS, doc)  # 10**12 grid points: the planner would never finish listing them
    _reconciler(kube, events).reconcile(NS, "toy-sweep")
    status = kube.get(SWEEPS, NS, "toy-sweep")["status"]
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")  # kstatus: needs a spec change
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert status["phase"] == "Failed" and stalled["reason"] == "InvalidSpec", status
    assert "the grid has 1e+12 points; at most 100000" in stalled["message"] and not kube.list(TRIALS, NS)
    assert stalled["status"] == "True" and (ready["status"], ready["message"]) == ("False", stalled["message"])
    # Once the asset is fixed, the sweep plans and runs, and is no longer Stalled.
    doc["spec"]["parameters"] = [{"name": "x", "type": "int", "values": [1, 2, 3]}]
    kube.put(ASSETS, doc)
    _reconciler(kube, events).reconcile(NS, "toy-sweep")
    status = kube.get(SWEEPS, NS, "toy-sweep")["status"]
    assert status["phase"] == "Running" and len(kube.list(TRIALS, NS)) == 6
    assert "Stalled" not in {c["type"] for c in status["conditions"]}


class NotScrapedYet:
    """Trial telemetry whose Prometheus has not scraped the trials' end for the first ``passes`` calls."""

    def __init__(self, passes: int):
        self.passes, self.calls = passes, 0
        self.real = TrialTelemetry(StubPrometheus(7.0), scrape_interval=15.0)  # type: ignore[arg-type]

    def __call__(self, asset, namespace, status, now):
        self.calls += 1
        return None if self.calls <= self.passes else self.real(asset, namespace, status, now)


def test_a_result_is_recorded_before_its_prometheus_metrics_and_they_join_it_later(kube) -> None:
    events = Events()
    telemetry = NotScrapedYet(passes=1)
    r = SweepReconciler(kube, events, telemetry, unschedulable_timeout=60, resync=30, refusal=REFUSAL)
    r.reconcile(NS, "toy-sweep")
    first = next(iter(kube.jobs_by_name))
    kube.finish(first, {"latency_ms": 5.0})
    done = r.reconcile(NS, "toy-sweep")
    trial = kube.get(TRIALS, NS, first)["status"]
    # Prometheus has nothing yet: the result is recorded all the same, the metric marked pending, the next trial runs.
    assert trial["phase"] == "Succeeded" and trial["metrics"] == {"latency_ms": 5.0}
    (pending,) = [c for c in trial["conditions"] if c["type"] == "Telemetry"]
    assert (pending["status"], pending["reason"]) == ("Unknown", "Pending") and done.requeue_after <= 5
    assert done.succeeded == 1 and sum(kube.jobs_created.values()) == 4
    done = r.reconcile(NS, "toy-sweep")  # Prometheus has scraped the end now
    trial = kube.get(TRIALS, NS, first)["status"]
    assert trial["metrics"] == {"latency_ms": 5.0, "energy_j": 7.0} and done.succeeded == 1  # new training data
    (collected,) = [c for c in trial["conditions"] if c["type"] == "Telemetry"]
    assert (collected["status"], collected["reason"]) == ("True", "Collected")
    assert r.reconcile(NS, "toy-sweep").succeeded == 0 and telemetry.calls == 2  # read once, never again


def _finish_all(kube: FakeKube, latency) -> int:
    """End every running Job with the latency ``latency(platform, x, job)``; how many ended."""
    ended = 0
    for name, job in list(kube.jobs_by_name.items()):
        if not job["status"]:
            x = json.loads(next(e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
                                if e["name"] == "HWMATCH_PARAMS"))["x"]
            kube.finish(name, {"latency_ms": latency(job["metadata"]["labels"]["hwmatch.dev/platform"], x, job)})
            ended += 1
    return ended


def _law(platform: str, x: int, job: dict) -> float:
    return 40.0 * x / (1 if platform == "small" else 4)


def test_spec_verify_runs_the_choice_as_jobs_and_a_broken_requirement_re_solves(kube) -> None:
    events = Events()
    doc = next(d for d in load_text(MANIFESTS) if d.resource.kind == "HWRecommendation").resource.to_wire()
    doc["spec"]["verify"] = {"repetitions": 2, "rounds": 3}
    kube.put(RECOMMENDATIONS, doc)
    sweeps, recs = _reconciler(kube, Events()), RecommendationReconciler(kube, events, TrialTelemetry(None, 15.0),
                                                                         unschedulable_timeout=60, resync=30,
                                                                         refusal=REFUSAL)
    for _ in range(6):
        sweeps.reconcile(NS, "toy-sweep")
        _finish_all(kube, _law)
    assert recs.reconcile(NS, "toy-rec") <= 10  # verification runs: look again soon
    rec = kube.get(RECOMMENDATIONS, NS, "toy-rec")
    first = rec["status"]["verification"]
    chosen = (rec["status"]["recommendation"]["platform"], rec["status"]["recommendation"]["parameters"])
    assert first["phase"] == "Running" and first["round"] == 1 and len(first["trials"]) == 2
    verified = next(c for c in rec["status"]["conditions"] if c["type"] == "Verified")
    assert verified["status"] == "Unknown" and rec["status"]["phase"] == "Ready"
    state = {c["type"]: (c["status"], c["reason"]) for c in rec["status"]["conditions"]}
    assert state["Ready"] == ("False", "Verifying") and state["Reconciling"] == ("True", "Verifying")  # not yet its goal
    runs = [t for t in kube.list(TRIALS, NS) if t["metadata"]["name"] in first["trials"]]
    assert all(t["metadata"]["ownerReferences"][0]["kind"] == "HWRecommendation" for t in runs)
    assert all("hwmatch.dev/sweep" not in t["metadata"]["labels"] for t in runs)  # not in the sweep's plan
    assert {j for j in kube.jobs_created if j in first["trials"]} == set(first["trials"])
    recs.reconcile(NS, "toy-rec")  # nothing ended: no second Job for a run
    assert max(kube.jobs_created.values()) == 1
    sweeps.reconcile(NS, "toy-sweep")  # the sweep ignores the runs: its counts are its plan's
    assert kube.get(SWEEPS, NS, "toy-sweep")["status"]["total"] == 6

    # The chosen configuration is slow when it really runs: latency 500 ms breaks the 100 ms requirement.
    assert _finish_all(kube, lambda p, x, job: 500.0) == 2
    recs.reconcile(NS, "toy-rec")
    rec = kube.get(RECOMMENDATIONS, NS, "toy-rec")
    second = rec["status"]["verification"]
    assert second["round"] == 2 and second["phase"] == "Running" and second["history"][0]["met"] is False
    assert "latency_ms broken" in second["message"]
    assert rec["status"]["models"]["latency_ms"]["trainedOnTrials"] == 8  # the runs joined the training data
    assert (second["choice"]["platform"], second["choice"]["parameters"]) != chosen  # the re-solved choice
    assert _finish_all(kube, _law) == 2
    recs.reconcile(NS, "toy-rec")
    rec = kube.get(RECOMMENDATIONS, NS, "toy-rec")
    done = rec["status"]["verification"]
    assert done["phase"] == "Verified" and done["round"] == 2 and [r["met"] for r in done["history"]] == [False, True]
    assert all(c["met"] is not False for c in done["checks"]) and done["checks"][0]["metric"] == "latency_ms"
    verified = next(c for c in rec["status"]["conditions"] if c["type"] == "Verified")
    assert (verified["status"], verified["reason"]) == ("True", "RequirementsMet")
    state = {c["type"]: (c["status"], c["reason"]) for c in rec["status"]["conditions"]}
    assert state["Ready"] == ("True", "Recommended") and "Reconciling" not in state and "Stalled" not in state
    assert recs.reconcile(NS, "toy-rec") == 30 and len(kube.jobs_created) == 6 + 4  # verified: nothing more runs


def test_a_sweep_in_a_system_namespace_is_refused_before_anything_is_created(kube) -> None:
    events = Events()
    for key in list(kube.objects):
        kube.objects[key]["metadata"]["namespace"] = "kube-system"
    _reconciler(kube, events).reconcile("kube-system", "toy-sweep")
    status = kube.get(SWEEPS, NS, "toy-sweep")["status"]
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert status["phase"] == "Failed" and stalled["reason"] == "NamespaceDenied" and "kube-system" in stalled["message"]
    assert not kube.list(TRIALS, NS) and not kube.jobs_created and events[-1][2] == "NamespaceDenied"


def test_workers_run_one_loop_per_object_and_stop_it_on_deletion_or_shutdown() -> None:
    """The per-object loops that replace kopf's daemons (and their finalizers)."""
    from hwmatch.controller.workers import Workers

    async def scenario() -> tuple[int, bool, bool, bool]:
        workers, started, ended = Workers(), [], []

        async def polite(stopped: asyncio.Event) -> None:
            started.append(1)
            await stopped.wait()
            ended.append(1)

        async def stubborn(stopped: asyncio.Event) -> None:  # a pass that outlives the stop's grace
            await asyncio.sleep(60)

        workers.ensure(("sweep", NS, "a"), polite, {"spec": {"assetRef": {"name": "x"}}})
        workers.ensure(("sweep", NS, "a"), polite, {"spec": {"assetRef": {"name": "y"}}})  # a second event
        await asyncio.sleep(0)
        latest = workers.body(("sweep", NS, "a"))["spec"]["assetRef"]["name"] == "y"
        workers.stop(("sweep", NS, "a"))
        for _ in range(3):
            await asyncio.sleep(0)
        stopped = ended == [1] and ("sweep", NS, "a") not in workers
        workers.ensure(("sweep", NS, "b"), stubborn, {})
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await workers.stop_all(grace=0.1)
        return len(started), latest, stopped, loop.time() - t0 < 5

    assert asyncio.run(scenario()) == (1, True, True, True)


def test_a_stalled_sweep_is_exported_for_the_alert(kube) -> None:
    from hwmatch.controller import metrics

    doc = next(d for d in load_text(MANIFESTS) if d.resource.kind == "AIAsset").resource.to_wire()
    doc["spec"].pop("image")
    kube.put(ASSETS, doc)
    _reconciler(kube, Events()).reconcile(NS, "toy-sweep")
    assert metrics.SWEEP_STALLED.labels(NS, "toy-sweep")._value.get() == 1  # HwmatchSweepStalled fires on it
    kube.put(ASSETS, next(d for d in load_text(MANIFESTS) if d.resource.kind == "AIAsset").resource.to_wire())
    _reconciler(kube, Events()).reconcile(NS, "toy-sweep")
    assert metrics.SWEEP_STALLED.labels(NS, "toy-sweep")._value.get() == 0


def test_a_pass_s_parallel_requests_see_the_caller_s_context_variables() -> None:
    """kopf.event reads its settings from a context variable; the request pool's threads must see it."""
    import contextvars

    from hwmatch.controller.trials import each, submit

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var")
    var.set("the operator's")
    assert each(lambda _: var.get(None), range(40)) == ["the operator's"] * 40
    assert submit(var.get, None).result() == "the operator's"
