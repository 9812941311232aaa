"""``hwmatch import`` and ``hwmatch evaluate`` really run: on a synthetic table, and on a public one when present."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from hwmatch.cli import app
from hwmatch.data.store import Store

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DATASETS = ROOT.parent / "shared" / "datasets"
runner = CliRunner()

MAPPING = """
asset: synthetic-kernel
platform: {fromFile: '^kernel_(?P<platform>[a-z]+)\\.csv$'}
parameters:
  - {name: bits, type: int}
  - {name: threads, type: int}
metrics:
  - {name: time_s, column: time, goal: minimize}
  - {name: error, goal: minimize}
platforms:
  fast: {costPerHour: 3.0, features: {cores: 16}}
  slow: {costPerHour: 1.0, features: {cores: 4}}
"""


def write_synthetic(tmp_path: Path) -> list[Path]:
    """Two platforms over a 12 × 6 grid, measured twice; time falls with threads, error with bits."""
    rng = np.random.default_rng(0)
    bits, threads = np.meshgrid(np.arange(4, 52, 4), np.arange(1, 7), indexing="ij")
    bits, threads = np.repeat(bits.ravel(), 2), np.repeat(threads.ravel(), 2)
    paths = []
    for platform, speed in (("fast", 4.0), ("slow", 1.0)):
        time = (10 + bits / 4) / (speed * np.sqrt(threads)) * rng.lognormal(0, 0.03, bits.size)
        error = np.exp(-bits / 8) * rng.lognormal(0, 0.05, bits.size)
        path = tmp_path / f"kernel_{platform}.csv"
        pd.DataFrame({"bits": bits, "threads": threads, "time": time, "error": error}).to_csv(path, index=False)
        paths.append(path)
    (tmp_path / "mapping.yaml").write_text(MAPPING)
    return paths


def test_import_then_evaluate_synthetic(tmp_path: Path) -> None:
    tables = write_synthetic(tmp_path)
    store = tmp_path / "hw.db"
    result = runner.invoke(app, ["import", *map(str, tables), "--mapping", str(tmp_path / "mapping.yaml"),
                                 "--store", str(store)])
    assert result.exit_code == 0, result.output
    assert "288 trials" in result.output
    with Store(store) as db:
        frame = db.frame("synthetic-kernel")
    assert len(frame) == 288 and set(frame["platform"]) == {"fast", "slow"}

    args = ["evaluate", *map(str, tables), "-m", str(tmp_path / "mapping.yaml"), "--budget", "50%",
            "--queries", "30", "--seed", "1", "--confidence", "0.8,0.95", "-o", "json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    rows = {(r["budget"], r["strategy"], r["method"], r["confidence"]): r for r in doc["results"]}
    assert set(rows) == {(0.5, "random", "hwmatch", 0.8), (0.5, "random", "hwmatch", 0.95),
                         (0.5, "adaptive", "hwmatch", 0.8), (0.5, "adaptive", "hwmatch", 0.95),
                         (0.5, "random", "hada-dt", None)}  # point predictions: one answer whatever the confidence
    for strategy in ("random", "adaptive"):
        loose, strict = rows[(0.5, strategy, "hwmatch", 0.8)], rows[(0.5, strategy, "hwmatch", 0.95)]
        assert strict["no_solution_rate"] >= loose["no_solution_rate"]  # wider intervals: never more answers
        assert strict["clear"] <= strict["solvable"]
    best = rows[(0.5, "random", "hwmatch", 0.95)]
    assert best["queries"] == 30 and best["trials"] == 72  # 50% of the 72 configurations of each platform
    assert best["feasible_rate"] >= 0.9  # the answers are checked against the measured table
    assert best["models"]["time_s"]["r2"] > 0.9
    assert json.loads(runner.invoke(app, args).output) == doc  # a function of the seed

    table = runner.invoke(app, args[:-2])
    assert table.exit_code == 0 and "hada-dt" in table.output and "adaptive" in table.output


def test_evaluate_reports_bad_input(tmp_path: Path) -> None:
    tables = write_synthetic(tmp_path)
    bad = runner.invoke(app, ["evaluate", str(tables[0]), "-m", str(tmp_path / "mapping.yaml"), "--budget", "ten"])
    assert bad.exit_code == 1 and "--budget" in bad.output
    sure = runner.invoke(app, ["evaluate", str(tables[0]), "-m", str(tmp_path / "mapping.yaml"), "--confidence", "0.9,1.5"])
    assert sure.exit_code == 1 and "--confidence: '1.5' must be in (0.5, 0.999]" in sure.output
    (tmp_path / "broken.yaml").write_text(MAPPING.replace("goal: minimize}", "goal: least}", 1))
    broken = runner.invoke(app, ["evaluate", str(tables[0]), "-m", str(tmp_path / "broken.yaml")])
    assert broken.exit_code == 1 and "metrics[0].goal" in broken.output


def test_evaluate_public_edge_table() -> None:
    files = sorted((DATASETS / "edge-ai").glob("imagenet_*.csv"))
    if not files:
        pytest.skip(f"public datasets not present at {DATASETS} (see its README)")
    result = runner.invoke(app, ["evaluate", *map(str, files), "-m", str(ROOT / "examples/import/edge-imagenet.yaml"),
                                 "--budget", "50%", "--queries", "20", "--strategies", "random", "-o", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert {r["method"] for r in doc["results"]} == {"hwmatch", "hada-dt"}
    assert all(r["solvable"] > 0 for r in doc["results"])


def test_recommendation_fixes_the_instance_of_an_imported_input_dependent_asset() -> None:
    """HADA anticipate's answers depend on the instance: the recommendation's spec.instance fixes it."""
    files = sorted((DATASETS / "hada").glob("anticipate_mbp19.csv"))
    if not files:
        pytest.skip(f"public datasets not present at {DATASETS} (see its README)")
    from hwmatch.api import Constraint, HWRecommendationSpec, Objective, ObjectRef
    from hwmatch.data.importer import import_tables, load_mapping
    from hwmatch.optimize import RecommendationError, recommend

    imported = import_tables(load_mapping(ROOT / "examples/import/hada-anticipate.yaml"), files)
    first = imported.frame.iloc[0]
    instance = {c.split(".", 1)[1]: float(first[c]) for c in imported.frame.columns if c.startswith("instance.")}
    spec = HWRecommendationSpec(asset_ref=ObjectRef(name="hada-anticipate"), objective=Objective(minimize="sol_keur"),
                                constraints=[Constraint(metric="time_s", max=30)], instance=instance)
    status = recommend(imported.frame, imported.asset.spec.parameters, imported.platforms, spec)
    assert status.phase == "Ready" and status.recommendation.platform == "mbp19"
    assert status.recommendation.predicted["time_s"].upper <= 30
    with pytest.raises(RecommendationError, match="instance: give a value for"):
        recommend(imported.frame, imported.asset.spec.parameters, imported.platforms, spec.model_copy(update={"instance": {}}))


REPLAY_SWEEP = """
apiVersion: hwmatch.dev/v1alpha1
kind: BenchmarkSweep
metadata: {name: kernel-replay}
spec:
  assetRef: {name: synthetic-kernel}
  platforms:
    - {name: fast, costPerHour: 3.0, features: {cores: 16}}
    - {name: slow, costPerHour: 1.0, features: {cores: 4}}
  sampling: {strategy: latin-hypercube, budget: 12, repetitions: 2, seed: 4}
