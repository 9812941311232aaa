"""Transfer across platforms (issue 18): the model, its intervals, the prior, the recommendation's basis, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from hwmatch.api import AIAsset, BenchmarkSweep, HWRecommendation, HWRecommendationSpec, Objective, ObjectRef
from hwmatch.api.errors import InputError
from hwmatch.modeling.intervals import conformal_quantile
from hwmatch.modeling.transfer import PlatformTransfer, _weighted_quantile, prior_effects

DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"
#: True speed of each platform (a factor on latency); the features below do not tell it.
SPEEDS = {"p0": 1.0, "p1": 2.0, "p2": 0.5, "p3": 3.0, "p4": 1.5, "p5": 0.8, "new": 6.0}
WORK = {"u": 1.0, "v": 2.5, "w": 4.0}


def latency(platform: str, a: int, b: str) -> float:
    """A multiplicative truth: platform speed × work of the configuration (plus a slower 'w' on p3 and new)."""
    slow_w = 1.5 if platform in ("p3", "new") and b == "w" else 1.0
    return SPEEDS[platform] * a * WORK[b] * slow_w


def table(platforms: dict[str, list[tuple[int, str]]], seed: int = 0, noise: float = 0.03,
          metric: str = "latency_ms") -> pd.DataFrame:
    """Rows of the dataset-frame convention for the given configurations of each platform, with log-normal noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for platform, configs in platforms.items():
        for i, (a, b) in enumerate(configs):
            rows.append({"trial_id": f"{platform}-{i}", "asset": "toy", "sweep": "s", "platform": platform,
                         "repetition": 0, "status": "Succeeded", "reason": "", "cost_per_hour": 1.0,
                         "feature.cores": 4 + len(platform) % 3, "param.a": a, "param.b": b,
                         f"metric.{metric}": latency(platform, a, b) * float(np.exp(rng.normal(0, noise)))})
    return pd.DataFrame(rows)


GRID = [(a, b) for a in range(1, 9) for b in WORK]


def some(platform: str, k: int, seed: int = 1) -> list[tuple[int, str]]:
    picks = np.random.default_rng(seed).permutation(len(GRID))[:k]
    return [GRID[i] for i in picks]


def fitted(k: int, seed: int = 0) -> tuple[PlatformTransfer, pd.DataFrame, list[tuple[int, str]]]:
    shots = some("new", k)
    frame = table({**{p: GRID for p in SPEEDS if p != "new"}, "new": shots}, seed)
    model = PlatformTransfer(seed=seed, categorical=frozenset({"param.b"}), goals={"latency_ms": "minimize"})
    return model.fit(frame, ["new"]), frame, shots


def unseen(shots: list[tuple[int, str]]) -> pd.DataFrame:
    rest = [c for c in GRID if c not in shots]
    return table({"new": rest}, seed=99, noise=0.0)


def test_k_trials_recover_the_speed_of_a_platform_its_features_do_not_tell() -> None:
    """Oracle: the truth is known; with 5 trials the transfer's ratio to it is near 1.

    (On this clean multiplicative toy the ordinary model, which reads the platform's name, does as well from 5
    rows: 7.6% MAPE against the transfer's 15%; on the public tables it does not — docs/transfer.md.)
    """
    model, frame, shots = fitted(5)
    truth = unseen(shots)
    got = model.predict(truth, 0.9)["latency_ms"].value
    ratio = got / truth["metric.latency_ms"].to_numpy()
    assert abs(np.median(ratio) - 1) < 0.2  # the base, trained on speeds 0.5-3, is corrected to a speed of 6
    assert np.mean(np.abs(ratio - 1)) < 0.2
    without = PlatformTransfer(categorical=frozenset({"param.b"})).fit(frame[frame["platform"] != "new"], ["new"])
    assert abs(np.median(without.predict(truth, 0.9)["latency_ms"].value / truth["metric.latency_ms"]) - 1) > 0.4
    assert model.trials("new") == 5 and model.trials("new", "latency_ms") == 5


def test_intervals_widen_with_fewer_trials_of_the_platform() -> None:
    widths = {}
    for k in (0, 10):
        model, _, shots = fitted(k)
        p = model.predict(unseen(shots), 0.9)["latency_ms"]
        widths[k] = float(np.mean(np.log(p.upper / p.lower)))
    assert np.isfinite(widths[10]) and widths[0] > 1.5 * widths[10]


