"""The SQLite store and the engine's resume rules, with an in-process executor (no subprocesses)."""

from __future__ import annotations

import math
import socket
import threading
from collections import Counter

import pandas as pd
import pytest

from hwmatch.api import AIAsset, BenchmarkSweep, BenchmarkTrialStatus, load_text
from hwmatch.data.export import write_frame
from hwmatch.data.frame import ID_COLUMNS
from hwmatch.data.store import Store, StoreError, runner_id
from hwmatch.engine import run_file, run_sweep
from hwmatch.execution import result
from hwmatch.planning import Planner
from hwmatch.planning.schedule import TrialState, attempts_left

MANIFESTS = """
apiVersion: hwmatch.dev/v1alpha1
kind: AIAsset
metadata: {name: toy}
spec:
  command: [python]
  parameters:
    - {name: n, type: int, values: [1, 2, 3]}
    - {name: mode, type: categorical, values: [ok, crash, oom]}
  instanceFeatures: [{name: rows}]
  metrics: [{name: latency_ms, goal: minimize}, {name: accuracy, goal: maximize}]
---
apiVersion: hwmatch.dev/v1alpha1
kind: BenchmarkSweep
metadata: {name: toy-sweep}
spec:
  assetRef: {name: toy}
  platforms:
    - {name: cpu-1core, cpus: [0], costPerHour: 0.05}
    - {name: big, features: {vcpus: 64, accelerator: none}}
  instances: [{rows: 100}]
  backoffLimit: 2
  parallelism: 2
"""


@pytest.fixture
def manifests() -> tuple[AIAsset, BenchmarkSweep]:
    asset, sweep = (d.resource for d in load_text(MANIFESTS))
    return asset, sweep


@pytest.fixture
def store(tmp_path) -> Store:
    with Store(tmp_path / "store" / "hwmatch.db") as s:
        yield s


class FakeExecutor:
    """Answers by the ``mode`` parameter; counts attempts per trial; can stop the run after N attempts."""

    def __init__(self, interrupt_after: int | None = None):
        self.calls: Counter[str] = Counter()
        self.interrupt_after = interrupt_after
        self.lock = threading.Lock()

    def check(self, asset, sweep) -> None:
        pass

    def cancel(self) -> None:
        pass

    def run(self, trial, asset, sweep) -> BenchmarkTrialStatus:
        with self.lock:
            if self.interrupt_after is not None and sum(self.calls.values()) >= self.interrupt_after:
                raise KeyboardInterrupt  # surfaces in the engine's main thread through the future
            self.calls[trial.metadata.name] += 1
        now = result.now()
        mode = trial.spec.parameters["mode"]
        if mode == "crash":
            return result.failed(result.CRASHED, "exited with code 3", now, now, {}, "boom")
        if mode == "oom":
            return result.failed(result.OOM_KILLED, "killed", now, now, {}, None)
        n = trial.spec.parameters["n"]
        return result.succeeded(result.HarnessResult({"latency_ms": 10.0 * n, "accuracy": 0.9}), now, now, {"x": 1})


def by_mode(store: Store) -> dict[str, list]:
    out: dict[str, list] = {}
    for t in store.trials():
        out.setdefault(t.spec.parameters["mode"], []).append(t)
    return out


def test_run_records_every_trial_with_retries(store, manifests):
    asset, sweep = manifests
    executor = FakeExecutor()
    report = run_sweep(store, asset, sweep, executor)
    trials = by_mode(store)
    assert len(store.trials()) == 9 * 2
    assert all(t.status.phase == "Succeeded" and t.status.attempts == 1 for t in trials["ok"])
    assert all(t.status.phase == "Failed" and t.status.reason == "Crashed" and t.status.attempts == 3
               and t.status.log_tail == "boom" for t in trials["crash"])
    assert all(t.status.reason == "OOMKilled" and t.status.attempts == 1 for t in trials["oom"])  # a finding, not retried
    assert (report.succeeded, report.failed, report.attempts) == (6, 12, 6 + 6 * 3 + 6)
    assert report.complete


def test_rerun_skips_finished_and_exhausted_trials(store, manifests):
    asset, sweep = manifests
    run_sweep(store, asset, sweep, FakeExecutor())
    again = FakeExecutor()
    report = run_sweep(store, asset, sweep, again)
    assert not again.calls and report.skipped == 18 and report.attempts == 0