---
apiVersion: hwmatch.dev/v1alpha1
kind: HWRecommendation
metadata: {name: kernel-cheap}
spec:
  assetRef: {name: synthetic-kernel}
  constraints: [{metric: error, max: 0.05}]
  objective: {minimize: cost_per_hour}
"""


def test_run_replays_a_sweep_from_tables(tmp_path: Path) -> None:
    """`hwmatch run --replay`: trials answered by the table's own rows (exact mode), then the recommendation."""
    tables = write_synthetic(tmp_path)
    (tmp_path / "sweep.yaml").write_text(REPLAY_SWEEP)
    store = tmp_path / "replay.db"
    args = ["run", str(tmp_path / "sweep.yaml"), "--replay", str(tmp_path / "kernel_*.csv"),
            "-m", str(tmp_path / "mapping.yaml"), "--replay-mode", "exact", "--store", str(store)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    with Store(store) as db:
        frame = db.frame("synthetic-kernel")
    assert len(frame) == 2 * 12 * 2 and (frame["status"] == "Succeeded").all()
    measured = pd.concat([pd.read_csv(p).assign(platform=p.stem.split("_")[1]) for p in tables])
    for _, trial in frame.iterrows():  # each replayed time is one of the table's rows for that configuration
        rows = measured[(measured["platform"] == trial["platform"]) & (measured["bits"] == trial["param.bits"])
                        & (measured["threads"] == trial["param.threads"])]
        assert np.isclose(rows["time"], trial["metric.time_s"]).any()
    assert "kernel-cheap: Ready" in result.output
    again = runner.invoke(app, args)
    assert again.exit_code == 0
    with Store(store) as db:
        assert len(db.frame("synthetic-kernel")) == len(frame)  # finished trials are kept, not replayed twice

    no_mapping = runner.invoke(app, ["run", str(tmp_path / "sweep.yaml"), "--replay", str(tables[0])])
    assert no_mapping.exit_code == 1 and "--replay needs --mapping" in no_mapping.output
    nothing = runner.invoke(app, [*args[:3], str(tmp_path / "absent_*.csv"), *args[4:]])
    assert nothing.exit_code == 1 and "no table matches" in nothing.output


def test_closed_loop_spends_replayed_runs_and_reports_coverage(tmp_path: Path) -> None:
    tables = write_synthetic(tmp_path)
    base = ["evaluate", *map(str, tables), "-m", str(tmp_path / "mapping.yaml"), "--budget", "10%", "--queries", "30",
            "--seed", "1", "--strategies", "random", "--no-hada", "-o", "json"]
    open_loop = json.loads(runner.invoke(app, base).output)["results"][0]
    result = runner.invoke(app, [*base, "--verify-budget", "3"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    closed = doc["results"][0]
    assert doc["verify_budget"] == 3 and open_loop["verification_runs_mean"] == 0
    assert 0 < closed["verification_runs_mean"] <= 3  # every query may spend up to 3 runs, some spent some
    assert closed["no_solution_rate"] <= open_loop["no_solution_rate"]  # a measured run can turn a refusal into an answer
    for figures in (open_loop, closed):
        assert 0 <= figures["coverage_chosen"] <= 1 and 0 <= figures["coverage_random"] <= 1
        assert figures["feasible_raw_rate"] <= figures["feasible_rate"]  # the printed resolution only forgives


def test_the_closed_loop_spends_its_runs_on_better_candidates_and_runs_may_draw_fresh_noise(tmp_path: Path) -> None:
    from hwmatch.data.importer import import_tables, load_mapping
    from hwmatch.evaluation import Evaluation

    tables = write_synthetic(tmp_path)
    imported = import_tables(load_mapping(tmp_path / "mapping.yaml"), tables)

    def figures(**loop: bool) -> dict:
        evaluation = Evaluation(imported, 30, (0.95,), seed=1, verify_budget=4, **loop)
        return next(r.summary for r in evaluation.run([0.1], ("random",), hada=False))

    first, improved, fresh = figures(improve=False), figures(), figures(fresh_runs=True)
    assert first.verification_runs_mean <= improved.verification_runs_mean <= 4
    assert improved.answered >= first.answered  # the first runs are the same; later ones only replace an answer
    assert improved.regret_median_pct is not None and first.regret_median_pct is not None
    assert improved.regret_median_pct <= first.regret_median_pct
    assert improved.regret_p90_pct is not None and first.regret_p90_pct is not None
    assert improved.regret_p90_pct < first.regret_p90_pct  # on this table: 27% -> 8%
    assert fresh.verification_runs_mean <= 4 and fresh.answered <= fresh.queries

    evaluation = Evaluation(imported, 1, (0.95,), seed=1, fresh_runs=True)
    label = int(evaluation.truth.table.index[0])
    true = evaluation.truth.table.loc[label]
    runs = [evaluation.run_once(label, np.random.default_rng(i)) for i in range(20)]
    assert runs[0] == evaluation.run_once(label, np.random.default_rng(0))  # drawn from the generator alone
    times = np.array([r["time_s"] for r in runs])
    assert len(set(times)) > 2 and times.min() < true["metric.time_s"] < times.max()  # noise on both sides of the truth
    spread = evaluation.truth.deviations[("fast" if true["platform"] == "fast" else "slow", "time_s")]
    assert np.all(np.abs(times / true["metric.time_s"] - 1) <= spread.max() + 1e-12)
