"""One confidence contract: the user's ``confidence`` is joint; each interval names its per-bound ``level``.

The level is :func:`hwmatch.optimize.problem.interval_level`: with ``k``
requirements, the two-sided interval at ``1 - 2(1 - c)/k``. These tests
check that the status records it on every interval it produced (and the
joint confidence once), that it is the level the intervals were really
predicted at, and that the CLI and the report print both figures.
"""

from __future__ import annotations

import json
import math
import re
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from hwmatch.api import (
    AIAsset,
    BenchmarkSweep,
    BenchmarkTrial,
    BenchmarkTrialStatus,
    Choice,
    HWRecommendationStatus,
    Parameter,
    load_text,
)
from hwmatch.cli import app
from hwmatch.data.frame import succeeded
from hwmatch.data.store import Store
from hwmatch.engine import run_sweep
from hwmatch.execution import result
from hwmatch.modeling import Prediction
from hwmatch.modeling.surrogates import Surrogates, categorical_columns
from hwmatch.optimize import CandidateSet, build_problem, recommend, solve, to_status
from hwmatch.optimize.problem import interval_level
from tests.unit.test_optimize import PARAMETERS, PLATFORMS, _dataset, spec

PARAMS = [PARAMETERS[0], Parameter(name="depth", type="int", values=[2, 4, 8, 16, 32]),
          Parameter(name="precision", type="categorical", values=["fp32"])]
TARGET = {"requestsPerSecond": 2000, "maxReplicas": 32}
ACCURATE = {"metric": "accuracy", "min": 0.85}
FAST = {"metric": "latency_ms", "max": 40}
#: k requirements at joint confidence 0.9 -> the spec and its per-bound level 1 - 0.2/k.
BY_COUNT = {
    1: ({"constraints": [ACCURATE]}, 0.8),
    2: ({"constraints": [ACCURATE], "throughput": TARGET}, 0.9),
    3: ({"constraints": [ACCURATE, FAST], "throughput": TARGET}, 1 - 0.2 / 3),
}


@pytest.fixture(scope="module")
def models() -> Surrogates:
    return Surrogates(seed=0, categorical=categorical_columns(PARAMS)).fit(succeeded(_dataset()))


def _intervals(status: HWRecommendationStatus) -> list[tuple[str, float | None]]:
    """(metric, level) of every interval the status reports, in the recommendation, alternatives and front."""
    choices: list[Choice] = [status.recommendation, *status.alternatives, *status.pareto_front]
    return [(m, p.level) for c in choices for m, p in c.predicted.items() if p.lower is not None and p.upper is not None]


def _row(choice: Choice) -> pd.DataFrame:
    """The recommended candidate as the models' input."""
    features = next(p for p in PLATFORMS if p.name == choice.platform).features
    return pd.DataFrame([{"platform": choice.platform, **{f"param.{k}": v for k, v in choice.parameters.items()},
                          **{f"feature.{k}": v for k, v in features.items()}}])


@pytest.mark.parametrize("k", sorted(BY_COUNT))
def test_status_records_the_per_bound_level_on_every_interval(models: Surrogates, k: int) -> None:
    fields, expected = BY_COUNT[k]
    s = spec(objective={"minimize": "cost_per_hour"}, confidence=0.9, **fields)
    level = interval_level(s)
    assert level == pytest.approx(expected)
    status = recommend(_dataset(), PARAMS, PLATFORMS, s, seed=0, surrogates=models)
    assert status.phase == "Ready", status.infeasible
    assert status.alternatives and status.pareto_front
    assert status.confidence == 0.9  # the joint figure, once
    intervals = _intervals(status)
    assert {m for m, _ in intervals} >= {"latency_ms", "accuracy", "throughput_per_s"}
    assert all(got == level for _, got in intervals), intervals
    assert status.interval_levels() == [level]
    wire = status.to_wire()
    assert wire["confidence"] == 0.9
    assert wire["recommendation"]["predicted"]["latency_ms"]["level"] == level
    assert wire["paretoFront"][0]["predicted"]["accuracy"]["level"] == level
    # The recorded level is the one the printed bounds were really predicted at.
    rec = status.recommendation
    at_level = models.predict(_row(rec), level)
    for metric in ("latency_ms", "accuracy"):
        assert rec.predicted[metric].lower == pytest.approx(float(at_level[metric].lower[0]))
        assert rec.predicted[metric].upper == pytest.approx(float(at_level[metric].upper[0]))


def test_a_range_constraint_counts_as_two_requirements() -> None:
    """``min`` and ``max`` of one constraint can each fail: the range gets two shares of 1 - c, as two constraints do."""
    ranged = spec(constraints=[{"metric": "latency_ms", "min": 1, "max": 9}], confidence=0.9)
    split = spec(constraints=[{"metric": "latency_ms", "min": 1}, {"metric": "latency_ms", "max": 9}], confidence=0.9)
    one_sided = spec(constraints=[{"metric": "latency_ms", "max": 9}], confidence=0.9)
    assert interval_level(ranged) == interval_level(split) == pytest.approx(0.9)
    assert interval_level(one_sided) == pytest.approx(0.8)

