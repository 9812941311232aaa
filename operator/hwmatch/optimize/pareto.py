"""Non-dominated candidates: the trade-off between the objective and the other goals."""

from __future__ import annotations

import numpy as np

from hwmatch.optimize.problem import Problem

#: Below this many rows the front is found without the pruning passes of :func:`_not_strictly_dominated`.
PRUNE_MIN_ROWS = 256


def pareto_front(points: np.ndarray) -> np.ndarray:
    """Row indices of the non-dominated rows of ``points`` (every column minimised), by the first column.

    Rows with a NaN are left out; +inf is a value like any other (the worst).

    Rows are visited in lexicographic order; the first remaining row is
    never dominated by a remaining one (a dominator would come before it),
    and each front row removes every row it weakly dominates — duplicates
    included, so equal trade-offs appear once. Cost: O(n · front size), in
    passes over one contiguous array per column (a reduction across the few
    columns of an ``(n, d)`` array is many times slower in numpy). Before
    the sort, :func:`_not_strictly_dominated` drops most rows in d + 1
    passes: a strictly dominated row is never on the front, so the result is
    the same.
    """
    columns = [np.ascontiguousarray(points[:, k]) for k in range(points.shape[1])]
    known = np.ones(points.shape[0], dtype=bool)
    for column in columns:
        known &= ~np.isnan(column)
    rows = _not_strictly_dominated(columns, np.flatnonzero(known))
    remaining = rows[np.lexsort([column[rows] for column in reversed(columns)])]
    columns = [column[remaining] for column in columns]
    at = np.arange(remaining.size)
    front: list[int] = []
    while at.size:
        head, rest = at[0], at[1:]
        front.append(int(remaining[head]))
        kept = np.zeros(rest.size, dtype=bool)
        for column in columns:
            kept |= column[rest] < column[head]
        at = rest[kept]
    return np.array(front, dtype=int)


def _not_strictly_dominated(columns: list[np.ndarray], rows: np.ndarray) -> np.ndarray:
    """``rows`` less those strictly dominated by one of d + 1 strong rows: minimisers of weighted sums.

    Any dominator would do (the test is exact); a minimiser of a positive weighted sum of the scaled
    columns is on the front and usually dominates most of the cloud, so each later pass runs over the
    few rows left. The weights are fixed (equal, then each column stressed): deterministic. Few rows are
    not worth the passes.
    """
    d = len(columns)
    if rows.size <= PRUNE_MIN_ROWS or d == 0:
        return rows
    values = [column[rows] for column in columns]
    scaled = []
    for v in values:
        finite = v[np.isfinite(v)]
        low, span = (finite.min(), np.ptp(finite)) if finite.size else (0.0, 0.0)
        scaled.append((v - low) / (span if span > 0 else 1.0))
    alive = np.arange(rows.size)
    for stressed in range(-1, d):
        score = sum((1.0 + d * (k == stressed)) * z[alive] for k, z in enumerate(scaled))
        pivot = alive[int(np.argmin(score))]
        weakly, strictly = np.ones(alive.size, dtype=bool), np.zeros(alive.size, dtype=bool)
        for v in values:
            here = v[alive]
            weakly &= here >= v[pivot]
            strictly |= here > v[pivot]
        alive = alive[~(weakly & strictly)]
    return rows[alive]


def thin(front: np.ndarray, count: int) -> np.ndarray:
    """At most ``count`` points of a front ordered by its first axis, evenly spread, ends included."""
    if count <= 0:
        return front[:0]
    if front.size <= count:
        return front
    picks = np.unique(np.round(np.linspace(0, front.size - 1, count)).astype(int))
    return front[picks]


def problem_front(problem: Problem, feasible: np.ndarray, count: int) -> list[int]:
    """The feasible candidates on the front of the problem's Pareto axes (objective first), thinned."""
    candidates = np.flatnonzero(feasible)
    if candidates.size == 0 or count <= 0:
        return []
    return [int(candidates[i]) for i in thin(pareto_front(problem.points(candidates)), count)]
