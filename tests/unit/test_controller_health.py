"""The Argo CD and Flux health checks of docs/gitops/ on statuses the reconcilers write (an in-memory API server).

The same checks run on the objects a real operator wrote in tests/cluster/test_operator.py; here every state
is reached on purpose: not yet seen, working, done, blocked, and a spec the operator has not acted on yet.
"""

from __future__ import annotations

import re
from pathlib import Path

from hwmatch.api import load_text
from hwmatch.controller.assets import AssetReconciler
from hwmatch.controller.kube import ASSETS, RECOMMENDATIONS, SWEEPS, TRIALS
from hwmatch.controller.recommendations import RecommendationReconciler
from hwmatch.controller.telemetry import TrialTelemetry
from tests.health_checks import ARGOCD_CM, FLUX_KUSTOMIZATION, argocd_health, flux_status
from tests.unit.test_controller import MANIFESTS, NS, REFUSAL, Events, FakeKube, _finish_all, _law, _reconciler, kube

__all__ = ["kube"]  # the fixture, shared with test_controller.py

ROOT = Path(__file__).resolve().parents[2]


def _both(obj: dict) -> tuple[str, str]:
    return argocd_health(obj)[0], flux_status(obj)


def _recommendations(kube: FakeKube) -> RecommendationReconciler:
    return RecommendationReconciler(kube, Events(), TrialTelemetry(None, 15.0), unschedulable_timeout=60, resync=30,
                                    refusal=REFUSAL)


def test_a_sweep_is_progressing_until_its_trials_end_then_healthy(kube) -> None:
    assert _both(kube.get(SWEEPS, NS, "toy-sweep")) == ("Progressing", "Unknown")  # no status yet
    sweeps = _reconciler(kube, Events())
    sweeps.reconcile(NS, "toy-sweep")
    running = kube.get(SWEEPS, NS, "toy-sweep")
    assert _both(running) == ("Progressing", "InProgress")
    assert argocd_health(running)[1].startswith("TrialsRunning: 0 of 6 finished")
    for _ in range(4):
        _finish_all(kube, _law)
        sweeps.reconcile(NS, "toy-sweep")
    done = kube.get(SWEEPS, NS, "toy-sweep")
    assert _both(done) == ("Healthy", "Current") and argocd_health(done)[1] == "Complete: 6 succeeded, 0 failed"
    trial = kube.list(TRIALS, NS)[0]
    health, message = argocd_health(trial)
    assert health == "Healthy" and message.startswith("Succeeded: latency_ms=")
    done["metadata"]["generation"] = 2  # a new spec, not yet acted on: both wait rather than report the old state
    assert _both(done) == ("Progressing", "InProgress")


def test_a_sweep_that_cannot_run_is_degraded_with_the_reason(kube) -> None:
    doc = next(d for d in load_text(MANIFESTS) if d.resource.kind == "AIAsset").resource.to_wire()
    doc["spec"].pop("image")
    kube.put(ASSETS, doc)
    _reconciler(kube, Events()).reconcile(NS, "toy-sweep")
    health, message = argocd_health(kube.get(SWEEPS, NS, "toy-sweep"))
    assert (health, flux_status(kube.get(SWEEPS, NS, "toy-sweep"))) == ("Degraded", "Failed")
    assert message.startswith("InvalidSpec: ") and "spec.image" in message
    AssetReconciler(kube, Events(), prometheus=False).reconcile(kube.get(ASSETS, NS, "toy"))
    assert _both(kube.get(ASSETS, NS, "toy")) == ("Degraded", "Failed")


def test_a_sweep_whose_asset_is_missing_waits_for_it(kube) -> None:
    del kube.objects[(ASSETS, "toy")]
    _reconciler(kube, Events()).reconcile(NS, "toy-sweep")
    sweep = kube.get(SWEEPS, NS, "toy-sweep")
    assert _both(sweep) == ("Progressing", "InProgress") and argocd_health(sweep)[1].startswith("AssetNotFound: ")


def test_failed_trials_are_degraded_and_a_sweep_of_only_failures_too(kube) -> None:
    sweeps = _reconciler(kube, Events())
    for _ in range(4):
        sweeps.reconcile(NS, "toy-sweep")
        for name, job in list(kube.jobs_by_name.items()):
            if not job["status"]:
                kube.finish(name, None)  # no result: NoResult
    assert {argocd_health(t)[0] for t in kube.list(TRIALS, NS)} == {"Degraded"}
    sweep = kube.get(SWEEPS, NS, "toy-sweep")
    assert _both(sweep) == ("Degraded", "Failed") and argocd_health(sweep)[1] == (
        "AllTrialsFailed: 0 succeeded, 6 failed (NoResult: 6)")


def test_a_recommendation_is_healthy_once_answered_and_degraded_when_infeasible_after_its_sweeps(kube) -> None:
    recs = _recommendations(kube)
    recs.reconcile(NS, "toy-rec")
    assert _both(kube.get(RECOMMENDATIONS, NS, "toy-rec")) == ("Progressing", "InProgress")  # WaitingForTrials
    impossible = next(d for d in load_text(MANIFESTS) if d.resource.kind == "HWRecommendation").resource.to_wire()
    impossible["metadata"]["name"] = "toy-impossible"
    impossible["spec"]["constraints"] = [{"metric": "latency_ms", "max": 0.001}]
    impossible["spec"]["confidence"] = 0.5  # finite bounds from the sweep's 6 trials: Infeasible, not InsufficientData
    kube.put(RECOMMENDATIONS, impossible)
    sweeps = _reconciler(kube, Events())
    sweeps.reconcile(NS, "toy-sweep")
    _finish_all(kube, _law)
    sweeps.reconcile(NS, "toy-sweep")  # 3 of 6 ended: the sweep still runs
    recs.reconcile(NS, "toy-impossible")
    waiting = kube.get(RECOMMENDATIONS, NS, "toy-impossible")
    assert waiting["status"]["phase"] in ("Infeasible", "InsufficientData") and _both(waiting) == ("Progressing", "InProgress")
    for _ in range(3):
        _finish_all(kube, _law)
        sweeps.reconcile(NS, "toy-sweep")
    recs.reconcile(NS, "toy-rec")
    recs.reconcile(NS, "toy-impossible")
    assert _both(kube.get(RECOMMENDATIONS, NS, "toy-rec")) == ("Healthy", "Current")
    health, message = argocd_health(kube.get(RECOMMENDATIONS, NS, "toy-impossible"))
    assert (health, flux_status(kube.get(RECOMMENDATIONS, NS, "toy-impossible"))) == ("Degraded", "Failed")
    assert message.startswith("Infeasible: latency_ms <= 0.001 is unreachable"), message


def test_the_doc_shows_the_tested_files_verbatim() -> None:
    """docs/gitops.md includes the two files as they are, so what a reader copies is what these tests run."""
    doc = (ROOT / "docs" / "gitops.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", doc, flags=re.S)
    for path in (ARGOCD_CM, FLUX_KUSTOMIZATION):
        assert path.read_text() in blocks, f"docs/gitops.md must show {path.relative_to(ROOT)} verbatim"
