"""From a dataset frame and a ``HWRecommendationSpec`` to a ``HWRecommendationStatus``.

:func:`recommend` is the whole flow (fit or reuse surrogates, enumerate
candidates, predict, build the problem, solve, explain); :func:`to_status`
turns a solved problem into the status, for callers that build problems
themselves (an evaluation with predictions from a table).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from hwmatch.api import (
    READY,
    STALLED,
    Choice,
    DataShortfall,
    HWRecommendationSpec,
    HWRecommendationStatus,
    Parameter,
    Platform,
    PredictedValue,
    SolverInfo,
    describe_level,
    set_condition,
    set_state,
)
from hwmatch.data.frame import INSTANCE, PARAM, names, succeeded
from hwmatch.modeling.surrogates import Surrogates, categorical_columns
from hwmatch.modeling.transfer import PlatformTransfer
from hwmatch.optimize.candidates import CandidateSet, PlatformInfo, RecommendationError, platforms_from_frame
from hwmatch.optimize.explain import binding, describe_candidate, explain
from hwmatch.optimize.pareto import problem_front
from hwmatch.optimize.problem import POWER_METRIC, THROUGHPUT_METRIC, Problem, Requirement, build_problem, interval_level
from hwmatch.optimize.solver import Method, Solution, alternatives, best_of, solve

#: Most points of the Pareto front reported in a status.
PARETO_POINTS = 20
#: A candidate platform with fewer succeeded trials than this is predicted by transfer from the others
#: (:class:`hwmatch.modeling.transfer.PlatformTransfer`) when two platforms or more know the asset better
#: (:func:`transfer_targets`; docs/transfer.md has the figures at k = 0, 5, 10 and 20).
TRANSFER_BELOW = 20


def basis(problem: Problem, platform: str) -> str | None:
    """``based on 5 trials of this platform plus transfer``: what a choice on ``platform`` rests on."""
    if problem.platform_trials is None:
        return None
    n = problem.platform_trials.get(platform, 0)
    text = f"based on {n} trial{'' if n == 1 else 's'} of this platform"
    return text + " plus transfer" if platform in problem.transferred else text


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def choice(problem: Problem, index: int) -> Choice:
    """One candidate as the status reports it: platform, parameters, replicas, every predicted metric.

    Each interval is stamped with the problem's per-bound level, the level
    its predictions were made at, so the status says what its bounds mean.
    """
    predicted = {}
    for name, p in problem.metrics.items():
        value = _finite(p.value[index])
        if value is None:
            continue
        lower, upper = _finite(p.lower[index]), _finite(p.upper[index])
        level = problem.level if lower is not None and upper is not None else None
        predicted[name] = PredictedValue(value=value, lower=lower, upper=upper, level=level)
    cost = problem.metrics.get("cost_per_hour")
    novelty = None if problem.novelty is None else round(float(problem.novelty[index]), 3)
    platform = str(problem.candidates.platform[index])
    return Choice(
        platform=platform,
        parameters=problem.candidates.parameters_of(index),
        replicas=int(problem.replicas[index]),
        predicted=predicted,
        cost_per_hour=None if cost is None else _finite(cost.value[index]),
        objective=_finite(problem.objective_value[index]),
        novelty=novelty,
        platform_trials=None if problem.platform_trials is None else problem.platform_trials.get(platform, 0),
        basis=basis(problem, platform),
    )


def shortfall(problem: Problem, unbounded: Mapping[str, tuple[int, int]]) -> DataShortfall | None:
    """Why ``problem`` cannot be answered yet, if a requirement rests only on unbounded intervals.

    ``unbounded`` maps each metric whose intervals are unbounded at the
    problem's level to (rows it has, rows needed) (:meth:`Surrogates.unbounded`).
    A requirement *rests* on them when its bound is finite for no candidate
    (a derived one — replicas, cost — through throughput or power). The
    suggested place to measure is the best candidate when those requirements
    are read on point predictions and the others on their bounds: the one an
    answer would most likely be, so a trial there (or ``hwmatch verify`` of a
    later answer) is the most informative. ``None``: the problem's refusal is
    not about data (it is Infeasible on bounded requirements).
    """
    known = np.isfinite(problem.objective)
    if not known.any():  # the objective itself rests on them (a cost through replicas through throughput)
        known = np.ones(len(problem), dtype=bool)
    resting = [r for r in problem.requirements if not np.isfinite(r.bound[known]).any()]
    if not resting or not unbounded:
        return None
    metrics = [r.metric for r in resting if r.metric in unbounded]
    if any(r.metric not in unbounded for r in resting):  # derived: replicas and costs come from throughput, power
        metrics += [m for m in (THROUGHPUT_METRIC, POWER_METRIC) if m in unbounded]
    metrics = list(dict.fromkeys(metrics)) or sorted(unbounded)
    have = min(unbounded[m][0] for m in metrics)
    needed = max(unbounded[m][1] for m in metrics)
    hopeful = known.copy()
    resting_ids = {id(r) for r in resting}
    for r in problem.requirements:
        if id(r) in resting_ids:
            point = problem.metrics[r.metric].value
            if np.isfinite(point[known]).any():
                hopeful &= Requirement(r.label, r.metric, r.sense, r.threshold, r.source, point).met
        else:
            hopeful &= r.met
    best = best_of(problem, np.flatnonzero(hopeful if hopeful.any() else known))
    message = (
        f"not enough trials: {', '.join(r.label for r in resting)} cannot be shown to hold; "
        f"{', '.join(metrics)} {'was' if len(metrics) == 1 else 'were'} learnt from {have} trial(s) and a finite "
        f"bound ({describe_level(problem.level)} interval) needs {needed}. Run {needed - have} more succeeded trial(s)"
    )
    platform, parameters = None, {}
    if best is not None:
        platform, parameters = str(problem.candidates.platform[best]), problem.candidates.parameters_of(best)
        message += f", first on {platform}: the best candidate by point prediction is {describe_candidate(problem, best)}"
    return DataShortfall(metrics=metrics, trials=have, needed_trials=needed, more_trials=needed - have,
                         platform=platform, parameters=parameters, message=message)


def to_status(
    problem: Problem, solution: Solution, alternatives_count: int = 3, pareto_points: int = PARETO_POINTS,
    unbounded: Mapping[str, tuple[int, int]] | None = None,
) -> HWRecommendationStatus:
    """The status for a solved problem: Ready with a choice, Infeasible with the reason, or InsufficientData.

    It records the problem's joint confidence; the per-bound level is on each interval (:func:`choice`).
    ``unbounded`` (metric -> (rows, rows needed)) names the metrics too few
    trials give finite bounds for: when no candidate is feasible because a
    requirement rests on them, the phase is InsufficientData (:func:`shortfall`),
    not Infeasible — the numbers may well be reachable, measuring more is the
    fix — and Ready is False: nothing can be shown to hold. Without an answer the
    request is Stalled (kstatus): these trials cannot answer it; the operator
    makes it Reconciling while its sweeps still run (more trials may).
    """
    status = HWRecommendationStatus(
        confidence=problem.confidence,
        solver=SolverInfo(
            status=solution.status,
            wall_time_ms=round(solution.wall_time_ms, 3),
            candidates=len(problem),
            feasible_candidates=int(solution.feasible.sum()),
        )
    )
    short = None if solution.best is not None else shortfall(problem, unbounded or {})
    if short is not None:
        status.phase = "InsufficientData"
        status.insufficient = short
        status.conditions = set_state(status.conditions, STALLED, "InsufficientData", short.message)
        status.conditions = set_condition(status.conditions, "Infeasible", "False", "InsufficientData", "")
        return status
    if solution.best is None:
        status.phase = "Infeasible"
        status.infeasible = explain(problem, solution.core)
        status.conditions = set_state(status.conditions, STALLED, "Infeasible", status.infeasible.message)
        status.conditions = set_condition(status.conditions, "Infeasible", "True", "Infeasible", status.infeasible.message)
        return status
    best = solution.best
    status.phase = "Ready"
    status.recommendation = choice(problem, best)
    status.alternatives = [choice(problem, i) for i in alternatives(problem, solution.feasible, best, alternatives_count)]
    status.pareto_front = [choice(problem, i) for i in problem_front(problem, solution.feasible, pareto_points)]
    pressed = binding(problem, best)
    message = f"{describe_candidate(problem, best)}: {problem.objective_label} = {problem.objective_value[best]:.4g}"
    if pressed:
        message += "; binding: " + ", ".join(pressed)
    if status.recommendation.basis:
        message += f"; {status.recommendation.basis}"
    status.conditions = set_state(status.conditions, READY, "Recommended", message)
    status.conditions = set_condition(status.conditions, "Infeasible", "False", "Feasible", "")
    return status


def _check_inputs(frame: pd.DataFrame, parameters: Sequence[Parameter], spec: HWRecommendationSpec) -> None:
    declared = {p.name for p in parameters}
    undeclared = [n for n in names(frame, PARAM) if n not in declared]
    if undeclared:
        raise RecommendationError(
            f"the dataset has parameters {undeclared} the asset does not declare; add them to the asset's parameters"
        )
    needed = names(frame, INSTANCE)
    missing = [n for n in needed if n not in spec.instance]
    unknown = [n for n in spec.instance if n not in needed]
    if missing:
        raise RecommendationError(f"instance: give a value for {missing}; the models were trained on instance features {needed}")
    if unknown:
        raise RecommendationError(f"instance: {unknown} are not instance features of the dataset ({needed or 'none'})")


def recommend(
    frame: pd.DataFrame,
    parameters: Sequence[Parameter],
    platforms: Sequence[Platform | PlatformInfo] | None,
    spec: HWRecommendationSpec,
    *,
    seed: int = 0,
    goals: Mapping[str, str] | None = None,
    method: Method = "cp-sat",
    surrogates: Surrogates | PlatformTransfer | None = None,
    prefer: Sequence[Choice] = (),
    prior: pd.DataFrame | None = None,
) -> HWRecommendationStatus:
    """The recommendation for ``spec`` learnt from ``frame`` (the dataset of the asset's trials).

    ``parameters`` is the asset's parameter space, ``platforms`` the sweep's
    platforms (default: those in the frame, without power figures), ``goals``
    the asset's metric goals (Pareto axes). Pass fitted ``surrogates`` to
    skip fitting; otherwise they are fitted (or taken from the cache).

    A platform without a single succeeded trial (a node pool that was never
    scheduled, an image that crashed there) is left out: its predictions would
    rest on its features alone, with intervals calibrated on other platforms.
    Naming it in ``spec.platforms`` asks for that extrapolation explicitly.

    ``prefer`` are configurations measured to hold (a verified choice): one
    of them wins a tie on the objective (:attr:`Problem.preferred`).

    A candidate platform with fewer than :data:`TRANSFER_BELOW` trials (a
    named one with none, too), beside two platforms or more with more, is
    predicted by transfer (:class:`~hwmatch.modeling.transfer.PlatformTransfer`)
    with intervals rehearsed at its own trial count; every choice says on how
    many trials of its platform it rests (``Choice.basis``). ``prior``: other
    assets' trials (``spec.priorFrom``), whose platform effects inform it.
    """
    rows = succeeded(frame)
    if rows.empty:
        raise RecommendationError("the dataset has no succeeded trials; run a sweep first")
    _check_inputs(rows, parameters, spec)
    if platforms is not None and not spec.platforms:
        measured = set(rows["platform"].astype(str))
        platforms = [p for p in platforms if p.name in measured]
    candidates = CandidateSet.grid(
        parameters,
        platforms if platforms is not None else platforms_from_frame(rows),
        resolution=spec.resolution,
        fixed=spec.fixed,
        instance=spec.instance,
        only=spec.platforms,
    )
    counts = {str(p): int(n) for p, n in rows.groupby("platform").size().items()}
    targets = transfer_targets(counts, np.unique(candidates.platform.astype(str)))
    if surrogates is None:
        categorical = categorical_columns(parameters)
        if targets:
            surrogates = PlatformTransfer(seed, categorical, dict(goals or {}), prior=prior).fit(rows, targets)
        else:
            surrogates = Surrogates(seed=seed, categorical=categorical, goals=goals).fit(rows)
    level = interval_level(spec)
    forecast = surrogates.forecast(candidates.frame, level)  # the predictions and the novelty, in one pass
    problem = build_problem(candidates, forecast.predictions, spec, goals)
    problem.novelty = forecast.novelty
    problem.platform_trials = counts
    if isinstance(surrogates, PlatformTransfer):
        problem.transferred = frozenset(surrogates.targets)
    if prefer:
        problem.preferred = _matching(candidates, prefer)
    status = to_status(problem, solve(problem, method, seed=seed), spec.alternatives, unbounded=surrogates.unbounded(level))
    status.models = surrogates.scores()
    status.dataset_hash = surrogates.dataset_hash
    return status


def transfer_targets(counts: Mapping[str, int], candidates: Sequence[str] | np.ndarray) -> list[str]:
    """Candidate platforms to predict by transfer from the others (:data:`TRANSFER_BELOW`).

    A platform with ``n`` trials, fewer than :data:`TRANSFER_BELOW`, beside
    two other platforms or more with at least ``min(TRANSFER_BELOW, 2n)``
    trials each (and one): the others know the asset better than it does.
    """
    out = []
    for p in sorted({str(c) for c in candidates}):
        n = counts.get(p, 0)
        if n >= TRANSFER_BELOW:
            continue
        richer = [q for q, m in counts.items() if q != p and m >= max(1, min(TRANSFER_BELOW, 2 * n))]
        if len(richer) >= 2:
            out.append(p)
    return out


def _matching(candidates: CandidateSet, choices: Sequence[Choice]) -> np.ndarray:
    """Which candidates are one of ``choices`` (same platform and parameters; replicas are sized anew)."""
    frame = candidates.frame
    mask = np.zeros(len(frame), dtype=bool)
    for c in choices:
        hit = frame["platform"] == c.platform
        for name, value in c.parameters.items():
            column = PARAM + name
            hit = hit & (frame[column] == value) if column in frame else hit & False
        mask |= hit.to_numpy(dtype=bool)
    return mask
