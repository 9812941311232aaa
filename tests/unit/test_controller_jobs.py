"""Trials as Jobs, without a cluster: the manifest a trial becomes, and the outcome read back from Job and pods."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from hwmatch.api import AIAsset, BenchmarkSweep, load_text
from hwmatch.execution import result
from hwmatch.execution.kubernetes import (
    LABEL_TRIAL,
    UNSCHEDULABLE,
    check_runnable,
    job_finished,
    job_manifest,
    job_outcome,
)
from hwmatch.planning import Planner

MANIFESTS = """
apiVersion: hwmatch.dev/v1alpha1
kind: AIAsset
metadata: {name: forest}
spec:
  image: ghcr.io/hwmatch/benchmark:0.1
  command: [hwmatch-bench, run, sklearn-forest]
  args: [--samples, "5"]
  env: {EXTRA: "1"}
  parameters:
    - {name: n_estimators, type: int, values: [5, 10]}
  metrics:
    - {name: accuracy, goal: maximize}
    - {name: energy_j, source: prometheus, preset: rapl-energy}
---
apiVersion: hwmatch.dev/v1alpha1
kind: BenchmarkSweep
metadata: {name: forest-sweep}
spec:
  assetRef: {name: forest}
  platforms:
    - name: gpu-l4
      nodeSelector: {cloud.google.com/gke-accelerator: nvidia-l4}
      tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
      resources: {limits: {nvidia.com/gpu: 1, cpu: "4", memory: 16Gi}}
      threads: 4
  trialTimeout: 90s
  backoffLimit: 2
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


def test_job_manifest_carries_the_design(objects, trial) -> None:
    asset, sweep = objects
    job = job_manifest(trial, asset, sweep)
    assert job["metadata"]["name"] == trial.metadata.name
    assert job["metadata"]["labels"][LABEL_TRIAL] == trial.metadata.name
    assert job["metadata"]["labels"]["hwmatch.dev/sweep"] == "forest-sweep"
    assert job["metadata"]["labels"]["hwmatch.dev/asset"] == "forest"
    assert job["metadata"]["labels"]["hwmatch.dev/platform"] == "gpu-l4"
    (owner,) = job["metadata"]["ownerReferences"]
    assert owner == {"apiVersion": "hwmatch.dev/v1alpha1", "kind": "BenchmarkTrial", "name": trial.metadata.name,
                     "uid": "uid-123", "controller": True, "blockOwnerDeletion": True}
    spec = job["spec"]
    assert spec["backoffLimit"] == 2 and spec["activeDeadlineSeconds"] == 90
    pod = spec["template"]["spec"]
    assert spec["template"]["metadata"]["labels"][LABEL_TRIAL] == trial.metadata.name
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    (c,) = pod["containers"]
    assert c["image"] == "ghcr.io/hwmatch/benchmark:0.1"
    assert c["command"] == ["hwmatch-bench", "run", "sklearn-forest"] and c["args"] == ["--samples", "5"]
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert c["resources"] == {"limits": {"nvidia.com/gpu": "1", "cpu": "4", "memory": "16Gi"}}
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert json.loads(env["HWMATCH_PARAMS"]) == trial.spec.parameters
    assert env["HWMATCH_TRIAL_ID"] == trial.metadata.name and env["EXTRA"] == "1"
    assert env["OMP_NUM_THREADS"] == "4"
    # A SIGKILLed (OOM) container fails the Job at once: a finding, not a flake to retry.
    rules = spec["podFailurePolicy"]["rules"]
    assert {"action": "FailJob", "onExitCodes": {"containerName": "trial", "operator": "In", "values": [137]}} in rules


def test_a_job_needs_an_image_and_an_owner(objects, trial) -> None:
    asset, sweep = objects
    with pytest.raises(ValueError, match="spec.image is required"):
        check_runnable(asset.model_copy(update={"spec": asset.spec.model_copy(update={"image": None})}))
    trial.metadata.uid = None
    with pytest.raises(ValueError, match="metadata.uid"):
        job_manifest(trial, asset, sweep)


def _job(condition: str | None = None, reason: str = "", succeeded: int = 0, failed: int = 0) -> dict:
    status: dict = {"startTime": "2026-01-02T03:00:00Z", "succeeded": succeeded, "failed": failed}
    if condition:
        status["conditions"] = [{"type": condition, "status": "True", "reason": reason, "message": f"{reason} msg"}]
    return {"metadata": {"name": "forest-sweep-abc"}, "spec": {"activeDeadlineSeconds": 90}, "status": status}


def _pod(phase: str, terminated: dict | None = None, name: str = "forest-sweep-abc-x", created: str = "2026-01-02T03:00:01Z",
         conditions: list | None = None) -> dict:
    status: dict = {"phase": phase, "conditions": conditions or []}
    if terminated is not None:
        status["containerStatuses"] = [{"name": "trial", "state": {"terminated": {
            "startedAt": "2026-01-02T03:00:02Z", "finishedAt": "2026-01-02T03:00:09Z", **terminated}}}]
    return {"metadata": {"name": name, "creationTimestamp": created}, "spec": {"nodeName": "local-0"}, "status": status}


