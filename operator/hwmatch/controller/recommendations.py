"""Reconciling a ``HWRecommendation``: (re)solve when its asset's trials or its spec change.

The answer is :func:`hwmatch.engine.answer` on the dataset of
the asset's ``BenchmarkTrial`` objects (:class:`~hwmatch.data.cluster.TrialObjects`),
so the status is exactly what ``hwmatch recommend`` writes locally:
recommendation, alternatives, Pareto front, model scores, solver, and the
Ready / Infeasible conditions naming the binding or the unmeetable
constraint. The surrogates cache by the content of their training rows, so a
re-solve after one more trial refits only what changed.

What was solved is remembered in the annotation ``hwmatch.dev/solved-for``
(a hash of the spec's generation, the platforms and the succeeded trials): a
pass whose inputs are unchanged — a resync, a failed trial, a restarted
operator — does nothing.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pandas as pd

from hwmatch.api import AIAsset, BenchmarkSweep, BenchmarkTrial, HWRecommendation, HWRecommendationStatus, set_condition
from hwmatch.api.vocabulary import LABEL_ASSET, canonical
from hwmatch.controller import metrics
from hwmatch.controller.kube import ASSETS, RECOMMENDATIONS, SWEEPS, TRIALS, Kube
from hwmatch.controller.objects import InvalidObject, invalid, parse
from hwmatch.controller.sweeps import Emit
from hwmatch.data.cluster import TrialObjects
from hwmatch.data.frame import succeeded
from hwmatch.engine import answer

SOLVED_FOR = "hwmatch.dev/solved-for"


class RecommendationReconciler:
    """The reconcile pass of a HWRecommendation (see the module docstring)."""

    def __init__(self, kube: Kube, emit: Emit, seed: int = 0):
        self.kube, self.emit, self.seed = kube, emit, seed

    def reconcile(self, namespace: str, name: str) -> str | None:
        """Solve if the inputs changed; the asset it depends on (to wake this on its changes), when known."""
        obj = self.kube.get(RECOMMENDATIONS, namespace, name)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            return None
        with metrics.RECONCILE_SECONDS.labels("HWRecommendation").time():
            try:
                rec = parse(obj, HWRecommendation)
            except InvalidObject as exc:
                invalid(self.kube, self.emit, RECOMMENDATIONS, obj, str(exc))
                return None
            self._reconcile(obj, rec, namespace)
            return rec.spec.asset_ref.name

    def _reconcile(self, obj: dict[str, Any], rec: HWRecommendation, ns: str) -> None:
        asset_name = rec.spec.asset_ref.name
        asset_obj = self.kube.get(ASSETS, ns, asset_name)
        if asset_obj is None:
            self._waiting(obj, rec, "AssetNotFound", f"spec.assetRef: no AIAsset {asset_name!r} in namespace {ns}")
            return
        try:
            asset = parse(asset_obj, AIAsset)
            sweeps = [parse(o, BenchmarkSweep) for o in self.kube.list(SWEEPS, ns)
                      if o.get("spec", {}).get("assetRef", {}).get("name") == asset_name]
        except InvalidObject as exc:
            self._waiting(obj, rec, "InvalidInput", str(exc))
            return
        trials = [BenchmarkTrial.model_validate(o) for o in self.kube.list(TRIALS, ns, {LABEL_ASSET: asset_name})]
        wanted = [r.name for r in rec.spec.sweep_refs]
        known = {s.metadata.name for s in sweeps}
        data = TrialObjects(asset, sweeps, trials)
        rows = succeeded(data.frame(wanted))
        key = _fingerprint(rec, [s for s in sweeps if not wanted or s.metadata.name in wanted], rows)
        if rec.metadata.annotations.get(SOLVED_FOR) == key and rec.status is not None:
            return
        if rows.empty and all(w in known for w in wanted):
            scope = ", ".join(wanted or sorted(known)) or "none yet"
            self._waiting(obj, rec, "WaitingForTrials",
                          f"no succeeded trials of AIAsset {asset_name} yet (sweeps: {scope})")
            return
        started = time.perf_counter()
        solved = answer(rec, asset, sweeps, data.frame, seed=self.seed, where=f"in namespace {ns}")
        metrics.SOLVE_SECONDS.observe(time.perf_counter() - started)
        assert solved.status is not None
        metrics.SOLVES.labels(ns, solved.status.phase or "").inc()
        self._write(obj, rec, solved.status)
        self.kube.annotate(RECOMMENDATIONS, ns, rec.metadata.name, {SOLVED_FOR: key})

    def _waiting(self, obj: dict[str, Any], rec: HWRecommendation, reason: str, message: str) -> None:
        """Not answerable (yet): phase Pending, Ready=False with the reason; an earlier answer is withdrawn."""
        status = HWRecommendationStatus(phase="Pending")
        status.conditions = set_condition([], "Ready", "False", reason, message, rec.metadata.generation)
        self._write(obj, rec, status)

    def _write(self, obj: dict[str, Any], rec: HWRecommendation, status: HWRecommendationStatus) -> None:
        """Write the status; transition times of conditions whose status did not change are kept."""
        old = rec.status or HWRecommendationStatus()
        types = {c.type for c in status.conditions}
        conditions = [c for c in old.conditions if c.type in types]
        for c in status.conditions:
            conditions = set_condition(conditions, c.type, c.status, c.reason, c.message, rec.metadata.generation)
        status.conditions = conditions
        status.observed_generation = rec.metadata.generation
        if status.to_wire() == old.to_wire():
            return
        ns = obj["metadata"]["namespace"]
        self.kube.replace_status(RECOMMENDATIONS, ns, rec.metadata.name, status.to_wire())
        before = (old.phase, old.recommendation.platform if old.recommendation else None)
        after = (status.phase, status.recommendation.platform if status.recommendation else None)
        ready = next((c for c in status.conditions if c.type == "Ready"), None)
        if after != before and ready is not None:
            self.emit(obj, "Normal" if status.phase == "Ready" else "Warning",
                      "Recommended" if status.phase == "Ready" else ready.reason, ready.message)


def _fingerprint(rec: HWRecommendation, sweeps: list[BenchmarkSweep], rows: pd.DataFrame) -> str:
    """What an answer depends on: the spec's generation, the sweeps' platforms, the succeeded trials' rows.

    Failed trials are left out: they change no model, so they trigger no re-solve.
    """
    h = hashlib.sha256(canonical([rec.metadata.generation, [[p.to_wire() for p in s.spec.platforms] for s in sweeps]]).encode())
    h.update(pd.util.hash_pandas_object(rows.sort_values("trial_id"), index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]
