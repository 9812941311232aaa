"""The generated CRDs on a real API server: they install, examples apply, bad manifests are refused.

This is where the structural schema and the CEL rules are judged by the
real thing: a rule that does not compile, or whose cost is too high, makes
the CRD itself fail to install.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from tests.cluster.helpers import wait_until

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _apply(cluster, namespace: str, doc: dict):
    return cluster.kubectl("apply", "--server-side", "-n", namespace, "-f", "-", check=False, input=yaml.safe_dump(doc))


def test_examples_apply_and_print_columns(crds_installed, k8s_namespace) -> None:
    cluster = crds_installed
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        for doc in _docs(path):
            result = _apply(cluster, k8s_namespace, doc)
            assert result.returncode == 0, f"{path.name} {doc['metadata']['name']}: {result.stderr}"
    out = cluster.kubectl("get", "bsw", "-n", k8s_namespace).stdout
    assert "PROGRESS" in out and "digits-forest-local" in out
    out = cluster.kubectl("get", "hwmatch", "-n", k8s_namespace).stdout  # the category lists every kind
    assert "aiasset.hwmatch.dev/digits-forest" in out and "hwrecommendation.hwmatch.dev/digits-forest-prod" in out
    rec = cluster.kubectl("get", "hwr", "digits-forest-prod", "-n", k8s_namespace).stdout
    assert rec.split("\n")[0].split() == ["NAME", "ASSET", "PHASE", "PLATFORM", "REPLICAS", "COST/H", "READY", "REASON",
                                          "AGE"]
    wide = cluster.kubectl("get", "hwr", "digits-forest-prod", "-n", k8s_namespace, "-o", "wide").stdout
    assert "MESSAGE" in wide.split("\n")[0]  # the Ready message, with -o wide


def test_status_subresource_takes_a_recommendation(crds_installed, k8s_namespace) -> None:
    cluster = crds_installed
    rec = next(d for d in _docs(ROOT / "examples" / "local-demo.yaml") if d["kind"] == "HWRecommendation")
    assert _apply(cluster, k8s_namespace, rec).returncode == 0
    status = {"status": {"phase": "Ready", "observedGeneration": 1,
                         "recommendation": {"platform": "cpu-2core", "replicas": 3, "costPerHour": 0.3,
                                            "parameters": {"n_estimators": 40, "batch_size": 16},
                                            "predicted": {"latency_p99_ms": {"value": 14.2, "upper": 17.9}}},
                         "conditions": [{"type": "Ready", "status": "True", "reason": "Recommended", "message": "ok",
                                         "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}
    patch = cluster.kubectl("patch", "hwr", rec["metadata"]["name"], "-n", k8s_namespace, "--subresource=status",
                            "--type=merge", "-p", yaml.safe_dump(status), check=False)
    assert patch.returncode == 0, patch.stderr
    def printed() -> str | None:
        out = cluster.kubectl("get", "hwr", rec["metadata"]["name"], "-n", k8s_namespace, "--no-headers").stdout
        return out if "cpu-2core" in out else None

    row = wait_until("printer columns show the status", printed)
    assert row.split()[2:8] == ["Ready", "cpu-2core", "3", "0.3", "True", "Recommended"]


SWEEP = {
    "apiVersion": "hwmatch.dev/v1alpha1", "kind": "BenchmarkSweep", "metadata": {"name": "bad"},
    "spec": {"assetRef": {"name": "a"}, "platforms": [{"name": "p1"}],
             "sampling": {"strategy": "random", "budget": 3}},
}
ASSET = {
    "apiVersion": "hwmatch.dev/v1alpha1", "kind": "AIAsset", "metadata": {"name": "bad"},
    "spec": {"command": ["x"], "metrics": [{"name": "m"}],
             "parameters": [{"name": "count", "type": "int", "values": [1]},
                            {"name": "max_depth", "type": "int", "range": {"min": 2, "max": 8}}]},
}


def _with(doc: dict, path: list, value) -> dict:
    out = copy.deepcopy(doc)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


@pytest.mark.parametrize("doc, field", [
    (_with(ASSET, ["spec", "parameters", 1, "range"], {"min": 9, "max": 3}), "spec.parameters[1].range"),
    (_with(ASSET, ["spec", "parameters", 0, "range"], {"min": 1, "max": 2}), "spec.parameters[0]"),
    (_with(ASSET, ["spec", "metrics", 0], {"name": "e", "source": "prometheus"}), "spec.metrics[0]"),
    (_with(ASSET, ["spec", "parameters", 0, "type"], "integer"), "spec.parameters[0].type"),
    (_with(SWEEP, ["spec", "sampling"], {"strategy": "random"}), "spec.sampling"),
    (_with(SWEEP, ["spec", "platforms"], [{"name": "p1"}, {"name": "p1"}]), "spec"),
    (_with(SWEEP, ["spec", "trialTimeout"], "ten minutes"), "spec.trialTimeout"),
    (_with(SWEEP, ["spec", "platforms", 0, "bogus"], 1), "bogus"),
    (_with(SWEEP, ["spec", "sampling", "budget"], 10**9), "spec.sampling.budget"),
], ids=["range-min-gt-max", "values-and-range", "prometheus-no-query", "bad-type", "no-budget",
        "duplicate-platform", "bad-duration", "unknown-field", "budget-beyond-the-plan-limit"])
def test_api_server_refuses_bad_manifests_naming_the_field(crds_installed, k8s_namespace, doc: dict, field: str) -> None:
    result = _apply(crds_installed, k8s_namespace, doc)
    assert result.returncode != 0
    assert field in result.stderr, result.stderr
