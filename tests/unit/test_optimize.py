"""The optimiser on hand-made problems whose answer is known by brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from hwmatch.api import HWRecommendationSpec, Parameter
from hwmatch.modeling import Prediction
from hwmatch.optimize import (
    CandidateSet,
    PlatformInfo,
    RecommendationError,
    build_problem,
    pareto_front,
    recommend,
    solve,
    to_status,
)
from hwmatch.optimize.solver import feasible_mask

PLATFORMS = [
    PlatformInfo("cpu-small", cost_per_hour=0.10, power_watts=40, features={"vcpus": 2, "accelerator": "none"}),
    PlatformInfo("cpu-large", cost_per_hour=0.40, power_watts=150, features={"vcpus": 8, "accelerator": "none"}),
    PlatformInfo("gpu", cost_per_hour=1.20, features={"vcpus": 8, "accelerator": "l4", "tdpWatts": 72}),
]
PARAMETERS = [
    Parameter(name="batch_size", type="int", values=[1, 8, 64]),
    Parameter(name="depth", type="int", range={"min": 2, "max": 32, "log": True}),
    Parameter(name="precision", type="categorical", values=["fp32", "int8"]),
]


def spec(**fields: object) -> HWRecommendationSpec:
    return HWRecommendationSpec.model_validate({"assetRef": {"name": "asset"}, **fields})


def synthetic(candidates: CandidateSet, seed: int, noise: float = 0.1) -> dict[str, Prediction]:
    """Predictions with a known structure and relative interval half-width ``noise``."""
    rng = np.random.default_rng(seed)
    n = len(candidates)
    speed = candidates.frame["feature.vcpus"].to_numpy(float) * np.where(candidates.platform == "gpu", 6.0, 1.0)
    batch = candidates.frame["param.batch_size"].to_numpy(float)
    depth = candidates.frame["param.depth"].to_numpy(float)
    int8 = candidates.frame["param.precision"].to_numpy() == "int8"
    latency = depth * np.sqrt(batch) / speed * np.where(int8, 0.6, 1.0) * rng.uniform(0.8, 1.25, n)
    accuracy = 0.8 + 0.15 * (1 - np.exp(-depth / 8)) - 0.03 * int8 + rng.normal(0, 0.005, n)
    throughput = 1000.0 * batch / latency
    power = 30 + 10 * speed * rng.uniform(0.9, 1.1, n)

    def around(v: np.ndarray) -> Prediction:
        return Prediction(v, v * (1 - noise), v * (1 + noise))

    return {
        "latency_ms": around(latency),
        "accuracy": Prediction(accuracy, accuracy - 0.01, accuracy + 0.01),
        "throughput_per_s": around(throughput),
        "power_w": around(power),
    }


def brute_force(candidates: CandidateSet, predictions: dict[str, Prediction], s: HWRecommendationSpec) -> int | None:
    """The spec's answer by a plain loop over candidates, written from the spec's words alone."""
    best, best_key = None, None
    for i in range(len(candidates)):
        price = candidates.cost_per_hour[i]
        thr = predictions["throughput_per_s"]
        if s.throughput is not None:
            replicas = math.ceil(s.throughput.requests_per_second / thr.lower[i])
        else:
            replicas = 1
        for c in s.constraints:
            if c.metric == "replicas" and c.min is not None:
                replicas = max(replicas, math.ceil(c.min))
        served = s.throughput.requests_per_second if s.throughput is not None else None
        derived = {
            "replicas": (replicas,) * 3,
            "cost_per_hour": (replicas * price,) * 3,
            "cost_per_1k_requests": (
                (replicas * price / (3.6 * served),) * 3
                if served
                else (price / (3.6 * thr.value[i]), price / (3.6 * thr.upper[i]), price / (3.6 * thr.lower[i]))
            ),
        }
        p = predictions["power_w"]
        derived["energy_per_request_j"] = (
            tuple(x[i] * replicas / served for x in (p.value, p.lower, p.upper))
            if served
            else (p.value[i] / thr.value[i], p.lower[i] / thr.upper[i], p.upper[i] / thr.lower[i])
        )

        def get(metric: str, derived: dict = derived, i: int = i) -> tuple[float, float, float]:
            if metric in derived:
                return derived[metric]
            q = predictions[metric]
            return q.value[i], q.lower[i], q.upper[i]

        ok = all(
            (c.max is None or get(c.metric)[2] <= c.max) and (c.min is None or get(c.metric)[1] >= c.min)
            for c in s.constraints
        )
        ok = ok and (s.budget is None or replicas * price <= s.budget.max_cost_per_hour)
        ok = ok and (s.throughput is None or replicas <= s.throughput.max_replicas)
        if not ok:
            continue
        terms = s.objective.terms()
        if len(terms) != 1:
            raise AssertionError("brute force covers single-metric objectives")
        (metric, sign), = terms.items()
        key = sign * get(metric)[0]
        if best_key is None or key < best_key:
            best, best_key = i, key
    return best


SPECS = [
    spec(objective={"minimize": "latency_ms"}, constraints=[{"metric": "accuracy", "min": 0.9}]),
    spec(objective={"maximize": "accuracy"}, constraints=[{"metric": "latency_ms", "max": 3}]),
    spec(
        objective={"minimize": "cost_per_hour"},
        throughput={"requestsPerSecond": 20000, "maxReplicas": 16},
        constraints=[{"metric": "latency_ms", "max": 20}, {"metric": "accuracy", "min": 0.85}],
    ),
    spec(
        objective={"minimize": "energy_per_request_j"},
        throughput={"requestsPerSecond": 5000, "maxReplicas": 8},
        budget={"maxCostPerHour": 2.5},
    ),
    spec(
        objective={"minimize": "cost_per_1k_requests"},
        constraints=[{"metric": "latency_ms", "min": 0.5, "max": 10}, {"metric": "replicas", "min": 2}],
    ),
    spec(objective={"maximize": "throughput_per_s"}, budget={"maxCostPerHour": 0.5}),
]


@pytest.mark.parametrize("case", range(len(SPECS)))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_solver_matches_brute_force(case: int, seed: int) -> None:
    s = SPECS[case]
    candidates = CandidateSet.grid(PARAMETERS, PLATFORMS, resolution=6)
    predictions = synthetic(candidates, seed)
    problem = build_problem(candidates, predictions, s)
    expected = brute_force(candidates, predictions, s)
    assert expected is not None, "each hand-made case has a feasible answer"
    for method, presolve in [("cp-sat", True), ("cp-sat", False), ("numpy", True)]:
        solution = solve(problem, method, presolve=presolve)  # type: ignore[arg-type]
        assert solution.status == "OPTIMAL"
        assert solution.best is not None
        assert problem.objective[solution.best] == pytest.approx(problem.objective[expected])
        if method == "cp-sat":
            assert solution.best == solve(problem, "numpy").best


def test_replicas_cover_the_load_with_the_lower_bound_and_cost_scales() -> None:
    candidates = CandidateSet.grid([], PLATFORMS)
    thr = np.array([100.0, 400.0, 5000.0])
    predictions = {"throughput_per_s": Prediction(thr, thr / 2, thr * 2)}
    s = spec(throughput={"requestsPerSecond": 1000, "maxReplicas": 16})
    problem = build_problem(candidates, predictions, s)
    # lower bounds 50, 200, 2500 req/s -> 20 (over the cap), 5, 1 replicas
    assert problem.replicas.tolist() == [20, 5, 1]
    assert problem.metrics["cost_per_hour"].value.tolist() == pytest.approx([2.0, 2.0, 1.2])
    solution = solve(problem)
    assert candidates.platform[solution.best] == "gpu"
    status = to_status(problem, solution)
    assert status.recommendation.replicas == 1 and status.recommendation.cost_per_hour == pytest.approx(1.2)
    # cpu-small would need 20 > 16 replicas; cpu-large costs 2.0 with 5 replicas; a budget of 1.0 leaves nothing
    tight = build_problem(candidates, predictions, spec(throughput={"requestsPerSecond": 1000}, budget={"maxCostPerHour": 1.0}))
    status = to_status(tight, solve(tight))
    assert status.phase == "Infeasible"
    assert status.infeasible.constraints == ["cost_per_hour <= 1"]
    assert "budget.maxCostPerHour" in status.infeasible.message and "1.2 on gpu" in status.infeasible.message


def test_cost_per_1k_requests_without_a_target_uses_own_throughput() -> None:
    candidates = CandidateSet.grid([], PLATFORMS)
    thr = np.array([10.0, 100.0, 1000.0])
    problem = build_problem(candidates, {"throughput_per_s": Prediction(thr, thr / 2, thr * 2)}, spec())
    per_1k = problem.metrics["cost_per_1k_requests"]
    assert per_1k.value.tolist() == pytest.approx([0.1 / 36, 0.4 / 360, 1.2 / 3600])
    assert per_1k.upper.tolist() == pytest.approx([0.1 / 18, 0.4 / 180, 1.2 / 1800])
    assert problem.replicas.tolist() == [1, 1, 1]
    # energy: cpu platforms have powerWatts, gpu only tdpWatts
    assert problem.metrics["energy_per_request_j"].value.tolist() == pytest.approx([4.0, 1.5, 0.072])


def test_weighted_objective_normalises_scales() -> None:
    candidates = CandidateSet.grid([Parameter(name="k", type="int", values=[0, 1, 2, 3])], PLATFORMS[:1])
    # latency in ms spans 1000x more than accuracy; equal weights must still trade them off
    latency = np.array([1000.0, 2000.0, 3000.0, 4000.0])
    accuracy = np.array([0.80, 0.90, 0.91, 0.92])
    predictions = {m: Prediction(v, v, v) for m, v in {"latency_ms": latency, "accuracy": accuracy}.items()}
    s = spec(objective={"weights": {"latency_ms": 1.0, "accuracy": -1.0}})
    problem = build_problem(candidates, predictions, s)
    best = solve(problem).best
    scale_l = np.percentile(latency, 90) - np.percentile(latency, 10)
    scale_a = np.percentile(accuracy, 90) - np.percentile(accuracy, 10)
    manual = latency / scale_l - accuracy / scale_a
    assert best == int(np.argmin(manual)) == 1
    assert solve(problem, "numpy").best == best


def test_grid_fixes_parameters_restricts_platforms_and_spaces_log_ranges() -> None:
    c = CandidateSet.grid(PARAMETERS, PLATFORMS, resolution=5, fixed={"precision": "int8"}, only=["gpu", "cpu-small"],
                          instance={"rows": 1000})
    assert set(c.platform) == {"gpu", "cpu-small"}
    assert set(c.frame["param.precision"]) == {"int8"}
    assert sorted(set(c.frame["param.depth"])) == [2, 4, 8, 16, 32]
    assert len(c) == 2 * 3 * 5
    assert (c.frame["instance.rows"] == 1000).all()
    assert c.parameters_of(0) == {"batch_size": 1, "depth": 2, "precision": "int8"}
    assert {p.name for p in PLATFORMS if p.name in set(c.platform)} == {"gpu", "cpu-small"}
    # fixing a range parameter off-grid pins it exactly
    pinned = CandidateSet.grid(PARAMETERS, PLATFORMS[:1], resolution=5, fixed={"depth": 11})
    assert set(pinned.frame["param.depth"]) == {11}


def test_fixed_and_platform_restriction_change_the_answer() -> None:
    s = spec(objective={"minimize": "latency_ms"}, constraints=[{"metric": "accuracy", "min": 0.9}])
    free = CandidateSet.grid(PARAMETERS, PLATFORMS, resolution=6)
    predictions = synthetic(free, seed=3)
    best = solve(build_problem(free, predictions, s)).best
    assert free.platform[best] == "gpu"
    # the same problem restricted to CPUs with fp32: brute force over the matching rows of the free grid
    restricted = CandidateSet.grid(PARAMETERS, PLATFORMS, resolution=6, fixed={"precision": "fp32"}, only=["cpu-large"])
    rows = np.flatnonzero((free.platform == "cpu-large") & (free.frame["param.precision"].to_numpy() == "fp32"))
    sub = {m: Prediction(p.value[rows], p.lower[rows], p.upper[rows]) for m, p in predictions.items()}
    got = solve(build_problem(restricted, sub, s)).best
    assert restricted.parameters_of(got) == free.parameters_of(int(rows[brute_force(restricted, sub, s)]))
    assert restricted.platform[got] == "cpu-large"


def test_bad_requests_name_the_field() -> None:
    with pytest.raises(RecommendationError, match=r"fixed: \['nope'\]"):
        CandidateSet.grid(PARAMETERS, PLATFORMS, fixed={"nope": 1})
    with pytest.raises(RecommendationError, match=r"fixed.batch_size: 3 is outside"):
        CandidateSet.grid(PARAMETERS, PLATFORMS, fixed={"batch_size": 3})
    with pytest.raises(RecommendationError, match=r"platforms: \['tpu'\]"):
        CandidateSet.grid(PARAMETERS, PLATFORMS, only=["tpu"])
    with pytest.raises(RecommendationError, match="lower resolution"):
        CandidateSet.grid(PARAMETERS, PLATFORMS, resolution=100, max_candidates=100)
    candidates = CandidateSet.grid([], PLATFORMS)
    one = {"latency_ms": Prediction(np.ones(3), np.ones(3), np.ones(3))}
    with pytest.raises(RecommendationError, match=r"constraints\[0\].metric: 'latncy_ms' is not available"):
        build_problem(candidates, one, spec(constraints=[{"metric": "latncy_ms", "max": 1}]))
    with pytest.raises(RecommendationError, match="throughput_per_s"):
        build_problem(candidates, one, spec(throughput={"requestsPerSecond": 10}))
    with pytest.raises(RecommendationError, match="objective: 'energy_per_request_j'.*powerWatts"):
        build_problem(CandidateSet.grid([], [PlatformInfo("x", 1.0)]), {"latency_ms": Prediction(*(np.ones(1),) * 3)},
                      spec(objective={"minimize": "energy_per_request_j"}))


def test_single_unreachable_constraint_is_named_with_the_closest_value() -> None:
    candidates = CandidateSet.grid([], PLATFORMS)
    latency = np.array([5.0, 3.0, 4.0])
    predictions = {"latency_ms": Prediction(latency, latency * 0.9, latency * 1.1), "accuracy": Prediction(*(np.full(3, 0.9),) * 3)}
    s = spec(objective={"minimize": "cost_per_hour"},
             constraints=[{"metric": "latency_ms", "max": 2}, {"metric": "accuracy", "min": 0.8}], confidence=0.9)
    problem = build_problem(candidates, predictions, s)
    for method, presolve in [("cp-sat", False), ("cp-sat", True), ("numpy", True)]:
        status = to_status(problem, solve(problem, method, presolve=presolve))  # type: ignore[arg-type]
        assert status.phase == "Infeasible" and status.recommendation is None
        assert status.solver.status == "INFEASIBLE" and status.solver.feasible_candidates == 0
        assert status.infeasible.constraints == ["latency_ms <= 2"]
        assert status.infeasible.message.startswith("latency_ms <= 2 is unreachable")
        assert "upper bound (two-sided 90% interval) is 3.3 on cpu-large" in status.infeasible.message
        ready = {c.type: c.status for c in status.conditions}
        assert ready == {"Ready": "False", "Stalled": "True", "Infeasible": "True"}  # kstatus: no answer from these


def test_combination_that_cannot_hold_together_is_reduced_to_its_core() -> None:
    candidates = CandidateSet.grid([], PLATFORMS)
    fast = np.array([1.0, 2.0, 9.0])
    accurate = np.array([0.80, 0.85, 0.99])
    predictions = {"latency_ms": Prediction(fast, fast, fast), "accuracy": Prediction(accurate, accurate, accurate)}
    s = spec(
        objective={"minimize": "cost_per_hour"},
        constraints=[{"metric": "latency_ms", "max": 5}, {"metric": "accuracy", "min": 0.95}],
        budget={"maxCostPerHour": 10},
    )
    problem = build_problem(candidates, predictions, s)
    full = solve(problem, "cp-sat", presolve=False)
    assert full.status == "INFEASIBLE" and set(full.core) <= {0, 1, 2}
    status = to_status(problem, full)
    assert status.infeasible.constraints == ["latency_ms <= 5", "accuracy >= 0.95"]
    message = status.infeasible.message
    assert message.startswith("latency_ms <= 5 and accuracy >= 0.95 cannot hold together")
    assert "latency_ms upper bound (two-sided 90% interval) while meeting accuracy >= 0.95 is 9 on gpu" in message
    assert "accuracy lower bound (two-sided 90% interval) while meeting latency_ms <= 5 is 0.85 on cpu-large" in message


def test_alternatives_prefer_other_platforms_and_front_is_non_dominated() -> None:
    s = spec(objective={"minimize": "latency_ms"}, constraints=[{"metric": "accuracy", "min": 0.88}], alternatives=3)
    candidates = CandidateSet.grid(PARAMETERS, PLATFORMS, resolution=6)
    problem = build_problem(candidates, synthetic(candidates, seed=5), s, goals={"accuracy": "maximize"})
    solution = solve(problem)
    status = to_status(problem, solution, alternatives_count=3, pareto_points=50)
    platforms = [status.recommendation.platform] + [a.platform for a in status.alternatives]
    assert len(set(platforms)) == 3, platforms
    objectives = [status.recommendation.objective] + [a.objective for a in status.alternatives]
    assert objectives == sorted(objectives)
    assert status.pareto_front[0].objective == status.recommendation.objective
    lat = [c.predicted["latency_ms"].value for c in status.pareto_front]
    acc = [c.predicted["accuracy"].value for c in status.pareto_front]
    assert lat == sorted(lat) and acc == sorted(acc)  # trading latency for accuracy, monotonically
    feasible = np.flatnonzero(solution.feasible)
    for a, b in zip(lat, acc):
        dominated = (problem.metrics["latency_ms"].value[feasible] <= a) & (problem.metrics["accuracy"].value[feasible] >= b)
        strictly = (problem.metrics["latency_ms"].value[feasible] < a) | (problem.metrics["accuracy"].value[feasible] > b)
        assert not np.any(dominated & strictly)


def test_pareto_front_matches_pairwise_check() -> None:
    rng = np.random.default_rng(0)
    points = np.round(rng.random((300, 3)), 1)  # many ties and duplicates
    front = set(pareto_front(points).tolist())
    for i in range(len(points)):
        dominated = np.any(np.all(points <= points[i], axis=1) & np.any(points < points[i], axis=1))
        duplicate_before = any(j in front and np.array_equal(points[j], points[i]) for j in range(len(points)) if j != i)
        assert (i in front) == (not dominated and not (duplicate_before and i not in front))
    assert len({tuple(points[i]) for i in front}) == len(front)
    assert all(not np.any(np.all(points <= points[i], axis=1) & np.any(points < points[i], axis=1)) for i in front)


@pytest.mark.parametrize(("rows", "axes", "seed"), [(50, 2, 0), (2_000, 2, 1), (2_000, 3, 2), (3_000, 4, 3)])
def test_pareto_front_is_the_rows_no_other_row_dominates(rows: int, axes: int, seed: int) -> None:
    """Oracle: every pair compared. Ties, duplicates, +inf (unknown) and NaN rows; past the pruning passes' size."""
    rng = np.random.default_rng(seed)
    points = np.round(rng.random((rows, axes)), 1)
    points[rng.random(points.shape) < 0.02] = np.inf
    points[rng.random(rows) < 0.01, 0] = np.nan
    front = pareto_front(points)
    expected = []
    for i in np.lexsort(points.T[::-1]):
        if np.isnan(points[i]).any():
            continue
        weakly = np.all(points <= points[i], axis=1)
        strictly = weakly & np.any(points < points[i], axis=1)
        equal_before = weakly & ~strictly & (np.arange(rows) < i)
        if not strictly.any() and not equal_before.any():
            expected.append(int(i))
    assert front.tolist() == expected  # the same rows, in lexicographic order, the first of equal rows kept


