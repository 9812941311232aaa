"""Random requirement queries, drawn from the table so that each is plausible and checkable.

A query is an ordinary :class:`~hwmatch.api.HWRecommendationSpec`: an
objective (one metric with a goal, or the platform's price), one to three
constraints on other metrics, each bound at a random quantile of that
metric's true values, and — for input-dependent assets — an instance drawn
from the instances every platform measured (in a sparse design, where none
is, from those two platforms or more measured, the query then choosing among
those platforms). Bounds at random quantiles make
some queries easy, some tight and some jointly unsatisfiable, which is what
the feasible and false-infeasible rates need.
"""

from __future__ import annotations

import numpy as np

from hwmatch.api import AIAsset, Constraint, HWRecommendationSpec, Objective, ObjectRef
from hwmatch.api.errors import InputError
from hwmatch.evaluation.truth import GroundTruth

#: Constraint bounds are drawn at quantiles in this interval of the metric's true values.
QUANTILES = (0.1, 0.9)
#: A query needs at least this many candidate configurations with every metric it reads measured.
MIN_CANDIDATES = 30
#: Draws per query before the table is declared too small for queries (a bound: the loop always ends).
MAX_TRIES_PER_QUERY = 200


def objectives(asset: AIAsset, truth: GroundTruth) -> list[tuple[str, str]]:
    """(metric, goal) pairs a query may optimise: metrics with a goal, and the hourly price when known."""
    out: list[tuple[str, str]] = [(m.name, m.goal) for m in asset.spec.metrics
                                  if m.goal is not None and m.name in truth.metrics]
    if truth.table["cost_per_hour"].notna().any():
        out.append(("cost_per_hour", "minimize"))
    return out


def draw_queries(
    asset: AIAsset,
    truth: GroundTruth,
    n: int,
    seed: int,
    confidence: float = 0.95,
    max_constraints: int = 3,
    min_candidates: int = MIN_CANDIDATES,
) -> list[HWRecommendationSpec]:
    """``n`` queries, a function of ``seed`` and the table only."""
    rng = np.random.default_rng(seed)
    goals = objectives(asset, truth)
    if not goals:
        raise InputError(f"asset {asset.metadata.name!r} has no metric with a goal; give metrics a goal in the mapping")
    instances = truth.instances()
    if instances.empty:
        raise InputError(
            f"cannot draw queries from the table of asset {asset.metadata.name!r}: no instance "
            f"({', '.join(c.split('.', 1)[1] for c in truth.instance_columns)}) was measured on two platforms or more, "
            "and a query compares platforms on one instance; import tables where instances repeat across platforms"
        )
    queries: list[HWRecommendationSpec] = []
    tries = 0
    while len(queries) < n:
        tries += 1
        if tries > MAX_TRIES_PER_QUERY * n or len(truth.table) < min_candidates:
            raise InputError(
                f"cannot draw {n} queries from the table of asset {asset.metadata.name!r}: a query needs at least "
                f"{min_candidates} configurations with its metrics measured, and the table has {len(truth.table)} "
                f"(found {len(queries)} query/queries in {tries - 1} tries); import a larger table"
            )
        row = instances.iloc[int(rng.integers(len(instances)))]
        instance = {c.split(".", 1)[1]: float(row[c]) for c in truth.instance_columns}
        platforms = [] if len(row["platforms"]) == truth.table["platform"].nunique() else list(row["platforms"])
        objective, goal = goals[int(rng.integers(len(goals)))]
        others = [g for g in goals if g[0] != objective]
        constraints: list[Constraint] = []
        k = int(rng.integers(1, min(max_constraints, len(others)) + 1)) if others else 0
        for index in rng.permutation(len(others))[:k]:
            metric, metric_goal = others[index]
            reads = [objective, *(c.metric for c in constraints), metric]
            pool = truth.candidates([r for r in reads if r != "cost_per_hour"], instance)
            if len(pool) < min_candidates:
                continue
            q = rng.uniform(*QUANTILES)
            values = truth.values(metric).loc[pool.index]
            if metric_goal == "minimize":
                constraints.append(Constraint(metric=metric, max=float(np.quantile(values, q))))
            else:
                constraints.append(Constraint(metric=metric, min=float(np.quantile(values, 1 - q))))
        reads = [objective, *(c.metric for c in constraints)]
        if len(truth.candidates([r for r in reads if r != "cost_per_hour"], instance)) < min_candidates:
            continue
        queries.append(
            HWRecommendationSpec(
                asset_ref=ObjectRef(name=asset.metadata.name),
                constraints=constraints,
                objective=Objective(minimize=objective) if goal == "minimize" else Objective(maximize=objective),
                confidence=confidence,
                instance=instance,
                platforms=platforms,  # a sparse design: the platforms that measured the instance
            )
        )
    return queries


def metrics_read(query: HWRecommendationSpec) -> list[str]:
    """The metrics a query's answer is judged on (its objective and constraints), price excluded."""
    names = [*query.objective.terms(), *(c.metric for c in query.constraints)]
    return [m for m in dict.fromkeys(names) if m != "cost_per_hour"]
