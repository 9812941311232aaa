"""Serving assets without a load generator: the spec's checks, vegeta's report, the agreement rule, the server itself."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
import requests

from hwmatch.api import AIAsset, BenchmarkSweep
from hwmatch.api.asset import AIAssetSpec, ServingSpec
from hwmatch.api.errors import InputError
from hwmatch.execution import LocalExecutor
from hwmatch.harness.assets.onnx_server import LATENCY_BUCKETS, LATENCY_METRIC, OnnxMlpServer
from hwmatch.harness.loadgen import VEGETA_VARIABLE, LoadGeneratorMissing, attack_argv, find_vegeta, parse_report
from hwmatch.telemetry.serving import agree, disagreements, quantile_metrics

# A real `vegeta report -type=json` (v12.13.0) of an attack on a closed port: every request failed.
REPORT = ('{"latencies":{"total":2768627,"mean":553725,"50th":514073,"90th":706630,"95th":706630,"99th":706630,'
          '"max":706630,"min":436375},"bytes_in":{"total":0,"mean":0},"bytes_out":{"total":0,"mean":0},'
          '"earliest":"2026-12-02T02:27:26.085163654Z","latest":"2026-12-02T02:27:26.885375697Z",'
          '"end":"2026-12-02T02:27:26.88588977Z","duration":800212043,"wait":514073,"requests":5,'
          '"rate":6.248343853030464,"throughput":0,"success":0,"status_codes":{"0":5},'
          '"errors":["Get \\"http://127.0.0.1:1/\\": dial tcp 0.0.0.0:0-\\u003e127.0.0.1:1: connect: connection refused"]}')
SERVING = {"port": 18601, "request": {"path": "/v1/predict", "body": "{}"}, "latencyHistogram": LATENCY_METRIC}
RATE = {"name": "requests_per_second", "type": "int", "values": [10, 100]}


def _spec(parameters: list[dict], serving: dict = SERVING) -> AIAssetSpec:
    return AIAssetSpec.model_validate({"command": ["x"], "metrics": [{"name": "latency_p99_ms"}],
                                       "parameters": parameters, "serving": serving})


def test_the_rate_is_a_parameter_and_errors_name_the_field_and_the_fix() -> None:
    assert _spec([RATE]).serving is not None
    with pytest.raises(ValueError, match=r"spec.serving.load.rateParameter: 'requests_per_second' is not in "
                                         r"spec.parameters; add the offered rates as a parameter"):
        _spec([])
    with pytest.raises(ValueError, match="must be an int or float parameter of positive rates"):
        _spec([{"name": "requests_per_second", "type": "categorical", "values": ["low", "high"]}])
    with pytest.raises(ValueError, match="positive rates"):
        _spec([{"name": "requests_per_second", "type": "int", "values": [0, 10]}])
    with pytest.raises(ValueError, match="duration must be longer than 0"):
        _spec([RATE], {**SERVING, "load": {"duration": "0s"}})
    custom = _spec([{"name": "qps", "type": "float", "range": {"min": 1, "max": 500}}],
                   {**SERVING, "load": {"rateParameter": "qps", "duration": "1m", "warmup": "500ms"}})
    assert custom.serving is not None and custom.serving.load.duration_seconds == 60
    assert custom.serving.load.warmup_seconds == 0.5


def test_vegeta_report_is_read_into_the_client_metrics() -> None:
    report = parse_report(REPORT)
    assert report.requests == 5 and report.status_codes == {"0": 5} and "connection refused" in report.errors[0]
    metrics = report.metrics()
    assert metrics["latency_p50_ms"] == pytest.approx(0.514073) and metrics["latency_max_ms"] == pytest.approx(0.70663)
    assert metrics["error_rate"] == 1.0 and metrics["throughput_per_s"] == 0.0
    assert metrics["offered_rate_per_s"] == pytest.approx(6.2483, rel=1e-4)
    with pytest.raises(ValueError, match="not a vegeta JSON report"):
        parse_report('{"requests": 3}')


def test_the_attack_is_open_loop_at_the_exact_rate(tmp_path) -> None:
    argv = attack_argv("vegeta", tmp_path / "t", 250, 3.0, 5.0, tmp_path / "r")
    assert argv[:2] == ["vegeta", "attack"] and "-rate=250/1s" in argv and "-duration=3000ms" in argv
    assert not any(a.startswith(("-max-workers", "-connections")) for a in argv)  # unbounded workers: open loop
    assert "-rate=12500/1000s" in attack_argv("vegeta", tmp_path / "t", 12.5, 1, 1, tmp_path / "r")


def test_a_missing_load_generator_says_how_to_get_one(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(VEGETA_VARIABLE, str(tmp_path / "nope"))
    with pytest.raises(LoadGeneratorMissing, match="not an executable file.*hack/vegeta.sh"):
        find_vegeta()
    monkeypatch.delenv(VEGETA_VARIABLE)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LoadGeneratorMissing, match="run `bash hack/vegeta.sh`"):
        find_vegeta()


def test_a_serving_platform_must_leave_a_cpu_to_the_load_generator() -> None:
    asset = AIAsset.model_validate({"metadata": {"name": "s"}, "spec": _spec([RATE]).model_dump(by_alias=True)})
    sweep = BenchmarkSweep.model_validate({"metadata": {"name": "w"}, "spec": {
        "assetRef": {"name": "s"}, "platforms": [{"name": "all"}], "sampling": {"strategy": "grid"}}})
    with pytest.raises(InputError, match=r"spec.platforms\[0\] \(all\).*load generator.*leave at least one out"):
        LocalExecutor().check(asset, sweep)


def test_client_and_server_agree_within_one_bucket() -> None:
    bounds = [1.0, 2.0, 4.0, 8.0]  # buckets (0,1] (1,2] (2,4] (4,8] (8,inf)
    assert agree(3.0, 3.0, bounds) and agree(1.5, 3.0, bounds) and agree(7.9, 3.0, bounds)  # its bucket, or next to it
    assert not agree(0.9, 3.0, bounds) and not agree(8.1, 3.0, bounds)
    assert agree(0.1, 0.5, bounds) and agree(100.0, 9.0, bounds) and not agree(3.9, 9.0, bounds)
    found = disagreements({"latency_p99_ms": 20.0, "server_latency_p99_ms": 3.0, "latency_p50_ms": 1.0,
                           "server_latency_p50_ms": 1.2}, bounds)
    assert found == ["p99: client 20 ms, server 3 ms"]


def test_server_quantiles_are_histogram_quantile_over_the_window() -> None:
    serving = ServingSpec.model_validate({**SERVING, "latencyUnit": "microseconds"})
    queries = {m.name: m.query for m in quantile_metrics(serving, "{pod_selector}")}
    assert queries["server_latency_p99_ms"] == (
        f"histogram_quantile(0.99, sum by (le) (increase({LATENCY_METRIC}_bucket{{pod_selector}}[{{window}}]))) * 0.001")
    assert set(queries) == {"server_latency_p50_ms", "server_latency_p90_ms", "server_latency_p99_ms"}


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The built-in server on a free port, batching up to 4 requests for up to 20 ms."""
    params = {**OnnxMlpServer.defaults, "max_batch": 4, "max_wait_ms": 20.0}
    httpd = OnnxMlpServer.build(params, "127.0.0.1", 0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_the_server_predicts_batches_and_counts_every_request(server: str) -> None:
    body = OnnxMlpServer.request_body()
    assert requests.get(server + "/healthz", timeout=5).status_code == 200
    with requests.Session() as s:
        answers = [s.post(server + "/v1/predict", data=body, timeout=5) for _ in range(3)]
        bad = s.post(server + "/v1/predict", data=json.dumps({"instances": [[1, 2]]}), timeout=5)
    assert all(a.status_code == 200 and a.json() == answers[0].json() for a in answers)
    assert len(answers[0].json()["predictions"]) == 1
    assert bad.status_code == 400 and "rows of 64 numbers" in bad.json()["error"]
    # Four requests at once fill one batch: the batcher runs them together.
    rows = json.dumps({"instances": json.loads(body)["instances"] * 2})
    threads = [threading.Thread(target=lambda: requests.post(server + "/v1/predict", data=rows, timeout=5))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    text = requests.get(server + "/metrics", timeout=5).text
    assert f'{LATENCY_METRIC}_count 8.0' in text and "hwmatch_request_errors_total 1.0" in text
    assert f'{LATENCY_METRIC}_bucket{{le="{LATENCY_BUCKETS[0]}"}}' in text
    assert 'hwmatch_batch_size_bucket{le="4.0"}' in text
    sizes = {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line.startswith("hwmatch_batch_size_")}
    assert sizes["hwmatch_batch_size_sum"] == 3 + 8  # 3 single requests, then 4 of 2 rows in batches of up to 4 rows