def test_ties_on_the_objective_are_broken_by_the_other_goals() -> None:
    candidates = CandidateSet.grid([Parameter(name="k", type="int", values=[0, 1, 2])], PLATFORMS[:1])
    accuracy = np.array([0.90, 0.95, 0.93])
    predictions = {"accuracy": Prediction(accuracy, accuracy, accuracy)}
    s = spec(objective={"minimize": "cost_per_hour"}, constraints=[{"metric": "accuracy", "min": 0.5}])
    problem = build_problem(candidates, predictions, s)
    assert solve(problem).best == solve(problem, "numpy").best == 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_preferred_candidate_wins_ties_on_the_objective_and_nothing_else(seed: int) -> None:
    # cost per hour with one replica: every configuration of a platform ties on it
    s = spec(objective={"minimize": "cost_per_hour"}, constraints=[{"metric": "accuracy", "min": 0.85}])
    candidates = CandidateSet.grid(PARAMETERS, PLATFORMS, resolution=6)
    problem = build_problem(candidates, synthetic(candidates, seed), s)
    plain = solve(problem, "numpy").best
    assert plain is not None
    feasible = np.flatnonzero(feasible_mask(problem))
    tied = [int(i) for i in feasible if problem.objective[i] == problem.objective[plain] and i != plain]
    worse = [int(i) for i in feasible if problem.objective[i] > problem.objective[plain]]
    assert tied and worse, "the case needs a tie and a worse candidate"
    rng = np.random.default_rng(seed)
    for chosen, expected in [(int(rng.choice(tied)), None), (int(rng.choice(worse)), plain)]:
        problem.preferred = np.zeros(len(problem), dtype=bool)
        problem.preferred[chosen] = True
        want = chosen if expected is None else expected  # a tie goes to the preferred one; a worse one loses
        for method, presolve in [("cp-sat", True), ("cp-sat", False), ("numpy", True)]:
            assert solve(problem, method, presolve=presolve).best == want, (method, presolve)  # type: ignore[arg-type]


