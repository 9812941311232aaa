"""The closed loop's policy (:func:`hwmatch.engine.verification.next_run`): what to measure next, and when to stop.

A brute-force oracle checks it on random problems: candidates with a true
latency (what a run measures), predictions with interval, a cost objective
and a latency bound; the loop is driven to its end and its answer compared
with what an exhaustive look at the same runs and predictions says.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from hwmatch.api import Constraint, HWRecommendationSpec, Objective, ObjectRef
from hwmatch.engine.verification import NextRun, chance_of_meeting, measured_predictions, next_run
from hwmatch.evaluation.methods import candidate_set_of
from hwmatch.modeling import Prediction
from hwmatch.optimize import build_problem
from hwmatch.optimize.problem import interval_level


def spec(latency_max: float, objective: Objective | None = None, confidence: float = 0.9) -> HWRecommendationSpec:
    return HWRecommendationSpec(asset_ref=ObjectRef(name="toy"), constraints=[Constraint(metric="latency", max=latency_max)],
                                objective=objective or Objective(minimize="cost_per_hour"), confidence=confidence)


def candidates(prices: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"platform": [f"p{i}" for i in range(len(prices))], "cost_per_hour": prices,
                         "param.x": np.arange(len(prices))})


def builder(frame: pd.DataFrame, query: HWRecommendationSpec):
    cs = candidate_set_of(frame)
    return lambda p: build_problem(cs, p, query, {"latency": "minimize"})


def drive(problem, pred, truth: np.ndarray, budget: int, improve: bool = True, unproven: int = 1):
    """Run the loop to its end with runs that measure ``truth``: (answer, candidates in order, last decision)."""
    runs: dict[int, list[dict[str, float]]] = {}
    order = []
    spent = 0
    while True:
        step = next_run(problem, pred, runs, budget - spent, improve=improve, unproven=unproven)
        if step.run is None:
            assert spent <= budget
            return step.answer, order, step
        assert step.run not in runs, "a candidate is never measured twice"
        assert step.repetitions == (1 if step.why == "verify" else unproven) <= budget - spent
        order.append(step.run)
        runs[step.run] = [{"latency": float(truth[step.run])}] * step.repetitions
        spent += step.repetitions


def test_measured_candidates_read_their_runs() -> None:
    pred = {"latency": Prediction(np.array([5.0, 6.0]), np.array([4.0, 5.0]), np.array([6.0, 7.0]))}
    got = measured_predictions(pred, {1: [{"latency": 9.0}, {"latency": 11.0}]})["latency"]
    assert (got.value.tolist(), got.lower.tolist(), got.upper.tolist()) == ([5.0, 10.0], [4.0, 9.0], [6.0, 11.0])
    assert pred["latency"].value[1] == 6.0  # the caller's arrays are left alone
    missing = measured_predictions(pred, {0: [{"other": 1.0}]})["latency"]
    assert np.isnan(missing.value[0]) and np.isnan(missing.upper[0])  # not measured: unknown, meets nothing


def test_chance_of_meeting_reads_the_interval_as_a_normal_spread() -> None:
    query = spec(10.0, confidence=0.9)  # one bound: the two-sided level 0.8, the upper end at the 90% quantile
    level = interval_level(query)
    value = np.array([10.0, 8.0, 5.0, 12.0])
    upper = np.array([12.0, 10.0, 5.0, 12.0])  # the second's pessimistic end sits on the bound
    frame = candidates([1.0] * 4)
    problem = builder(frame, query)
    point = problem({"latency": Prediction(value, value, value)})
    bounded = problem({"latency": Prediction(value, value - 1, upper)})
    got = chance_of_meeting(point, bounded, np.arange(4))
    assert got[0] == pytest.approx(0.5)  # the point on the bound
    assert got[1] == pytest.approx((1 + level) / 2)  # the pessimistic end on the bound: the one-sided level
    assert got[2] == 1.0 and got[3] == 0.0  # no interval: met or not
    assert got[3] <= got[0] <= got[1]
    assert norm.cdf(0) == pytest.approx(got[0])


def test_the_loop_verifies_then_spends_its_runs_on_candidates_predicted_better() -> None:
    # three platforms, dearest first; every point meets latency <= 10, only the dearest's bound does
    frame = candidates([3.0, 2.0, 1.0])
    query = spec(10.0)
    value = np.array([5.0, 8.0, 9.0])
    pred = {"latency": Prediction(value, value - 2, value + np.array([4.0, 4.0, 4.0]))}
    problem = builder(frame, query)
    first = next_run(problem, pred, {}, 5)
    assert (first.run, first.answer, first.why) == (0, None, "verify")
    second = next_run(problem, pred, {0: [{"latency": 6.0}]}, 4)
    assert second.why == "improve" and second.answer == 0 and second.measured and second.run in (1, 2)
    # the cheapest breaks the bound when run: the next one is tried, and holds: nothing is predicted better
    answer, order, last = drive(problem, pred, np.array([6.0, 9.5, 11.0]), 5)
    assert answer == 1 and set(order) == {0, 1, 2} and last.why == "done"
    # without improvement runs the loop stops at the verified choice
    answer, order, last = drive(problem, pred, np.array([6.0, 9.5, 11.0]), 5, improve=False)
    assert (answer, order, last.why) == (0, [0], "done")
    # with one run, the verified choice stands; with none, the choice at the bounds is answered unverified
    answer, order, last = drive(problem, pred, np.array([6.0, 9.5, 9.0]), 1)
    assert (answer, order, last.why) == (0, [0], "spent")
    step = next_run(problem, pred, {}, 0)
    assert (step.run, step.answer, step.measured, step.why) == (None, 0, False, "spent")


def test_a_refusal_is_measured_away_only_by_a_run_that_holds() -> None:
    frame = candidates([2.0, 1.0])
    query = spec(10.0)
    value = np.array([9.0, 11.0])
    pred = {"latency": Prediction(value, value - 3, value + 3)}  # no bound meets 10; the dearer's point does
    problem = builder(frame, query)
    step = next_run(problem, pred, {}, 2)
    assert (step.run, step.why) == (0, "plausible")
    assert drive(problem, pred, np.array([12.0, 10.5]), 2)[0] is None  # neither run holds: no solution
    answer, order, _ = drive(problem, pred, np.array([12.0, 9.0]), 2)
    assert (answer, order) == (1, [0, 1])  # the nearest miss after the point choice failed, and it held
    assert next_run(problem, pred, {}, 0).answer is None  # a point-based choice is never answered unmeasured


def test_a_candidate_the_bounds_do_not_vouch_for_holds_only_when_all_its_runs_do() -> None:
    frame = candidates([3.0, 2.0, 1.0])
    query = spec(10.0)
    value = np.array([5.0, 8.0, 9.0])
    pred = {"latency": Prediction(value, value - 2, value + 4)}
    problem = builder(frame, query)
    verified = {0: [{"latency": 6.0}]}
    step = next_run(problem, pred, verified, 4, unproven=2)
    assert step.why == "improve" and step.repetitions == 2
    assert next_run(problem, pred, verified, 1, unproven=2) == NextRun(None, 0, True, "spent")  # one run left: not enough
    lucky = {**verified, step.run: [{"latency": 9.0}, {"latency": 10.5}]}  # held once, broke once
    after = next_run(problem, pred, lucky, 2, unproven=2)
    assert after.answer == 0 and after.run not in lucky
    both = {**verified, step.run: [{"latency": 9.0}, {"latency": 9.8}]}
    assert next_run(problem, pred, both, 2, unproven=2).answer == step.run
    # the choice at the bounds is verified by one run, whatever ``unproven``
    assert next_run(problem, pred, {}, 1, unproven=3) == NextRun(0, None, False, "verify")


@pytest.mark.parametrize("unproven", [1, 2])
@pytest.mark.parametrize("seed", range(30))
def test_the_loop_against_a_brute_force_oracle(seed: int, unproven: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 14))
    prices = rng.choice([1.0, 2.0, 3.0, 5.0], size=n)
    truth = rng.uniform(1, 20, size=n)
    value = truth + rng.normal(0, 3, size=n)
    half = rng.uniform(0.5, 8, size=n)
    pred = {"latency": Prediction(value, value - half, value + half)}
    bound = float(rng.uniform(5, 15))
    objective = Objective(minimize="cost_per_hour") if seed % 2 else Objective(minimize="latency")
    query = spec(bound, objective)
    frame = candidates(list(prices))
    problem = builder(frame, query)
    budget = int(rng.integers(0, n + 2))
    cost = prices if seed % 2 else truth  # what a run of each candidate shows of the objective
    predicted = value if not seed % 2 else prices  # and what the points predict of it

    answer, order, last = drive(problem, pred, truth, budget, unproven=unproven)
    assert len(set(order)) == len(order)
    held = [i for i in order if truth[i] <= bound]
    if held:  # the answer is the best measured candidate that held, by what was measured (ties: the ranking)
        assert answer in held and cost[answer] == min(cost[i] for i in held)
    if last.why == "done":  # nothing unmeasured is predicted to meet the bound and beat the answer
        assert held
        rest = [i for i in range(n) if i not in order]
        assert not [i for i in rest if value[i] <= bound and predicted[i] < cost[answer]]
    if last.why == "nothing":
        assert answer is None and not held
    if answer is not None and answer not in held:  # unmeasured: only the choice at the bounds, with the runs spent
        assert last.why == "spent" and value[answer] + half[answer] <= bound + 1e-9
    # the improvement runs only ever add to the first answer that held
    first, first_order, _ = drive(problem, pred, truth, budget, improve=False, unproven=unproven)
    assert order[:len(first_order)] == first_order
    if first is not None and first in held:
        assert answer is not None and cost[answer] <= cost[first]
    # with a budget for every candidate and points that are the truth, the true optimum is found
    exact = {"latency": Prediction(truth, truth - half, truth + half)}
    best, _, _ = drive(problem, exact, truth, n * unproven, unproven=unproven)
    feasible = [i for i in range(n) if truth[i] <= bound]
    if feasible:
        assert best is not None and cost[best] == min(cost[i] for i in feasible)
    else:
        assert best is None
