"""Objects from the API server as :mod:`hwmatch.api` models, with the manifest loader's field-naming errors."""

from __future__ import annotations

from typing import Any, Callable, Mapping, TypeVar

from pydantic import BaseModel

from hwmatch.api import STALLED, ManifestError, set_state
from hwmatch.api.base import Condition
from hwmatch.api.errors import InputError
from hwmatch.api.manifest import parse_document

M = TypeVar("M", bound=BaseModel)


class InvalidObject(InputError):
    """An object the API server accepted but the models refuse (a rule CEL cannot express); names the fields."""


def parse(obj: Mapping[str, Any], model: type[M]) -> M:
    """``obj`` as ``model``; :class:`InvalidObject` listing ``field: problem`` when it does not validate."""
    try:
        resource = parse_document(dict(obj), file=str(obj.get("metadata", {}).get("namespace", "")))
    except ManifestError as exc:
        raise InvalidObject("; ".join(f"{p.path or '<object>'}: {p.message}" for p in exc.problems)) from None
    if not isinstance(resource, model):
        raise InvalidObject(f"kind: expected {model.__name__}, got {type(resource).__name__}")
    return resource


def invalid(kube: Any, emit: Callable[[Mapping[str, Any], str, str, str], None], plural: str,
            obj: Mapping[str, Any], message: str) -> None:
    """Mark an object that does not validate: phase Failed, Stalled (and Ready=False) InvalidSpec naming the fields (once)."""
    meta = obj["metadata"]
    generation = meta.get("generation")
    old = [Condition.model_validate(c) for c in (obj.get("status") or {}).get("conditions") or []]
    conditions = set_state(old, STALLED, "InvalidSpec", message, generation)
    if (obj.get("status") or {}).get("observedGeneration") == generation and old == conditions:
        return
    kube.merge_status(plural, meta["namespace"], meta["name"], {
        "phase": "Failed", "observedGeneration": generation,
        "conditions": [c.to_wire() for c in conditions]})
    emit(obj, "Warning", "InvalidSpec", message)
