"""Reconciling a ``HWRecommendation``: (re)solve when its asset's trials or its spec change.

The answer is :func:`hwmatch.engine.answer` on the dataset of
the asset's ``BenchmarkTrial`` objects (:class:`~hwmatch.data.cluster.TrialObjects`),
so the status is exactly what ``hwmatch recommend`` writes locally:
recommendation, alternatives, Pareto front, model scores, solver, and the
Ready / Infeasible conditions naming the binding or the unmeetable
constraint. Its kstatus state: Ready with an answer (with ``spec.verify``,
a verified one); Reconciling while it waits for its asset, trials or
verification runs, or while its sweeps still run without an answer; Stalled
when it cannot be answered with what there is. The solve itself (read the
asset's trials, learn, optimise) runs in a worker process
(:mod:`~hwmatch.controller.solver`); the surrogates cache by the content of
their training rows there, so a re-solve after one more trial refits only what
changed. Every write stays here.

What was solved is remembered in the annotation ``hwmatch.dev/solved-for``
(a hash of the spec's generation, the platforms and the succeeded trials): a
pass whose inputs are unchanged — a resync, a failed trial, a restarted
operator — does not solve again.

With ``spec.verify`` a pass also moves the verification on: it records the
runs whose Jobs ended (before solving, so the answer learns from them), asks
:func:`hwmatch.engine.verification_step` — the policy ``hwmatch run`` follows
too — what the round needs, and starts those runs as Jobs with
:class:`~hwmatch.controller.trials.TrialJobs`, the mechanism sweeps use.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from hwmatch.api import (
    AIAsset,
    BenchmarkSweep,
    BenchmarkTrial,
    BenchmarkTrialStatus,
    HWRecommendation,
    HWRecommendationStatus,
    is_true,
    set_condition,
    set_state,
)
from hwmatch.api.base import READY, RECONCILING, STALLED, State
from hwmatch.api.vocabulary import FINISHED, LABEL_RECOMMENDATION, PENDING
from hwmatch.controller import metrics
from hwmatch.controller.kube import ASSETS, RECOMMENDATIONS, SWEEPS, TRIALS, Kube
from hwmatch.controller.objects import InvalidObject, invalid, parse
from hwmatch.controller.solver import InlineSolver, Solver, SolveRequest
from hwmatch.controller.trials import RUNNING_RESYNC, Emit, Refusal, Telemetry, TrialJobs, TrialObject
from hwmatch.engine import SweepError, verification_step
from hwmatch.engine.verification import judge_round, verification_condition

SOLVED_FOR = "hwmatch.dev/solved-for"


class RecommendationReconciler:
    """The reconcile pass of a HWRecommendation (see the module docstring)."""

    def __init__(self, kube: Kube, emit: Emit, telemetry: Telemetry, unschedulable_timeout: float, resync: float, *,
                 refusal: Refusal, seed: int = 0, solver: Solver | None = None):
        self.kube, self.emit, self.telemetry, self.refusal, self.seed = kube, emit, telemetry, refusal, seed
        self.unschedulable_timeout, self.resync = unschedulable_timeout, resync
        self.solver: Solver = solver if solver is not None else InlineSolver(kube)
        self.solved_in: dict[tuple[str, str], float] = {}  # seconds the last solve of each recommendation took

    def pause(self, namespace: str, name: str) -> float:
        """Seconds to rest after a pass: as long as its solve took (none without one), so new results are solved
        for in batches while a sweep streams them, at most half the time solving."""
        return self.solved_in.pop((namespace, name), 0.0)

    def reconcile(self, namespace: str, name: str) -> float:
        """Solve if the inputs changed, and move ``spec.verify`` on; seconds until the next pass is due."""
        obj = self.kube.get(RECOMMENDATIONS, namespace, name)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            return self.resync
        with metrics.RECONCILE_SECONDS.labels("HWRecommendation").time():
            try:
                rec = parse(obj, HWRecommendation)
            except InvalidObject as exc:
                invalid(self.kube, self.emit, RECOMMENDATIONS, obj, str(exc))
                return self.resync
            return self._reconcile(obj, rec, namespace)

    def _reconcile(self, obj: dict[str, Any], rec: HWRecommendation, ns: str) -> float:
        asset_name = rec.spec.asset_ref.name
        asset_obj = self.kube.get(ASSETS, ns, asset_name)
        if asset_obj is None:
            self._waiting(obj, rec, RECONCILING, "AssetNotFound",
                          f"spec.assetRef: no AIAsset {asset_name!r} in namespace {ns}; waiting for it")
            return self.resync
        try:
            asset = parse(asset_obj, AIAsset)
            sweeps = [parse(o, BenchmarkSweep) for o in self.kube.list(SWEEPS, ns)
                      if o.get("spec", {}).get("assetRef", {}).get("name") == asset_name]
        except InvalidObject as exc:
            self._waiting(obj, rec, STALLED, "InvalidInput", str(exc))
            return self.resync
        verifying = _Verifying(self, obj, rec, asset, sweeps) if rec.spec.verify is not None else None
        if verifying is not None:
            verifying.advance()  # runs that ended are recorded and judged before solving: the answer learns from them
        current = verifying.rec if verifying is not None else rec  # with the judged verification, if any
        wanted = [r.name for r in rec.spec.sweep_refs]
        asked = time.monotonic()
        done = self.solver(SolveRequest(
            namespace=ns, recommendation=current.to_wire(), asset=asset_obj, sweeps=[s.to_wire() for s in sweeps],
            solved_for=rec.metadata.annotations.get(SOLVED_FOR), has_answer=rec.status is not None, seed=self.seed))
        if done.outcome == "invalid":
            self._waiting(obj, rec, STALLED, "InvalidInput", done.message)
            return self.resync
        if done.outcome == "waiting":
            self._waiting(obj, rec, RECONCILING, "WaitingForTrials", done.message)
            return self.resync
        fresh = done.outcome == "solved"
        if fresh:
            assert done.status is not None
            solved = current.model_copy(update={"status": HWRecommendationStatus.model_validate(done.status)})
            metrics.SOLVE_SECONDS.observe(done.seconds)
            self.solved_in[(ns, rec.metadata.name)] = time.monotonic() - asked
            metrics.SOLVES.labels(ns, solved.status.phase or "").inc()  # type: ignore[union-attr]
        else:
            solved = current.model_copy(deep=True)  # its state may still move (_while_sweeps_run): not the one read
        assert solved.status is not None
        requeue = self.resync if verifying is None else verifying.step(solved)
        _while_sweeps_run(solved.status, [s for s in sweeps if not wanted or s.metadata.name in wanted],
                          rec.metadata.generation)
        self._write(obj, rec, solved.status)
        if fresh:
            self.kube.annotate(RECOMMENDATIONS, ns, rec.metadata.name, {SOLVED_FOR: done.key})
        return requeue

    def _waiting(self, obj: dict[str, Any], rec: HWRecommendation, state: State, reason: str, message: str) -> None:
        """Not answerable: phase Pending, Reconciling (waiting) or Stalled with the reason; an earlier answer goes."""
        status = HWRecommendationStatus(phase="Pending")
        status.conditions = set_state([], state, reason, message, rec.metadata.generation)
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


class _Verifying:
    """``spec.verify`` in one pass: the policy is :func:`hwmatch.engine.verification_step`, the runs are Jobs.

    A round's runs are ``BenchmarkTrial`` objects owned by the
    recommendation, labelled ``hwmatch.dev/verification`` and
    ``hwmatch.dev/recommendation`` (not with their sweep: they are not in its
    plan), with ``spec.sweepRef`` naming the sweep of their platform, so they
    join that sweep's training data like the local store's verification trials.
    """

    def __init__(self, owner: RecommendationReconciler, obj: dict[str, Any], rec: HWRecommendation, asset: AIAsset,
                 sweeps: list[BenchmarkSweep]):
        self.obj, self.sweeps = obj, sweeps
        self.rec = rec.model_copy(deep=True)  # its status gets the judged verification; the read one stays as read
        self.ns = obj["metadata"]["namespace"]
        self.kube = owner.kube
        self.labels = {LABEL_RECOMMENDATION: rec.metadata.name}
        self.jobs = TrialJobs(owner.kube, owner.emit, owner.telemetry, owner.unschedulable_timeout, self.ns, asset,
                              datetime.now(timezone.utc))
        self.resync = owner.resync
        self.denied = owner.refusal(self.ns)
        self.trials: dict[str, TrialObject] = {}
        self.phases: dict[str, str] = {}
        self.runs: dict[str, BenchmarkTrialStatus] = {}  # the ended runs by name

    def advance(self) -> None:
        """Record the outcomes of this recommendation's verification runs whose Jobs ended; judge an ended round.

        The judged verification goes into the recommendation's status before
        it is solved again, so a verified choice wins a tie in that solve.
        """
        self.trials = {o["metadata"]["name"]: (o, BenchmarkTrial.model_validate(o))
                       for o in self.kube.list(TRIALS, self.ns, self.labels)}
        self.phases = self.jobs.advance(self.trials, self.labels)
        ended = {n: self.jobs.written.get(n, t.status) for n, (_, t) in self.trials.items()
                 if self.phases[n] in FINISHED}
        self.runs = {n: s for n, s in ended.items() if s is not None}
        if self.rec.status is not None:
            self.rec.status.verification = judge_round(self.rec, self.runs)

    def step(self, solved: HWRecommendation) -> float:
        """Set ``solved.status.verification`` (and its Verified condition) and start the round's runs; the requeue."""
        assert solved.status is not None
        try:
            if self.denied is not None:
                raise SweepError(self.denied)
            step = verification_step(solved, self.sweeps, self.runs)
        except SweepError as exc:  # a denied namespace, or the platform's sweep is gone: nothing to run the choice on
            generation = self.rec.metadata.generation
            solved.status.conditions = set_condition(solved.status.conditions, "Verified", "False", "CannotVerify",
                                                     str(exc), generation)
            if solved.status.phase == "Ready":  # spec.verify's goal is out of reach
                solved.status.conditions = set_state(solved.status.conditions, STALLED, "CannotVerify", str(exc),
                                                     generation)
            return self.resync
        solved.status.verification = step.verification
        verification_condition(solved.status, self.rec.metadata.generation)
        sweeps = {s.metadata.name: s for s in self.sweeps}
        for trial in step.trials:
            name = trial.metadata.name
            if name not in self.trials:
                tobj = self.jobs.create(trial, self.obj)
                self.trials[name] = (tobj, BenchmarkTrial.model_validate(tobj))
                self.phases[name] = PENDING
            if self.phases[name] == PENDING:
                tobj, parsed = self.trials[name]
                self.phases[name] = self.jobs.start(tobj, parsed, sweeps[parsed.spec.sweep_ref.name])
        running = step.verification is not None and step.verification.phase == "Running"
        return min(self.resync, self.jobs.requeue, RUNNING_RESYNC if running else self.resync)


def _while_sweeps_run(status: HWRecommendationStatus, sweeps: list[BenchmarkSweep], generation: int | None) -> None:
    """An Infeasible or InsufficientData answer is Reconciling while one of its sweeps runs, Stalled after.

    The engine calls it Stalled (these trials cannot answer the request); in
    a cluster, the trials still to come may. Judged on every pass, solved or
    not: a sweep that ends with a failed trial changes no answer but ends the wait.
    """
    ready = next((c for c in status.conditions if c.type == READY), None)
    if status.phase not in ("Infeasible", "InsufficientData") or ready is None:
        return
    running = sorted(s.metadata.name for s in sweeps
                     if s.status is None or not (is_true(s.status.conditions, READY) or is_true(s.status.conditions, STALLED)))
    state: State = RECONCILING if running else STALLED
    status.conditions = set_state(status.conditions, state, ready.reason, ready.message, generation)
