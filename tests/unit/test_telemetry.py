"""Telemetry without a server: templates, placeholders, presets, answers of the shapes Prometheus sends."""

from __future__ import annotations

import json

import pytest
import requests

from hwmatch.api.asset import METRIC_PRESETS, PROMQL_PLACEHOLDERS, MetricSpec
from hwmatch.telemetry import (
    PLACEHOLDERS,
    PRESETS,
    PrometheusClient,
    PrometheusQueryError,
    PrometheusUnreachable,
    QueryContext,
    TemplateError,
    trial_metrics,
    validate_metrics,
)
from hwmatch.telemetry.prometheus import parse_instant, parse_range
from hwmatch.telemetry.promql import render, render_metric

CTX = QueryContext(namespace="bench", pod="trial-abc-x1", start=1000.0, end=1031.5, node="gpu-0.example", resolution=15)


def metric(name: str = "energy_j", **kw) -> MetricSpec:
    return MetricSpec(name=name, source="prometheus", **kw)


# --- windows and placeholders ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "resolution", "window"),
    [(31.5, 15, "45s"), (30.0, 15, "30s"), (30.0000001, 15, "30s"), (0.0, 15, "15s"), (2.2, 1, "3s"),
     (1.2, 0.5, "1500ms")],
)
def test_window_is_rounded_up_to_the_resolution(duration: float, resolution: float, window: str) -> None:
    ctx = QueryContext(namespace="n", pod="p", start=100.0, end=100.0 + duration, resolution=resolution)
    assert ctx.window == window


def test_every_placeholder_fills() -> None:
    template = " ".join("{" + p + "}" for p in PLACEHOLDERS if not p.endswith("selector"))
    assert render("m", template, CTX) == 'bench trial-abc-x1 gpu-0.example 45s 45 31.5'


def test_label_selectors_are_not_placeholders() -> None:
    q = 'sum(rate(container_cpu_usage_seconds_total{namespace="{namespace}",pod=~"{pod}"}[{window}]))'
    assert render("cpu", q, CTX) == (
        'sum(rate(container_cpu_usage_seconds_total{namespace="bench",pod=~"trial-abc-x1"}[45s]))'
    )


def test_pod_selector_covers_exported_labels_with_or() -> None:
    q = render("p", "max(DCGM_FI_DEV_POWER_USAGE{pod_selector})", CTX)
    assert q == (
        '(max(DCGM_FI_DEV_POWER_USAGE{namespace="bench",pod="trial-abc-x1"})) or '
        '(max(DCGM_FI_DEV_POWER_USAGE{exported_namespace="bench",exported_pod="trial-abc-x1"}))'
    )


def test_node_selector_matches_instance_with_port_or_node_label() -> None:
    q = render("e", "x{node_selector}", CTX)
    assert q == '(x{instance=~"gpu-0\\\\.example(:[0-9]+)?"}) or (x{node="gpu-0.example"})'


def test_values_are_escaped_inside_promql_strings() -> None:
    ctx = QueryContext(namespace='a"b', pod="c\\d", start=0, end=1)
    assert render("m", 'x{namespace="{namespace}",pod="{pod}"}', ctx) == 'x{namespace="a\\"b",pod="c\\\\d"}'


def unchecked(name: str, query: str) -> MetricSpec:
    """A metric the API model would refuse (it checks placeholders too), as an older object may hold it."""
    return MetricSpec.model_construct(name=name, source="prometheus", query=query, preset=None, goal=None, unit=None)


def test_the_model_refuses_unknown_placeholders_too() -> None:
    with pytest.raises(ValueError, match=r"unknown placeholder\(s\) \{pod_name\}"):
        metric("gpu_watts", query="sum(x{pod=\"{pod_name}\"}[{window}])")
    assert set(PLACEHOLDERS) == set(PROMQL_PLACEHOLDERS)


def test_unknown_placeholder_names_metric_and_allowed_ones() -> None:
    with pytest.raises(TemplateError) as err:
        validate_metrics([unchecked("gpu_watts", "sum(x{pod=\"{pod_name}\"}[{window}])")])
    text = str(err.value)
    assert "'gpu_watts'" in text and "{pod_name}" in text
    for p in PLACEHOLDERS:
        assert "{" + p + "}" in text