def test_no_trial_of_the_platform_predicts_from_the_others_alone() -> None:
    model, _, _ = fitted(0)
    assert model.trials("new") == 0
    correction = model.corrections[("new", "latency_ms")]
    assert correction.coef is None and np.isinf(correction.penalty)


def test_other_platforms_are_predicted_by_the_ordinary_model() -> None:
    model, frame, _ = fitted(5)
    rows = frame[frame["platform"] == "p1"]
    assert model.full is not None
    ordinary = model.full.predict(rows, 0.9)["latency_ms"].value
    assert np.array_equal(model.predict(rows, 0.9)["latency_ms"].value, ordinary)


def test_transfer_needs_two_other_platforms() -> None:
    frame = table({"p0": GRID, "new": some("new", 3)})
    with pytest.raises(InputError, match="at least two other platforms"):
        PlatformTransfer().fit(frame, ["new"])


def test_weighted_quantile_with_equal_weights_is_the_conformal_quantile() -> None:
    """Brute force: equal weights give the ⌈(n+1)c⌉-th smallest score, and too few rows give inf."""
    rng = np.random.default_rng(3)
    for n in (5, 9, 20, 57):
        scores = np.sort(rng.exponential(size=n))
        for level in (0.8, 0.9):
            assert _weighted_quantile(scores, np.ones(n), level) == conformal_quantile(scores, level)


def test_prior_effects_recover_additive_platform_effects() -> None:
    """Oracle: log-values that are configuration + platform exactly give the platform effects, centred."""
    configs = {p: GRID[: 10 + 3 * i] for i, p in enumerate(["p0", "p1", "p2"])}  # unbalanced on purpose
    frame = table(configs, noise=0.0)
    frame["metric.latency_ms"] = [SPEEDS[p] * a * WORK[b] for p, a, b in zip(frame["platform"], frame["param.a"],
                                                                             frame["param.b"])]
    effects = prior_effects(frame)["feature.prior.latency_ms"]
    truth = np.log([SPEEDS[p] for p in effects.index])
    assert np.allclose(effects.to_numpy(), truth - truth.mean(), atol=1e-3)


def test_a_prior_asset_places_a_platform_without_trials() -> None:
    """k = 0: the prior asset measured 'new' (six times slower); its effect as a feature moves the prediction there."""
    other = table({p: GRID[:12] for p in SPEEDS}, seed=5)
    other["asset"] = "other"
    frame = table({p: GRID for p in SPEEDS if p != "new"})
    truth = unseen([])
    plain = PlatformTransfer(categorical=frozenset({"param.b"})).fit(frame, ["new"])
    helped = PlatformTransfer(categorical=frozenset({"param.b"}), prior=other).fit(frame, ["new"])
    err = {name: np.median(np.abs(np.log(m.predict(truth, 0.9)["latency_ms"].value
                                          / truth["metric.latency_ms"].to_numpy())))
           for name, m in (("plain", plain), ("prior", helped))}
    # trees do not extrapolate beyond the sources' slowest (3×), so the prior moves it part of the way
    assert err["prior"] < 0.8 * err["plain"]


# -- the recommendation says what it rests on ----------------------------------------------------------------

TOY = AIAsset.model_validate({
    "apiVersion": "hwmatch.dev/v1alpha1", "kind": "AIAsset", "metadata": {"name": "toy"},
    "spec": {"command": ["toy"],
             "parameters": [{"name": "a", "type": "int", "range": {"min": 1, "max": 8}},
                            {"name": "b", "type": "categorical", "values": list(WORK)}],
             "metrics": [{"name": "latency_ms", "goal": "minimize"}]},
})


def test_a_recommendation_on_a_platform_with_few_trials_says_so() -> None:
    from hwmatch.optimize import recommend

    frame = table({**{p: GRID for p in SPEEDS if p != "new"}, "new": some("new", 5)})
    spec = HWRecommendationSpec(asset_ref=ObjectRef(name="toy"), objective=Objective(minimize="latency_ms"),
                                platforms=["new"], confidence=0.9)
    status = recommend(frame, TOY.spec.parameters, None, spec, goals={"latency_ms": "minimize"})
    assert status.recommendation is not None and status.recommendation.platform == "new"
    assert status.recommendation.platform_trials == 5
    assert status.recommendation.basis == "based on 5 trials of this platform plus transfer"
    assert "based on 5 trials of this platform plus transfer" in status.conditions[0].message
    spec = spec.model_copy(update={"platforms": ["p1"]})
    status = recommend(frame, TOY.spec.parameters, None, spec, goals={"latency_ms": "minimize"})
    assert status.recommendation is not None and status.recommendation.basis == "based on 24 trials of this platform"


