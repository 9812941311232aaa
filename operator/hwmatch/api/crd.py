"""Generate ``apiextensions.k8s.io/v1`` CustomResourceDefinitions from the pydantic models.

Pydantic emits JSON Schema (draft 2020-12); the API server wants a
*structural* OpenAPI v3.0 schema: every node typed, no ``$ref``, no
``anyOf`` of types, ``additionalProperties`` and ``properties`` never
together. :func:`structural` performs that translation, keeping the CEL
``x-kubernetes-validations`` that the models declare next to their pydantic
validators, so the API server rejects the same manifests ``hwmatch validate``
rejects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from hwmatch.api.asset import AIAsset
from hwmatch.api.base import GROUP, VERSION
from hwmatch.api.recommendation import HWRecommendation
from hwmatch.api.sweep import BenchmarkSweep, BenchmarkTrial

_SCALARS = {"string", "integer", "number", "boolean"}
_CONVENTIONS = "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md"
#: The standard descriptions of every object's apiVersion and kind (as Kubernetes' own CRDs write them).
_OBJECT_FIELDS = {
    "apiVersion": {"type": "string", "description": (
        "APIVersion defines the versioned schema of this representation of an object. Servers should convert "
        "recognized schemas to the latest internal value, and may reject unrecognized values. "
        f"More info: {_CONVENTIONS}#resources")},
    "kind": {"type": "string", "description": (
        "Kind is a string value representing the REST resource this object represents. Servers may infer this from "
        "the endpoint the client submits requests to. Cannot be updated. In CamelCase. "
        f"More info: {_CONVENTIONS}#types-kinds")},
    # The API server allows nothing but type here ("metadata is implicitly specified"): kubectl explain shows ObjectMeta's.
    "metadata": {"type": "object"},
}
#: reST roles and literals of docstrings, which kubectl explain would print as written.
_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")


def plain(text: str) -> str:
    """A description as kubectl explain shows it: the first paragraph on one line, without reST markup.

    Class docstrings go on to say why (for developers); the first paragraph says what.
    """
    first = text.strip().split("\n\n")[0]
    first = _ROLE.sub(lambda m: m.group(1).rsplit(".", 1)[-1], first)
    return " ".join(_LITERAL.sub(r"\1", first).split())
_DROP = {"title", "default", "$defs", "additionalProperties", "examples"}


@dataclass(frozen=True)
class Kind:
    model: type[BaseModel]
    plural: str
    short_names: list[str]
    columns: list[dict[str, Any]] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.model.model_fields["kind"].default

    @property
    def singular(self) -> str:
        return self.kind.lower()


_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def _ready(kind: str) -> list[dict[str, Any]]:
    """The Ready condition's status and reason, and (``-o wide``) its message: the object's state, and why."""
    ready = '.status.conditions[?(@.type=="Ready")]'
    return [
        {"name": "Ready", "type": "string", "jsonPath": f"{ready}.status",
         "description": f"Whether the {kind} reached its goal (kstatus)."},
        {"name": "Reason", "type": "string", "jsonPath": f"{ready}.reason",
         "description": "Why it is, or is not, Ready, in one word."},
        {"name": "Message", "type": "string", "jsonPath": f"{ready}.message", "priority": 1,
         "description": "Why it is, or is not, Ready, in words."},
    ]


KINDS = [
    Kind(AIAsset, "aiassets", ["aia"], [
        {"name": "Image", "type": "string", "jsonPath": ".spec.image"},
        {"name": "Trials", "type": "integer", "jsonPath": ".status.trials"},
        *_ready("asset"),
        _AGE,
    ]),
    Kind(BenchmarkSweep, "benchmarksweeps", ["bsw"], [
        {"name": "Asset", "type": "string", "jsonPath": ".spec.assetRef.name"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Progress", "type": "string", "jsonPath": ".status.progress"},
        {"name": "Failed", "type": "integer", "jsonPath": ".status.failed"},
        *_ready("sweep"),
        {"name": "Strategy", "type": "string", "jsonPath": ".spec.sampling.strategy", "priority": 1},
        _AGE,
    ]),
    Kind(BenchmarkTrial, "benchmarktrials", ["btr"], [
        {"name": "Sweep", "type": "string", "jsonPath": ".spec.sweepRef.name"},
        {"name": "Platform", "type": "string", "jsonPath": ".spec.platform"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Reason", "type": "string", "jsonPath": ".status.reason"},
        {"name": "Seconds", "type": "number", "jsonPath": ".status.durationSeconds",
         "description": "From the start of its Job to its end."},
        {"name": "Summary", "type": "string", "jsonPath": ".status.summary",
         "description": "Its metrics, or why it failed."},
        {"name": "Rep", "type": "integer", "jsonPath": ".spec.repetition", "priority": 1},
        _AGE,
    ]),
    Kind(HWRecommendation, "hwrecommendations", ["hwr", "hwrec"], [
        {"name": "Asset", "type": "string", "jsonPath": ".spec.assetRef.name"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Platform", "type": "string", "jsonPath": ".status.recommendation.platform"},
        {"name": "Replicas", "type": "integer", "jsonPath": ".status.recommendation.replicas"},
        {"name": "Cost/h", "type": "number", "jsonPath": ".status.recommendation.costPerHour"},
        *_ready("recommendation"),
        _AGE,
    ]),
]


def structural(node: Any, defs: dict[str, Any]) -> Any:
    """Translate one pydantic JSON-schema node into a structural OpenAPI v3.0 node."""
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].split("/")[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return structural(merged, defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(options) == 1:
            return structural({**options[0], **rest}, defs)
        types = {o.get("type") for o in options}
        merged = {k: v for k, v in rest.items() if k not in _DROP}
        if types <= {"integer", "string"} or types == {"integer", "number", "string"}:
            merged["x-kubernetes-int-or-string"] = True
        elif types <= _SCALARS:
            merged["x-kubernetes-preserve-unknown-fields"] = True
        else:
            raise ValueError(f"cannot express a union of {types} in a structural schema")
        return merged
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "default" and isinstance(value, (str, int, float, bool)):
            out[key] = value  # the API server applies scalar defaults, so CEL rules see them set
            continue
        if key in _DROP or key == "const":
            continue
        if key == "properties":
            out["properties"] = {k: structural(v, defs) for k, v in value.items()}
        elif key == "description":
            out[key] = plain(value)
        elif key == "items":
            out["items"] = structural(value, defs)
        elif key == "exclusiveMinimum":
            out["minimum"], out["exclusiveMinimum"] = value, True
        elif key == "exclusiveMaximum":
            out["maximum"], out["exclusiveMaximum"] = value, True
        elif key == "format" and value not in ("date-time", "int32", "int64", "double", "float"):
            continue
        else:
            out[key] = value
    if "const" in node:
        out["enum"] = [node["const"]]
    extra = node.get("additionalProperties")
    if out.get("type") == "object" and "properties" not in out:
        if isinstance(extra, dict) and extra:
            out["additionalProperties"] = structural(extra, defs)
        else:
            out["x-kubernetes-preserve-unknown-fields"] = True
    if "type" not in out and not ({"x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string"} & out.keys()):
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural schema of one kind (apiVersion, kind, metadata, spec, status)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    props = raw["properties"]
    return {
        "type": "object",
        "description": plain(model.__doc__ or ""),
        "required": ["spec"],
        "properties": {
            **_OBJECT_FIELDS,
            "spec": structural(props["spec"], defs),
            "status": structural(props["status"], defs),
        },
    }


def crd(kind: Kind) -> dict[str, Any]:
    schema = openapi_schema(kind.model)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{kind.plural}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "hwmatch", "app.kubernetes.io/part-of": "hwmatch"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": kind.short_names,
                "categories": ["hwmatch"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": kind.columns,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def render_all() -> dict[str, str]:
    """File name -> YAML text of every CRD."""
    header = "# Generated by `hwmatch crds` from hwmatch.api; do not edit by hand.\n"
    return {
        f"{GROUP}_{k.plural}.yaml": header + yaml.safe_dump(crd(k), sort_keys=False, width=120)
        for k in KINDS
    }


def render_chart() -> dict[str, str]:
    """File name -> the Helm template of every CRD (charts/hwmatch/templates/crds/), so ``helm upgrade`` updates them.

    Helm installs a chart's ``crds/`` once and never upgrades it; as templates,
    CRDs follow the chart. The cert-manager pattern: ``crds.enabled`` renders
    them (off where someone else installs the CRDs), ``crds.keep`` annotates
    them ``helm.sh/resource-policy: keep``, so ``helm uninstall`` leaves the
    CRDs, and with them every user's objects, in place.
    """
    return {f"{GROUP}_{k.plural}.yaml": chart_template(crd(k)) for k in KINDS}


def chart_template(doc: dict[str, Any]) -> str:
    """One CRD as the chart's template: behind ``crds.enabled``, the chart's labels, ``keep`` behind ``crds.keep``."""
    body = yaml.safe_dump({"spec": doc["spec"]}, sort_keys=False, width=120)
    if "{{" in body:  # a rule or a description that Helm would read as a template
        raise ValueError(f"the CRD {doc['metadata']['name']} contains '{{{{': it cannot be a Helm template as it is")
    return (
        "# Generated by `hwmatch crds --chart` from hwmatch.api; do not edit by hand.\n"
        "{{- if .Values.crds.enabled }}\n"
        + yaml.safe_dump({"apiVersion": doc["apiVersion"], "kind": doc["kind"]}, sort_keys=False)
        + f"metadata:\n  name: {doc['metadata']['name']}\n  labels:\n"
        + '    {{- include "hwmatch.labels" . | nindent 4 }}\n'  # the chart's labels, as on its other objects
        + "  {{- if .Values.crds.keep }}\n  annotations:\n    helm.sh/resource-policy: keep\n  {{- end }}\n"
        + body + "{{- end }}\n")


def write_all(directory: str | Path, chart: bool = False) -> list[Path]:
    """Write every CRD into ``directory``: as plain YAML, or with ``chart`` as the chart's templates."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (render_chart() if chart else render_all()).items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written
