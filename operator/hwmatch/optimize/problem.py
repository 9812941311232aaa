"""The optimisation problem: candidates with predicted and derived metrics, requirements, objective.

:func:`build_problem` turns predictions (from any source: surrogates, a
table, a synthetic benchmark) and a ``HWRecommendationSpec`` into plain
arrays, so that solving is independent of how the numbers were obtained and
an evaluation can ask many questions of one set of predictions.

Conventions:

- ``spec.confidence`` is *joint*: all requirements hold together with
  that probability. Each is checked on one end of the metric's two-sided
  interval at the per-bound :func:`interval_level` (``Problem.level``):
  ``metric <= max`` on the *upper* end, ``metric >= min`` on the *lower*
  end;
- replicas: with a throughput target, each candidate gets the fewest
  replicas whose *lower-bound* throughput covers the load (every derived
  metric grows with replicas, so fewer is never worse), raised to a
  ``replicas >= n`` constraint if one is given; without a target, one.
  A serving asset's candidate is a rate per replica (its rate parameter),
  its throughput the rate it achieved there and its latency the latency at
  that rate; a replica is never counted on for more than that rate
  (``offered_rate_per_s``, when the dataset has it), or the latency the
  constraints were checked on would not be the one it runs at. The cheapest
  candidate whose latency meets the constraints is then the highest rate per
  replica under the SLO: the fewest replicas;
- derived metrics (:data:`hwmatch.api.DERIVED_METRICS`): ``cost_per_hour``
  (replicas × price), ``cost_per_1k_requests`` (cost / (3.6 × requests/s
  served): the target, or the candidate's own throughput),
  ``energy_per_request_j`` (power × replicas / requests/s, power from a
  ``power_w`` metric, else the platform's ``powerWatts``, else its
  ``tdpWatts`` feature), ``replicas``. Their bounds follow from the bounds
  of the metrics they are computed from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Mapping

import numpy as np

from hwmatch.api import HWRecommendationSpec
from hwmatch.api.asset import OFFERED_RATE_METRIC
from hwmatch.api.errors import InputError
from hwmatch.modeling.metric_model import Prediction
from hwmatch.optimize.candidates import CandidateSet, RecommendationError

THROUGHPUT_METRIC = "throughput_per_s"
POWER_METRIC = "power_w"
ENERGY_PER_REQUEST = "energy_per_request_j"
#: The Pareto axis that stands for the objective itself.
OBJECTIVE_AXIS = "objective"


@dataclass(frozen=True)
class Requirement:
    """One hard requirement: ``bound <= threshold`` (sense ``max``) or ``bound >= threshold`` (``min``)."""

    label: str
    metric: str
    sense: Literal["min", "max"]
    threshold: float
    source: str
    bound: np.ndarray

    @property
    def met(self) -> np.ndarray:
        """Per candidate; unknown (NaN) values do not meet a requirement.

        A relative slack of 1e-9 lets a bound equal to the threshold meet it even
        after a round trip through a log transform (``exp(log(7))`` is 7.000000000000001).
        """
        slack = 1e-9 * max(1.0, abs(self.threshold))
        with np.errstate(invalid="ignore"):
            return self.bound <= self.threshold + slack if self.sense == "max" else self.bound >= self.threshold - slack

    @property
    def bound_name(self) -> str:
        return "upper bound" if self.sense == "max" else "lower bound"


@dataclass
class Problem:
    """Everything a solver needs, as arrays aligned with ``candidates``."""

    candidates: CandidateSet
    metrics: dict[str, Prediction]
    requirements: list[Requirement]
    objective: np.ndarray
    objective_value: np.ndarray
    objective_label: str
    replicas: np.ndarray
    pareto_axes: dict[str, int]
    #: The user's joint confidence: all requirements hold together with this probability.
    confidence: float
    #: Two-sided level of every interval in ``metrics`` (:func:`interval_level` of the spec): what the bounds mean.
    level: float
    #: Per candidate, distance to the nearest trial over the reference (> 1: outside the sampled region), if known.
    novelty: np.ndarray | None = None
    #: Per candidate, True for a configuration measured to hold (a verified choice): among candidates equal on the
    #: objective it comes first, before the tie-break by predicted goals (see :meth:`rank`).
    preferred: np.ndarray | None = None
    #: Succeeded trials of the asset per platform, if known (a choice says how many it rests on).
    platform_trials: dict[str, int] | None = None
    #: Platforms predicted by transfer from the others (:mod:`hwmatch.modeling.transfer`): few trials of their own.
    transferred: frozenset[str] = frozenset()

    def __len__(self) -> int:
        return len(self.candidates)

    def met(self) -> np.ndarray:
        """``(n, len(requirements))`` booleans: which candidate meets which requirement."""
        if not self.requirements:
            return np.ones((len(self), 0), dtype=bool)
        return np.column_stack([r.met for r in self.requirements])

    def rank(self, among: np.ndarray) -> np.ndarray:
        """Dense rank (0 = best) of the candidates ``among`` (indices): by objective, ties by the other goals.

        Candidates equal on the objective (every configuration of a platform
        costs the same with one replica) are ordered by the goals the user
        also cares about; only candidates equal on all of them share a rank.
        Unknown values rank last. A :attr:`preferred` candidate comes first
        among those equal on the objective: a tie-break by predictions must
        not move an answer away from a configuration measured to hold, when
        learning from those very measurements shifts the predictions a little.
        """
        points = self.points(among)
        if self.preferred is not None:
            points = np.insert(points, 1, (~self.preferred[among]).astype(float), axis=1)
        order = np.lexsort(points.T[::-1])
        stacked = points[order]
        new = np.ones(len(order), dtype=bool)
        if len(order) > 1:
            new[1:] = np.any(stacked[1:] != stacked[:-1], axis=1)
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.cumsum(new) - 1
        return rank

    def points(self, among: np.ndarray) -> np.ndarray:
        """``(len(among), axes)``: the Pareto axes of candidates ``among``, smaller is better, unknown = +inf."""
        return np.column_stack([np.nan_to_num(self.axis(name, among), nan=np.inf) for name in self.pareto_axes])

    def axis(self, name: str, among: np.ndarray | None = None) -> np.ndarray:
        """Values of one Pareto axis (of candidates ``among``, default all), oriented so that smaller is better."""
        values = self.objective if name == OBJECTIVE_AXIS else self.metrics[name].value
        return (values if among is None else values[among]) * self.pareto_axes[name]


def interval_level(spec: HWRecommendationSpec) -> float:
    """The per-bound level: the two-sided interval level whose ends make all requirements hold *together* at ``c``.

    This is the one rule that turns the user's joint confidence into the
    level intervals are predicted at; the recommender, the evaluation and
    the status (``PredictedValue.level``) all take it from here.

    A requirement is one-sided: a constraint's ``max`` is checked on the
    upper end only, its ``min`` on the lower end, a throughput target on
    throughput's lower end. A constraint with both ``min`` and ``max`` is
    two requirements: the value may leave the range on either side, and
    each side must get its share of ``1 - c``. With ``k`` of them, each is held at ``1 - (1 - c) / k`` (Bonferroni), so
    all ``k`` hold together with probability ≥ ``c`` — what "the
    recommendation holds with confidence c" promises. That one-sided level is
    the end of the two-sided interval at ``1 - 2 (1 - c) / k``: for one
    requirement ``2c - 1``, for two ``c``.
    """
    bounds = sum((c.min is not None) + (c.max is not None) for c in spec.constraints)
    k = max(1, bounds + (1 if spec.throughput is not None else 0))
    return max(1.0 - 2.0 * (1.0 - spec.confidence) / k, 1e-6)


def _fixed(values: np.ndarray) -> Prediction:
    return Prediction(values, values, values)


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a / b`` with a non-positive denominator giving +inf (no capacity: unbounded per-request cost)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.inf)


def _replicas(spec: HWRecommendationSpec, predictions: Mapping[str, Prediction], n: int) -> np.ndarray:
    at_least = max([math.ceil(c.min) for c in spec.constraints if c.metric == "replicas" and c.min is not None] + [1])
    if spec.throughput is None:
        return np.full(n, float(at_least))
    if THROUGHPUT_METRIC not in predictions:
        raise RecommendationError(
            f"throughput.requestsPerSecond needs a {THROUGHPUT_METRIC!r} metric to size replicas; "
            f"the dataset has {sorted(predictions)}; report it from the harness or drop the throughput target"
        )
    per_replica = predictions[THROUGHPUT_METRIC].lower
    if OFFERED_RATE_METRIC in predictions:
        per_replica = np.minimum(per_replica, predictions[OFFERED_RATE_METRIC].value)
    needed = np.ceil(_divide(np.full(n, spec.throughput.requests_per_second), per_replica))
    return np.maximum(needed, at_least)


def derived_metrics(
    candidates: CandidateSet, predictions: Mapping[str, Prediction], spec: HWRecommendationSpec
) -> dict[str, Prediction]:
    """Replicas, cost per hour, cost per 1k requests and energy per request, where computable."""
    n = len(candidates)
    replicas = _replicas(spec, predictions, n)
    price = candidates.cost_per_hour
    out: dict[str, Prediction] = {"replicas": _fixed(replicas)}
    if np.isfinite(price).any():
        out["cost_per_hour"] = _fixed(replicas * price)
    thr = predictions.get(THROUGHPUT_METRIC)
    rps = spec.throughput.requests_per_second if spec.throughput is not None else None
    if "cost_per_hour" in out:
        if rps is not None:
            out["cost_per_1k_requests"] = _fixed(out["cost_per_hour"].value / (3.6 * rps))
        elif thr is not None:
            out["cost_per_1k_requests"] = Prediction(
                _divide(price, 3.6 * thr.value), _divide(price, 3.6 * thr.upper), _divide(price, 3.6 * thr.lower)
            )
    if ENERGY_PER_REQUEST not in predictions:
        power = predictions[POWER_METRIC] if POWER_METRIC in predictions else _fixed(candidates.power_watts)
        if np.isfinite(power.value).any():
            if rps is not None:
                out[ENERGY_PER_REQUEST] = Prediction(*(p * replicas / rps for p in (power.value, power.lower, power.upper)))
            elif thr is not None:
                out[ENERGY_PER_REQUEST] = Prediction(
                    _divide(power.value, thr.value), _divide(power.lower, thr.upper), _divide(power.upper, thr.lower)
                )
    return out


def _check_metric(name: str, field: str, metrics: Mapping[str, Prediction], predicted: list[str]) -> None:
    if name in metrics:
        return
    derived = sorted(set(metrics) - set(predicted))
    hint = {
        "cost_per_hour": "set costPerHour on the platforms",
        "cost_per_1k_requests": f"set costPerHour on the platforms and give a throughput target or a {THROUGHPUT_METRIC} metric",
        ENERGY_PER_REQUEST: f"measure {POWER_METRIC} or set powerWatts/tdpWatts on the platforms, "
                            f"and give a throughput target or a {THROUGHPUT_METRIC} metric",
    }.get(name)
    raise RecommendationError(
        f"{field}: {name!r} is not available"
        + (f" ({hint})" if hint else f"; metrics of the dataset: {predicted}, derived here: {derived}")
    )


def _objective(
    spec: HWRecommendationSpec, metrics: Mapping[str, Prediction], predicted: list[str]
) -> tuple[np.ndarray, np.ndarray, str]:
    """(values to minimise, values to report, label)."""
    objective = spec.objective
    terms = objective.terms()
    for name, weight in terms.items():
        _check_metric(name, "objective", metrics, predicted)
        if name == "replicas" and weight < 0:
            raise RecommendationError("objective: replicas cannot be maximised; use a constraint {metric: replicas, min: n}")
    if objective.minimize is not None or objective.maximize is not None:
        name, sign = next(iter(terms.items()))
        value = metrics[name].value
        label = f"{'minimize' if sign > 0 else 'maximize'} {name}"
        return sign * value, value, label
    total = np.zeros(len(next(iter(metrics.values()))))
    for name, weight in terms.items():
        value = metrics[name].value
        finite = value[np.isfinite(value)]
        center = float(np.median(finite)) if finite.size else 0.0
        scale = float(np.percentile(finite, 90) - np.percentile(finite, 10)) if finite.size else 0.0
        if scale <= 0:
            scale = float(np.std(finite)) if finite.size else 0.0
        total = total + weight * (value - center) / (scale if scale > 0 else 1.0)
    label = "minimize " + " + ".join(f"{w:g}·{m}" for m, w in terms.items()) + " (normalised)"
    return total, total, label


def build_problem(
    candidates: CandidateSet,
    predictions: Mapping[str, Prediction],
    spec: HWRecommendationSpec,
    goals: Mapping[str, str] | None = None,
) -> Problem:
    """Requirements and objective of ``spec`` over ``candidates`` with their ``predictions``.

    ``predictions`` must hold the bounds at :func:`interval_level` of
    ``spec`` (the problem records that level, and ``spec.confidence``, as
    the joint confidence it answers at). ``goals``
    (metric -> ``minimize``/``maximize``, from the asset's metrics) add axes to
    the Pareto front.
    """
    n = len(candidates)
    bad = [m for m, p in predictions.items() if len(p) != n]
    if bad:
        raise InputError(f"predictions for {bad} do not have one value per candidate ({n})")
    predicted = sorted(predictions)
    metrics: dict[str, Prediction] = dict(predictions)
    metrics.update(derived_metrics(candidates, predictions, spec))
    requirements: list[Requirement] = []
    for i, c in enumerate(spec.constraints):
        _check_metric(c.metric, f"constraints[{i}].metric", metrics, predicted)
        if c.max is not None:
            requirements.append(
                Requirement(f"{c.metric} <= {c.max:g}", c.metric, "max", c.max, f"constraints[{i}].max", metrics[c.metric].upper)
            )
        if c.min is not None:
            requirements.append(
                Requirement(f"{c.metric} >= {c.min:g}", c.metric, "min", c.min, f"constraints[{i}].min", metrics[c.metric].lower)
            )
    if spec.budget is not None:
        _check_metric("cost_per_hour", "budget.maxCostPerHour", metrics, predicted)
        limit = spec.budget.max_cost_per_hour
        requirements.append(
            Requirement(f"cost_per_hour <= {limit:g}", "cost_per_hour", "max", limit, "budget.maxCostPerHour",
                        metrics["cost_per_hour"].upper)
        )
    if spec.throughput is not None:
        most = spec.throughput.max_replicas
        requirements.append(
            Requirement(f"replicas <= {most}", "replicas", "max", float(most), "throughput.maxReplicas",
                        metrics["replicas"].value)
        )
    objective, objective_value, label = _objective(spec, metrics, predicted)
    axes = {OBJECTIVE_AXIS: 1}
    in_objective = set(spec.objective.terms())
    directions: dict[str, int] = {}
    for c in spec.constraints:
        if (c.min is None) != (c.max is None):
            directions.setdefault(c.metric, 1 if c.max is not None else -1)
    for name, goal in (goals or {}).items():
        if name in metrics:
            directions.setdefault(name, 1 if goal == "minimize" else -1)
    axes.update({m: d for m, d in directions.items() if m not in in_objective})
    return Problem(
        candidates, metrics, requirements, objective, objective_value, label,
        metrics["replicas"].value, axes, spec.confidence, interval_level(spec),
    )