def _dataset(seed: int = 0) -> pd.DataFrame:
    """Trials of a deterministic asset: latency = depth·batch / vcpus, on a 3-platform grid, 2 repetitions."""
    rows = []
    rng = np.random.default_rng(seed)
    for p, depth, batch, rep in itertools.product(PLATFORMS, [2, 4, 8, 16, 32], [1, 8, 64], range(2)):
        vcpus = p.features["vcpus"] * (6 if p.name == "gpu" else 1)
        latency = depth * batch / vcpus * rng.uniform(0.97, 1.03)
        rows.append({
            "trial_id": f"t{len(rows)}", "platform": p.name, "status": "Succeeded", "repetition": rep,
            "cost_per_hour": p.cost_per_hour, "feature.vcpus": p.features["vcpus"],
            "feature.accelerator": p.features["accelerator"],
            "param.batch_size": batch, "param.depth": depth, "param.precision": "fp32",
            "metric.latency_ms": latency, "metric.throughput_per_s": 1000 * batch / latency,
            "metric.accuracy": 0.8 + 0.15 * (1 - math.exp(-depth / 8)),
        })
    rows.append({**rows[0], "trial_id": "failed", "status": "Failed", "metric.latency_ms": np.nan})
    return pd.DataFrame(rows)


def test_recommend_end_to_end_from_a_dataset() -> None:
    frame = _dataset()
    params = [PARAMETERS[0], Parameter(name="depth", type="int", values=[2, 4, 8, 16, 32]),
              Parameter(name="precision", type="categorical", values=["fp32"])]
    s = spec(
        objective={"minimize": "cost_per_hour"},
        constraints=[{"metric": "accuracy", "min": 0.9}, {"metric": "latency_ms", "max": 40}],
        throughput={"requestsPerSecond": 2000, "maxReplicas": 32},
        confidence=0.8,
    )
    status = recommend(frame, params, PLATFORMS, s, seed=0, goals={"accuracy": "maximize"})
    assert status.phase == "Ready", status.infeasible
    rec = status.recommendation
    assert rec.predicted["latency_ms"].upper <= 40 and rec.predicted["accuracy"].lower >= 0.9
    assert rec.replicas * rec.predicted["throughput_per_s"].lower >= 2000
    assert rec.cost_per_hour == pytest.approx(rec.replicas * {p.name: p.cost_per_hour for p in PLATFORMS}[rec.platform])
    assert set(status.models) == {"latency_ms", "throughput_per_s", "accuracy"}
    assert status.models["latency_ms"].r2 > 0.9 and status.models["latency_ms"].trained_on_trials == 90
    assert status.solver.status == "OPTIMAL" and status.dataset_hash
    again = recommend(frame.sample(frac=1.0, random_state=1), params, PLATFORMS, s, seed=0, goals={"accuracy": "maximize"})
    assert again.recommendation == rec and again.dataset_hash == status.dataset_hash
    with pytest.raises(RecommendationError, match="instance: give a value"):
        recommend(frame.assign(**{"instance.rows": 10.0}), params, PLATFORMS, s)
    with pytest.raises(RecommendationError, match="does not declare"):
        recommend(frame, params[:1], PLATFORMS, s)


