"""Reconciling an ``AIAsset``: validate it and say in its Ready condition whether its trials can run."""

from __future__ import annotations

from typing import Any, Mapping

from hwmatch.api import READY, STALLED, AIAsset, AIAssetStatus, set_state
from hwmatch.api.errors import InputError
from hwmatch.controller.kube import ASSETS, Kube
from hwmatch.controller.objects import InvalidObject, parse
from hwmatch.controller.trials import Emit
from hwmatch.execution.kubernetes import check_runnable


class AssetReconciler:
    """Ready=True when the asset validates and has an image to run; Stalled with the reason and the fix otherwise.

    ``status.trials`` (finished trials of the asset) is written by the sweep
    passes; this writes only the conditions and observedGeneration (a merge,
    so the two writers never undo each other).
    """

    def __init__(self, kube: Kube, emit: Emit, prometheus: bool):
        self.kube, self.emit, self.prometheus = kube, emit, prometheus

    def reconcile(self, obj: Mapping[str, Any]) -> bool:
        """Update the status from ``obj``; True when this generation of the spec is seen for the first time."""
        meta = obj["metadata"]
        generation = meta.get("generation")
        old = AIAssetStatus.model_validate(obj.get("status") or {})
        status, event = self._status(obj, old, generation)
        status.observed_generation = generation
        wire = {"conditions": status.to_wire().get("conditions", []), "observedGeneration": generation}
        before = {"conditions": old.to_wire().get("conditions", []), "observedGeneration": old.observed_generation}
        if wire == before:
            return False
        self.kube.merge_status(ASSETS, meta["namespace"], meta["name"], wire)
        if _ready(status) != _ready(old):
            self.emit(obj, "Normal" if event[0] == "Valid" else "Warning", *event)
        return old.observed_generation != generation

    def _status(self, obj: Mapping[str, Any], old: AIAssetStatus, generation: int | None
                ) -> tuple[AIAssetStatus, tuple[str, str]]:
        status = old.model_copy(deep=True)
        try:
            asset = parse(obj, AIAsset)
            check_runnable(asset)
        except InputError as exc:  # an invalid object, or one that cannot run
            reason = "InvalidSpec" if isinstance(exc, InvalidObject) else "NotRunnable"
            status.conditions = set_state(status.conditions, STALLED, reason, str(exc), generation)
            return status, (reason, str(exc))
        message = f"{len(asset.spec.parameters)} parameter(s), {len(asset.spec.metrics)} metric(s)"
        queried = [m.name for m in asset.spec.metrics if m.source == "prometheus"]
        if queried and not self.prometheus:
            message += (f"; Prometheus metrics {queried} will be reported missing: the operator runs without "
                        "--prometheus-url")
        status.conditions = set_state(status.conditions, READY, "Valid", message, generation)
        return status, ("Valid", message)


def _ready(status: AIAssetStatus) -> tuple[str, str] | None:
    ready = next((c for c in status.conditions if c.type == READY), None)
    return (ready.status, ready.reason) if ready else None