def test_retry_failed_reruns_failures_only(store, manifests):
    asset, sweep = manifests
    run_sweep(store, asset, sweep, FakeExecutor())
    again = FakeExecutor()
    run_sweep(store, asset, sweep, again, retry_failed=True)
    assert {t.spec.parameters["mode"] for t in store.trials() if again.calls[t.metadata.name]} == {"crash", "oom"}
    assert all(t.status.attempts == 6 for t in by_mode(store)["crash"])


def test_interrupted_run_resumes_without_rerunning_finished_trials(store, manifests):
    asset, sweep = manifests
    first = FakeExecutor(interrupt_after=5)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(store, asset, sweep, first)
    # Finished: Succeeded, or Failed with no attempt left. A trial the interrupt caught between two attempts
    # (Failed, retries left) is not finished: the next run owes it its retries.
    finished = {t.metadata.name for t in store.trials(status=["Succeeded", "Failed"])
                if attempts_left(TrialState(t.metadata.name, t.spec.platform, t.status.phase, t.status.reason,
                                            t.status.attempts), sweep.spec.backoff_limit) == 0}
    assert finished and not store.trials(status="Running")  # claimed trials were released
    second = FakeExecutor()
    run_sweep(store, asset, sweep, second)
    assert not set(second.calls) & finished
    total = first.calls + second.calls
    for t in store.trials():
        expected = {"ok": 1, "crash": 3, "oom": 1}[t.spec.parameters["mode"]]
        assert t.status.attempts == expected and total[t.metadata.name] == expected


def test_claims_and_stale_runners(store, manifests):
    asset, sweep = manifests
    trial = Planner(asset, sweep).plan()[0]
    tid = trial.metadata.name
    assert store.plan([trial]) == 1 and store.plan([trial]) == 0
    me = runner_id()
    assert store.claim(tid, me)
    assert not store.claim(tid, "another-runner")  # a live process holds it
    store._db.execute("UPDATE trials SET runner = ? WHERE id = ?", (f"{socket.gethostname()}:999999999:1.000", tid))
    assert store.claim(tid, "another-runner")  # the holder is gone: stale
    now = result.now()
    store.finish(tid, BenchmarkTrialStatus(phase="Succeeded", metrics={"latency_ms": 1.0}, attempts=1,
                                           start_time=now, completion_time=now))
    assert not store.claim(tid, me)  # never run a Succeeded trial again
    store.plan([trial])  # planning again leaves the result alone
    assert store.trials()[0].status.phase == "Succeeded"


def test_results_are_committed_and_survive_reopening(tmp_path, manifests):
    asset, sweep = manifests
    path = tmp_path / "s.db"
    with Store(path) as s:
        run_sweep(s, asset, sweep, FakeExecutor())
    with Store(path) as s:
        assert len(s.trials(status="Succeeded")) == 6
        assert s.asset("toy") == asset.model_copy(update={"status": None})
        assert s.sweep("toy-sweep").spec == sweep.spec
        assert s._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_frame_follows_the_dataset_convention(store, manifests):
    asset, sweep = manifests
    run_sweep(store, asset, sweep, FakeExecutor())
    frame = store.frame(asset="toy")
    assert list(frame.columns) == ID_COLUMNS + [
        "param.n", "param.mode", "instance.rows", "feature.vcpus", "feature.accelerator", "metric.latency_ms",
        "metric.accuracy"]
    assert len(frame) == 18 and set(frame["status"]) == {"Succeeded", "Failed"}
    one = frame[frame["platform"] == "cpu-1core"]
    assert set(one["feature.vcpus"]) == {1} and set(one["cost_per_hour"]) == {0.05}  # derived from cpus: [0]
    big = frame[frame["platform"] == "big"]
    assert set(big["feature.vcpus"]) == {64} and big["cost_per_hour"].isna().all()
    ok = frame[frame["param.mode"] == "ok"]
    assert sorted(ok["metric.latency_ms"]) == [10.0, 10.0, 20.0, 20.0, 30.0, 30.0]
    assert frame[frame["status"] == "Failed"]["metric.latency_ms"].isna().all()
    assert frame["metric.latency_ms"].dtype == float and set(frame["instance.rows"]) == {100}
    assert store.frame(asset="nothing").empty and list(store.frame(asset="nothing").columns) == ID_COLUMNS