def test_requirements_hold_together_at_the_confidence() -> None:
    """One requirement: the reported bounds are the ends of the interval at 2c - 1; k of them share 1 - c."""
    from hwmatch.modeling.surrogates import Surrogates, categorical_columns
    from hwmatch.optimize.problem import interval_level

    one = spec(objective={"minimize": "latency_ms"}, constraints=[{"metric": "accuracy", "min": 0.5}], confidence=0.95)
    two = spec(objective={"minimize": "latency_ms"}, constraints=[{"metric": "accuracy", "min": 0.5}],
               throughput={"requestsPerSecond": 10}, confidence=0.95)
    assert interval_level(one) == pytest.approx(0.9) and interval_level(two) == pytest.approx(0.95)
    frame = _dataset()
    params = [PARAMETERS[0], Parameter(name="depth", type="int", values=[2, 4, 8, 16, 32]),
              Parameter(name="precision", type="categorical", values=["fp32"])]
    s = spec(objective={"minimize": "latency_ms"}, constraints=[{"metric": "accuracy", "min": 0.5}], confidence=0.95)
    rec = recommend(frame, params, PLATFORMS, s, seed=0).recommendation
    models = Surrogates(seed=0, categorical=categorical_columns(params)).fit(frame)
    row = pd.DataFrame([{"platform": rec.platform, **{f"param.{k}": v for k, v in rec.parameters.items()},
                         **{f"feature.{k}": v for k, v in next(p for p in PLATFORMS if p.name == rec.platform).features.items()}}])
    at_90 = models.predict(row, 0.9)["latency_ms"]
    at_95 = models.predict(row, 0.95)["latency_ms"]
    # the bounds reported are the interval at 2c - 1 (its level says so), which is never wider than at c; the two
    # may coincide (a conformal quantile over few residuals takes the same one at both levels), so the level is
    # what tells them apart
    assert rec.predicted["latency_ms"].level == pytest.approx(0.9)
    assert rec.predicted["latency_ms"].upper == pytest.approx(float(at_90.upper[0]))
    assert float(at_90.upper[0]) <= float(at_95.upper[0]) and float(at_90.lower[0]) >= float(at_95.lower[0])


