"""``verify``: every predicted metric is checked against its interval, and the runs become training data."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hwmatch.api import AIAsset, BenchmarkSweep, BenchmarkTrial, BenchmarkTrialStatus, HWRecommendation, Verify, load_text
from hwmatch.api.vocabulary import LABEL_VERIFICATION
from hwmatch.data.store import Store
from hwmatch.engine import answer_stored, run_sweep, verification_step, verify, verify_spec
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
    done = verify(store, rec, Law(memory_scale=3.0), repetitions=2)  # memory far off its prediction
    v = done.status.verification
    assert (v.phase, v.reason, v.round, len(v.trials)) == ("Verified", "RequirementsMet", 1, 2)
    assert store.recommendations()[0].status.verification == v  # kept with the answer, for the report
    by_metric = {c.metric: c for c in v.checks}
    latency = by_metric["latency_ms"]
    assert latency.met is True and latency.inside is True
    served = by_metric[f"{best.replicas} × throughput_per_s"]
    per_replica = best.predicted["throughput_per_s"]
    assert served.predicted is not None and served.predicted.value == pytest.approx(best.replicas * per_replica.value)
    assert served.predicted.lower == pytest.approx(best.replicas * per_replica.lower)
    assert served.met is True and served.inside is True
    memory = by_metric["memory_mb"]  # not constrained, still checked against its interval
    assert memory.met is None and memory.inside is False


def test_verification_runs_join_the_training_data_but_not_the_plan(solved) -> None:
    store, rec = solved
    before = store.states("law-sweep"), store.counts("law-sweep"), len(store.frame(asset="law"))
    again = verify(store, verify(store, rec, Law(), repetitions=2), Law(), repetitions=1)  # adds, never overwrites
    assert [(r.round, r.met) for r in again.status.verification.history] == [(1, True), (2, True)]
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


class Slow(Law):
    """The Law, except on ``platforms``: each run serves ``throughput`` times the Law's requests, or takes ``latency``."""

    def __init__(self, *platforms: str, throughput: float = 1.0, latency: float | None = None) -> None:
        super().__init__()
        self.platforms, self.throughput, self.latency, self.runs = platforms, throughput, latency, 0

    def run(self, trial: BenchmarkTrial, asset: AIAsset, sweep: BenchmarkSweep) -> BenchmarkTrialStatus:
        self.runs += 1
        out = super().run(trial, asset, sweep)
        if trial.spec.platform in self.platforms:
            out.metrics["throughput_per_s"] *= self.throughput
            if self.latency is not None:
                out.metrics["latency_ms"] = self.latency
        return out


def _asking(store: Store, rec: HWRecommendation, repetitions: int, rounds: int) -> HWRecommendation:
    spec = rec.spec.model_copy(update={"verify": Verify(repetitions=repetitions, rounds=rounds)})
    return answer_stored(store, HWRecommendation(metadata=rec.metadata, spec=spec))


def _verified(rec: HWRecommendation) -> tuple[str, str]:
    condition = next(c for c in rec.status.conditions if c.type == "Verified")
    return rec.status.verification.phase, condition.status


def test_spec_verify_runs_the_choice_and_a_second_run_of_the_request_runs_nothing_again(solved) -> None:
    store, rec = solved
    law = Slow()
    done = verify_spec(store, _asking(store, rec, 2, 3), law)
    v = done.status.verification
    assert _verified(done) == ("Verified", "True") and v.round == 1 and law.runs == 2
    assert {c.type: c.status for c in done.status.conditions}["Ready"] == "True"  # solved and verified: its goal
    assert (v.choice.platform, v.choice.parameters) == (rec.status.recommendation.platform,
                                                       rec.status.recommendation.parameters)
    assert [c.metric for c in v.checks][:1] == ["latency_ms"] and all(c.met is not False for c in v.checks)
    assert v.history[0].intervals == sum(c.inside is not None for c in v.checks)
    assert sorted(v.trials) == sorted(t.metadata.name for t in store.verifications(asset="law"))
    # solved again with its own runs, the answer stays the verified choice (it wins ties on the objective)
    best = done.status.recommendation
    assert (best.platform, best.parameters) == (v.choice.platform, v.choice.parameters)
    again = verify_spec(store, _asking(store, rec, 2, 3), law)  # `hwmatch run` again: the verification is kept
    assert law.runs == 2 and again.status.verification == v


