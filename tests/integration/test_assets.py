"""The built-in assets really run through the ``hwmatch-bench`` command, as an executor runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hwmatch.harness import BUILTIN
from hwmatch.harness.assets.solver import JobShop

pytestmark = pytest.mark.integration

BENCH = str(Path(sys.executable).with_name("hwmatch-bench"))
ROOT = Path(__file__).resolve().parents[2]
#: Throughput is derived from the mean latency; the contract promises agreement within this.
THROUGHPUT_TOLERANCE = 0.25


def bench(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``hwmatch-bench`` in a fresh process (the repository on PYTHONPATH, for test assets)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HWMATCH_")}
    full_env["PYTHONPATH"] = str(ROOT)
    full_env.update(env or {})
    return subprocess.run([BENCH, *args], capture_output=True, text=True, env=full_env, timeout=timeout, cwd=ROOT)


def result_of(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check_measurement(doc: dict[str, Any], batch_size: int) -> None:
    """Every harness metric present, positive and mutually consistent."""
    m = doc["metrics"]
    for name in ("latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms", "latency_mean_ms",
                 "throughput_per_s", "peak_rss_mb", "wall_time_s"):
        assert m[name] > 0, name
    assert m["latency_std_ms"] >= 0
    assert m["latency_p50_ms"] <= m["latency_p90_ms"] <= m["latency_p95_ms"] <= m["latency_p99_ms"]
    expected = batch_size / (m["latency_mean_ms"] / 1e3)
    assert m["throughput_per_s"] == pytest.approx(expected, rel=THROUGHPUT_TOLERANCE)
    assert doc["samples"] >= 1 and doc["started"] <= doc["finished"]
    assert m["wall_time_s"] >= doc["finished"] - doc["started"]
    assert m["peak_rss_mb"] < 16 * 1024
    assert set(doc["host"]) == {"hostname", "cpu_model", "cpu_count", "affinity", "machine"}


@pytest.fixture(scope="module")
def forest_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """sklearn-forest with parameters from HWMATCH_PARAMS, one overridden by a flag, and a termination log."""
    log = tmp_path_factory.mktemp("pod") / "termination-log"
    proc = bench(
        "run", "sklearn-forest", "--param", "batch_size=16", "--samples", "40", "--time-budget", "5",
        env={"HWMATCH_PARAMS": json.dumps({"n_estimators": 30, "max_depth": 10, "batch_size": 256, "n_jobs": 1}),
             "HWMATCH_TERMINATION_LOG": str(log)},
    )
    return result_of(proc), log


def test_forest_reports_consistent_metrics_and_accuracy(forest_run: tuple[dict[str, Any], Path]) -> None:
    doc, _ = forest_run
    check_measurement(doc, batch_size=16)
    assert 0.8 < doc["metrics"]["accuracy"] <= 1.0
    assert doc["metrics"]["train_time_s"] > 0
    assert doc["asset"] == "sklearn-forest"


def test_flags_override_hwmatch_params_and_defaults_fill_the_rest(forest_run: tuple[dict[str, Any], Path]) -> None:
    doc, _ = forest_run
    assert doc["parameters"] == {"model": "random_forest", "n_estimators": 30, "max_depth": 10, "batch_size": 16, "n_jobs": 1}


def test_termination_log_holds_the_result_under_4_kib(forest_run: tuple[dict[str, Any], Path]) -> None:
    doc, log = forest_run
    raw = log.read_bytes()
    assert len(raw) < 4096
    assert json.loads(raw)["metrics"] == doc["metrics"]


def test_onnx_mlp_int8_runs_with_its_thread_count() -> None:
    doc = result_of(bench("run", "onnx-mlp", "-p", "precision=int8", "-p", "threads=2", "-p", "batch_size=32",
                          "-p", "hidden=32", "--samples", "200", "--time-budget", "5"))
    check_measurement(doc, batch_size=32)
    assert 0.85 < doc["metrics"]["accuracy"] <= 1.0
    assert doc["metrics"]["model_bytes"] > 0
    assert doc["parameters"] == {"batch_size": 32, "threads": 2, "precision": "int8", "hidden": 32}


def test_ortools_solver_reports_a_valid_schedule_quality() -> None:
    size = 6
    doc = result_of(bench("run", "ortools-solver", "-p", f"instance_size={size}", "-p", "time_limit_s=2",
                          "--samples", "2"))
    check_measurement(doc, batch_size=1)
    m = doc["metrics"]
    shop = JobShop.generate(size)
    longest_job = max(sum(d for _, d in job) for job in shop.jobs)  # no schedule is shorter than a job
    assert longest_job <= m["objective"] <= shop.horizon
    assert 0 <= m["gap"] < 1
    assert m["solve_time_s"] > 0
    assert doc["samples"] == 2


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["run", "sklearn-forest", "-p", "max_depht=4"], {}, "unknown parameter 'max_depht'"),
        (["run", "sklearn-forest", "-p", "max_depth=64"], {}, "'max_depth': 64 is outside its space (int in [2, 32] (log))"),
        (["run", "onnx-mlp"], {"HWMATCH_PARAMS": '{"precision": "fp16"}'}, "'precision': fp16 is outside its space (one of fp32, int8)"),
        (["run", "resnet-9000"], {}, "unknown asset 'resnet-9000'; built-in assets: sklearn-forest, onnx-mlp, ortools-solver"),
    ],
)
def test_usage_errors_exit_2_with_a_message_naming_the_problem(args: list[str], env: dict[str, str], message: str) -> None:
    proc = bench(*args, env=env)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert proc.stdout == ""


def test_a_crash_inside_the_asset_exits_non_zero_with_the_traceback() -> None:
    proc = bench("run", "tests.unit.test_harness:BrokenAsset")
    assert proc.returncode not in (0, 2)
    assert "Traceback" in proc.stderr and "RuntimeError: the model fell over" in proc.stderr


def test_list_names_every_builtin_asset_and_its_parameters() -> None:
    proc = bench("list")
    assert proc.returncode == 0
    for name, cls in BUILTIN.items():
        assert name in proc.stdout
        assert all(p.name in proc.stdout for p in cls.parameters)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_onnx_graph_computes_what_the_trained_network_computes() -> None:
    """The hand-written ONNX graph, run by ONNX Runtime, reproduces scikit-learn's probabilities."""
    import onnxruntime as ort
    from sklearn.neural_network import MLPClassifier

    from hwmatch.harness.assets.digits import load_split
    from hwmatch.harness.assets.onnx_mlp import mlp_graph

    split = load_split()
    mlp = MLPClassifier(hidden_layer_sizes=(16,), max_iter=5, random_state=0).fit(split.x_train, split.y_train)
    session = ort.InferenceSession(mlp_graph(mlp.coefs_, mlp.intercepts_).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(None, {"input": split.x_test})
    np.testing.assert_allclose(probabilities, mlp.predict_proba(split.x_test), rtol=1e-4, atol=1e-5)
