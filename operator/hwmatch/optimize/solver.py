"""Choosing the best candidate: a CP-SAT model, or the same answer by vectorised filtering.

The CP-SAT model (one Boolean ``x_i`` per candidate):

- ``Σ x_i = 1``: exactly one platform + configuration is chosen (with its
  replicas, fixed by :mod:`hwmatch.optimize.problem`);
- per requirement ``k``, an assumption literal ``a_k`` enforcing
  ``Σ_{i violates k} x_i = 0``. Violation is decided in floating point on the
  interval bounds, so the model holds no rounded coefficients; when the model
  is infeasible, ``sufficient_assumptions_for_infeasibility`` names a
  conflicting subset of requirements;
- objective ``min Σ (rank_i · m + i) · x_i``: the candidates' objective
  values replaced by their dense rank (:meth:`Problem.rank`: objective, then
  the other goals), an exact integer encoding of the order — a single choice
  is invariant under any increasing transform of the objective, so no
  scaling or rounding of float coefficients is needed — with the
  candidate's position as the last tie-break, so the optimum is unique and
  equals what a vectorised ``argmin`` of the rank finds.

``presolve=True`` (the default) first removes, with numpy, every candidate
violating a requirement (what CP-SAT's own presolve would do with those unit
constraints, but vectorised), then every feasible candidate dominated on the
Pareto axes (objective and the other goals): the optimum in rank order is
lexicographically smallest, hence never dominated, so the solver's answer is
unchanged while its model shrinks from up to 10^6 Booleans to the front
(tens to hundreds). Figures: ``bench/optimizer_scaling.py``. ``method="numpy"`` is
the plain filter + argmin, for callers that ask thousands of questions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from ortools.sat.python import cp_model

from hwmatch.api.errors import InputError
from hwmatch.optimize.pareto import pareto_front
from hwmatch.optimize.problem import Problem

Method = Literal["cp-sat", "numpy"]


@dataclass
class Solution:
    """The chosen candidate (``best``, an index into the candidates) and how it was found.

    ``model_size``: candidates the method chose among (CP-SAT: Booleans in the model).
    """

    status: str
    best: int | None
    feasible: np.ndarray
    wall_time_ms: float
    method: str
    core: list[int] = field(default_factory=list)
    model_size: int = 0


def feasible_mask(problem: Problem) -> np.ndarray:
    """Candidates that meet every requirement and have a known objective.

    One pass per requirement over its own array: ``problem.met().all(axis=1)`` would stack them into an
    ``(n, k)`` array and reduce across its few columns, ten times slower at 10^6 candidates.
    """
    feasible = np.isfinite(problem.objective)
    for requirement in problem.requirements:
        feasible &= requirement.met
    return feasible


def solve(
    problem: Problem,
    method: Method = "cp-sat",
    *,
    presolve: bool = True,
    seed: int = 0,
    time_limit_s: float = 60.0,
) -> Solution:
    """The best candidate of ``problem`` by ``method``; both methods give the same index."""
    start = time.perf_counter()
    feasible = feasible_mask(problem)
    if method == "numpy":
        best: int | None = best_of(problem, np.flatnonzero(feasible))
        status = "OPTIMAL" if best is not None else "INFEASIBLE"
        elapsed = (time.perf_counter() - start) * 1e3
        return Solution(status, best, feasible, elapsed, "numpy", model_size=int(feasible.sum()))
    if method != "cp-sat":
        raise InputError(f"unknown method {method!r}; use 'cp-sat' or 'numpy'")
    pool = np.flatnonzero(feasible if presolve else np.isfinite(problem.objective))
    if presolve and pool.size:
        kept = pareto_front(problem.points(pool))
        if problem.preferred is not None:  # may win an objective tie although dominated on the other goals
            kept = np.union1d(kept, np.flatnonzero(problem.preferred[pool]))
        pool = np.sort(pool[kept])
    if pool.size == 0:
        return Solution("INFEASIBLE", None, feasible, (time.perf_counter() - start) * 1e3, "cp-sat")
    model = cp_model.CpModel()
    x = model.new_bool_var_series("x", pd.RangeIndex(pool.size)).tolist()
    model.add_exactly_one(x)
    assumptions: list[tuple[int, cp_model.IntVar]] = []
    if not presolve:
        met = problem.met()[pool]
        for k in range(len(problem.requirements)):
            violating = np.flatnonzero(~met[:, k])
            if violating.size == 0:
                continue
            literal = model.new_bool_var(f"requirement_{k}")
            model.add(cp_model.LinearExpr.sum([x[i] for i in violating]) == 0).only_enforce_if(literal)
            assumptions.append((k, literal))
        model.add_assumptions([literal for _, literal in assumptions])
    coefficients = problem.rank(pool) * pool.size + np.arange(pool.size, dtype=np.int64)
    model.minimize(cp_model.LinearExpr.weighted_sum(x, coefficients.tolist()))
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = seed
    solver.parameters.max_time_in_seconds = time_limit_s
    code = solver.solve(model)
    status = solver.status_name(code)
    best = None
    core: list[int] = []
    if code in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        chosen = np.flatnonzero(solver.boolean_values(pd.Series(x)).to_numpy())
        best = int(pool[chosen[0]])
    elif code == cp_model.INFEASIBLE and assumptions:
        proven = set(solver.sufficient_assumptions_for_infeasibility())
        core = [k for k, literal in assumptions if literal.index in proven]
    return Solution(status, best, feasible, (time.perf_counter() - start) * 1e3, "cp-sat", core, pool.size)


def best_of(problem: Problem, pool: np.ndarray) -> int | None:
    """The best of the candidates ``pool`` in :meth:`Problem.rank` order, in O(n): only ties are ranked."""
    if pool.size == 0:
        return None
    objective = problem.objective[pool]
    tied = pool[objective == objective.min()]
    return int(tied[np.argmin(problem.rank(tied))])


def ranking(problem: Problem, feasible: np.ndarray) -> np.ndarray:
    """Feasible candidate indices, best first (ties: lower index first)."""
    candidates = np.flatnonzero(feasible)
    return candidates[np.argsort(problem.rank(candidates), kind="stable")]


#: Significant digits two candidates' predictions must differ in to be listed as distinct alternatives (as printed).
DISTINCT_DIGITS = 4
#: Runners-up looked at, in rank order, when filling the alternatives with distinct ones.
ALTERNATIVES_SCAN = 10_000


def signature(problem: Problem, index: int) -> tuple[object, ...]:
    """What a reader tells candidates apart by: platform, replicas and every predicted value to 4 digits.

    Two configurations with the same signature (max_depth 15 or 16 in one
    leaf of a tree model) are one alternative as far as the models can say.
    """
    values = tuple(float(f"{problem.metrics[m].value[index]:.{DISTINCT_DIGITS}g}") for m in sorted(problem.metrics))
    return (str(problem.candidates.platform[index]), float(problem.replicas[index]), values)


def alternatives(problem: Problem, feasible: np.ndarray, best: int, count: int) -> list[int]:
    """Runners-up: first the best candidate of each other platform, then the next best that differ in predictions.

    Plain top-k would list near-copies of the winner (max_depth 15 and 16
    instead of 14, with identical predictions); the best of each other
    platform tells a user what choosing differently costs, and each further
    runner-up differs from every one listed before it (and from the best) in
    some prediction, to :data:`DISTINCT_DIGITS` digits (:func:`signature`).
    Listed best first.
    """
    if count <= 0:
        return []
    order = ranking(problem, feasible)
    order = order[order != best]
    platforms = problem.candidates.platform[order]
    firsts = np.unique(platforms, return_index=True)[1]
    chosen = [int(order[j]) for j in sorted(firsts) if platforms[j] != problem.candidates.platform[best]][:count]
    seen = {signature(problem, i) for i in [best, *chosen]}
    for i in order[:ALTERNATIVES_SCAN]:
        if len(chosen) >= count:
            break
        key = signature(problem, int(i))
        if int(i) not in chosen and key not in seen:
            chosen.append(int(i))
            seen.add(key)
    return [int(i) for i in order[np.isin(order, chosen)]]