def test_an_infeasible_answer_names_the_level_of_the_bound_it_quotes() -> None:
    """One requirement at 0.9: the quoted upper bound is that of the two-sided 80% interval, not "confidence 0.9"."""
    candidates = CandidateSet.grid([], PLATFORMS)
    latency = np.array([5.0, 3.0, 4.0])
    s = spec(objective={"minimize": "cost_per_hour"}, constraints=[{"metric": "latency_ms", "max": 2}], confidence=0.9)
    problem = build_problem(candidates, {"latency_ms": Prediction(latency, latency * 0.9, latency * 1.1)}, s)
    assert (problem.confidence, problem.level) == (0.9, pytest.approx(0.8))
    status = to_status(problem, solve(problem, "numpy"))
    assert status.phase == "Infeasible" and status.confidence == 0.9
    assert "latency_ms upper bound (two-sided 80% interval) is 3.3 on cpu-large" in status.infeasible.message


# A real program for `hwmatch verify`; the sweep's trials are answered in-process by the same law.
LAW = textwrap.dedent(
    """
    import json, os
    size = json.loads(os.environ["HWMATCH_PARAMS"])["size"]
    cpus = 2 if os.environ["HWMATCH_PLATFORM"] == "two" else 1
    latency = (2.0 + 0.5 * size) / cpus
    print(json.dumps({"metrics": {"latency_ms": latency, "throughput_per_s": 1000.0 / latency}}))
    """
)
MANIFESTS = f"""
apiVersion: hwmatch.dev/v1alpha1
kind: AIAsset
metadata: {{name: law}}
spec:
  command: {json.dumps([sys.executable, "-c", LAW])}
  parameters: [{{name: size, type: int, values: [1, 2, 3, 4, 5, 6, 7, 8]}}]
  metrics: [{{name: latency_ms, goal: minimize}}, {{name: throughput_per_s, goal: maximize}}]
---
apiVersion: hwmatch.dev/v1alpha1
kind: BenchmarkSweep
metadata: {{name: law-sweep}}
spec:
  assetRef: {{name: law}}
  platforms: [{{name: one, costPerHour: 1.0}}, {{name: two, costPerHour: 1.5}}]
  sampling: {{strategy: grid, repetitions: 2}}
"""
RECOMMENDATION = {
    "apiVersion": "hwmatch.dev/v1alpha1", "kind": "HWRecommendation", "metadata": {"name": "law-fast"},
    "spec": {"assetRef": {"name": "law"}, "objective": {"minimize": "latency_ms"}, "confidence": 0.9,
             "constraints": [{"metric": "latency_ms", "max": 100}]},
}
#: One requirement at joint confidence 0.9: intervals at the two-sided 80% level.
CAPTION = "predicted value [interval: two-sided 80% per bound] — requirements hold together with confidence 0.9"


class LawExecutor:
    """The law of :data:`LAW` in-process, ±3% between the two repetitions so that intervals have a width."""

    def check(self, asset: AIAsset, sweep: BenchmarkSweep) -> None:
        pass

    def cancel(self) -> None:
        pass

    def run(self, trial: BenchmarkTrial, asset: AIAsset, sweep: BenchmarkSweep) -> BenchmarkTrialStatus:
        cpus = 2 if trial.spec.platform == "two" else 1
        latency = (2.0 + 0.5 * trial.spec.parameters["size"]) / cpus * (0.97 if trial.spec.repetition == 0 else 1.03)
        now = result.now()
        return result.succeeded(result.HarnessResult({"latency_ms": latency, "throughput_per_s": 1000.0 / latency}),
                                now, now, {})


def _flat(text: str) -> str:
    """Output with line wraps and table padding folded to single spaces."""
    return " ".join(re.sub(r"[│┃]", " ", text).split())


def test_recommend_verify_and_report_print_the_level_and_the_joint_confidence(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    asset, sweep = (d.resource for d in load_text(MANIFESTS))
    with Store(db) as store:
        assert run_sweep(store, asset, sweep, LawExecutor()).succeeded == 32
    rec_file = tmp_path / "rec.yaml"
    rec_file.write_text(yaml.safe_dump(RECOMMENDATION))
    runner = CliRunner()

    solved = runner.invoke(app, ["recommend", str(rec_file), "--store", str(db)])
    assert solved.exit_code == 0, solved.output
    assert CAPTION in _flat(solved.output)
    with Store(db) as store:
        (stored,) = store.recommendations()
    assert stored.status.confidence == 0.9 and stored.status.interval_levels() == [pytest.approx(0.8)]

    verified = runner.invoke(app, ["verify", "--store", str(db), "-r", "1"])
    assert verified.exit_code == 0, verified.output
    assert CAPTION in _flat(verified.output)

    reported = runner.invoke(app, ["report", "--store", str(db), "--out", str(tmp_path / "report")])
    assert reported.exit_code == 0, reported.output
    page = (tmp_path / "report" / "index.html").read_text()
    assert f"<caption>{CAPTION}</caption>" in page
    assert "to hold together with confidence 0.9;" in page
    assert not math.isclose(interval_level(stored.spec), stored.spec.confidence)  # the two figures really differ here
