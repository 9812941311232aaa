"""Scoring recommendations against a table, replaying trials from it, and adaptive sampling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hwmatch.api import AIAsset, BenchmarkSweep, Constraint, HWRecommendationSpec, Objective, ObjectRef
from hwmatch.api.errors import InputError
from hwmatch.api.vocabulary import make_trial
from hwmatch.data.frame import METRIC
from hwmatch.evaluation import GroundTruth, draw_queries, score, summarise
from hwmatch.evaluation.methods import at_positions, candidate_set_of, choose
from hwmatch.execution.replay import NOT_MEASURED, ReplayExecutor, ReplayTable
from hwmatch.modeling import Prediction
from hwmatch.planning import Planner, get_sampler
from hwmatch.strategies.adaptive import AdaptiveSampler

ASSET = AIAsset.model_validate({
    "apiVersion": "hwmatch.dev/v1alpha1", "kind": "AIAsset", "metadata": {"name": "toy"},
    "spec": {"command": ["toy"], "parameters": [{"name": "x", "type": "int", "values": [1, 2, 3]}],
             "metrics": [{"name": "latency", "goal": "minimize"}, {"name": "quality", "goal": "maximize"}]},
})


def row(platform: str, x: int, latency: float, quality: float, rep: int = 0) -> dict:
    return {"trial_id": f"{platform}-{x}-{rep}", "asset": "toy", "sweep": "s", "platform": platform, "repetition": rep,
            "status": "Succeeded", "reason": "", "cost_per_hour": {"a": 1.0, "b": 2.0}[platform], "param.x": x,
            "metric.latency": latency, "metric.quality": quality}


def toy_frame() -> pd.DataFrame:
    """Platform a is cheap and slow, b dear and fast; a x=1 was measured twice (9 and 11: true latency 10)."""
    rows = [row("a", 1, 9, 0.5), row("a", 1, 11, 0.5, rep=1), row("a", 2, 20, 0.7), row("a", 3, 30, 0.9),
            row("b", 1, 5, 0.5), row("b", 2, 10, 0.7), row("b", 3, 15, 0.9),
            {**row("b", 3, 0, 0), "trial_id": "failed", "status": "Failed", "metric.latency": np.nan}]
    return pd.DataFrame(rows)


def query(*constraints: Constraint, objective: Objective | None = None) -> HWRecommendationSpec:
    return HWRecommendationSpec(asset_ref=ObjectRef(name="toy"), constraints=list(constraints),
                                objective=objective or Objective(minimize="cost_per_hour"), confidence=0.9)


def at(truth: GroundTruth, platform: str, x: int) -> int:
    t = truth.table
    return int(t.index[(t["platform"] == platform) & (t["param.x"] == x)][0])


def test_truth_is_the_mean_of_measured_rows() -> None:
    truth = GroundTruth.from_frame(toy_frame())
    assert len(truth.table) == 6  # the failed trial is no measurement
    a1 = truth.table.loc[at(truth, "a", 1)]
    assert a1["metric.latency"] == 10 and a1["rows"] == 2


def test_scores_of_known_answers() -> None:
    truth = GroundTruth.from_frame(toy_frame())
    q = query(Constraint(metric="quality", min=0.7), Constraint(metric="latency", max=20))
    best = score(q, at(truth, "a", 2), truth)
    assert (best.solvable, best.answered, best.feasible, best.regret_pct) == (True, True, True, 0.0)
    dear = score(q, at(truth, "b", 2), truth)
    assert dear.feasible and dear.regret_pct == pytest.approx(100.0)  # cost 2 where 1 was possible
    slow = score(q, at(truth, "a", 3), truth)
    assert slow.feasible is False and slow.regret_pct is None  # latency 30 > 20
    refused = score(q, None, truth)
    assert refused.false_infeasible
    edge = score(query(Constraint(metric="latency", max=10)), at(truth, "a", 1), truth)
    assert edge.feasible  # the mean of 9 and 11 meets the bound exactly
    impossible = score(query(Constraint(metric="latency", max=4)), None, truth)
    assert not impossible.solvable and not impossible.false_infeasible
    fast = score(query(objective=Objective(minimize="latency")), at(truth, "b", 2), truth)
    assert fast.regret_pct == pytest.approx(100.0)  # 10 where 5 was possible

    summary = summarise([best, dear, slow, refused, impossible])
    assert summary.feasible_rate == pytest.approx(2 / 3)
    assert summary.false_infeasible_rate == pytest.approx(1 / 4)
    assert summary.no_solution_rate == pytest.approx(2 / 5)
    assert summary.regret_median_pct == pytest.approx(50.0)


def test_choose_respects_intervals() -> None:
    truth = GroundTruth.from_frame(toy_frame())
    q = query(Constraint(metric="latency", max=21))
    pool = truth.table.drop(columns=["rows"])
    positions = np.arange(len(pool))
    latency = pool["metric.latency"].to_numpy(dtype=float)
    quality = pool["metric.quality"].to_numpy(dtype=float)
    point = {"latency": Prediction(latency, latency, latency), "quality": Prediction(quality, quality, quality)}
    assert choose(q, pool, positions, point) == at(truth, "a", 1)  # cheapest; ties on price go to... a x=1 or x=2
    wide = {"latency": Prediction(latency, latency - 5, latency + 5), "quality": point["quality"]}
    picked = choose(query(Constraint(metric="latency", max=21)), pool, positions, wide)
    assert picked == at(truth, "a", 1)  # a x=2 (20 + 5 > 21) no longer qualifies, a x=1 (10 + 5) does
    assert choose(query(Constraint(metric="latency", max=4.9)), pool, positions, wide) is None
    assert choose(query(Constraint(metric="power", max=1)), pool, positions, point) is None  # no model: no answer


def most_plausible(query, candidates, positions, pred):
    """The engine's choice among the table's candidates, as an index label (None: no candidate, or no model)."""
    from hwmatch.engine.verification import most_plausible as nearest
    from hwmatch.optimize import RecommendationError, build_problem

    candidate_set = candidate_set_of(candidates)
    try:
        best = nearest(lambda p: build_problem(candidate_set, p, query), at_positions(pred, positions),
                       np.ones(len(candidates), dtype=bool))
    except RecommendationError:
        return None
    return None if best is None else candidates.index[best]


def test_most_plausible_is_the_point_choice_else_the_nearest_miss_in_interval_units() -> None:
    truth = GroundTruth.from_frame(toy_frame())
    pool = truth.table.drop(columns=["rows"])
    positions = np.arange(len(pool))
    latency = pool["metric.latency"].to_numpy(dtype=float)
    quality = pool["metric.quality"].to_numpy(dtype=float)
    # latency is known to +-1 on platform a, to +-8 on platform b
    spread = np.where(pool["platform"] == "a", 1.0, 8.0)
    pred = {"latency": Prediction(latency, latency - spread, latency + spread),
            "quality": Prediction(quality, quality, quality)}
    # point predictions admit a x=1 (10 <= 12), the cheapest: what choose() picks on points
    assert most_plausible(query(Constraint(metric="latency", max=12)), pool, positions, pred) == at(truth, "a", 1)
    # nothing meets 4.9 at its point: a x=1 misses by 5.1 of 1 unit, b x=1 by 0.1 of 8: measure b x=1
    assert most_plausible(query(Constraint(metric="latency", max=4.9)), pool, positions, pred) == at(truth, "b", 1)
    # a missed price cannot be measured away, and an unknown metric admits nothing
    assert most_plausible(query(Constraint(metric="cost_per_hour", max=0.5)), pool, positions, pred) is None
    assert most_plausible(query(Constraint(metric="power", max=1)), pool, positions, pred) is None


def test_queries_are_a_function_of_the_seed() -> None:
    truth = GroundTruth.from_frame(toy_frame())
    first = draw_queries(ASSET, truth, 12, seed=3, min_candidates=2)
    assert first == draw_queries(ASSET, truth, 12, seed=3, min_candidates=2)
    assert first != draw_queries(ASSET, truth, 12, seed=4, min_candidates=2)
    for q in first:
        assert q.confidence == 0.95
        for c in q.constraints:
            values = truth.values(c.metric)
            bound = c.max if c.max is not None else c.min
            assert values.min() <= bound <= values.max()


def test_queries_fix_instances_every_platform_measured() -> None:
    frame = toy_frame().dropna(subset=["metric.latency"])
    frame = pd.concat([frame.assign(**{"instance.n": 1.0}), frame[frame["platform"] == "a"].assign(**{"instance.n": 2.0})])
    truth = GroundTruth.from_frame(frame)
    assert truth.instances()["instance.n"].tolist() == [1.0]
    assert {q.instance["n"] for q in draw_queries(ASSET, truth, 10, seed=0, min_candidates=2)} == {1.0}
    assert all(not q.platforms for q in draw_queries(ASSET, truth, 10, seed=0, min_candidates=2))


def test_in_a_sparse_design_a_query_chooses_among_the_platforms_that_measured_its_instance() -> None:
    frame = toy_frame().dropna(subset=["metric.latency"])
    c = frame[frame["platform"] == "b"].assign(platform="c")
    # a measured instances 1 and 2, b 2 and 3, c 3 and 1: no instance on every platform, each on two
    frame = pd.concat([frame[frame["platform"] == "a"].assign(**{"instance.n": n}) for n in (1.0, 2.0)]
                      + [frame[frame["platform"] == "b"].assign(**{"instance.n": n}) for n in (2.0, 3.0)]
                      + [c.assign(**{"instance.n": n}) for n in (3.0, 1.0)])
    frame["cost_per_hour"] = frame["platform"].map({"a": 1.0, "b": 2.0, "c": 3.0})
    truth = GroundTruth.from_frame(frame)
    queries = draw_queries(ASSET, truth, 12, seed=0, min_candidates=2)
    measured = {1.0: ["a", "c"], 2.0: ["a", "b"], 3.0: ["b", "c"]}
    assert {q.instance["n"] for q in queries} == {1.0, 2.0, 3.0}
    assert all(q.platforms == measured[q.instance["n"]] for q in queries)
    alone = pd.concat([frame[frame["platform"] == p].assign(**{"instance.n": n}) for p, n in (("a", 1.0), ("b", 2.0))])
    with pytest.raises(InputError, match="no instance \\(n\\) was measured on two platforms or more"):
        draw_queries(ASSET, GroundTruth.from_frame(alone), 5, seed=0, min_candidates=2)


def test_replay_exact_and_nearest() -> None:
    frame = toy_frame()
    exact = ReplayTable(frame, ASSET, mode="exact")
    assert exact.lookup("a", {"x": 1}, repetition=0).metrics["latency"] == 9
    assert exact.lookup("a", {"x": 1}, repetition=1).metrics["latency"] == 11
    assert exact.lookup("a", {"x": 1}, repetition=2).metrics["latency"] == 9  # cycles through the measured rows
    assert exact.lookup("b", {"x": 3}).metrics == {"latency": 15, "quality": 0.9}  # the failed row is no answer
    frame.loc[frame["trial_id"] == "a-3-0", "param.x"] = 3
    sparse = frame[frame["trial_id"] != "a-2-0"]
    assert ReplayTable(sparse, ASSET, mode="exact").lookup("a", {"x": 2}) is None
    near = ReplayTable(sparse, ASSET, mode="nearest").lookup("a", {"x": 2})
    assert near is not None and near.parameters["x"] in (1, 3) and near.distance == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no platform 'c'"):
        exact.lookup("c", {"x": 1})
    with pytest.raises(ValueError, match="mode"):
        ReplayTable(frame, ASSET, mode="closest")  # type: ignore[arg-type]


def test_replay_executor() -> None:
    executor = ReplayExecutor(ReplayTable(toy_frame().query("trial_id != 'a-2-0'"), ASSET, mode="exact"))
    sweep = BenchmarkSweep.model_validate({
        "apiVersion": "hwmatch.dev/v1alpha1", "kind": "BenchmarkSweep", "metadata": {"name": "s"},
        "spec": {"assetRef": {"name": "toy"}, "platforms": [{"name": "a"}, {"name": "b"}]}})
    executor.check(ASSET, sweep)
    done = executor.run(make_trial("toy", "s", "b", {"x": 2}, {}, 0), ASSET, sweep)
    assert done.phase == "Succeeded" and done.metrics == {"latency": 10, "quality": 0.7}
    assert done.host["replayedTrial"] == "b-2-0"
    missing = executor.run(make_trial("toy", "s", "a", {"x": 2}, {}, 0), ASSET, sweep)
    assert missing.phase == "Failed" and missing.reason == NOT_MEASURED
    other = sweep.model_copy(deep=True)
    other.spec.platforms[0].name = "gpu"
    with pytest.raises(ValueError, match=r"platforms \['gpu'\]"):
        executor.check(ASSET, other)


# -- adaptive sampling ----------------------------------------------------------------------------

STEP = AIAsset.model_validate({
    "apiVersion": "hwmatch.dev/v1alpha1", "kind": "AIAsset", "metadata": {"name": "step"},
    "spec": {"command": ["step"], "parameters": [{"name": "x", "type": "float", "range": {"min": 0, "max": 1}}],
             "metrics": [{"name": "cost", "goal": "minimize"}, {"name": "quality", "goal": "maximize"}]},
})


def step_rows(xs: np.ndarray) -> pd.DataFrame:
    """cost grows with x; quality jumps from 0 to 1 around x = 0.5: the boundary every query meets."""
    return pd.DataFrame({"trial_id": [f"t{i}" for i in range(xs.size)], "platform": "p", "status": "Succeeded",
                         "cost_per_hour": 1.0, "param.x": xs, "metric.cost": xs,
                         "metric.quality": 1 / (1 + np.exp(-(xs - 0.5) * 40))})


def test_adaptive_is_registered_and_deterministic() -> None:
    assert isinstance(get_sampler("adaptive"), AdaptiveSampler)
    history = step_rows(np.linspace(0, 1, 12))
    candidates = step_rows(np.linspace(0.002, 0.998, 300)).drop(columns=[METRIC + "cost", METRIC + "quality"])
    sampler = AdaptiveSampler(queries=16)
    first = sampler.select(history, candidates, 10, np.random.default_rng(5), asset=STEP)
    assert first == sampler.select(history, candidates, 10, np.random.default_rng(5), asset=STEP)
    assert len(set(first)) == 10


def test_adaptive_concentrates_near_the_boundary() -> None:
    history = step_rows(np.linspace(0, 1, 12))
    xs = np.linspace(0.002, 0.998, 500)
    candidates = step_rows(xs).drop(columns=[METRIC + "cost", METRIC + "quality"])
    picks = AdaptiveSampler(queries=32).select(history, candidates, 20, np.random.default_rng(0), asset=STEP)
    near = np.mean(np.abs(xs[picks] - 0.5) < 0.15)
    assert near >= 0.5, xs[picks]  # uniform sampling would put 30% there


def test_adaptive_rounds_through_the_planner() -> None:
    sweep = BenchmarkSweep.model_validate({
        "apiVersion": "hwmatch.dev/v1alpha1", "kind": "BenchmarkSweep", "metadata": {"name": "step-sweep"},
        "spec": {"assetRef": {"name": "step"}, "platforms": [{"name": "p", "costPerHour": 1}],
                 "sampling": {"strategy": "adaptive", "budget": 16, "initial": 10, "batchSize": 3, "seed": 1}}})
    planner = Planner(STEP, sweep)
    first = planner.plan()
    assert len(first) == 10
    xs = np.array([t.spec.parameters["x"] for t in first])
    history = step_rows(xs).assign(trial_id=[t.metadata.name for t in first])
    proposed = planner.next_round(history)
    assert len(proposed) == 3 and all(0 <= t.spec.parameters["x"] <= 1 for t in proposed)
    assert [t.metadata.name for t in proposed] == [t.metadata.name for t in planner.next_round(history)]


def test_an_adaptive_sweep_replayed_from_a_table(tmp_path) -> None:
    """The engine runs an adaptive sweep whose trials the table answers (nearest measured row), in rounds."""
    from hwmatch.data.store import Store
    from hwmatch.engine import run_sweep

    table = step_rows(np.linspace(0, 1, 101)).assign(asset="step", sweep="import-step", repetition=0, reason="")
    sweep = BenchmarkSweep.model_validate({
        "apiVersion": "hwmatch.dev/v1alpha1", "kind": "BenchmarkSweep", "metadata": {"name": "offline"},
        "spec": {"assetRef": {"name": "step"}, "platforms": [{"name": "p", "costPerHour": 1}],
                 "sampling": {"strategy": "adaptive", "budget": 14, "initial": 8, "batchSize": 3, "seed": 2}}})
    with Store(tmp_path / "s.db") as store:
        run = run_sweep(store, STEP, sweep, ReplayExecutor(ReplayTable(table, STEP, mode="nearest")))
        frame = store.frame("step")
    assert run.complete and run.succeeded == 14 and run.failed == 0
    measured = frame.sort_values("param.x")
    # each answer is the nearest of the table's rows: cost equals x to the table's 0.01 spacing
    assert np.allclose(measured["metric.cost"], measured["param.x"], atol=0.005 + 1e-9)


def test_adaptive_never_proposes_a_measured_combination() -> None:
    small = AIAsset.model_validate({**STEP.model_dump(by_alias=True), "spec": {
        **STEP.model_dump(by_alias=True)["spec"], "parameters": [{"name": "x", "type": "float", "values": [0.1, 0.3, 0.5, 0.7, 0.9]}]}})
    sweep = BenchmarkSweep.model_validate({
        "apiVersion": "hwmatch.dev/v1alpha1", "kind": "BenchmarkSweep", "metadata": {"name": "s"},
        "spec": {"assetRef": {"name": "step"}, "platforms": [{"name": "p"}], "sampling": {"strategy": "adaptive", "budget": 5}}})
    history = pd.concat([step_rows(np.array([0.1, 0.3, 0.7]))] * 4, ignore_index=True)
    proposed = AdaptiveSampler(queries=8).propose(Planner(small, sweep).space, history, 3, np.random.default_rng(0),
                                                  asset=small, sweep=sweep, platform=sweep.spec.platforms[0])
    assert sorted(p["x"] for p in proposed) == [0.5, 0.9]


def test_clearly_solvable_needs_more_than_the_run_to_run_noise() -> None:
    truth = GroundTruth.from_frame(toy_frame())
    # a x=1 ran twice (9 and 11): one run lands 1 * sqrt(2) = 14% of the mean away from it
    rows = truth.table.loc[[at(truth, "b", 1), at(truth, "a", 2)]]
    assert truth.noise_margin("latency", rows, 0.9) == pytest.approx([5 * np.sqrt(2) / 10, 20 * np.sqrt(2) / 10])
    assert not truth.noise_margin("cost_per_hour", rows, 0.9).any()
    assert not truth.noise_margin("quality", rows, 0.9).any()  # quality never varied between runs
    lucky = score(query(Constraint(metric="latency", max=5.5)), None, truth)  # b x=1 measured 5: met by 0.5 < 0.71
    assert lucky.solvable and not lucky.clear and lucky.false_infeasible and not lucky.clear_false_infeasible
    clear = score(query(Constraint(metric="latency", max=6)), None, truth)  # 5 + 0.71 <= 6
    assert clear.clear and clear.clear_false_infeasible
    summary = summarise([lucky, clear])
    assert (summary.clear, summary.false_infeasible_rate, summary.clear_false_infeasible_rate) == (1, 1.0, 1.0)


def test_printed_resolution_and_the_feasibility_tolerance() -> None:
    from hwmatch.evaluation.truth import printed_resolution

    assert printed_resolution(pd.Series([12.34, 1.5, 100.0])) == pytest.approx(0.005)
    assert printed_resolution(pd.Series([1200.0, 7.0])) == 0.5
    assert printed_resolution(pd.Series([0.123456789012345])) == 0.0  # full precision: no printed digit to go by
    truth = GroundTruth.from_frame(toy_frame())
    assert truth.resolution == {"latency": 0.5, "quality": pytest.approx(0.05)}
    # b x=2 measured latency 10: a bound of 9.6 is missed by less than the half unit the table prints
    near = score(query(Constraint(metric="latency", max=9.6)), at(truth, "b", 2), truth)
    assert near.feasible is True and near.feasible_raw is False
    far = score(query(Constraint(metric="latency", max=9.4)), at(truth, "b", 2), truth)
    assert far.feasible is False and far.feasible_raw is False
    summary = summarise([near, far])
    assert summary.feasible_rate == 0.5 and summary.feasible_raw_rate == 0.0


def test_regret_of_a_signed_objective_is_relative_to_its_range() -> None:
    from hwmatch.evaluation.scoring import regret_pct

    assert regret_pct(12.0, 10.0, np.array([10.0, 12.0, 30.0])) == pytest.approx(20.0)  # one sign: of |best|
    assert regret_pct(-8.0, -10.0, np.array([-10.0, -8.0, -1.0])) == pytest.approx(20.0)  # a maximised metric
    # a signed objective with its best near 0: of the range, not of |1e-6| (which gave 1e8 %)
    assert regret_pct(0.5, 1e-6, np.array([1e-6, 0.5, -0.5, 4.0])) == pytest.approx(100 * (0.5 - 1e-6) / 4.5)


def test_coverage_at_the_choice_and_at_random() -> None:
    truth = GroundTruth.from_frame(toy_frame())
    q = query(Constraint(metric="quality", min=0.7), Constraint(metric="latency", max=20))
    a2 = at(truth, "a", 2)  # true latency 20, quality 0.7
    held = score(q, a2, truth, bounds={"latency": (15.0, 21.0), "quality": (0.65, 0.8)},
                 random=(at(truth, "b", 1), {"latency": (4.0, 6.0), "quality": (0.6, 0.7)}))
    assert held.covered is True and held.covered_random is False  # b x=1: true quality 0.5 below its lower bound 0.6
    missed = score(q, a2, truth, bounds={"latency": (15.0, 19.0), "quality": (0.65, 0.8)})  # upper 19 < true 20
    assert missed.covered is False and missed.covered_random is None
    summary = summarise([held, missed])
    assert summary.coverage_chosen == 0.5 and summary.coverage_random == 0.0


def test_the_hada_baseline_predicts_a_platform_sampled_once_by_its_measurement() -> None:
    from hwmatch.evaluation.methods import HadaMethod

    sample = pd.DataFrame([row("a", 2, 20, 0.7), row("b", 1, 5, 0.5), row("b", 3, 15, 0.9)])  # a: one row
    method = HadaMethod().fit(sample, ASSET, seed=0)  # no input varies on a: nothing for a tree to split on
    pool = pd.DataFrame([row("a", 1, 0, 0), row("a", 3, 0, 0), row("b", 1, 0, 0)])
    latency = method.predict(pool, 0.9)["latency"].value
    assert list(latency[:2]) == [20.0, 20.0] and latency[2] == pytest.approx(5.0)
