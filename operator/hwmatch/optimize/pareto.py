"""Non-dominated candidates: the trade-off between the objective and the other goals."""

from __future__ import annotations

import numpy as np

from hwmatch.optimize.problem import Problem


def pareto_front(points: np.ndarray) -> np.ndarray:
    """Row indices of the non-dominated rows of ``points`` (every column minimised), by the first column.

    Rows with a NaN are left out; +inf is a value like any other (the worst).

    Rows are visited in lexicographic order; the first remaining row is
    never dominated by a remaining one (a dominator would come before it),
    and each front row removes every row it weakly dominates — duplicates
    included, so equal trade-offs appear once. Cost: O(n · front size).
    """
    known = np.flatnonzero(~np.any(np.isnan(points), axis=1))
    remaining = known[np.lexsort(points[known].T[::-1])]
    front: list[int] = []
    while remaining.size:
        head = remaining[0]
        front.append(int(head))
        rest = remaining[1:]
        remaining = rest[~np.all(points[rest] >= points[head], axis=1)]
    return np.array(front, dtype=int)


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