def test_node_level_metric_without_node_is_missing_context() -> None:
    ctx = QueryContext(namespace="n", pod="p", start=0, end=10)
    with pytest.raises(TemplateError, match="node is not known"):
        render_metric(metric(preset="rapl-energy"), ctx)


@pytest.mark.parametrize("bad", [dict(start=10, end=5), dict(start=0, end=float("nan")), dict(resolution=0)])
def test_bad_window_is_refused(bad: dict) -> None:
    args = dict(namespace="n", pod="p", start=0.0, end=10.0) | bad
    with pytest.raises(ValueError):
        QueryContext(**args)


# --- presets -----------------------------------------------------------------------------------


def test_presets_match_the_api() -> None:
    assert set(PRESETS) == set(METRIC_PRESETS)
    for p in PRESETS.values():
        validate_metrics([metric(preset=p.name)])
        assert p.unit in {"J", "W"}


def test_dcgm_energy_is_millijoules_to_joules_with_exported_fallback() -> None:
    q = render_metric(metric(preset="dcgm-energy"), CTX)
    assert q == (
        '(sum(increase(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{namespace="bench",pod="trial-abc-x1"}[45s])) / 1000) or '
        '(sum(increase(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{exported_namespace="bench",exported_pod="trial-abc-x1"}'
        '[45s])) / 1000)'
    )


def test_kepler_uses_the_package_zone_only() -> None:
    q = render_metric(metric(preset="kepler-energy"), CTX)
    assert 'zone="package"' in q and 'pod_name="trial-abc-x1"' in q and 'pod_namespace="bench"' in q


def test_rapl_preset_says_it_is_node_level() -> None:
    assert PRESETS["rapl-energy"].level == "node" and "NODE" in PRESETS["rapl-energy"].description


# --- answers -----------------------------------------------------------------------------------

VECTOR = {
    "status": "success",
    "data": {"resultType": "vector", "result": [
        {"metric": {"__name__": "DCGM_FI_DEV_POWER_USAGE", "gpu": "0", "pod": "p"}, "value": [1700000000.123, "71.5"]},
        {"metric": {"gpu": "1"}, "value": [1700000000.123, "NaN"]},
    ]},
}
SCALAR = {"status": "success", "data": {"resultType": "scalar", "result": [1700000000, "+Inf"]}}
MATRIX = {"status": "success", "data": {"resultType": "matrix", "result": [
    {"metric": {"job": "dcgm"}, "values": [[1700000000, "1"], [1700000015, "2.5"]]},
]}}
PARSE_ERROR = {
    "status": "error", "errorType": "bad_data",
    "error": 'invalid parameter "query": 1:5: parse error: unexpected "}" in label matching',
}


def test_parse_vector_scalar_matrix() -> None:
    samples = parse_instant(VECTOR["data"])
    assert samples[0].labels["gpu"] == "0" and samples[0].value == 71.5 and samples[0].timestamp == 1700000000.123
    assert samples[1].value != samples[1].value  # NaN
    assert parse_instant(SCALAR["data"])[0].value == float("inf")
    series = parse_range(MATRIX["data"])
    assert series[0].labels == {"job": "dcgm"} and series[0].points == [(1700000000.0, 1.0), (1700000015.0, 2.5)]
    with pytest.raises(ValueError, match="range vector"):
        parse_instant(MATRIX["data"])


class FakeSession:
    """Answers POSTs with canned Prometheus responses, recording what was asked."""

    def __init__(self, answers: list[tuple[int, dict | str] | Exception]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, dict]] = []

    def post(self, url: str, data: dict, timeout: float, stream: bool = False) -> requests.Response:
        self.calls.append((url, dict(data)))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, body = answer
        response = requests.Response()
        response.status_code = status
        response._content = (json.dumps(body) if isinstance(body, dict) else body).encode()
        response._content_consumed = True  # the body is there: iter_content reads it back
        return response


