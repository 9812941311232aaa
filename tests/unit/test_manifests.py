"""Manifest loading: valid examples pass, every invalid one names its field path."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from hwmatch.api import AIAsset, BenchmarkSweep, HWRecommendation, ManifestError, load_files, load_text

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))

ASSET: dict[str, Any] = {
    "apiVersion": "hwmatch.dev/v1alpha1",
    "kind": "AIAsset",
    "metadata": {"name": "forest"},
    "spec": {
        "command": ["hwmatch-bench", "run", "sklearn-forest"],
        "parameters": [
            {"name": "n_estimators", "type": "int", "values": [10, 50]},
            {"name": "max_depth", "type": "int", "range": {"min": 2, "max": 16}},
            {"name": "model", "type": "categorical", "values": ["rf", "gb"]},
        ],
        "metrics": [
            {"name": "latency_p99_ms", "goal": "minimize"},
            {"name": "accuracy", "goal": "maximize"},
        ],
    },
}
SWEEP: dict[str, Any] = {
    "apiVersion": "hwmatch.dev/v1alpha1",
    "kind": "BenchmarkSweep",
    "metadata": {"name": "forest-sweep"},
    "spec": {
        "assetRef": {"name": "forest"},
        "platforms": [
            {"name": "cpu-1core", "cpus": [0], "costPerHour": 0.05},
            {"name": "gpu-l4", "nodeSelector": {"pool": "l4"}, "resources": {"limits": {"nvidia.com/gpu": 1}}},
        ],
        "sampling": {"strategy": "random", "budget": 4, "seed": 1},
        "trialTimeout": "90s",
    },
}
REC: dict[str, Any] = {
    "apiVersion": "hwmatch.dev/v1alpha1",
    "kind": "HWRecommendation",
    "metadata": {"name": "forest-prod"},
    "spec": {
        "assetRef": {"name": "forest"},
        "constraints": [{"metric": "latency_p99_ms", "max": 20}],
        "objective": {"minimize": "cost_per_hour"},
        "confidence": 0.9,
    },
}


def dump(*docs: dict[str, Any]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


def mutate(doc: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    change(out)
    return out


def test_examples_are_valid() -> None:
    assert EXAMPLES, "examples/ holds at least one manifest"
    resources = load_files(EXAMPLES)
    kinds = {type(r) for r in resources}
    assert {AIAsset, BenchmarkSweep, HWRecommendation} <= kinds


def test_valid_round_trip_uses_camel_case() -> None:
    [asset, sweep, rec] = [d.resource for d in load_text(dump(ASSET, SWEEP, REC), "ok.yaml")]
    assert isinstance(sweep, BenchmarkSweep)
    assert sweep.spec.asset_ref.name == "forest"
    assert sweep.spec.trial_timeout_seconds == 90
    assert sweep.spec.platforms[0].cost_per_hour == 0.05
    wire = sweep.spec.to_wire()
    assert "assetRef" in wire and "costPerHour" in wire["platforms"][0]
    assert isinstance(rec, HWRecommendation) and rec.spec.objective.terms() == {"cost_per_hour": 1.0}
    assert isinstance(asset, AIAsset) and asset.spec.parameter("max_depth").contains(7)
    assert not asset.spec.parameter("max_depth").contains(17)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation that sets a dotted path (with [i] indices) to value; value None deletes."""

    def change(doc: dict[str, Any]) -> None:
        parts = path.replace("[", ".").replace("]", "").split(".")
        node: Any = doc
        for p in parts[:-1]:
            node = node[int(p)] if p.isdigit() else node[p]
        last = parts[-1]
        key: Any = int(last) if last.isdigit() else last
        if value is None:
            del node[key]
        else:
            node[key] = value

    return change


