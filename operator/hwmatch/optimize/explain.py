"""Why no candidate fits: the unreachable requirement, or the smallest set that cannot hold together.

Two different answers a user acts on differently:

- a single requirement no candidate meets on its own ("latency_p99_ms <= 2
  is unreachable; the best predicted upper bound is 3.1 on cpu-2core"):
  relax that number;
- every requirement is reachable alone but some set of them is not at once:
  the set is shrunk to an irreducible one (dropping any member makes the
  rest satisfiable), starting from the solver's core when it has one, and for
  each member the message says how close one gets while meeting the others.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from hwmatch.api import Infeasibility, describe_level
from hwmatch.optimize.problem import Problem, Requirement


def describe_candidate(problem: Problem, index: int) -> str:
    """``cpu-2core (batch_size=16, threads=2) ×3``: platform, parameters, replicas when more than one."""
    params = problem.candidates.parameters_of(index)
    text = str(problem.candidates.platform[index])
    if params:
        text += " (" + ", ".join(f"{k}={v}" for k, v in params.items()) + ")"
    replicas = problem.replicas[index]
    if np.isfinite(replicas) and replicas > 1:
        text += f" ×{int(replicas)}"
    return text


def _closest(problem: Problem, requirement: Requirement, among: np.ndarray, what: str) -> str:
    """How near the candidates in ``among`` come to ``requirement``."""
    pool = np.flatnonzero(among & np.isfinite(requirement.bound))
    if pool.size == 0:
        return f"{requirement.metric} is unknown for every candidate" + (f" {what}" if what else "")
    best = pool[np.argmin(requirement.bound[pool]) if requirement.sense == "max" else np.argmax(requirement.bound[pool])]
    return (
        f"the best predicted {requirement.metric} {requirement.bound_name} ({describe_level(problem.level)} interval)"
        + (f" {what}" if what else "")
        + f" is {requirement.bound[best]:.4g} on {describe_candidate(problem, int(best))}"
    )


def _label(requirement: Requirement) -> str:
    return requirement.label if requirement.source.startswith("constraints") else f"{requirement.label} ({requirement.source})"


def irreducible(ok: np.ndarray, start: Sequence[int]) -> list[int]:
    """Shrink an infeasible set of requirement columns until dropping any member makes it feasible."""
    members = list(start)
    if ok[:, members].all(axis=1).any():
        members = list(range(ok.shape[1]))
    for k in list(members):
        rest = [j for j in members if j != k]
        if not ok[:, rest].all(axis=1).any():
            members = rest
    return members


def explain(problem: Problem, core: Sequence[int] = ()) -> Infeasibility:
    """The :class:`Infeasibility` of a problem with no feasible candidate."""
    known = np.isfinite(problem.objective)
    if not known.any():
        return Infeasibility(
            constraints=[],
            message=f"the objective ({problem.objective_label}) is unknown for every candidate; "
            "give the platforms the price/power it needs or choose another objective",
        )
    ok = problem.met() & known[:, None]
    requirements = problem.requirements
    alone = [k for k in range(len(requirements)) if not ok[:, k].any()]
    if alone:
        parts = [f"{_label(requirements[k])} is unreachable: {_closest(problem, requirements[k], known, '')}" for k in alone]
        return Infeasibility(constraints=[requirements[k].label for k in alone], message="; ".join(parts))
    members = irreducible(ok, core or range(len(requirements)))
    details = []
    for k in members:
        others = [j for j in members if j != k]
        meeting = ok[:, others].all(axis=1)
        names = ", ".join(requirements[j].label for j in others)
        details.append(_closest(problem, requirements[k], meeting, f"while meeting {names}"))
    return Infeasibility(
        constraints=[requirements[k].label for k in members],
        message=" and ".join(_label(requirements[k]) for k in members) + " cannot hold together: " + "; ".join(details),
    )


def binding(problem: Problem, best: int) -> list[str]:
    """Requirements whose removal alone would give a better objective: what the answer is pressed against."""
    met = problem.met()
    known = np.isfinite(problem.objective)
    result = []
    for k, requirement in enumerate(problem.requirements):
        relaxed = np.delete(met, k, axis=1).all(axis=1) & known
        if np.any(problem.objective[relaxed] < problem.objective[best]):
            result.append(requirement.label)
    return result
