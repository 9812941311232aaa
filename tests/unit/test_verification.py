"""``verify``: every predicted metric is checked against its interval, and the runs become training data."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hwmatch.api import AIAsset, BenchmarkSweep, BenchmarkTrial, BenchmarkTrialStatus, HWRecommendation, load_text
from hwmatch.api.vocabulary import LABEL_VERIFICATION
from hwmatch.data.store import Store
from hwmatch.engine import answer_stored, run_sweep, verify
from hwmatch.execution import result

MANIFESTS = """
apiVersion: hwmatch.dev/v1alpha1
kind: AIAsset
metadata: {name: law}
spec:
  command: [unused]
  parameters: [{name: size, type: int, values: [1, 2, 3, 4, 5, 6, 7, 8]}]
  metrics: [{name: latency_ms, goal: minimize}, {name: throughput_per_s, goal: maximize}, {name: memory_mb}]
---
apiVersion: hwmatch.dev/v1alpha1
kind: BenchmarkSweep
metadata: {name: law-sweep}
spec:
  assetRef: {name: law}
  platforms: [{name: one, costPerHour: 1.0}, {name: two, costPerHour: 1.5}]
  sampling: {strategy: grid, repetitions: 2}
---
apiVersion: hwmatch.dev/v1alpha1
kind: HWRecommendation
metadata: {name: law-cheap}
spec:
  assetRef: {name: law}
  objective: {minimize: cost_per_hour}
  constraints: [{metric: latency_ms, max: 100}]
  throughput: {requestsPerSecond: 1000}
  confidence: 0.9
"""


class Law:
    """latency = (2 + size/2) / cpus, ±3% by repetition; memory = 100 + size, except ``memory_scale`` times it."""

    def __init__(self, memory_scale: float = 1.0) -> None:
        self.memory_scale = memory_scale

    def check(self, asset: AIAsset, sweep: BenchmarkSweep) -> None:
        pass

    def cancel(self) -> None:
        pass

    def run(self, trial: BenchmarkTrial, asset: AIAsset, sweep: BenchmarkSweep) -> BenchmarkTrialStatus:
        cpus = 2 if trial.spec.platform == "two" else 1
        size = trial.spec.parameters["size"]
        latency = (2.0 + 0.5 * size) / cpus * (0.97 if trial.spec.repetition % 2 == 0 else 1.03)
        metrics = {"latency_ms": latency, "throughput_per_s": 1000.0 / latency,
                   "memory_mb": (100.0 + size) * self.memory_scale}
        now = result.now()
        return result.succeeded(result.HarnessResult(metrics), now, now, {})


@pytest.fixture
def solved(tmp_path: Path) -> tuple[Store, HWRecommendation]:
    asset, sweep, rec = (d.resource for d in load_text(MANIFESTS))
    store = Store(tmp_path / "store.db")
    store.put_asset(asset)
    store.put_sweep(sweep)
    assert run_sweep(store, asset, sweep, Law()).succeeded == 32
    answered = answer_stored(store, rec)
    assert answered.status.phase == "Ready", answered.status
    return store, answered


def test_every_predicted_metric_is_checked_and_throughput_is_predicted_for_the_replicas(solved) -> None:
    store, rec = solved
    best = rec.status.recommendation
    checks, _ = verify(store, rec, Law(memory_scale=3.0), repetitions=2)  # memory far off its prediction
    by_metric = {c.metric: c for c in checks}
    latency = by_metric["latency_ms"]
    assert latency.required and latency.ok and latency.inside is True
    served = by_metric[f"{best.replicas} × throughput_per_s"]
    per_replica = best.predicted["throughput_per_s"]
    assert served.predicted is not None and served.predicted.value == pytest.approx(best.replicas * per_replica.value)
    assert served.predicted.lower == pytest.approx(best.replicas * per_replica.lower)
    assert served.ok and served.inside is True
    memory = by_metric["memory_mb"]  # not constrained, still checked against its interval
    assert not memory.required and memory.ok and memory.inside is False


def test_verification_runs_join_the_training_data_but_not_the_plan(solved) -> None:
    store, rec = solved
    before = store.states("law-sweep"), store.counts("law-sweep"), len(store.frame(asset="law"))
    verify(store, rec, Law(), repetitions=2)
    verify(store, rec, Law(), repetitions=1)  # a second verification adds, never overwrites
    kept = store.verifications(asset="law")
    assert len(kept) == 3 and len({t.metadata.name for t in kept}) == 3
    assert all(t.metadata.labels[LABEL_VERIFICATION] == "true" and t.status.phase == "Succeeded" for t in kept)
    assert not set(before[0]) & {t.metadata.name for t in kept}
    assert (store.states("law-sweep"), store.counts("law-sweep")) == before[:2]  # the sweep's plan is unchanged
    frame = store.frame(asset="law")
    assert len(frame) == before[2] + 3 and set(t.metadata.name for t in kept) <= set(frame["trial_id"])
    again = answer_stored(store, rec)
    assert again.status.dataset_hash != rec.status.dataset_hash  # the next answer learns from them
    assert again.status.models["latency_ms"].trained_on_trials == 35


def test_a_store_written_before_verification_runs_opens(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE trials (id TEXT PRIMARY KEY, asset TEXT NOT NULL, sweep TEXT NOT NULL, "
                   "platform TEXT NOT NULL, parameters TEXT NOT NULL, instance TEXT NOT NULL, repetition INTEGER NOT NULL, "
                   "status TEXT NOT NULL, reason TEXT, message TEXT, metrics TEXT NOT NULL DEFAULT '{}', started TEXT, "
                   "finished TEXT, attempts INTEGER NOT NULL DEFAULT 0, host TEXT NOT NULL DEFAULT '{}', log_tail TEXT, "
                   "runner TEXT)")
        db.execute("INSERT INTO trials (id, asset, sweep, platform, parameters, instance, repetition, status) "
                   "VALUES ('t', 'law', 's', 'one', '{}', '{}', 0, 'Succeeded')")
    with Store(path) as store:
        (trial,) = store.trials()
        assert LABEL_VERIFICATION not in trial.metadata.labels and list(store.states("s")) == ["t"]
