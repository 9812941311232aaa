"""Serving trials for real: the built-in model server on cpu 0, vegeta on cpu 1, a real Prometheus scraping the server.

A sweep over 3 rates × 2 configurations gives 6 rows with the client's and the
server's percentiles, whose medians agree within the histogram's bucket resolution
(a tail that does not is said in the trial's message),
and a latency that grows with the rate. The rates are chosen so that the
growth is physics, not luck: each request carries 2,048 images (about 13 ms
of server CPU on the idle development machine: a core serves ~75 of them a
second; with 512 images an idle run served 250/s unsaturated at 3.3 ms and
its p50 fell with the rate), so 5 requests/s keeps the one core ~7% busy, and
250/s is past saturation even on an idle machine twice as fast: a queue
builds for the 3 s of the load, and the latency at that rate is the queue's,
wherever the test runs.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import psutil
import pytest

from hwmatch.api import AIAsset, BenchmarkSweep
from hwmatch.data.store import Store
from hwmatch.engine import run_sweep
from hwmatch.execution import LocalExecutor
from hwmatch.harness.assets.digits import load_split
from hwmatch.harness.assets.onnx_server import LATENCY_BUCKETS, LATENCY_METRIC
from hwmatch.harness.loadgen import VEGETA_VARIABLE
from hwmatch.telemetry.serving import agree
from tests.fixtures.prometheus import free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not {0, 1} <= os.sched_getaffinity(0), reason="needs cpus 0 and 1 (server and load generator)"),
]
ROOT = Path(__file__).resolve().parents[2]
RATES = [5, 40, 250]
IMAGES_PER_REQUEST = 2048


@pytest.fixture
def vegeta(monkeypatch: pytest.MonkeyPatch) -> str:
    """The load generator, built by hack/vegeta.sh (cached); skipped, saying why, without the Go toolchain."""
    built = subprocess.run(["bash", str(ROOT / "hack/vegeta.sh")], capture_output=True, text=True, timeout=600)
    if built.returncode == 3:
        pytest.skip("vegeta cannot be built: the Go toolchain (go) is not installed; install Go, "
                    "then `bash hack/vegeta.sh` (make system-deps runs it)")
    assert built.returncode == 0, built.stderr
    path = built.stdout.strip().splitlines()[-1]
    monkeypatch.setenv(VEGETA_VARIABLE, path)
    return path


def _manifests(port: int) -> tuple[AIAsset, BenchmarkSweep]:
    x = load_split().x_test
    body = json.dumps({"instances": [x[i % len(x)].astype(int).tolist() for i in range(IMAGES_PER_REQUEST)]})
    asset = AIAsset.model_validate({
        "metadata": {"name": "digits-server"},
        "spec": {
            "command": ["hwmatch-bench", "serve", "onnx-mlp-server", "--host", "127.0.0.1"],
            "parameters": [
                {"name": "requests_per_second", "type": "int", "values": RATES},
                {"name": "precision", "type": "categorical", "values": ["fp32", "int8"]},
            ],
            "serving": {
                "port": port, "latencyHistogram": LATENCY_METRIC, "latencyUnit": "seconds",
                "request": {"path": "/v1/predict", "body": body},
                "load": {"duration": "3s", "warmup": "1s", "requestTimeout": "30s"},
            },
            "metrics": [
                {"name": "latency_p50_ms", "goal": "minimize"}, {"name": "latency_p99_ms", "goal": "minimize"},
                {"name": "throughput_per_s", "goal": "maximize"}, {"name": "error_rate", "goal": "minimize"},
                {"name": "server_latency_p50_ms"}, {"name": "server_latency_p99_ms"},
            ],
        },
    })
    sweep = BenchmarkSweep.model_validate({
        "metadata": {"name": "digits-server-local"},
        "spec": {"assetRef": {"name": "digits-server"}, "platforms": [{"name": "cpu-1core", "cpus": [0], "threads": 1}],
                 "sampling": {"strategy": "grid"}, "trialTimeout": "2m"},
    })
    return asset, sweep


def test_a_serving_sweep_measures_both_sides_and_latency_grows_with_the_rate(tmp_path, prometheus_server, vegeta):
    port = free_port()
    prometheus = prometheus_server(targets=[f"127.0.0.1:{port}"], scrape_interval="1s", job="serving")
    asset, sweep = _manifests(port)
    with Store(tmp_path / "hwmatch.db") as store:
        report = run_sweep(store, asset, sweep, LocalExecutor(prometheus_url=prometheus.url, scrape_interval=1.0))
        trials = store.trials(sweep=sweep.metadata.name)
    # multiprocessing's resource tracker (started once per interpreter by the operator's spawned solver worker,
    # when an operator ran in this process) lives as long as the interpreter: it is not a trial's.
    left = [c for c in psutil.Process().children(recursive=True) if c.pid != prometheus.proc.pid and c.is_running()
            and "multiprocessing.resource_tracker" not in " ".join(c.cmdline())]
    assert not left, f"processes outlived their trials: {left}"
    failed = [(t.status.reason, t.status.message, t.status.log_tail) for t in trials if t.status.phase != "Succeeded"]
    assert not failed and report.complete, failed
    rows = sorted(((t.spec.parameters["precision"], t.spec.parameters["requests_per_second"], t.status.metrics,
                    t.status.message) for t in trials), key=lambda r: (r[0], r[1]))
    print("\nprecision rate | client p50 p90 p99 ms | server p50 p90 p99 ms | achieved/s errors | message")
    for precision, rate, m, message in rows:
        print(f"{precision} {rate:4d} | {m['latency_p50_ms']:.2f} {m['latency_p90_ms']:.2f} {m['latency_p99_ms']:.2f} | "
              f"{m['server_latency_p50_ms']:.2f} {m['server_latency_p90_ms']:.2f} {m['server_latency_p99_ms']:.2f} | "
              f"{m['throughput_per_s']:.0f} {m['error_rate']:.3f} | {message or ''}")
    bounds_ms = [b * 1e3 for b in LATENCY_BUCKETS]
    for precision, rate, m, message in rows:
        # The median agrees within a bucket at every rate. A tail may not: requests that wait in the kernel's
        # accept queue (a server behind on a loaded machine) count for the client, never for the server's
        # histogram; one CI run had p99 526 ms against 381 ms at 40/s. Then the trial must say so.
        assert agree(m["latency_p50_ms"], m["server_latency_p50_ms"], bounds_ms), (precision, rate, m)
        disagree = [q for q in ("p90", "p99") if not agree(m[f"latency_{q}_ms"], m[f"server_latency_{q}_ms"], bounds_ms)]
        assert bool(disagree) == bool(message and "disagree" in message), (precision, rate, disagree, message)
        for q in disagree:  # the client sees more than the server, not less
            assert m[f"latency_{q}_ms"] > m[f"server_latency_{q}_ms"], (precision, rate, q, m)
    for precision in ("fp32", "int8"):
        by_rate = {rate: m for p, rate, m, _ in rows if p == precision}
        low, high = by_rate[RATES[0]], by_rate[RATES[-1]]
        for name in ("latency_p50_ms", "latency_p99_ms", "server_latency_p99_ms"):
            assert high[name] > low[name], (precision, name, low[name], high[name])
