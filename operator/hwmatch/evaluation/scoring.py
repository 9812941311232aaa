"""Scoring a recommendation against the measured truth.

Definitions (``docs/quality.md`` states them for readers of the figures):

- a query is *solvable* when some candidate configuration truly meets every
  constraint (true values: :mod:`hwmatch.evaluation.truth`);
- an answer is *feasible* when the chosen configuration truly meets every
  constraint, up to the table's printed resolution: half a unit of the last
  digit the table prints for that metric (:func:`~hwmatch.evaluation.truth.printed_resolution`;
  a bound missed by less cannot be told from one met). The feasible rate
  is over answered queries; ``feasible_raw_rate`` is the same with exact
  comparisons (a relative 1e-9 only), kept beside it;
- *regret* is the gap between the true objective of the answer and that of
  the true best feasible configuration, in percent of ``|best|`` when every
  candidate's objective has one strict sign (a latency, a cost, a maximised
  accuracy negated), else in percent of the objective's range over the
  query's candidates — a signed objective whose best is near 0 would make
  any gap explode. It is measured on answers that are feasible (an
  infeasible answer already counts against the feasible rate);
- *coverage at the choice*: over answers of a method with intervals, the
  share whose chosen configuration's true values lie on the right side of
  every requirement's bound (the joint event the confidence promises);
  *coverage at random*: the same for a random candidate of each query. The
  optimiser picks the best-looking candidate, where errors favour it, so the
  first is the one that matters and may be lower;
- a *false infeasible* is "no solution" answered to a solvable query; the
  rate is over solvable queries;
- a query is *clearly solvable* when some candidate meets every constraint
  by more than one run of it scatters (:meth:`GroundTruth.noise_margin`, at
  the level each requirement is checked at: :func:`interval_level`; with
  exact comparisons, no resolution tolerance), so that a fresh run would
  meet them too; the *clear false-infeasible* rate
  is "no solution" over clearly solvable queries. A query that only a lucky
  row solves is one a recommender asked for confidence should refuse.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping

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
    feasible_raw: bool | None = None  # feasible with exact comparisons (no printed-resolution tolerance)
    covered: bool | None = None  # the chosen row's truths are on the right side of every bound (None: not known)
    covered_random: bool | None = None  # the same at a random candidate of the query
    verification_runs: int = 0  # measured runs a closed-loop evaluation spent on the query

    @property
    def false_infeasible(self) -> bool:
        return self.solvable and not self.answered

    @property
    def clear_false_infeasible(self) -> bool:
        return self.clear and not self.answered


def feasible_mask(
    query: HWRecommendationSpec, truth: GroundTruth, rows: pd.DataFrame, noise_level: float | None = None,
    raw: bool = False,
) -> np.ndarray:
    """Which of ``rows`` (truth rows) truly meet every constraint of ``query``, up to the printed resolution.

    With ``noise_level``, each must be met with the run-to-run noise margin
    at that two-sided level to spare. ``raw``: exact comparisons (the
    relative :data:`TOLERANCE` only).
    """
    mask = np.ones(len(rows), dtype=bool)
    for c in query.constraints:
        values = truth.values(c.metric).loc[rows.index].to_numpy(dtype=float)
        slack = TOLERANCE * np.maximum(np.abs(values), 1.0)
        if not raw:
            slack = np.maximum(slack, truth.resolution.get(c.metric, 0.0))
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


#: Per requirement of a query: (metric, "min"/"max", the predicted bound at a row); see :func:`covered`.
Bounds = Mapping[str, tuple[float, float]]


def covered(query: HWRecommendationSpec, truth: GroundTruth, row: int, bounds: Bounds) -> bool | None:
    """Whether the true values of ``row`` lie on the right side of every requirement's predicted bound.

    ``bounds`` maps each constrained metric to its predicted (lower, upper)
    at that row; ``max`` is checked on the upper end, ``min`` on the lower,
    as the optimiser reads them. ``None`` when a constrained metric has no
    prediction (a derived one, like cost, is exact and skipped) or the query
    has no constraint.
    """
    seen = False
    for c in query.constraints:
        if c.metric == "cost_per_hour":
            continue
        if c.metric not in bounds:
            return None
        lower, upper = bounds[c.metric]
        value = float(truth.values(c.metric).loc[row])
        seen = True
        if (c.max is not None and not value <= upper) or (c.min is not None and not value >= lower):
            return False
    return True if seen else None


def regret_pct(got: float, best: float, objectives: np.ndarray) -> float:
    """``got - best`` in percent of ``|best|`` when every objective shares one strict sign, else of their range."""
    finite = objectives[np.isfinite(objectives)]
    one_sign = finite.size and (np.all(finite > 0) or np.all(finite < 0))
    scale = abs(best) if one_sign else float(np.ptp(finite)) if finite.size else 0.0
    return 100.0 * (got - best) / max(scale, 1e-12)


def score(
    query: HWRecommendationSpec, answer: int | None, truth: GroundTruth,
    bounds: Bounds | None = None, random: tuple[int, Bounds] | None = None,
) -> Outcome:
    """Score one answer, given as the index of the chosen row of ``truth.table`` (None: "no solution").

    ``bounds`` (metric -> predicted (lower, upper) at the answer) gives the
    coverage at the choice; ``random`` (a candidate row and its bounds) the
    coverage at a random candidate.
    """
    pool = truth.candidates(metrics_read(query), query.instance)
    feasible = feasible_mask(query, truth, pool)
    solvable = bool(feasible.any())
    clear = solvable and bool(feasible_mask(query, truth, pool[feasible], interval_level(query), raw=True).any())
    at_random = None if random is None else covered(query, truth, *random)
    if answer is None:
        return Outcome(solvable, False, None, None, clear, covered_random=at_random)
    if answer not in pool.index:
        raise InputError(f"answer {answer} is not a candidate of the query (its metrics were not all measured)")
    chosen = pool.loc[[answer]]
    ok = bool(feasible_mask(query, truth, chosen)[0])
    ok_raw = bool(feasible_mask(query, truth, chosen, raw=True)[0])
    regret = None
    if ok:
        objectives = objective_values(query, truth, pool)
        best = float(objective_values(query, truth, pool[feasible]).min())
        got = float(objective_values(query, truth, chosen)[0])
        regret = regret_pct(got, best, objectives)
    at_choice = None if bounds is None else covered(query, truth, answer, bounds)
    return Outcome(solvable, True, ok, regret, clear, ok_raw, at_choice, at_random)


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
    #: Feasible rate with exact comparisons (no printed-resolution tolerance).
    feasible_raw_rate: float = float("nan")
    #: Share of answers whose true values are on the right side of every predicted bound (NaN without intervals).
    coverage_chosen: float = float("nan")
    #: The same at a random candidate of each query.
    coverage_random: float = float("nan")
    #: Mean measured runs per query in a closed-loop evaluation (0 without one).
    verification_runs_mean: float = 0.0

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
        feasible_raw_rate=_rate(sum(bool(o.feasible_raw) for o in answered), len(answered)),
        coverage_chosen=_share([o.covered for o in answered]),
        coverage_random=_share([o.covered_random for o in outcomes]),
        verification_runs_mean=float(np.mean([o.verification_runs for o in outcomes])) if outcomes else 0.0,
    )


def _share(flags: list[bool | None]) -> float:
    known = [f for f in flags if f is not None]
    return _rate(sum(known), len(known))


def _rate(count: int, total: int) -> float:
    return count / total if total else float("nan")