def test_a_sweep_benchmarks_a_new_platform_with_k_trials_and_the_answer_rests_on_them(tmp_path) -> None:
    """End to end, local engine: sweeps replayed from a table; the new platform gets 6 trials; the answer says so."""
    from hwmatch.data.store import Store
    from hwmatch.engine import run_sweep
    from hwmatch.engine.recommendations import answer_stored
    from hwmatch.execution.replay import ReplayExecutor, ReplayTable

    measured = table({p: GRID for p in SPEEDS})  # what the table holds for every platform, the new one too
    platforms = [{"name": p, "costPerHour": 1.0, "features": {"cores": 4 + len(p) % 3}} for p in SPEEDS]

    def sweep(name: str, only: list[dict], sampling: dict) -> BenchmarkSweep:
        return BenchmarkSweep.model_validate({
            "apiVersion": "hwmatch.dev/v1alpha1", "kind": "BenchmarkSweep", "metadata": {"name": name},
            "spec": {"assetRef": {"name": "toy"}, "platforms": only, "sampling": sampling}})

    old = sweep("known", [p for p in platforms if p["name"] != "new"], {"strategy": "grid"})
    new = sweep("new-hardware", [p for p in platforms if p["name"] == "new"],
                {"strategy": "random", "budget": 6, "seed": 4})
    request = HWRecommendation.model_validate({
        "apiVersion": "hwmatch.dev/v1alpha1", "kind": "HWRecommendation", "metadata": {"name": "on-new"},
        "spec": {"assetRef": {"name": "toy"}, "platforms": ["new"], "objective": {"minimize": "latency_ms"},
                 "confidence": 0.9}})
    with Store(tmp_path / "s.db") as store:
        executor = ReplayExecutor(ReplayTable(measured, TOY, mode="exact"))
        known = run_sweep(store, TOY, old, executor)
        assert known.failed == 0 and known.succeeded >= 60  # the grid: 5 values of a × 3 of b on 6 platforms
        shots = run_sweep(store, TOY, new, executor)
        assert shots.failed == 0 and 3 <= shots.succeeded <= 6
        solved = answer_stored(store, request)
    status = solved.status
    assert status is not None and status.phase == "Ready", status
    assert status.recommendation is not None and status.recommendation.platform == "new"
    assert status.recommendation.basis == f"based on {shots.succeeded} trials of this platform plus transfer"
    assert f"based on {shots.succeeded} trials of this platform plus transfer" in status.conditions[0].message


def test_prior_from_names_an_asset_the_store_must_have(tmp_path) -> None:
    from hwmatch.data.store import Store
    from hwmatch.engine.recommendations import answer

    asset = TOY.model_copy(update={"spec": TOY.spec.model_copy(update={"prior_from": [ObjectRef(name="gone")]})})
    request = HWRecommendation.model_validate({
        "apiVersion": "hwmatch.dev/v1alpha1", "kind": "HWRecommendation", "metadata": {"name": "r"},
        "spec": {"assetRef": {"name": "toy"}, "objective": {"minimize": "latency_ms"}}})
    frame = table({p: GRID for p in SPEEDS})
    with Store(tmp_path / "s.db"):
        solved = answer(request, asset, [], lambda _: frame, prior=lambda _: None)
        empty = answer(request, asset, [], lambda _: frame, prior=lambda _: frame.iloc[:0])  # an asset, no trials
    for refused in (solved, empty):
        assert refused.status is not None and refused.status.phase == "Failed"
        assert "spec.priorFrom: no asset 'gone' with trials" in refused.status.conditions[0].message


# -- hwmatch evaluate --target-platform -------------------------------------------------------------------------

MAPPING = """
asset: toy
platform: {column: device}
parameters:
  - {name: a, column: a, type: int}
  - {name: b, column: b, type: categorical}
metrics:
  - {name: latency_ms, column: latency, goal: minimize, unit: ms}
platforms:
""" + "".join(f"  {p}: {{costPerHour: 1.0, features: {{cores: {4 + len(p) % 3}}}}}\n" for p in SPEEDS)