def test_client_sends_query_and_time() -> None:
    session = FakeSession([(200, VECTOR), (200, MATRIX)])
    client = PrometheusClient("http://prom:9090/prefix/", session=session)
    assert len(client.query("up", time=1700000000.5)) == 2
    assert session.calls[0] == ("http://prom:9090/prefix/api/v1/query", {"query": "up", "time": "1700000000.500"})
    client.query_range("up", 10, 40, 15)
    assert session.calls[1][1] == {"query": "up", "start": "10.000", "end": "40.000", "step": "15.000"}


def test_promql_error_shows_prometheus_message_and_query() -> None:
    client = PrometheusClient("http://prom:9090", session=FakeSession([(400, PARSE_ERROR)]))
    with pytest.raises(PrometheusQueryError) as err:
        client.query("x{")
    assert "unexpected" in str(err.value) and "query: x{" in str(err.value) and err.value.error_type == "bad_data"


@pytest.mark.parametrize("failure", [requests.ConnectionError("Connection refused"), requests.ReadTimeout("slow"),
                                     (502, "<html>Bad Gateway</html>"), (404, "404 page not found")])
def test_unreachable_names_url_and_flag(failure) -> None:
    client = PrometheusClient("http://nowhere:9090", timeout=2, session=FakeSession([failure]))
    with pytest.raises(PrometheusUnreachable) as err:
        client.query("up")
    assert "http://nowhere:9090" in str(err.value) and "--prometheus-url" in str(err.value)


def test_url_without_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="--prometheus-url"):
        PrometheusClient("prometheus:9090")


# --- trial_metrics -----------------------------------------------------------------------------


def vector(*values: str) -> dict:
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"i": str(i)}, "value": [1031.5, v]} for i, v in enumerate(values)]}}


def test_trial_metrics_values_and_reasons_for_missing() -> None:
    metrics = [
        MetricSpec(name="latency_p99_ms"),  # harness: not queried
        metric("energy_j", preset="dcgm-energy"),  # answers a value
        metric("power_w", preset="dcgm-power"),  # answers nothing
        metric("cpu_j", preset="kepler-energy"),  # answers two series
        metric("ratio", query="x{pod_selector} / 0"),  # answers NaN
        metric("bad", query="x{"),  # Prometheus refuses it
        metric("node_j", preset="rapl-energy"),  # needs the node: never queried
    ]
    session = FakeSession([(200, vector("1234.5")), (200, vector()), (200, vector("1", "2")), (200, vector("NaN")),
                           (400, PARSE_ERROR)])
    result = trial_metrics(PrometheusClient("http://p:9090", session=session), metrics, "bench", "pod-1", 1000.0, 1031.5)
    assert result == {"energy_j": 1234.5}
    assert set(result.missing) == {"power_w", "cpu_j", "ratio", "bad", "node_j"}
    assert "no data for pod bench/pod-1 in the 45s window" in result.missing["power_w"]
    assert "returns 2 series" in result.missing["cpu_j"] and "sum(" in result.missing["cpu_j"]
    assert "nan" in result.missing["ratio"]
    assert "unexpected" in result.missing["bad"] and "query: x{" in result.missing["bad"]
    assert "node is not known" in result.missing["node_j"]
    assert len(session.calls) == 5 and all(data["time"] == "1031.500" for _, data in session.calls)
    assert "power_w: no data" in result.message()


def test_trial_metrics_refuses_unknown_placeholders_before_querying() -> None:
    session = FakeSession([])
    with pytest.raises(TemplateError, match="'w'"):
        trial_metrics(PrometheusClient("http://p:9090", session=session), [unchecked("w", "{podname}")],
                      "n", "p", 0, 10)
    assert session.calls == []


def test_trial_metrics_unreachable_raises() -> None:
    session = FakeSession([requests.ConnectionError("refused")])
    with pytest.raises(PrometheusUnreachable):
        trial_metrics(PrometheusClient("http://p:9090", session=session), [metric(preset="dcgm-power")],
                      "n", "p", 0, 10)