def test_a_platform_without_results_is_chosen_only_when_named() -> None:
    """The gpu pool never ran a trial: left out, unless the request names it (extrapolating from its features)."""
    frame = _dataset()
    frame = frame[frame["platform"] != "gpu"]
    params = [PARAMETERS[0], Parameter(name="depth", type="int", values=[2, 4, 8, 16, 32]),
              Parameter(name="precision", type="categorical", values=["fp32"])]
    fastest = spec(objective={"minimize": "latency_ms"}, confidence=0.8)
    status = recommend(frame, params, PLATFORMS, fastest, seed=0)
    assert status.phase == "Ready" and status.recommendation.platform == "cpu-large"
    assert all(a.platform != "gpu" for a in status.alternatives)
    named = recommend(frame, params, PLATFORMS, fastest.model_copy(update={"platforms": ["gpu"]}), seed=0)
    assert named.recommendation.platform == "gpu"


def test_a_requirement_on_too_few_trials_is_insufficient_data_not_an_answer() -> None:
    frame = _dataset()
    measured = frame.index[frame["status"] == "Succeeded"][:6]  # accuracy measured on 6 trials only
    frame.loc[~frame.index.isin(measured), "metric.accuracy"] = np.nan
    params = [PARAMETERS[0], Parameter(name="depth", type="int", values=[2, 4, 8, 16, 32]),
              Parameter(name="precision", type="categorical", values=["fp32"])]
    both = [{"metric": "accuracy", "min": 0.85}, {"metric": "latency_ms", "max": 40}]
    s = spec(objective={"minimize": "cost_per_hour"}, constraints=both, confidence=0.9)  # level 0.9: 9 rows
    status = recommend(frame, params, PLATFORMS, s, seed=0)
    assert status.phase == "InsufficientData" and status.recommendation is None and status.infeasible is None
    short = status.insufficient
    assert short.metrics == ["accuracy"] and (short.trials, short.needed_trials, short.more_trials) == (6, 9, 3)
    assert short.platform in {p.name for p in PLATFORMS} and short.parameters
    assert "accuracy >= 0.85" in short.message and "3 more" in short.message
    ready = next(c for c in status.conditions if c.type == "Ready")
    assert (ready.status, ready.reason) == ("False", "InsufficientData")
    # the same data answers a request that does not rest on accuracy; its interval is reported as absent
    latency_only = recommend(frame, params, PLATFORMS, spec(objective={"minimize": "cost_per_hour"},
                                                            constraints=both[1:], confidence=0.95), seed=0)
    assert latency_only.phase == "Ready" and latency_only.insufficient is None
    accuracy = latency_only.recommendation.predicted["accuracy"]
    assert accuracy.lower is None and accuracy.upper is None and accuracy.level is None
    # a bound that is finite but unmet stays Infeasible, with its reason
    unreachable = recommend(frame, params, PLATFORMS, spec(objective={"minimize": "cost_per_hour"},
                                                           constraints=[{"metric": "latency_ms", "max": 1e-6}]), seed=0)
    assert unreachable.phase == "Infeasible" and unreachable.insufficient is None