# (id, base document, mutation, field path expected in the message, a word of the message)
INVALID = [
    ("range-min-gt-max", ASSET, _set("spec.parameters[1].range", {"min": 9, "max": 3}), "spec.parameters[1].range", "min"),
    ("values-and-range", ASSET, _set("spec.parameters[0].range", {"min": 1, "max": 3}), "spec.parameters[0]", "exactly one"),
    ("neither-values-nor-range", ASSET, _set("spec.parameters[0].values", None), "spec.parameters[0]", "exactly one"),
    ("unknown-type", ASSET, _set("spec.parameters[0].type", "integer"), "spec.parameters[0].type", "int"),
    ("int-with-float-values", ASSET, _set("spec.parameters[0].values", [1.5, 2]), "spec.parameters[0]", "non-int"),
    ("categorical-with-range", ASSET, _set("spec.parameters[2]", {"name": "model", "type": "categorical", "range": {"min": 0, "max": 1}}), "spec.parameters[2]", "categorical"),
    ("log-range-nonpositive", ASSET, _set("spec.parameters[1].range", {"min": 0, "max": 3, "log": True}), "spec.parameters[1].range", "log"),
    ("negative-step", ASSET, _set("spec.parameters[1].range", {"min": 1, "max": 3, "step": -1}), "spec.parameters[1].range.step", "greater than 0"),
    ("bad-parameter-name", ASSET, _set("spec.parameters[0].name", "n-estimators"), "spec.parameters[0].name", "pattern"),
    ("duplicate-parameter", ASSET, _set("spec.parameters[2]", {"name": "n_estimators", "type": "int", "values": [1]}), "spec.parameters", "twice"),
    ("unknown-field-in-parameter", ASSET, _set("spec.parameters[0].default", 10), "spec.parameters[0].default", "allowed here"),
    ("empty-command", ASSET, _set("spec.command", []), "spec.command", "at least 1"),
    ("no-metrics", ASSET, _set("spec.metrics", []), "spec.metrics", "at least 1"),
    ("bad-goal", ASSET, _set("spec.metrics[0].goal", "lower"), "spec.metrics[0].goal", "minimize"),
    ("prometheus-without-query", ASSET, _set("spec.metrics[1]", {"name": "energy_j", "source": "prometheus"}), "spec.metrics[1]", "query"),
    ("harness-with-query", ASSET, _set("spec.metrics[1].query", "up"), "spec.metrics[1]", "only to source: prometheus"),
    ("unknown-preset", ASSET, _set("spec.metrics[1]", {"name": "e", "source": "prometheus", "preset": "ipmi"}), "spec.metrics[1].preset", "dcgm-energy"),
    ("missing-asset-ref", SWEEP, _set("spec.assetRef", None), "spec.assetRef", "required"),
    ("no-platforms", SWEEP, _set("spec.platforms", []), "spec.platforms", "at least 1"),
    ("bad-platform-name", SWEEP, _set("spec.platforms[0].name", "CPU_1"), "spec.platforms[0].name", "DNS-1123"),
    ("duplicate-platform", SWEEP, _set("spec.platforms[1].name", "cpu-1core"), "spec.platforms", "unique"),
    ("negative-cost", SWEEP, _set("spec.platforms[0].costPerHour", -1), "spec.platforms[0].costPerHour", "greater than or equal"),
    ("duplicate-cpu", SWEEP, _set("spec.platforms[0].cpus", [0, 0]), "spec.platforms[0].cpus", "twice"),
    ("random-without-budget", SWEEP, _set("spec.sampling.budget", None), "spec.sampling", "budget"),
    ("bad-strategy", SWEEP, _set("spec.sampling.strategy", "bayes"), "spec.sampling.strategy", "latin-hypercube"),
    ("zero-repetitions", SWEEP, _set("spec.sampling.repetitions", 0), "spec.sampling.repetitions", "greater than or equal"),
    ("bad-timeout", SWEEP, _set("spec.trialTimeout", "ten minutes"), "spec.trialTimeout", "pattern"),
    ("snake-case-field", SWEEP, _set("spec.trial_timeout", "1m"), "spec.trial_timeout", "trialTimeout"),
    ("bad-toleration-operator", SWEEP, _set("spec.platforms[1].tolerations", [{"key": "a", "operator": "In"}]), "spec.platforms[1].tolerations[0].operator", "Exists"),
    ("constraint-without-bound", REC, _set("spec.constraints[0]", {"metric": "accuracy"}), "spec.constraints[0]", "min"),
    ("constraint-min-gt-max", REC, _set("spec.constraints[0]", {"metric": "accuracy", "min": 0.9, "max": 0.5}), "spec.constraints[0]", "min"),
    ("objective-two-goals", REC, _set("spec.objective", {"minimize": "a", "maximize": "b"}), "spec.objective", "exactly one"),
    ("confidence-too-high", REC, _set("spec.confidence", 1.5), "spec.confidence", "less than or equal"),
    ("zero-throughput", REC, _set("spec.throughput", {"requestsPerSecond": 0}), "spec.throughput.requestsPerSecond", "greater than 0"),
    ("bad-metadata-name", REC, _set("metadata.name", "Forest_Prod"), "metadata.name", "DNS-1123"),
    ("wrong-api-version", REC, _set("apiVersion", "hwmatch.dev/v1"), "apiVersion", "v1alpha1"),
    ("unknown-kind", REC, _set("kind", "Recommendation"), "kind", "AIAsset"),
]


