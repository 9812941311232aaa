"""The sweep policy (planning/schedule.py): its rules, and one sweep driven through both of its drivers."""

from __future__ import annotations

import json
import threading
from collections import Counter

import pytest

from hwmatch.api import BenchmarkSweep, BenchmarkTrialStatus, load_text
from hwmatch.api.vocabulary import FAILED, OOM_KILLED, PENDING, RUNNING, SUCCEEDED, UNSCHEDULABLE
from hwmatch.controller.kube import ASSETS, SWEEPS, TRIALS
from hwmatch.data.store import Store
from hwmatch.engine import run_sweep
from hwmatch.execution import result
from hwmatch.planning.schedule import TrialState, attempts_left, sweep_step
from tests.unit.test_controller import NS, Events, FakeKube, _reconciler

SWEEP = BenchmarkSweep.model_validate({
    "apiVersion": "hwmatch.dev/v1alpha1", "kind": "BenchmarkSweep", "metadata": {"name": "s"},
    "spec": {"assetRef": {"name": "a"}, "platforms": [{"name": "p"}, {"name": "q"}],
             "parallelism": 3, "parallelismPerPlatform": 2, "backoffLimit": 1}})


def _states(*specs: tuple[str, str, str]) -> list[TrialState]:
    return [TrialState(name, platform, phase) for name, platform, phase in specs]


def test_attempts_left_follows_the_backoff_limit_and_final_reasons() -> None:
    assert attempts_left(TrialState("t", "p"), backoff_limit=1) == 2
    assert attempts_left(TrialState("t", "p", FAILED, "Crashed", attempts=1), backoff_limit=1) == 1
    assert attempts_left(TrialState("t", "p", FAILED, "Crashed", attempts=2), backoff_limit=1) == 0
    assert attempts_left(TrialState("t", "p", FAILED, OOM_KILLED, attempts=1), backoff_limit=3) == 0
    assert attempts_left(TrialState("t", "p", FAILED, UNSCHEDULABLE, attempts=1), backoff_limit=3) == 0
    assert attempts_left(TrialState("t", "p", SUCCEEDED, attempts=1), backoff_limit=3) == 0
    assert attempts_left(TrialState("t", "p", RUNNING), backoff_limit=3) == 0
    assert attempts_left(TrialState("t", "p", elsewhere=True), backoff_limit=3) == 0
    # one start that runs the whole series (a Job): an ended trial never starts again
    assert attempts_left(TrialState("t", "p", FAILED, "Crashed", attempts=1), backoff_limit=3, series=True) == 0


def test_a_step_starts_retries_first_then_plan_order_within_both_limits() -> None:
    trials = _states(("a", "p", PENDING), ("b", "p", PENDING), ("c", "q", PENDING), ("d", "p", PENDING),
                     ("e", "q", PENDING))
    trials[3] = TrialState("d", "p", FAILED, "Crashed", attempts=1)
    step = sweep_step(SWEEP, trials)
    # d (a retry) first; then a on p (p full at 2); b skipped for p; c on q; parallelism 3 reached
    assert step.start == ["d", "a", "c"]
    running = [TrialState(t.name, t.platform, RUNNING if t.name in step.start else t.phase) for t in trials]
    again = sweep_step(SWEEP, running)
    assert again.start == [] and not again.next_round and again.status.running == 3


def test_the_next_round_is_due_only_when_nothing_runs_or_may_start() -> None:
    done = _states(("a", "p", SUCCEEDED), ("b", "q", FAILED))
    assert sweep_step(SWEEP, done, in_rounds=True, series=True).next_round
    assert not sweep_step(SWEEP, done, in_rounds=False).next_round
    assert not sweep_step(SWEEP, [*done, TrialState("c", "p", RUNNING)], in_rounds=True).next_round
    # b failed once with a retry left: it runs before any new round
    retry = [done[0], TrialState("b", "q", FAILED, "Crashed", attempts=1)]
    step = sweep_step(SWEEP, retry, in_rounds=True)
    assert step.start == ["b"] and not step.next_round


def test_the_status_counts_phases_per_platform_and_says_how_it_ended() -> None:
    step = sweep_step(SWEEP, _states(("a", "p", SUCCEEDED), ("b", "q", FAILED), ("c", "q", SUCCEEDED)))
    status = step.status
    assert (status.phase, status.total, status.succeeded, status.failed, status.progress) == ("Succeeded", 3, 2, 1, "3/3")
    assert (status.platforms["q"].failed, status.platforms["q"].succeeded, status.platforms["p"].succeeded) == (1, 1, 1)
    conditions = {c.type: c for c in status.conditions}
    assert set(conditions) == {"Ready"}  # kstatus: neither Reconciling nor Stalled once the goal is reached
    assert (conditions["Ready"].status, conditions["Ready"].reason) == ("True", "Complete")
    assert conditions["Ready"].message == step.summary == "2 succeeded, 1 failed"


