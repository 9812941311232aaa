"""Matching requirements to hardware: candidates, predicted and derived metrics, the OR-Tools model.

Composable pieces, each usable alone:

- :class:`CandidateSet` — platform × parameter grid (or the configurations a table holds);
- :func:`build_problem` — predictions + spec -> requirements, objective, replicas, derived metrics;
- :func:`solve` — CP-SAT (or numpy) choice of the best candidate;
- :func:`to_status` — a solved problem as ``HWRecommendationStatus`` (alternatives, Pareto front, why infeasible);
- :func:`recommend` — all of it from a dataset frame.
"""

from hwmatch.optimize.candidates import CandidateSet, PlatformInfo, RecommendationError, platforms_from_frame
from hwmatch.optimize.explain import explain
from hwmatch.optimize.pareto import pareto_front
from hwmatch.optimize.problem import (
    ENERGY_PER_REQUEST,
    POWER_METRIC,
    THROUGHPUT_METRIC,
    Problem,
    Requirement,
    build_problem,
    derived_metrics,
)
from hwmatch.optimize.recommend import choice, recommend, to_status
from hwmatch.optimize.solver import Solution, alternatives, feasible_mask, solve

__all__ = [
    "ENERGY_PER_REQUEST",
    "POWER_METRIC",
    "THROUGHPUT_METRIC",
    "CandidateSet",
    "PlatformInfo",
    "Problem",
    "RecommendationError",
    "Requirement",
    "Solution",
    "alternatives",
    "to_status",
    "build_problem",
    "choice",
    "derived_metrics",
    "explain",
    "feasible_mask",
    "pareto_front",
    "platforms_from_frame",
    "recommend",
    "solve",
]
