"""Scoring a recommendation against the measured truth.

Definitions (``docs/quality.md`` states them for readers of the figures):

- a query is *solvable* when some candidate configuration truly meets every
  constraint (true values: :mod:`hwmatch.evaluation.truth`);
- an answer is *feasible* when the chosen configuration truly meets every
  constraint; the feasible rate is over answered queries;
- *regret* is the gap between the true objective of the answer and that of
  the true best feasible configuration, in percent of the latter; it is
  measured on answers that are feasible (an infeasible answer already
  counts against the feasible rate);
- a *false infeasible* is "no solution" answered to a solvable query; the
  rate is over solvable queries;
- a query is *clearly solvable* when some candidate meets every constraint
  by more than one run of it scatters (:meth:`GroundTruth.noise_margin`, at
  the level each requirement is checked at: :func:`interval_level`), so
  that a fresh run would meet them too; the *clear false-infeasible* rate
  is "no solution" over clearly solvable queries. A query that only a lucky
  row solves is one a recommender asked for confidence should refuse.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from hwmatch.api import HWRecommendationSpec
from hwmatch.api.errors import InputError
from hwmatch.evaluation.queries import metrics_read
from hwmatch.evaluation.truth import GroundTruth
from hwmatch.optimize.problem import interval_level

#: Relative slack when comparing a true value with a bound: values printed with a few digits
#: must not fail a bound they equal.
TOLERANCE = 1e-9


@dataclass(frozen=True)
class Outcome:
    solvable: bool
    answered: bool
    feasible: bool | None  # None: not answered
    regret_pct: float | None  # None: not answered, not feasible or not solvable
    clear: bool = False  # clearly solvable: met by more than the run-to-run noise

    @property
    def false_infeasible(self) -> bool:
        return self.solvable and not self.answered

    @property
    def clear_false_infeasible(self) -> bool:
        return self.clear and not self.answered


def feasible_mask(
    query: HWRecommendationSpec, truth: GroundTruth, rows: pd.DataFrame, noise_level: float | None = None
) -> np.ndarray:
    """Which of ``rows`` (truth rows) truly meet every constraint of ``query``.

    With ``noise_level``, each must be met with the run-to-run noise margin
    at that two-sided level to spare.
    """
    mask = np.ones(len(rows), dtype=bool)
    for c in query.constraints:
        values = truth.values(c.metric).loc[rows.index].to_numpy(dtype=float)
        slack = TOLERANCE * np.maximum(np.abs(values), 1.0)
        if noise_level is not None:
            slack = slack - truth.noise_margin(c.metric, rows, noise_level)
        if c.max is not None:
            mask &= values <= c.max + slack
        if c.min is not None:
            mask &= values >= c.min - slack
    return mask


def objective_values(query: HWRecommendationSpec, truth: GroundTruth, rows: pd.DataFrame) -> np.ndarray:
    """The objective to minimise (a maximised metric is negated) of ``rows``."""
    total = np.zeros(len(rows))
    for metric, weight in query.objective.terms().items():
        total += weight * truth.values(metric).loc[rows.index].to_numpy(dtype=float)
    return total


def score(query: HWRecommendationSpec, answer: int | None, truth: GroundTruth) -> Outcome:
    """Score one answer, given as the index of the chosen row of ``truth.table`` (None: "no solution")."""
    pool = truth.candidates(metrics_read(query), query.instance)
    feasible = feasible_mask(query, truth, pool)
    solvable = bool(feasible.any())
    clear = solvable and bool(feasible_mask(query, truth, pool[feasible], interval_level(query)).any())
    if answer is None:
        return Outcome(solvable, False, None, None, clear)
    if answer not in pool.index:
        raise InputError(f"answer {answer} is not a candidate of the query (its metrics were not all measured)")
    chosen = pool.loc[[answer]]
    ok = bool(feasible_mask(query, truth, chosen)[0])
    regret = None
    if ok:
        best = float(objective_values(query, truth, pool[feasible]).min())
        got = float(objective_values(query, truth, chosen)[0])
        regret = 100.0 * (got - best) / max(abs(best), 1e-12)
    return Outcome(solvable, True, ok, regret, clear)


@dataclass(frozen=True)
class Summary:
    """The figures of one method on one set of queries."""

    queries: int
    solvable: int
    answered: int
    feasible_rate: float
    false_infeasible_rate: float
    clear: int
    clear_false_infeasible_rate: float
    no_solution_rate: float
    regret_median_pct: float
    regret_p90_pct: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def summarise(outcomes: list[Outcome]) -> Summary:
    answered = [o for o in outcomes if o.answered]
    solvable = [o for o in outcomes if o.solvable]
    regrets = np.array([o.regret_pct for o in outcomes if o.regret_pct is not None], dtype=float)
    return Summary(
        queries=len(outcomes),
        solvable=len(solvable),
        answered=len(answered),
        feasible_rate=_rate(sum(bool(o.feasible) for o in answered), len(answered)),
        false_infeasible_rate=_rate(sum(o.false_infeasible for o in solvable), len(solvable)),
        clear=sum(o.clear for o in outcomes),
        clear_false_infeasible_rate=_rate(sum(o.clear_false_infeasible for o in outcomes), sum(o.clear for o in outcomes)),
        no_solution_rate=_rate(len(outcomes) - len(answered), len(outcomes)),
        regret_median_pct=float(np.median(regrets)) if regrets.size else float("nan"),
        regret_p90_pct=float(np.quantile(regrets, 0.9)) if regrets.size else float("nan"),
    )


def _rate(count: int, total: int) -> float:
    return count / total if total else float("nan")