def test_frame_of_an_unrun_asset_has_its_declared_columns(store, manifests):
    asset, _ = manifests
    store.put_asset(asset)
    assert list(store.frame(asset="toy").columns) == ID_COLUMNS + [
        "param.n", "param.mode", "instance.rows", "metric.latency_ms", "metric.accuracy"]


def test_add_trials_upserts_imported_results(store, manifests):
    asset, sweep = manifests
    trial = Planner(asset, sweep).plan()[0]
    trial.status = BenchmarkTrialStatus(phase="Succeeded", metrics={"latency_ms": 5.0, "accuracy": 1.0})
    store.put_asset(asset)
    store.put_sweep(sweep)
    assert store.add_trials([trial]) == 1
    trial.status = BenchmarkTrialStatus(phase="Succeeded", metrics={"latency_ms": 6.0, "accuracy": 1.0})
    store.add_trials([trial])
    frame = store.frame(sweeps=["toy-sweep"])
    assert list(frame["metric.latency_ms"]) == [6.0]



def test_trials_read_back_as_written(store, manifests):
    """Every field survives the one-document read: times, quotes and non-ASCII text, verification labels."""
    asset, sweep = manifests
    first, second, third = Planner(asset, sweep).plan()[:3]
    first.status = BenchmarkTrialStatus(
        phase="Failed", reason="Crashed", message='exit "3" – \\ ünïcode\n', metrics={"latency_ms": 5.0},
        attempts=2, start_time=result.now(), completion_time=result.now(), host={"cpus": [0, 1], "name": "h"},
        log_tail="line 1\nline 2")
    second.status = BenchmarkTrialStatus(phase="Succeeded", metrics={"latency_ms": 1e-300, "accuracy": 1.0})
    third.status = BenchmarkTrialStatus(phase="Succeeded", metrics={"latency_ms": math.nan})  # JSON cannot say NaN
    store.add_trials([first, third])
    store.add_verification(second)
    read = {t.metadata.name: t for t in store.trials()}
    assert read[first.metadata.name] == first
    assert read[second.metadata.name].metadata.labels["hwmatch.dev/verification"] == "true"
    assert read[second.metadata.name].status == second.status
    assert math.isnan(read[third.metadata.name].status.metrics["latency_ms"])


def test_records_hold_what_the_trials_hold(store, manifests):
    """The listing's plain read agrees with the models, field by field, under filters and limits, NaN included."""
    asset, sweep = manifests
    planned = Planner(asset, sweep).plan()[:5]
    for i, trial in enumerate(planned[:4]):
        trial.status = BenchmarkTrialStatus(
            phase="Failed" if i == 0 else "Succeeded", reason="Crashed" if i == 0 else None, message="m" if i == 0 else None,
            metrics={"latency_ms": math.nan if i == 1 else float(i)}, attempts=i, log_tail="tail" if i == 0 else None)
    store.add_trials(planned)
    store.put_asset(asset)
    for filters in ({}, {"status": "Succeeded"}, {"limit": 2}, {"status": ["Failed", "Pending"]}):
        trials, records = store.trials(**filters), store.records(**filters)
        assert [r.name for r in records] == [t.metadata.name for t in trials]
        for t, r in zip(trials, records):
            status = t.status or BenchmarkTrialStatus()
            assert (r.asset, r.sweep, r.platform, r.parameters, r.instance, r.repetition) == (
                t.spec.asset_ref.name, t.spec.sweep_ref.name, t.spec.platform, t.spec.parameters, t.spec.instance,
                t.spec.repetition)
            assert (r.phase, r.reason, r.message, r.attempts, r.log_tail) == (
                status.phase or "Pending", status.reason, status.message, status.attempts, status.log_tail)
            assert r.metrics.keys() == status.metrics.keys()
            assert all(math.isnan(v) if math.isnan(status.metrics[k]) else v == status.metrics[k]
                       for k, v in r.metrics.items())
    assert store.declared_metrics() == {asset.metadata.name: [m.name for m in asset.spec.metrics]}