def test_succeeded_job_reads_the_harness_result_from_the_termination_message(objects) -> None:
    asset, _ = objects
    message = json.dumps({"metrics": {"accuracy": 0.93, "latency_p99_ms": 2.5}, "samples": 5,
                          "started": 1.0, "finished": 2.0, "host": {"cpuModel": "x"}})
    status = job_outcome(_job("Complete", succeeded=1), [_pod("Succeeded", {"exitCode": 0, "message": message})], asset, NOW)
    assert status.phase == "Succeeded" and status.metrics == {"accuracy": 0.93, "latency_p99_ms": 2.5}
    assert status.attempts == 1
    assert status.host["executor"] == "kubernetes" and status.host["node"] == "local-0"
    assert status.host["measurement"]["samples"] == 5
    assert status.start_time == datetime(2026, 1, 2, 3, 0, 2, tzinfo=timezone.utc)
    assert status.completion_time == datetime(2026, 1, 2, 3, 0, 9, tzinfo=timezone.utc)


def test_succeeded_job_without_a_result_is_no_result(objects) -> None:
    asset, _ = objects
    status = job_outcome(_job("Complete", succeeded=1), [_pod("Succeeded", {"exitCode": 0})], asset, NOW)
    assert status.phase == "Failed" and status.reason == result.NO_RESULT
    assert "termination message" in status.message
    garbled = job_outcome(_job("Complete", succeeded=1), [_pod("Succeeded", {"exitCode": 0, "message": "hello"})], asset, NOW)
    assert garbled.reason == result.NO_RESULT and garbled.log_tail == "hello"


def test_result_lacking_a_declared_harness_metric_is_missing_metrics(objects) -> None:
    asset, _ = objects
    message = json.dumps({"metrics": {"latency_p99_ms": 2.5}})
    status = job_outcome(_job("Complete", succeeded=1), [_pod("Succeeded", {"exitCode": 0, "message": message})], asset, NOW)
    assert status.reason == result.MISSING_METRICS and "accuracy" in status.message
    assert "energy_j" not in status.message  # a prometheus metric is not the harness's to report


def test_deadline_is_timeout_and_oom_is_a_data_point(objects) -> None:
    asset, _ = objects
    timeout = job_outcome(_job("Failed", "DeadlineExceeded", failed=1), [_pod("Failed", {"exitCode": 143})], asset, NOW)
    assert timeout.reason == result.TIMEOUT and "90s" in timeout.message
    oom = job_outcome(_job("Failed", "PodFailurePolicy", failed=1),
                      [_pod("Failed", {"exitCode": 137, "reason": "OOMKilled"})], asset, NOW)
    assert oom.phase == "Failed" and oom.reason == result.OOM_KILLED


def test_crash_keeps_the_log_tail_and_counts_attempts(objects) -> None:
    asset, _ = objects
    pods = [_pod("Failed", {"exitCode": 1, "message": "old"}, name="a", created="2026-01-02T03:00:01Z"),
            _pod("Failed", {"exitCode": 3, "message": "Traceback...\nValueError: boom"}, name="b",
                 created="2026-01-02T03:00:05Z")]
    status = job_outcome(_job("Failed", "BackoffLimitExceeded", failed=2), pods, asset, NOW)
    assert status.reason == result.CRASHED and status.message == "exited with code 3"
    assert "ValueError: boom" in status.log_tail and status.attempts == 2 and status.host["pod"] == "b"
    harness_error = json.dumps({"error": "ValueError: bad batch", "asset": "sklearn-forest"})
    status = job_outcome(_job("Failed", "BackoffLimitExceeded", failed=1),
                         [_pod("Failed", {"exitCode": 1, "message": harness_error})], asset, NOW)
    assert status.message == "exited with code 1: ValueError: bad batch"
    start = job_outcome(_job("Failed", "BackoffLimitExceeded", failed=1),
                        [_pod("Failed", {"exitCode": 128, "reason": "StartError", "message": "command not found"})],
                        asset, NOW)
    assert start.reason == result.COMMAND_NOT_FOUND and "command not found" in start.message


def test_running_job_has_no_outcome_until_unschedulable_for_the_timeout(objects) -> None:
    asset, _ = objects
    assert not job_finished(_job())
    assert job_outcome(_job(), [_pod("Running")], asset, NOW) is None
    pending = [_pod("Pending", conditions=[{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "lastTransitionTime": (NOW - timedelta(seconds=30)).isoformat(),
        "message": "0/10 nodes are available: 10 node(s) didn't match Pod's node affinity/selector."}])]
    assert job_outcome(_job(), pending, asset, NOW, unschedulable_after=60) is None
    status = job_outcome(_job(), pending, asset, NOW, unschedulable_after=20)
    assert status.phase == "Failed" and status.reason == UNSCHEDULABLE
    assert "didn't match" in status.message and "nodeSelector" in status.message