def test_a_broken_requirement_is_learnt_from_and_the_re_solved_choice_is_verified(solved) -> None:
    store, rec = solved
    best = rec.status.recommendation
    law = Slow(best.platform, throughput=0.5)  # half the requests the model expects: the 1000 req/s target breaks
    done = verify_spec(store, _asking(store, rec, 2, 3), law)
    first, *later = done.status.verification.history
    assert (first.round, first.platform, first.replicas, first.met) == (1, best.platform, best.replicas, False)
    # the runs joined the training data: each later round verifies the answer re-solved with them, the last holds
    assert later and later[-1].met is True and all(r.met is False for r in later[:-1])
    assert (later[-1].platform, later[-1].replicas) != (best.platform, best.replicas)
    assert _verified(done) == ("Verified", "True")
    assert law.runs == 2 * len(done.status.verification.history) == len(store.verifications(asset="law"))
    assert done.status.models["throughput_per_s"].trained_on_trials == 32 + law.runs  # solved again after the last


def test_verification_stops_when_its_rounds_are_spent(solved) -> None:
    store, rec = solved
    law = Slow("one", "two", throughput=0.5)  # the target breaks on every platform
    done = verify_spec(store, _asking(store, rec, 1, 1), law)
    v = done.status.verification
    assert (v.phase, v.reason, v.round, law.runs) == ("Failed", "RoundsSpent", 1, 1) and "rounds are spent" in v.message
    assert _verified(done)[1] == "False" and [r.met for r in v.history] == [False]
    state = {c.type: (c.status, c.reason) for c in done.status.conditions}  # kstatus: the goal is out of reach
    assert state["Ready"] == ("False", "RoundsSpent") and state["Stalled"] == ("True", "RoundsSpent")
    served = next(c for c in v.checks if "×" in c.metric)
    assert served.met is False and served.measured[0] < 1000


def test_runs_far_from_every_prediction_can_leave_nothing_to_verify(solved) -> None:
    store, rec = solved
    # 1 s where the models say 1-6 ms: the intervals widen until nothing can be shown to hold (no answer, no round)
    done = verify_spec(store, _asking(store, rec, 1, 3), Slow("one", "two", latency=1000.0))
    v = done.status.verification
    assert (v.phase, v.reason, v.round) == ("Failed", "NoAnswer", 1) and done.status.phase != "Ready", v.message


def test_a_verified_choice_resized_by_what_its_runs_taught_stays_verified_while_its_runs_cover_the_target(solved) -> None:
    store, rec = solved
    done = verify_spec(store, _asking(store, rec, 2, 1), Slow())
    v = done.status.verification
    runs = {t.metadata.name: t.status for t in store.verifications(asset="law")}
    served = min(next(c for c in v.checks if "×" in c.metric).measured) / v.choice.replicas  # per replica, worst run
    sweeps = store.sweeps(asset="law")
    for replicas in (v.choice.replicas + 1, v.choice.replicas - 1):
        moved = done.status.model_copy(deep=True)
        moved.recommendation = v.choice.model_copy(update={"replicas": replicas})
        step = verification_step(done.model_copy(update={"status": moved}), sweeps, runs)
        covered = replicas * served >= 1000  # the request's 1000 req/s, judged on the runs' own measurements
        assert not step.trials  # no round left (rounds: 1): nothing runs either way
        assert step.verification.reason == ("RequirementsMet" if covered else "ChoiceChanged"), step.verification
        assert step.verification.choice.replicas == (replicas if covered else v.choice.replicas)
