"""The generated CRDs: in sync with the models, valid apiextensions/v1, structural, with CEL rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import kubernetes_validate
import pytest
import yaml

from hwmatch.api.crd import KINDS, render_all

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "crds"
RENDERED = render_all()


def test_crds_directory_is_up_to_date() -> None:
    on_disk = {p.name: p.read_text() for p in CRD_DIR.glob("*.yaml")}
    assert set(on_disk) == set(RENDERED), "run `make crds`"
    for name, text in RENDERED.items():
        assert on_disk[name] == text, f"{name} is out of date with hwmatch.api; run `make crds`"


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_crd_is_valid_apiextensions_v1(name: str) -> None:
    doc = yaml.safe_load((CRD_DIR / name).read_text())
    assert doc["apiVersion"] == "apiextensions.k8s.io/v1"
    assert doc["kind"] == "CustomResourceDefinition"
    kubernetes_validate.validate(doc, "1.36", strict=True)


def test_schema_check_rejects_a_broken_crd() -> None:
    doc = yaml.safe_load(next(iter(RENDERED.values())).split("\n", 1)[1])
    doc["spec"]["versions"][0]["subresources"] = {"status": {}, "bogus": {}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, "1.36", strict=True)


def _nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for key, child in schema.get("properties", {}).items():
        yield from _nodes(child, f"{path}.{key}")
    if isinstance(schema.get("items"), dict):
        yield from _nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _nodes(schema["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_schema_is_structural(name: str) -> None:
    doc = yaml.safe_load(RENDERED[name].split("\n", 1)[1])
    schema = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _nodes(schema):
        assert not {"$ref", "anyOf", "allOf", "$defs", "const", "title"} & node.keys(), path
        for option in node.get("oneOf", []):  # value validation only: a structural schema allows no types in it
            assert set(option) == {"required"}, path
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields") or node.get(
            "x-kubernetes-int-or-string"
        ), f"{name}: {path} has no type"
        assert not ("properties" in node and "additionalProperties" in node), path
        if "exclusiveMinimum" in node:
            assert node["exclusiveMinimum"] is True and "minimum" in node, path


def _version(kind_name: str) -> dict[str, Any]:
    kind = next(k for k in KINDS if k.kind == kind_name)
    doc = yaml.safe_load(RENDERED[f"hwmatch.dev_{kind.plural}.yaml"].split("\n", 1)[1])
    return doc


def test_names_columns_and_status_subresource() -> None:
    for kind in KINDS:
        doc = _version(kind.kind)
        names = doc["spec"]["names"]
        assert names["kind"] == kind.kind and names["shortNames"] and "hwmatch" in names["categories"]
        version = doc["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}
        columns = [c["name"] for c in version["additionalPrinterColumns"]]
        assert columns[-1] == "Age"
    sweep_cols = [c["name"] for c in _version("BenchmarkSweep")["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert {"Phase", "Progress"} <= set(sweep_cols)
    rec_cols = [c["name"] for c in _version("HWRecommendation")["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert {"Phase", "Platform", "Replicas", "Ready", "Reason", "Message"} <= set(rec_cols)
    trial_cols = {c["name"]: c for c in _version("BenchmarkTrial")["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert trial_cols["Seconds"]["jsonPath"] == ".status.durationSeconds"
    assert trial_cols["Summary"]["jsonPath"] == ".status.summary"


def test_printer_columns_read_fields_the_schema_has() -> None:
    """A column whose JSONPath names no field of the schema shows nothing, silently: each must resolve."""
    for kind in KINDS:
        version = _version(kind.kind)["spec"]["versions"][0]
        schema = version["schema"]["openAPIV3Schema"]
        for column in version["additionalPrinterColumns"]:
            node = schema
            for part in column["jsonPath"].replace('[?(@.type=="Ready")]', "[]").strip(".").split("."):
                if part == "metadata":
                    break
                name, listed = part.removesuffix("[]"), part.endswith("[]")
                node = node["properties"][name]
                node = node["items"] if listed else node
            assert node, (kind.kind, column)


def test_short_names_do_not_clash_with_other_ml_operators() -> None:
    """Katib (trials.kubeflow.org) and others take the plain words; hwmatch keeps its prefixed ones."""
    short = {k.kind: k.short_names for k in KINDS}
    assert short == {"AIAsset": ["aia"], "BenchmarkSweep": ["bsw"], "BenchmarkTrial": ["btr"],
                     "HWRecommendation": ["hwr", "hwrec"]}


#: reST that pydantic would copy from docstrings into descriptions, which kubectl explain prints as written.
_REST = ("``", ":class:", ":func:", ":meth:", ":data:", ":mod:", ":attr:")


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_kubectl_explain_has_text_for_every_field(name: str) -> None:
    doc = yaml.safe_load(RENDERED[name].split("\n", 1)[1])
    schema = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    undescribed = [path for path, node in _nodes(schema) if not node.get("description") and not path.endswith("[]")
                   and not path.endswith("{}") and path != ".metadata"]  # ObjectMeta's own text; the API server
    assert "description" not in schema["properties"]["metadata"]  # refuses any in a CRD: "implicitly specified"
    assert not undescribed, f"{name}: no description (give the field a Field(description=...)): {undescribed}"
    marked = [path for path, node in _nodes(schema) if any(m in node.get("description", "") for m in _REST)]
    assert not marked, f"{name}: reST markup in the descriptions of {marked}"
    for field in ("spec", "status"):
        assert schema["properties"][field]["description"], (name, field)


def test_cel_rules_mirror_the_pydantic_validators() -> None:
    spec = _version("AIAsset")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    param = spec["properties"]["parameters"]["items"]
    assert param["oneOf"] == [{"required": ["values"]}, {"required": ["range"]}]
    range_rules = [r["rule"] for r in param["properties"]["range"]["x-kubernetes-validations"]]
    assert "self.min <= self.max" in range_rules
    # Lists used in quadratic CEL rules are bounded, so the API server's cost estimate accepts them.
    assert spec["properties"]["parameters"]["maxItems"] == 64
    assert param["properties"]["name"]["maxLength"] == 63
    sweep = _version("BenchmarkSweep")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert any("budget" in r["rule"] for r in sweep["properties"]["sampling"]["x-kubernetes-validations"])


@pytest.mark.parametrize("kind", [k.kind for k in KINDS])
def test_conditions_are_a_map_list_of_metav1_conditions(kind: str) -> None:
    """kstatus tools and server-side apply read conditions as metav1.Condition, one per type."""
    status = _version(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map" and conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["required"]) == {"type", "status", "reason", "message", "lastTransitionTime"}
    assert not any("default" in p for p in conditions["items"]["properties"].values())  # required means written
    assert "observedGeneration" in status["properties"]