def test_the_first_trials_and_the_count_agree_with_the_whole_list(store, manifests):
    """``limit`` is a prefix of the planned order under every filter; ``count`` is the length it would have."""
    asset, sweep = manifests
    planned = Planner(asset, sweep).plan()[:6]
    for i, trial in enumerate(planned):
        trial.status = BenchmarkTrialStatus(phase="Succeeded" if i % 2 else "Failed", metrics={"latency_ms": float(i)})
    store.add_trials(planned)
    for filters in ({}, {"status": "Succeeded"}, {"status": ["Failed"], "sweep": sweep.metadata.name}, {"asset": "none"}):
        every = [t.metadata.name for t in store.trials(**filters)]
        assert store.count(**filters) == len(every)
        for limit in (1, 2, 10):
            assert [t.metadata.name for t in store.trials(**filters, limit=limit)] == every[:limit]
    assert store.count(status="Succeeded") == 3


@pytest.mark.parametrize("metrics", ['{"latency_ms": ', '{"latency_ms": 1.0}, "attempts": 9', '[1.0]'])
def test_a_damaged_trial_row_is_named(store, manifests, metrics):
    asset, sweep = manifests
    trial = Planner(asset, sweep).plan()[0]
    store.add_trials([trial])
    store._db.execute("UPDATE trials SET metrics = ?", (metrics,))
    with pytest.raises(StoreError, match=f"trials row '{trial.metadata.name}' is damaged"):
        store.trials()
    with pytest.raises(StoreError, match=f"trials row '{trial.metadata.name}' is damaged"):
        store.records()  # the listing's read, which builds no model, names it too

def test_run_file_errors_name_the_fix(store, tmp_path, manifests):
    only_sweep = tmp_path / "sweep.yaml"
    only_sweep.write_text(MANIFESTS.split("---")[1])
    with pytest.raises(ValueError, match="refers to AIAsset 'toy', which is neither in the files nor in the store"):
        run_file([only_sweep], store, FakeExecutor())
    both = tmp_path / "both.yaml"
    both.write_text(MANIFESTS)
    with pytest.raises(ValueError, match="no BenchmarkSweep named nope in the files; they define: toy-sweep"):
        run_file([both], store, FakeExecutor(), sweeps=["nope"])
    run_file([both], store, FakeExecutor())
    assert len(run_file([only_sweep], store, FakeExecutor()).runs) == 1  # the asset is in the store now


def test_export_formats(tmp_path):
    frame = pd.DataFrame({"trial_id": ["a", "b"], "param.k": [1, "x"], "metric.m": [1.0, math.nan]})
    write_frame(frame, tmp_path / "d.parquet")
    assert list(pd.read_parquet(tmp_path / "d.parquet")["param.k"]) == ["1", "x"]
    write_frame(frame, tmp_path / "d.csv")
    assert len(pd.read_csv(tmp_path / "d.csv")) == 2
    with pytest.raises(ValueError, match=r"name the file \*.parquet or \*.csv"):
        write_frame(frame, tmp_path / "d.xlsx")


class ConcurrencyProbe(FakeExecutor):
    """Records the most trials running at once, overall and per platform."""

    def __init__(self):
        super().__init__()
        self.now: Counter[str] = Counter()
        self.peak = 0
        self.peak_per_platform = 0

    def run(self, trial, asset, sweep):
        with self.lock:
            self.now[trial.spec.platform] += 1
            self.peak = max(self.peak, sum(self.now.values()))
            self.peak_per_platform = max(self.peak_per_platform, max(self.now.values()))
        try:
            threading.Event().wait(0.01)  # give other workers the chance to overlap
            return super().run(trial, asset, sweep)
        finally:
            with self.lock:
                self.now[trial.spec.platform] -= 1


@pytest.mark.parametrize("parallelism, per_platform", [(1, 1), (2, 1), (4, 2)])
def test_parallelism_bounds_hold(store, manifests, parallelism, per_platform):
    asset, sweep = manifests
    sweep.spec.parallelism, sweep.spec.parallelism_per_platform = parallelism, per_platform
    probe = ConcurrencyProbe()
    run_sweep(store, asset, sweep, probe)
    assert probe.peak <= parallelism and probe.peak_per_platform <= per_platform
    assert sum(probe.calls.values()) == 6 + 6 * 3 + 6