def test_alternatives_differ_in_predictions_not_only_in_a_parameter() -> None:
    # one platform, and depth 16 and 32 predicted exactly alike (one leaf): they are one alternative, not two
    candidates = CandidateSet.grid([Parameter(name="depth", type="int", values=[2, 4, 8, 16, 32])], PLATFORMS[:2])
    depth = candidates.frame["param.depth"].to_numpy(dtype=float)
    vcpus = np.where(candidates.platform == "cpu-small", 2.0, 8.0)
    latency = np.minimum(depth, 16) / vcpus
    predictions = {"latency_ms": Prediction(latency, latency * 0.9, latency * 1.1),
                   "accuracy": Prediction(0.8 + 0.01 * np.minimum(depth, 16), 0.8 + 0.009 * np.minimum(depth, 16),
                                          0.8 + 0.011 * np.minimum(depth, 16))}
    s = spec(objective={"maximize": "accuracy"}, constraints=[{"metric": "latency_ms", "max": 100}], alternatives=4)
    problem = build_problem(candidates, predictions, s)
    status = to_status(problem, solve(problem), alternatives_count=4)
    listed = [status.recommendation, *status.alternatives]
    keys = [(c.platform, tuple(sorted((m, round(p.value, 6)) for m, p in c.predicted.items()))) for c in listed]
    assert len(set(keys)) == len(keys), keys  # no two alternatives predicted alike
    assert {c.platform for c in listed} == {"cpu-small", "cpu-large"}  # the best of the other platform is there
    assert len(status.alternatives) == 4


