"""Shared building blocks of every custom resource.

The models in :mod:`hwmatch.api` are the single source of truth for the
``hwmatch.dev/v1alpha1`` resources: manifests are validated with them, the
CRD schemas in ``crds/`` are generated from them, and the engine consumes
them. Python names are snake_case; the wire format (YAML, the API server) is
camelCase, as Kubernetes users expect.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

GROUP = "hwmatch.dev"
VERSION = "v1alpha1"
API_VERSION: Final = "hwmatch.dev/v1alpha1"  # GROUP/VERSION, spelt out: the kinds' apiVersion Literal

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
DURATION_PATTERN = r"^[0-9]+(\.[0-9]+)?(ms|s|m|h)$"
_DURATION = re.compile(DURATION_PATTERN)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class ApiModel(BaseModel):
    """Base of every spec/status object: camelCase on the wire, unknown fields rejected."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        validate_assignment=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The object as it appears in YAML / the API server (camelCase, no unset fields)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def non_finite(value: Any, path: str = "") -> list[str]:
    """Paths (``platforms[0].costPerHour``) of the NaN and ±inf numbers in decoded YAML/JSON ``value``."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [path or "(the value)"]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in non_finite(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in non_finite(v, f"{path}[{i}]")]
    return []


def reject_non_finite(data: Any) -> Any:
    """A ``mode="before"`` check for a spec: NaN and ±inf are never a valid number of a manifest."""
    bad = non_finite(data)
    if bad:
        raise ValueError(f"non-finite number (NaN or infinity) at {', '.join(bad[:5])}; give a finite number")
    return data


class SpecModel(ApiModel):
    """Base of the kinds' specs: a manifest's numbers are finite (NaN and ±inf are refused with their path)."""

    @model_validator(mode="before")
    @classmethod
    def _finite(cls, data: Any) -> Any:
        return reject_non_finite(data)


#: Longest Kubernetes label value (and Job name part): names that become labels must fit.
MAX_LABEL = 63


def check_label_name(metadata: "ObjectMeta", kind: str) -> None:
    """A name that becomes a label value on Jobs and trials (a sweep's, an asset's) has at most 63 characters."""
    if len(metadata.name) > MAX_LABEL:
        raise ValueError(f"metadata.name: a {kind} name becomes a label value of its trials and Jobs, which allows "
                         f"at most {MAX_LABEL} characters; this one has {len(metadata.name)}: shorten it")


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration string such as ``90s``, ``10m`` or ``1.5h``."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration; use a number with a unit: ms, s, m or h (e.g. 10m)")
    return float(text[: -len(match.group(2))]) * _UNIT_SECONDS[match.group(2)]


def check_dns_label(value: str, what: str = "name") -> str:
    if not _DNS_LABEL.match(value):
        raise ValueError(
            f"{what} {value!r} must be a DNS-1123 label: lower-case letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters"
        )
    return value


class ObjectMeta(BaseModel):
    """The part of Kubernetes ``metadata`` that hwmatch reads; other keys pass through."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, alias_generator=to_camel)

    name: str = Field(description="Object name (a DNS-1123 subdomain).")
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generation: int | None = None
    uid: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _DNS_SUBDOMAIN.match(value):
            raise ValueError(
                f"name {value!r} must be a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', "
                "starting and ending with a letter or digit"
            )
        return value


class ObjectRef(ApiModel):
    """A reference to another hwmatch object in the same namespace."""

    name: str = Field(min_length=1, description="Name of the referenced object.")


ConditionStatus = Literal["True", "False", "Unknown"]

#: kstatus's condition types (sigs.k8s.io/cli-utils kstatus), which kubectl wait, Argo CD and Flux understand:
#: Ready is True only when the object reached its goal; Reconciling is True while the operator works towards it;
#: Stalled is True when it cannot get there until something changes (a spec to fix, a dependency gone).
READY: Final = "Ready"
RECONCILING: Final = "Reconciling"
STALLED: Final = "Stalled"
State = Literal["Ready", "Reconciling", "Stalled"]


class Condition(ApiModel):
    """One aspect of the object's state, as in metav1.Condition: a type, its status, and why."""

    type: str = Field(min_length=1, description=(
        "The aspect this condition describes: Ready, Reconciling, Stalled (kstatus), or one of the kind's own "
        "(Infeasible, Verified, Telemetry)."))
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(description="A CamelCase word for why the condition has this status, for programs.")
    message: str = Field(description="Why the condition has this status, in words, for people (may be empty).")
    last_transition_time: datetime = Field(description="When the status last changed (not the reason or the message).")
    observed_generation: int | None = Field(
        default=None, description="The metadata.generation of the spec this condition was set for.")


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str = "",
    generation: int | None = None,
    now: datetime | None = None,
) -> list[Condition]:
    """Return ``conditions`` with ``type_`` set; the transition time moves only when the status changes."""
    now = now or datetime.now().astimezone()
    result: list[Condition] = []
    found = False
    for cond in conditions:
        if cond.type == type_:
            found = True
            changed = cond.status != status
            result.append(
                Condition(
                    type=type_,
                    status=status,
                    reason=reason,
                    message=message,
                    last_transition_time=now if changed or cond.last_transition_time is None else cond.last_transition_time,
                    observed_generation=generation,
                )
            )
        else:
            result.append(cond)
    if not found:
        result.append(
            Condition(
                type=type_, status=status, reason=reason, message=message,
                last_transition_time=now, observed_generation=generation,
            )
        )
    return result


def set_state(
    conditions: list[Condition],
    state: State,
    reason: str,
    message: str,
    generation: int | None = None,
    now: datetime | None = None,
) -> list[Condition]:
    """``conditions`` with kstatus's three set for ``state``: Ready, Reconciling or Stalled.

    Ready is always there (True in state Ready, else False with the same
    reason and message, so ``kubectl get`` and ``kubectl wait`` show why);
    Reconciling or Stalled is there, True, only in its state: kstatus reads
    an absent one as False, and two True ones would contradict each other.
    """
    result = set_condition(conditions, READY, "True" if state == READY else "False", reason, message, generation, now)
    result = [c for c in result if c.type not in (RECONCILING, STALLED) or c.type == state]
    if state != READY:
        result = set_condition(result, state, "True", reason, message, generation, now)
    return result


def is_true(conditions: list[Condition], type_: str) -> bool:
    """Whether ``conditions`` hold ``type_`` with status True."""
    return any(c.type == type_ and c.status == "True" for c in conditions)


class StatusBase(ApiModel):
    """Fields every status carries, as Kubebuilder-style controllers do."""

    observed_generation: int | None = Field(
        default=None, description="The metadata.generation the operator last acted on; behind it, the status is old.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="The object's state: Ready, Reconciling or Stalled (kstatus), and the kind's own conditions.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