def write_table(tmp_path: Path) -> tuple[Path, Path]:
    rows = table({p: GRID for p in SPEEDS})
    csv = tmp_path / "toy.csv"
    rows.rename(columns={"platform": "device", "param.a": "a", "param.b": "b", "metric.latency_ms": "latency"})[
        ["device", "a", "b", "latency"]].to_csv(csv, index=False)
    mapping = tmp_path / "toy.yaml"
    mapping.write_text(MAPPING)
    return csv, mapping


def test_evaluate_target_platform_prints_the_figures_as_json(tmp_path) -> None:
    from hwmatch.cli import app

    csv, mapping = write_table(tmp_path)
    result = CliRunner().invoke(app, ["evaluate", str(csv), "-m", str(mapping), "--target-platform", "new",
                                      "--target-trials", "0,5", "--budget", "50%", "-q", "5", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    rows = {(r["k"], r["method"]): r for r in doc["results"]}
    assert set(rows) == {(k, m) for k in (0, 5) for m in ("hwmatch", "transfer")}
    for r in rows.values():
        assert set(r["metrics"]["latency_ms"]) >= {"spearman", "mape", "coverage"}
        assert {"feasible", "false_infeasible_clear", "regret_median"} <= set(r)
    assert rows[(5, "transfer")]["metrics"]["latency_ms"]["mape"] < rows[(5, "hwmatch")]["metrics"]["latency_ms"]["mape"]


@pytest.mark.parametrize("args, says", [
    (["--target-platform", "nope"], "--target-platform: 'nope' is not a platform"),
    (["--target-platform", "new", "--target-trials", "five"], "--target-trials: 'five' is not a number"),
    (["--target-platform", "new", "--prior", "x.csv"], "--prior-mapping"),
    (["--prior", "x.csv"], "give --target-platform"),
    (["--target-platform", "new", "--confidence", "0.9,0.95"], "give one level"),
])
def test_evaluate_target_platform_bad_input_is_a_clear_error(tmp_path, args: list[str], says: str) -> None:
    from hwmatch.cli import app

    csv, mapping = write_table(tmp_path)
    result = CliRunner().invoke(app, ["evaluate", str(csv), "-m", str(mapping), "-q", "3", *args])
    assert result.exit_code != 0
    assert says in result.output and "Traceback" not in result.output


@pytest.mark.skipif(not (DATASETS / "edge-ai").is_dir(), reason=f"no public edge-AI tables at {DATASETS / 'edge-ai'}")
def test_edge_imagenet_transfer_to_one_device_beats_the_ordinary_model() -> None:
    """On a real table: jetson-nano2 held out, 10 trials; the transfer's latency ranks and errors beat the ordinary."""
    from hwmatch.data.importer import import_tables, load_mapping
    from hwmatch.evaluation.transfer import TransferEvaluation

    root = Path(__file__).resolve().parents[2]
    imported = import_tables(load_mapping(root / "examples" / "import" / "edge-imagenet.yaml"),
                             sorted((DATASETS / "edge-ai").glob("imagenet_*.csv")))
    results = {r.method: r.metrics["latency_ms"] for r in TransferEvaluation(imported, "jetson-nano2", 0).run([10])}
    assert results["transfer"]["spearman"] > results["hwmatch"]["spearman"]
    assert results["transfer"]["mape"] < results["hwmatch"]["mape"]


def test_a_sources_profile_is_its_own_measurement_where_it_measured_the_configuration() -> None:
    """Oracle: the design's profile column of a source is log(measured) − b wherever that source ran the
    configuration (the base's smoothed guess only where it did not), so "behaves like device d" reads d's data."""
    model, frame, _ = fitted(5)
    assert model.base is not None
    rows = table({"new": [(3, "v"), (8, "w")]}, noise=0.0)
    frame_rows = frame.set_index(["platform", "param.a", "param.b"])["metric.latency_ms"]
    b, A = model._design(model.base, model.sources, rows, "latency_ms", True)
    for j, source in enumerate(model.sources):
        measured = np.log([frame_rows[(source, a, v)] for a, v in [(3, "v"), (8, "w")]])
        np.testing.assert_allclose(A[:, 1 + j], measured - b, rtol=1e-12)
    # a configuration no source ran falls back to the base's prediction as if run there
    novel = table({"new": [(20, "u")]}, noise=0.0)
    assert np.isnan(model._lookup("latency_ms", novel, model.sources)).all()