def test_the_status_is_reconciling_while_trials_run_and_stalled_when_all_failed() -> None:
    pending = sweep_step(SWEEP, _states(("a", "p", PENDING), ("b", "q", PENDING))).status
    assert _state(pending) == ("Reconciling", "TrialsPending", "False") and pending.phase == "Pending"
    running = sweep_step(SWEEP, _states(("a", "p", RUNNING), ("b", "q", SUCCEEDED))).status
    assert _state(running) == ("Reconciling", "TrialsRunning", "False") and running.phase == "Running"
    ready = next(c for c in running.conditions if c.type == "Ready")
    assert ready.message == "1 of 2 finished (1 succeeded, 0 failed); 1 running, 0 pending"
    failed = sweep_step(SWEEP, [TrialState("a", "p", FAILED, "OOMKilled"), TrialState("b", "q", FAILED, "Crashed")],
                        previous=running).status
    assert _state(failed) == ("Stalled", "AllTrialsFailed", "False") and failed.phase == "Failed"
    assert "Reconciling" not in {c.type for c in failed.conditions}  # the state it left goes


def _state(status) -> tuple[str, str, str]:
    """(the True one of Reconciling/Stalled, its reason, Ready's status)."""
    true = [c for c in status.conditions if c.type in ("Reconciling", "Stalled") and c.status == "True"]
    ready = next(c for c in status.conditions if c.type == "Ready")
    assert len(true) == 1 and true[0].reason == ready.reason, status.conditions
    return true[0].type, true[0].reason, ready.status


# -- one sweep, both drivers ------------------------------------------------------------------------

MANIFESTS = """
apiVersion: hwmatch.dev/v1alpha1
kind: AIAsset
metadata: {name: toy}
spec:
  image: img
  command: [toy]
  parameters:
    - {name: x, type: float, range: {min: 0, max: 1}}
  metrics:
    - {name: latency_ms, goal: minimize}
    - {name: accuracy, goal: maximize}
---
apiVersion: hwmatch.dev/v1alpha1
kind: BenchmarkSweep
metadata: {name: toy-sweep}
spec:
  assetRef: {name: toy}
  platforms:
    - {name: small, nodeSelector: {pool: small}, costPerHour: 1, features: {vcpus: 1}}
    - {name: large, nodeSelector: {pool: large}, costPerHour: 3, features: {vcpus: 4}}
  sampling: {strategy: adaptive, budget: 14, initial: 8, batchSize: 3, seed: 3}
  parallelism: 3
  parallelismPerPlatform: 2
  backoffLimit: 1
"""


def _measure(platform: str, x: float) -> dict[str, float] | None:
    """The toy asset's behaviour: faster with more CPUs, more accurate with x; it crashes on small above 0.85."""
    if platform == "small" and x > 0.85:
        return None
    vcpus = 1 if platform == "small" else 4
    return {"latency_ms": 10 + 40 * x / vcpus, "accuracy": 0.5 + 0.45 * x}


class _Executor:
    """The local driver's executor: the same behaviour, answered at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def check(self, asset, sweep) -> None:
        pass

    def cancel(self) -> None:
        pass

    def run(self, trial, asset, sweep) -> BenchmarkTrialStatus:
        now = result.now()
        metrics = _measure(trial.spec.platform, trial.spec.parameters["x"])
        if metrics is None:
            return result.failed(result.CRASHED, "exit 1", now, now, {}, "boom")
        return BenchmarkTrialStatus(phase=SUCCEEDED, metrics=metrics, start_time=now, completion_time=now)


@pytest.mark.timeout(300)
def test_one_sweep_through_both_drivers_gives_the_same_trials_rounds_and_status(tmp_path) -> None:
    asset, sweep = (d.resource for d in load_text(MANIFESTS))
    with Store(tmp_path / "s.db") as store:
        local = run_sweep(store, asset, sweep, _Executor())
        planned = [t.metadata.name for t in store.trials(sweep="toy-sweep")]  # plan order, rounds included
        local_outcomes = {t.metadata.name: t.status.phase for t in store.trials(sweep="toy-sweep")}

    kube = FakeKube()
    kube.put(ASSETS, asset.to_wire())
    kube.put(SWEEPS, sweep.to_wire())
    reconciler = _reconciler(kube, Events())
    for _ in range(60):
        reconciler.reconcile(NS, "toy-sweep")
        status = kube.get(SWEEPS, NS, "toy-sweep").get("status", {})
        if status.get("phase") in ("Succeeded", "Failed"):
            break
        for name, job in list(kube.jobs_by_name.items()):
            if not job["status"]:
                env = job["spec"]["template"]["spec"]["containers"][0]["env"]
                x = json.loads(next(e["value"] for e in env if e["name"] == "HWMATCH_PARAMS"))["x"]
                measured = _measure(job["metadata"]["labels"]["hwmatch.dev/platform"], x)
                kube.finish(name, measured, exit_code=0 if measured is not None else 1)
    created = [name for (plural, name) in kube.objects if plural == TRIALS]  # creation order
    cluster_outcomes = {t["metadata"]["name"]: t["status"]["phase"] for t in kube.list(TRIALS, NS)}

    assert len(planned) == 2 * 14  # budget 14 combinations on each of 2 platforms: 8 first, then rounds of 3
    # the same trials, planned in the same rounds (a pass creates a round's trials side by side: within a
    # round the creation order is the API server's)
    for end in range(16, len(planned) + 1, 6):
        assert set(created[:end]) == set(planned[:end]), end
    assert cluster_outcomes == local_outcomes
    assert Counter(local_outcomes.values())[FAILED] > 0  # the crash region was sampled: failures count the same
    wire = local.status.to_wire()
    for key in ("phase", "total", "succeeded", "failed", "running", "pending", "progress", "platforms"):
        assert status[key] == wire[key], key
    ready = {c["type"]: c["message"] for c in status["conditions"]}["Ready"]
    assert ready == next(c.message for c in local.status.conditions if c.type == "Ready")
