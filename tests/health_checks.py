"""The GitOps health checks of ``docs/gitops/``, run the way Argo CD and Flux run them.

- Argo CD runs a kind's ``resource.customizations.health.<group>_<kind>`` script
  in gopher-lua (Lua 5.1) with the object as the global ``obj`` and takes the
  table it returns (``status``, ``message``): here Lua 5.1 through lupa.
- Flux (kustomize-controller, RFC 0009; fluxcd/pkg runtime/cel StatusEvaluator)
  reads a custom resource as InProgress while ``status.observedGeneration``
  differs from ``metadata.generation``, then evaluates ``inProgress``,
  ``failed`` and ``current`` in that order on the object's top-level fields
  and takes the first that is true; none true is InProgress, and an
  expression that cannot be evaluated (no ``status`` yet) makes the status
  Unknown (kstatus's generic status reader), which Flux keeps waiting on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import cel
import yaml
from lupa import lua51

GITOPS = Path(__file__).resolve().parents[1] / "docs" / "gitops"
ARGOCD_CM = GITOPS / "argocd-cm.yaml"
FLUX_KUSTOMIZATION = GITOPS / "flux-kustomization.yaml"


def argocd_health(obj: Mapping[str, Any]) -> tuple[str, str]:
    """(status, message) of Argo CD's health check for ``obj``'s kind."""
    script = yaml.safe_load(ARGOCD_CM.read_text())["data"][f"resource.customizations.health.hwmatch.dev_{obj['kind']}"]
    lua = lua51.LuaRuntime()
    lua.globals().obj = lua.table_from(_json(obj), recursive=True)
    hs = lua.execute(script)
    return str(hs["status"]), str(hs["message"])


def flux_status(obj: Mapping[str, Any]) -> str:
    """Current, InProgress, Failed or Unknown: what Flux's healthCheckExprs make of ``obj``."""
    entries = yaml.safe_load(FLUX_KUSTOMIZATION.read_text())["spec"]["healthCheckExprs"]
    entry = next(e for e in entries if e["kind"] == obj["kind"] and e["apiVersion"] == obj["apiVersion"])
    observed = (obj.get("status") or {}).get("observedGeneration")
    if observed is not None and observed != obj["metadata"].get("generation"):
        return "InProgress"
    data = _json(obj)
    for key, result in (("inProgress", "InProgress"), ("failed", "Failed"), ("current", "Current")):
        if key in entry:
            try:
                if cel.evaluate(entry[key], data) is True:
                    return result
            except RuntimeError:  # e.g. no status yet: "Undefined variable ... 'status'"
                return "Unknown"
    return "InProgress"


def _json(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object as JSON decodes it (what both tools get from the API server): no None values."""
    def clean(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: clean(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value
    return clean(obj)