@pytest.mark.parametrize("base, change, path, word", [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_manifest_names_field(base: dict[str, Any], change: Callable, path: str, word: str) -> None:
    text = dump(mutate(base, change))
    with pytest.raises(ManifestError) as info:
        load_text(text, "bad.yaml")
    message = str(info.value)
    assert "bad.yaml, document 1" in message
    assert f": {path}: " in message, message
    assert word.lower() in message.lower(), message


def test_at_least_twenty_distinct_invalid_cases() -> None:
    assert len({c[0] for c in INVALID}) >= 20
    assert len({c[3] for c in INVALID}) >= 20, "distinct field paths"


def test_unknown_field_lists_allowed_fields() -> None:
    doc = mutate(SWEEP, _set("spec.platforms[0].gpu", 1))
    with pytest.raises(ManifestError) as info:
        load_text(dump(doc), "f.yaml")
    assert "spec.platforms[0].gpu: unknown field 'gpu'; allowed here: name, nodeSelector" in str(info.value)


def test_all_problems_of_all_documents_are_reported(tmp_path: Path) -> None:
    bad_asset = mutate(ASSET, _set("spec.parameters[1].range", {"min": 9, "max": 3}))
    bad_rec = mutate(REC, _set("spec.confidence", 2))
    path = tmp_path / "two.yaml"
    path.write_text(dump(bad_asset, SWEEP, bad_rec))
    with pytest.raises(ManifestError) as info:
        load_files([path])
    problems = info.value.problems
    assert [(p.document, p.path) for p in problems] == [(1, "spec.parameters[1].range"), (3, "spec.confidence")]


def test_cross_document_references() -> None:
    sweep = mutate(SWEEP, _set("spec.assetRef.name", "nope"))
    rec = mutate(REC, _set("spec.constraints[0].metric", "latency_p95_ms"))
    rec["spec"]["fixed"] = {"max_depth": 40}
    from hwmatch.api.manifest import check_references

    problems = check_references(load_text(dump(ASSET, sweep, rec), "refs.yaml"))
    paths = {p.path for p in problems}
    assert paths == {"spec.assetRef.name", "spec.constraints[0].metric", "spec.fixed.max_depth"}
    assert any("outside the space" in p.message for p in problems)


def test_yaml_syntax_error_names_line() -> None:
    with pytest.raises(ManifestError, match="line 2"):
        load_text("kind: AIAsset\n  bad: [", "broken.yaml")


def _hwmatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hwmatch.cli", *args], capture_output=True, text=True, cwd=ROOT, check=False
    )


def test_cli_validate_examples_exit_zero() -> None:
    result = _hwmatch("validate", *map(str, EXAMPLES))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def test_cli_validate_reports_range_and_exits_nonzero(tmp_path: Path) -> None:
    doc = mutate(ASSET, _set("spec.parameters[1]", {"name": "max_depth", "type": "int", "range": {"min": 9, "max": 3}}))
    bad = tmp_path / "bad.yaml"
    bad.write_text(dump(doc, mutate(REC, _set("spec.confidence", 7))))
    result = _hwmatch("validate", str(bad))
    assert result.returncode != 0
    assert "spec.parameters[1].range" in result.stderr
    assert "spec.confidence" in result.stderr
    assert "2 problem(s)" in result.stderr


def test_cli_help_and_version() -> None:
    assert "validate" in _hwmatch("--help").stdout
    assert _hwmatch("--version").stdout.startswith("hwmatch ")