def test_a_serving_asset_gets_replicas_from_the_highest_rate_per_replica_under_the_slo() -> None:
    # One platform, a rate parameter: the rows a serving sweep gives (latency grows with the rate; past 400/s the
    # server saturates and achieves less than offered). The surrogate's throughput may overshoot the offered rate.
    rates = Parameter(name="requests_per_second", type="int", values=[100, 200, 400, 800])
    candidates = CandidateSet.grid([rates], PLATFORMS[:1])
    offered = np.array([100.0, 200.0, 400.0, 800.0])
    achieved = np.array([104.0, 210.0, 440.0, 450.0])
    p99 = np.array([3.0, 5.0, 18.0, 900.0])
    predictions = {"throughput_per_s": Prediction(achieved, achieved, achieved),
                   "offered_rate_per_s": Prediction(offered, offered, offered),
                   "latency_p99_ms": Prediction(p99, p99, p99)}
    s = spec(throughput={"requestsPerSecond": 1700}, constraints=[{"metric": "latency_p99_ms", "max": 20}],
             objective={"minimize": "cost_per_hour"})
    problem = build_problem(candidates, predictions, s)
    # a replica is counted on for its offered rate at most: 1700/100, 1700/200, 1700/400 (not 1700/440: 4), and
    # 1700/450 at 800/s, where it achieves less than offered
    assert problem.replicas.tolist() == [17, 9, 5, 4]
    solution = solve(problem)
    best = candidates.parameters_of(solution.best)["requests_per_second"]
    assert best == 400  # the highest rate whose p99 meets 20 ms; 800/s needs fewer replicas but breaks the SLO
    assert to_status(problem, solution).recommendation.replicas == 5
